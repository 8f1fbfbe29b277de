"""A small, realistic demo data set, loaded through the schema's own rules (and so its audit triggers).

Loading is idempotent: a database that already holds the demo's teams is left as it is (the summary says when
that data came from an earlier release, which lacks the governance part). The password hashes are well-formed
argon2 strings that match no password.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg.types.range import Range
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from sqlalchemy.engine import URL

from platformdb import migrate, tokens
from platformdb.actor import set_actor
from platformdb.db import connect
from platformdb.queries.delivery import ROLLOUT_BLOCKERS, RUNNING_IN_ENVIRONMENT
from platformdb.review.introspect import count_rows

DEMO_PAGE = 100
"""One page of "what runs where" holds every demo service."""
ENVIRONMENTS = [("development", "development"), ("staging", "staging"), ("production", "production")]
"""(name, tier): is_production follows the tier."""
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
}  # fmt: skip
WELL_KNOWN = ["role:grant", "token:issue", "freeze:manage", "freeze:override", "promotion:override"]
"""Permissions the schema inserts itself (revisions 0030 and 0050): the rules read them by name."""
ROLES["admin"] = [*PERMISSIONS, *WELL_KNOWN]
CI_BOT = "ci-bot@example.com"
"""The demo's CI service account: owned by platform-core, registers releases through an API token."""
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
    migrate.require_head(url)
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


def _insert(conn: psycopg.Connection[Any], table: str, returning: str = "id", **values: Any) -> Any:
    """INSERT one row into platform.<table>; returns the ``returning`` column."""
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return _one(conn, f"INSERT INTO platform.{table} ({cols}) VALUES ({marks}) RETURNING {returning}",
                tuple(values.values()))  # fmt: skip


def _set_status(conn: psycopg.Connection[Any], deployment: Any, status: str, **stamps: dt.datetime) -> None:
    sets = "".join(f", {column} = %s" for column in stamps)
    conn.execute(f"UPDATE platform.deployments SET status = %s{sets} WHERE id = %s",
                 (status, *stamps.values(), deployment))  # fmt: skip


