"""A small, realistic demo data set, loaded through the schema's own rules (and so its audit triggers).

Loading is idempotent: a database that already holds the demo's teams is left as it is. The password
hashes are well-formed argon2 strings that match no password.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.actor import set_actor
from platformdb.db import connect
from platformdb.errors import UserError

ENVIRONMENTS = [("development", False), ("staging", False), ("production", True)]
TEAMS = [("platform-core", "Platform Core"), ("payments", "Payments"), ("storefront", "Storefront")]
USERS = [
    ("alice@example.com", "Alice Admin", "platform-core"),
    ("bob@example.com", "Bob Builder", "payments"),
    ("carol@example.com", "Carol Checkout", "storefront"),
    ("dave@example.com", "Dave Deployer", "platform-core"),
    ("erin@example.com", "Erin Engineer", "payments"),
]
PERMISSIONS = [
    "service:read", "service:write", "deployment:create", "deployment:approve",
    "configuration:read", "configuration:write", "secret:read", "audit:read",
]  # fmt: skip
ROLES = {
    "viewer": ["service:read", "configuration:read"],
    "deployer": ["service:read", "deployment:create", "configuration:read"],
    "service-owner": ["service:read", "service:write", "deployment:create", "deployment:approve",
                      "configuration:read", "configuration:write", "secret:read"],
    "admin": PERMISSIONS,
}  # fmt: skip
# (service, team, tier, description, depends on)
SERVICES = [
    ("api-gateway", "platform-core", 1, "Routes and authenticates external traffic.", ["identity", "catalog"]),
    ("identity", "platform-core", 1, "Sign-in, sessions and tokens.", []),
    ("catalog", "storefront", 2, "Product catalog and search.", []),
    ("checkout", "storefront", 1, "Carts and orders.", ["payments", "catalog", "identity"]),
    ("payments", "payments", 1, "Card and wallet payments.", ["ledger", "identity"]),
    ("ledger", "payments", 1, "Double-entry ledger of money movements.", []),
    ("notifications", "platform-core", 3, "E-mail and push notifications.", ["identity"]),
]
METRICS = [
    ("http_requests_total", "requests", "counter", "HTTP requests served."),
    ("http_request_duration_p99_seconds", "seconds", "gauge", "99th percentile request latency."),
    ("cpu_usage_ratio", "ratio", "gauge", "CPU used over CPU requested."),
]
DEMO_HASH = "$argon2id$v=19$m=65536,t=3,p=4$ZGVtb3NhbHRkZW1vc2FsdA$ZGVtby1oYXNoLW1hdGNoZXMtbm8tcGFzc3dvcmQ"


def _sha(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def load(url: URL) -> bool:
    """Load the demo data into a database at head; False when it was already there."""
    at = migrate.current(url)
    if at != migrate.head():
        raise UserError(
            f"the database is not migrated to head (it is at {at or 'base'}): run `platformdb upgrade` first"
        )
    with connect(url) as conn:
        if conn.execute("SELECT 1 FROM platform.teams WHERE name = 'platform-core'").fetchone():
            return False
        with conn.transaction():
            _load(conn)
    return True


def _one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def _load(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(16)  # deterministic
    set_actor(conn, None, actor_name="platformdb demo", request_id="demo-load")

    env = {
        name: _one(conn, "INSERT INTO platform.environments (name, is_production) VALUES (%s, %s) RETURNING id",
                   (name, prod))
        for name, prod in ENVIRONMENTS
    }  # fmt: skip
    team = {
        name: _one(conn, "INSERT INTO platform.teams (name, display_name) VALUES (%s, %s) RETURNING id", (name, title))
        for name, title in TEAMS
    }
    user = {}
    for email, display, team_name in USERS:
        user[email] = _one(
            conn,
            "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, %s, %s) RETURNING id",
            (email, display, DEMO_HASH),
        )
        conn.execute(
            "INSERT INTO platform.team_memberships (team_id, user_id, role) VALUES (%s, %s, %s)",
            (team[team_name], user[email], "maintainer" if email.startswith(("alice", "bob")) else "member"),
        )
    alice = user["alice@example.com"]
    set_actor(conn, alice, actor_name="Alice Admin", request_id="demo-load")

    perm = {
        name: _one(conn, "INSERT INTO platform.permissions (name) VALUES (%s) RETURNING id", (name,))
        for name in PERMISSIONS
    }
    role = {}
    for name, perms in ROLES.items():
        role[name] = _one(conn, "INSERT INTO platform.roles (name) VALUES (%s) RETURNING id", (name,))
        for p in perms:
            conn.execute(
                "INSERT INTO platform.role_permissions (role_id, permission_id) VALUES (%s, %s)", (role[name], perm[p])
            )

    service = {}
    for name, team_name, tier, description, _ in SERVICES:
        service[name] = _one(
            conn,
            "INSERT INTO platform.services (name, description, owner_team_id, tier) VALUES (%s, %s, %s, %s)"
            " RETURNING id",
            (name, description, team[team_name], tier),
        )
    for name, *_, depends_on in SERVICES:
        for dep in depends_on:
            conn.execute(
                "INSERT INTO platform.service_dependencies (service_id, depends_on_service_id) VALUES (%s, %s)",
                (service[name], service[dep]),
            )

    grant = "INSERT INTO platform.role_grants (user_id, role_id, service_id, environment_id, granted_by) VALUES (%s, %s, %s, %s, %s)"
    conn.execute(grant, (alice, role["admin"], None, None, None))
    conn.execute(grant, (user["bob@example.com"], role["service-owner"], service["payments"], None, alice))
    conn.execute(grant, (user["bob@example.com"], role["service-owner"], service["ledger"], None, alice))
    conn.execute(grant, (user["carol@example.com"], role["service-owner"], service["checkout"], None, alice))
    conn.execute(grant, (user["dave@example.com"], role["deployer"], None, env["staging"], alice))
    conn.execute(grant, (user["erin@example.com"], role["viewer"], None, None, alice))

    # Configuration: service-wide defaults, production overrides, secrets by reference only.
    for name in service:
        cfg = _one(conn, "INSERT INTO platform.configurations (service_id, key) VALUES (%s, 'HTTP_TIMEOUT_MS') RETURNING id",
                   (service[name],))  # fmt: skip
        conn.execute("INSERT INTO platform.configuration_versions (configuration_id, kind, value, created_by)"
                     " VALUES (%s, 'plain', %s, %s)", (cfg, Jsonb(2000), alice))  # fmt: skip
        conn.execute("INSERT INTO platform.configuration_versions (configuration_id, kind, value, created_by)"
                     " VALUES (%s, 'plain', %s, %s)", (cfg, Jsonb(rng.choice([1500, 2500, 3000])), alice))  # fmt: skip
        prod = _one(conn, "INSERT INTO platform.configurations (service_id, environment_id, key) VALUES (%s, %s, 'LOG_LEVEL')"
                    " RETURNING id", (service[name], env["production"]))  # fmt: skip
        conn.execute("INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES (%s, 'plain', %s)",
                     (prod, Jsonb("warn")))  # fmt: skip
        base = _one(conn, "INSERT INTO platform.configurations (service_id, key) VALUES (%s, 'LOG_LEVEL') RETURNING id",
                    (service[name],))  # fmt: skip
        conn.execute("INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES (%s, 'plain', %s)",
                     (base, Jsonb("info")))  # fmt: skip
    for name in ("payments", "ledger", "identity"):
        cfg = _one(conn, "INSERT INTO platform.configurations (service_id, key) VALUES (%s, 'DATABASE_PASSWORD') RETURNING id",
                   (service[name],))  # fmt: skip
        conn.execute("INSERT INTO platform.configuration_versions (configuration_id, kind, secret_ref) VALUES (%s, 'secret', %s)",
                     (cfg, f"vault://kv/{name}/database#password"))  # fmt: skip

    # Releases and their rollouts through the environments over the last weeks, along the state machine.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    deployers = [alice, user["dave@example.com"], user["bob@example.com"]]
    stage_delay = {"development": dt.timedelta(hours=2), "staging": dt.timedelta(days=1),
                   "production": dt.timedelta(days=2)}  # fmt: skip
    for name in service:
        count = rng.randint(3, 5)
        versions = [f"1.{minor}.{rng.randint(0, 3)}" for minor in range(count)]
        for i, version in enumerate(versions):
            built = now - dt.timedelta(days=5 * (count - i), hours=rng.randint(0, 12))
            conn.execute(
                "INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest, created_by, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (service[name], version, _sha(name, version), _digest(name, version), alice, built),
            )
            for env_name, _ in ENVIRONMENTS:
                last = i == count - 1
                if env_name == "production" and last and name in ("checkout", "notifications"):
                    outcome = None  # a rollout under way right now
                elif env_name == "staging" and i == 1 and name == "payments":
                    outcome = "failed"
                else:
                    outcome = "succeeded"
                created = min(built + stage_delay[env_name], now - dt.timedelta(minutes=30))
                dep = _one(
                    conn,
                    "INSERT INTO platform.deployments (service_id, version, environment_id, deployed_by, created_at)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (service[name], version, env[env_name], rng.choice(deployers), created),
                )
                started = created + dt.timedelta(minutes=rng.randint(1, 5))
                conn.execute("UPDATE platform.deployments SET status = 'in_progress', started_at = %s WHERE id = %s",
                             (started, dep))  # fmt: skip
                if outcome:
                    conn.execute("UPDATE platform.deployments SET status = %s, deployed_at = %s WHERE id = %s",
                                 (outcome, started + dt.timedelta(minutes=rng.randint(3, 20)), dep))  # fmt: skip
    # A production rollback: ledger's newest release misbehaved, the previous one goes back out.
    bad, bad_at = conn.execute(
        "SELECT id, deployed_at FROM platform.deployments WHERE service_id = %s AND environment_id = %s"
        " AND status = 'succeeded' ORDER BY deployed_at DESC LIMIT 1", (service["ledger"], env["production"])
    ).fetchone()  # type: ignore[misc]  # fmt: skip
    previous = _one(conn, "SELECT version FROM platform.deployments WHERE service_id = %s AND environment_id = %s"
                    " AND status = 'succeeded' AND id <> %s ORDER BY deployed_at DESC LIMIT 1",
                    (service["ledger"], env["production"], bad))  # fmt: skip
    rollback = _one(conn, "INSERT INTO platform.deployments (service_id, version, environment_id, deployed_by,"
                    " rollback_of_id, created_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (service["ledger"], previous, env["production"], alice, bad,
                     bad_at + dt.timedelta(minutes=40)))  # fmt: skip
    conn.execute("UPDATE platform.deployments SET status = 'in_progress', started_at = %s WHERE id = %s",
                 (bad_at + dt.timedelta(minutes=41), rollback))  # fmt: skip
    conn.execute("UPDATE platform.deployments SET status = 'succeeded', deployed_at = %s WHERE id = %s",
                 (bad_at + dt.timedelta(minutes=50), rollback))  # fmt: skip
    conn.execute("UPDATE platform.deployments SET status = 'rolled_back' WHERE id = %s", (bad,))

    # Metrics: production series for every service, a sample a minute over the last six hours.
    now = now.replace(second=0)
    start = now - dt.timedelta(hours=6)
    conn.execute("SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)", (start, now))
    metric = {
        name: _one(conn, "INSERT INTO platform.metrics (name, unit, kind, description) VALUES (%s, %s, %s, %s)"
                   " RETURNING id", (name, unit, kind, desc))
        for name, unit, kind, desc in METRICS
    }  # fmt: skip
    series = [
        (_one(conn, "INSERT INTO platform.metric_series (metric_id, service_id, environment_id, labels)"
                    " VALUES (%s, %s, %s, %s) RETURNING id",
              (mid, service[name], env["production"], Jsonb({"region": "eu-west-1"}))), metric_name)
        for name in service
        for metric_name, mid in metric.items()
    ]  # fmt: skip
    with conn.cursor().copy("COPY platform.metric_samples (series_id, sampled_at, value) FROM STDIN") as copy:
        for series_id, metric_name in series:
            total = 0.0
            for minute in range(6 * 60):
                if metric_name == "http_requests_total":
                    total += rng.randint(500, 1500)
                    value = total
                elif metric_name == "cpu_usage_ratio":
                    value = round(rng.uniform(0.2, 0.9), 3)
                else:
                    value = round(rng.lognormvariate(-2.5, 0.4), 4)
                copy.write_row((series_id, start + dt.timedelta(minutes=minute), value))


def summary(url: URL, *, freshly_loaded: bool) -> Any:
    """What the demo database holds: where it is, row counts, and which version runs in which environment."""
    with connect(url) as conn:
        tables = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'platform' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"""
        ).fetchall()
        counts = [(t, _one(conn, f"SELECT count(*) FROM platform.{t}", ())) for (t,) in tables]
        running = conn.execute(
            """SELECT s.name, e.name, d.version, d.status
                 FROM platform.services s CROSS JOIN platform.environments e
                 LEFT JOIN LATERAL (
                   SELECT version, status FROM platform.deployments d
                    WHERE d.service_id = s.id AND d.environment_id = e.id AND d.status = 'succeeded'
                    ORDER BY d.deployed_at DESC LIMIT 1) d ON true
                ORDER BY s.name, e.name"""
        ).fetchall()
        active = conn.execute(
            """SELECT s.name, e.name, d.version, d.status FROM platform.deployments d
                 JOIN platform.services s ON s.id = d.service_id JOIN platform.environments e ON e.id = d.environment_id
                WHERE d.status IN ('pending', 'in_progress') ORDER BY 1, 2"""
        ).fetchall()
        server_version = conn.info.parameter_status("server_version")

    envs = [name for name, _ in ENVIRONMENTS]
    matrix = Table("service", *envs, title="What runs where (latest successful deployment)", title_justify="left")
    by_service: dict[str, dict[str, str]] = {}
    for svc, env_name, version, _ in running:
        by_service.setdefault(str(svc), {})[str(env_name)] = str(version or "-")
    for svc, cells in by_service.items():
        matrix.add_row(svc, *(cells.get(e, "-") for e in envs))
    rows = Table("table", "rows", title="Rows per table", title_justify="left")
    for name, n in counts:
        rows.add_row(str(name), f"{n:,}")
    host = url.host or url.query.get("host")
    where = f'PostgreSQL {server_version}, database "{url.database}" at {host}'
    state = "demo data loaded" if freshly_loaded else "demo data was already loaded; nothing changed"
    under_way = ", ".join(f"{s} {v} -> {e} ({st})" for s, e, v, st in active) or "none"
    return Group(
        Panel(f"{where}\n{state}\nrollouts under way: {under_way}", title="platformdb demo", expand=False),
        matrix,
        rows,
    )


__all__ = ["load", "summary"]