def _load(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(16)  # noqa: S311 - deterministic demo data, not cryptography
    set_actor(conn, None, actor_name="platformdb demo", request_id="demo-load")

    env = {name: _insert(conn, "environments", name=name, tier=tier) for name, tier in ENVIRONMENTS}
    team = {name: _insert(conn, "teams", name=name, display_name=title) for name, title in TEAMS}
    user = {}
    for email, display, team_name in USERS:
        user[email] = _insert(conn, "users", email=email, display_name=display, password_hash=DEMO_HASH)
        role_in_team = "maintainer" if email.startswith(("alice", "bob")) else "member"
        _insert(conn, "team_memberships", "user_id", team_id=team[team_name], user_id=user[email], role=role_in_team)
    alice = user["alice@example.com"]
    set_actor(conn, alice, actor_name="Alice Admin", request_id="demo-load")

    perm = {name: _insert(conn, "permissions", name=name) for name in PERMISSIONS}
    # The permissions the database's own rules name exist already (revision 0030): the admin holds them too.
    perm |= dict(conn.execute("SELECT name, id FROM platform.permissions WHERE name = ANY(%s)", (WELL_KNOWN,)))
    role = {}
    for name, perms in ROLES.items():
        role[name] = _insert(conn, "roles", name=name)
        for p in perms:
            _insert(conn, "role_permissions", "role_id", role_id=role[name], permission_id=perm[p])

    service = {}
    for name, team_name, tier, description, _ in SERVICES:
        service[name] = _insert(
            conn, "services", name=name, description=description, owner_team_id=team[team_name], tier=tier
        )
    for name, *_, depends_on in SERVICES:
        for dep in depends_on:
            _insert(
                conn, "service_dependencies", "service_id", service_id=service[name], depends_on_service_id=service[dep]
            )

    _insert(conn, "role_grants", user_id=alice, role_id=role["admin"])
    for email, role_name, svc, env_name in [
        ("bob@example.com", "service-owner", "payments", None),
        ("bob@example.com", "service-owner", "ledger", None),
        ("carol@example.com", "service-owner", "checkout", None),
        ("dave@example.com", "deployer", None, "staging"),
        ("erin@example.com", "viewer", None, None),
    ]:
        _insert(conn, "role_grants", user_id=user[email], role_id=role[role_name], granted_by=alice,
                service_id=service.get(svc or ""), environment_id=env.get(env_name or ""))  # fmt: skip
    # A team grant: every member of storefront may view everything.
    _insert(conn, "role_grants", team_id=team["storefront"], role_id=role["viewer"], granted_by=alice)
    # CI: a service account of platform-core (no password), which may deploy anywhere, with one API token.
    ci_bot = _insert(conn, "users", email=CI_BOT, display_name="CI bot", kind="service_account",
                     owner_team_id=team["platform-core"])  # fmt: skip
    _insert(conn, "role_grants", user_id=ci_bot, role_id=role["deployer"], granted_by=alice)
    ci_token = tokens.issue(conn, owner=CI_BOT, name="ci-releases", scopes=["deployment:create"],
                            issued_by="alice@example.com", days=90)  # fmt: skip

    # Configuration: service-wide defaults, production overrides, secrets by reference only.
    def version(configuration: Any, **values: Any) -> None:
        _insert(conn, "configuration_versions", "version", configuration_id=configuration, **values)

    for svc in service.values():
        timeout = _insert(conn, "configurations", service_id=svc, key="HTTP_TIMEOUT_MS")
        version(timeout, kind="plain", value=Jsonb(2000), created_by=alice)
        version(timeout, kind="plain", value=Jsonb(rng.choice([1500, 2500, 3000])), created_by=alice)
        version(_insert(conn, "configurations", service_id=svc, key="LOG_LEVEL"), kind="plain", value=Jsonb("info"))
        prod_level = _insert(conn, "configurations", service_id=svc, environment_id=env["production"], key="LOG_LEVEL")
        version(prod_level, kind="plain", value=Jsonb("warn"))
    for name in ("payments", "ledger", "identity"):
        secret = _insert(conn, "configurations", service_id=service[name], key="DATABASE_PASSWORD")
        version(secret, kind="secret", secret_ref=f"vault://kv/{name}/database#password")

    # Releases and their rollouts through the environments over the last weeks, along the state machine. The
    # stamps are history, not the clock's: trg_deployments_timestamps is off for this transaction only (the owner's
    # backfill; every other rule and the status history still apply).
    conn.execute("ALTER TABLE platform.deployments DISABLE TRIGGER trg_deployments_timestamps")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    deployers = [alice, user["dave@example.com"], user["bob@example.com"]]
    stage_delay = {"development": dt.timedelta(hours=2), "staging": dt.timedelta(days=1),
                   "production": dt.timedelta(days=2)}  # fmt: skip
    for name, svc in service.items():
        count = rng.randint(3, 5)
        versions = [f"1.{minor}.{rng.randint(0, 3)}" for minor in range(count)]
        for i, ver in enumerate(versions):
            built = now - dt.timedelta(days=5 * (count - i), hours=rng.randint(0, 12))
            _insert(conn, "releases", service_id=svc, version=ver, commit_sha=_sha(name, ver),
                    artifact_digest=_digest(name, ver), created_by=alice, created_at=built)  # fmt: skip
            for env_name, _ in ENVIRONMENTS:
                if env_name == "production" and i == count - 1 and name in ("checkout", "notifications"):
                    outcome = None  # a rollout under way right now
                elif env_name == "staging" and i == 1 and name == "payments":
                    outcome = "failed"
                else:
                    outcome = "succeeded"
                created = min(built + stage_delay[env_name], now - dt.timedelta(minutes=30))
                dep = _insert(conn, "deployments", service_id=svc, version=ver, environment_id=env[env_name],
                              deployed_by=rng.choice(deployers), created_at=created)  # fmt: skip
                started = created + dt.timedelta(minutes=rng.randint(1, 5))
                _set_status(conn, dep, "in_progress", started_at=started)
                if outcome:
                    _set_status(conn, dep, outcome, deployed_at=started + dt.timedelta(minutes=rng.randint(3, 20)))

    # CI registers a release through its token: verified (scopes intersected with the bot's grants), then the
    # bot is the actor of the write and the release's creator.
    principal = tokens.verify(conn, ci_token.token, "deployment:create", service["api-gateway"], env["production"])
    assert isinstance(principal, tokens.Principal), principal
    set_actor(conn, principal.user_id, request_id="demo-ci")
    built = now - dt.timedelta(hours=1)
    _insert(conn, "releases", service_id=service["api-gateway"], version="2.0.0", commit_sha=_sha("api-gateway", "2"),
            artifact_digest=_digest("api-gateway", "2"), created_by=principal.user_id, created_at=built)  # fmt: skip
    set_actor(conn, alice, actor_name="Alice Admin", request_id="demo-load")

    # A production rollback: ledger's newest release misbehaved, the previous one goes back out.
    ledger, prod = service["ledger"], env["production"]
    latest = conn.execute(
        "SELECT id, deployed_at, version FROM platform.deployments WHERE service_id = %s AND environment_id = %s"
        " AND status = 'succeeded' ORDER BY deployed_at DESC LIMIT 2", (ledger, prod)
    ).fetchall()  # fmt: skip
    (bad, bad_at, _), (_, _, previous) = latest
    rollback = _insert(conn, "deployments", service_id=ledger, version=previous, environment_id=prod,
                       deployed_by=alice, rollback_of_id=bad, created_at=bad_at + dt.timedelta(minutes=40))  # fmt: skip
    _set_status(conn, rollback, "in_progress", started_at=bad_at + dt.timedelta(minutes=41))
    # Its success marks the bad deployment rolled_back (trg_deployments_rolled_back_by_rollback, revision 0024).
    _set_status(conn, rollback, "succeeded", deployed_at=bad_at + dt.timedelta(minutes=50))
    conn.execute("ALTER TABLE platform.deployments ENABLE TRIGGER trg_deployments_timestamps")

    # Freezes and the promotion path (revision 0050), declared after the history they would have held back: the
    # path development -> staging -> production, a weekend freeze schedule (`platformdb freezes ensure` makes
    # its periods), a freeze of payments in production in force now, and a payments release waiting for
    # production that both hold back (the summary says so).
    for source, target in (("development", "staging"), ("staging", "production")):
        _insert(conn, "environment_promotions", "from_environment_id", from_environment_id=env[source],
                to_environment_id=env[target])  # fmt: skip
    _insert(conn, "freeze_schedules", environment_id=prod, cron="0 18 * * 5", time_zone="Europe/Berlin",
            duration=dt.timedelta(days=2, hours=15), reason="Weekend freeze: production changes wait for Monday",
            created_by=alice)  # fmt: skip
    _insert(conn, "freeze_periods", environment_id=prod, service_id=service["payments"],
            during=Range(now - dt.timedelta(hours=1), now + dt.timedelta(days=3), "[)"),
            reason="Card network migration: payments changes are frozen", created_by=alice)  # fmt: skip

    # Production is protected from now on: four eyes, one approval by a holder of deployment:approve (revision
    # 0042). Bob's new payments release waits for it (he deployed it, so he may not approve it himself), and for
    # the freeze and the promotion path above.
    _insert(conn, "approval_rules", environment_id=prod, approver_permission_id=perm["deployment:approve"],
            required_approvals=1)  # fmt: skip
    _insert(conn, "releases", service_id=service["payments"], version="2.0.0", commit_sha=_sha("payments", "2.0.0"),
            artifact_digest=_digest("payments", "2.0.0"), created_by=user["bob@example.com"])  # fmt: skip
    _insert(conn, "deployments", service_id=service["payments"], version="2.0.0", environment_id=prod,
            deployed_by=user["bob@example.com"])  # fmt: skip

    # Metrics: production series for every service, a sample a minute over the last six hours.
    now = now.replace(second=0)
    start = now - dt.timedelta(hours=6)
    conn.execute("SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)", (start, now))
    metric = {
        name: _insert(conn, "metrics", name=name, unit=unit, kind=kind, description=desc)
        for name, unit, kind, desc in METRICS
    }
    labels = Jsonb({"region": "eu-west-1"})
    series = [
        (_insert(conn, "metric_series", metric_id=mid, service_id=svc, environment_id=prod, labels=labels), metric_name)
        for svc in service.values()
        for metric_name, mid in metric.items()
    ]
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
        counts = count_rows(conn)
        environments = conn.execute("SELECT id, name FROM platform.environments ORDER BY name").fetchall()
        by_service: dict[str, dict[str, str]] = {}
        with conn.cursor(row_factory=dict_row) as cur:
            for env_id, env_name in environments:
                page = {"environment_id": env_id, "after_name": "", "page_size": DEMO_PAGE}
                for row in cur.execute(RUNNING_IN_ENVIRONMENT.sql, page).fetchall():
                    by_service.setdefault(str(row["name"]), {})[str(env_name)] = str(row["version"])
        services = [str(r[0]) for r in conn.execute("SELECT name FROM platform.services ORDER BY name")]
        active = conn.execute(
            """SELECT s.name, e.name, d.version, d.status, d.id FROM platform.deployments d
                 JOIN platform.services s ON s.id = d.service_id JOIN platform.environments e ON e.id = d.environment_id
                WHERE d.status IN ('pending', 'in_progress') ORDER BY 1, 2"""
        ).fetchall()
        blocked = [
            (f"{s} {v} -> {e}", str(b.blocker), str(b.detail))
            for s, e, v, _, deployment in active
            for b in ROLLOUT_BLOCKERS.execute(conn, deployment_id=deployment)
        ]
        server_version = conn.info.parameter_status("server_version")
        has_ci_bot = conn.execute("SELECT 1 FROM platform.users WHERE email = %s", (CI_BOT,)).fetchone() is not None

    envs = [name for name, _ in ENVIRONMENTS]
    title = f"What runs where (latest successful deployment: {RUNNING_IN_ENVIRONMENT.name})"
    matrix = Table("service", *envs, title=title, title_justify="left")
    for svc in services:
        matrix.add_row(svc, *(by_service.get(svc, {}).get(e, "-") for e in envs))
    rows = Table("table", "rows", title="Rows per table", title_justify="left")
    for name, n in counts.items():
        rows.add_row(name, f"{n:,}")
    host = url.host or url.query.get("host")
    where = f'PostgreSQL {server_version}, database "{url.database}" at {host}'
    if freshly_loaded:
        state = "demo data loaded"
    elif not has_ci_bot:
        state = ("demo data of an earlier release was already loaded (without its CI service account, approvals and "
                 "freezes); nothing changed: `platformdb demo --reset` loads it afresh")  # fmt: skip
    else:
        state = "demo data was already loaded; nothing changed"
    under_way = ", ".join(f"{s} {v} -> {e} ({st})" for s, e, v, st, _ in active) or "none"
    blockers = f"{len(blocked)} reasons, listed below" if blocked else "nothing"
    held = Table("rollout", "blocked by", "detail", title=f"What blocks the open rollouts ({ROLLOUT_BLOCKERS.name})",
                 title_justify="left")  # fmt: skip
    for blocker in blocked:
        held.add_row(*blocker)
    return Group(
        Panel(
            f"{where}\n{state}\nrollouts under way: {under_way}\n"
            f"what blocks them ({ROLLOUT_BLOCKERS.name}): {blockers}",
            title="platformdb demo",
            expand=False,
        ),
        matrix,
        *([held] if blocked else []),
        rows,
    )


__all__ = ["load", "summary"]
