"""``platformdb seed``: a deterministic, realistic data set of any scale, for benchmarks and plan checks.

The data is generated in Python from one seed (the same seed and scale give the same rows, up to the time
anchor: history ends "now", truncated to the minute) and loaded through the schema's own rules:

- Reference, identity and catalog rows are COPYed straight into their tables. COPY fires row triggers, so
  every audited row gets its audit row from the real capture trigger, with an actor set by ``set_actor``.
- Releases, configuration versions and deployments are a *history*: they are COPYed into a temporary event
  table and replayed in time order by a temporary PL/pgSQL function, one statement per event, each under its
  own actor and request id. Replay is what makes the data consistent without fabricating anything: every
  deployment is born ``pending`` and moves along the state machine (its status history written by the
  trigger), at most one rollout per service and environment is active at a time (the partial unique index
  is never violated), each deployment captures the configuration versions in force when it was created
  (``trg_deployments_capture_configuration``), and every change is audited by ``trg_<table>_audit`` with the
  user who made it.
- Metric samples are COPYed into the day partitions made beforehand with ``platform.ensure_partitions``.

Timestamps a writer supplies (``created_at`` of releases, deployments and versions, ``started_at``,
``deployed_at``) carry the simulated history; timestamps the database stamps itself (audit rows, status
history, ``updated_at``) carry the load time, as they would after any real import.

The load commits in chunks: the audit hash chain updates its head row once per audited row, and inside one
long transaction each update gets slower (the head's dead versions pile up until the transaction ends).
A seed that fails part-way leaves a partial data set; seed a fresh database again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.actor import set_actor
from platformdb.db import connect
from platformdb.errors import UserError

HISTORY_DAYS = 180
"""Releases, deployments and configuration edits span this many days before the time anchor."""
SAMPLE_DAYS = 3
"""Metric samples cover this many days before the anchor (a retention window of day partitions)."""
PER_SCALE = {"teams": 12, "users": 150, "services": 60}
"""Entities per unit of scale; everything else follows from them and from each service's popularity."""
REPLAY_CHUNK = 400
"""Events replayed per transaction: short transactions keep the audit chain's head row cheap to update."""
SAMPLE_CHUNK = 60_000
"""Samples per COPY statement: each statement's queue of foreign-key checks stays small."""

ENVIRONMENTS = [("development", False), ("staging", False), ("eu-production", True), ("us-production", True)]
REGIONS = {"eu-production": "eu-west-1", "us-production": "us-east-1"}
PERMISSIONS = [
    ("service:read", "See services, their owners and dependencies."),
    ("service:write", "Register and change services."),
    ("deployment:create", "Start a deployment."),
    ("deployment:approve", "Approve a production deployment."),
    ("deployment:rollback", "Roll a deployment back."),
    ("configuration:read", "Read configuration values."),
    ("configuration:write", "Change configuration values."),
    ("secret:read", "Resolve secret references."),
    ("audit:read", "Read the audit log."),
    ("user:manage", "Manage users, teams and grants."),
]
ROLES = {
    "viewer": ["service:read", "configuration:read"],
    "deployer": ["service:read", "deployment:create", "deployment:rollback", "configuration:read"],
    "service-owner": ["service:read", "service:write", "deployment:create", "deployment:approve",
                      "deployment:rollback", "configuration:read", "configuration:write", "secret:read"],
    "auditor": ["service:read", "audit:read"],
    "admin": [name for name, _ in PERMISSIONS],
}  # fmt: skip
TEAM_WORDS = [
    "payments", "checkout", "identity", "search", "catalog", "growth", "platform", "data", "mobile", "risk",
    "ledger", "logistics", "messaging", "billing", "pricing", "inventory", "support", "insights", "media", "partners",
]  # fmt: skip
SERVICE_DOMAINS = [
    "account", "order", "cart", "payment", "invoice", "ledger", "user", "session", "search", "catalog", "price",
    "stock", "shipment", "notification", "email", "review", "recommendation", "media", "report", "fraud",
    "loyalty", "coupon", "tax", "refund", "profile",
]  # fmt: skip
SERVICE_KINDS = ["api", "service", "worker", "gateway", "sync", "store", "scheduler"]
FIRST_NAMES = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj",
    "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin", "zoe", "omar", "lena", "kenji",
    "priya", "mateo", "ingrid", "tariq", "chloe", "dmitri",
]  # fmt: skip
LAST_NAMES = [
    "smith", "jones", "garcia", "muller", "rossi", "tanaka", "kowalski", "silva", "nguyen", "okafor", "larsen",
    "dubois", "novak", "costa", "haddad", "kim", "patel", "schmidt", "ivanova", "moreau", "berg", "lopez",
    "chen", "walsh", "weber", "sato", "fischer", "romano", "khan", "andersen",
]  # fmt: skip
# Configuration keys: (key, how values look). Secrets are stored as references only.
CONFIG_KEYS = [
    ("HTTP_TIMEOUT_MS", "timeout"), ("LOG_LEVEL", "level"), ("DB_POOL_SIZE", "pool"),
    ("RETRY_MAX_ATTEMPTS", "retries"), ("CACHE_TTL_SECONDS", "ttl"), ("RATE_LIMIT", "rate"),
    ("UPSTREAM_URL", "url"), ("tracing.sample_rate", "ratio"), ("DATABASE_PASSWORD", "secret"),
    ("API_KEY", "secret"), ("WORKER_CONCURRENCY", "pool"), ("circuit_breaker.threshold", "ratio"),
    ("MAX_BODY_BYTES", "bytes"), ("REGION_ROUTING", "routing"), ("SMTP_PASSWORD", "secret"),
    ("QUEUE_NAME", "queue"),
]  # fmt: skip
FEATURES = ["new_checkout", "dark_mode", "fast_search", "async_ledger", "smart_retry", "beta_pricing"]
OVERRIDE_RATE = {"development": 0.05, "staging": 0.12, "eu-production": 0.25, "us-production": 0.25}
# name, unit, kind, description; the first three are sampled per running instance of a production service.
METRICS = [
    ("http_requests_total", "requests", "counter", "HTTP requests served."),
    ("http_request_duration_p99_seconds", "seconds", "gauge", "99th percentile request latency."),
    ("cpu_usage_ratio", "ratio", "gauge", "CPU used over CPU requested."),
    ("memory_working_set_bytes", "bytes", "gauge", "Working set memory."),
    ("http_request_errors_total", "requests", "counter", "HTTP requests answered with a 5xx."),
    ("queue_depth", "messages", "gauge", "Messages waiting in the service's queue."),
    ("db_connections_in_use", "connections", "gauge", "Database connections checked out."),
    ("gc_pause_seconds", "seconds", "gauge", "Longest garbage-collection pause in the interval."),
]
SCRAPE_INTERVALS = ([10, 15, 30, 60], [0.02, 0.05, 0.18, 0.75])
"""Seconds between samples of a series, and how often each interval is configured."""
PROMOTION = [
    ("development", 0.95, (0.05, 2)), ("staging", 0.6, (1, 48)),
    ("eu-production", 0.6, (4, 120)), ("us-production", 0.85, (1, 24)),
]  # fmt: skip
"""Stages of a release's rollout: environment, chance the release goes there (once the stage before succeeded),
and hours of delay after that stage finished."""
# Deployment outcomes per environment class: (succeeded, failed, cancelled) weights.
OUTCOMES = {False: (0.88, 0.08, 0.04), True: (0.93, 0.04, 0.03)}

# --- generated rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Service:
    index: int
    id: uuid.UUID
    name: str
    team: int
    status: str
    tier: int
    created_at: dt.datetime
    rank: int  # popularity, 1 = most popular; each rank is held by `scale` services
    active_until: dt.datetime  # retired services stop changing


@dataclass
class _Deployment:
    id: uuid.UUID
    service: _Service
    env: str
    version: str
    created: dt.datetime
    outcome: str  # succeeded, failed or cancelled
    started: dt.datetime | None
    finished: dt.datetime
    deployed_by: uuid.UUID | None
    rollback_of: _Deployment | None = None


@dataclass
class Dataset:
    """Every row the seed writes, in load order, except metric samples (generated while they stream). Plain
    Python values only (JSON values as dicts, lists, strings...), so two data sets compare equal when their rows
    do."""

    scale: int
    seed: int
    now: dt.datetime
    environments: list[tuple[Any, ...]] = field(default_factory=list)
    teams: list[tuple[Any, ...]] = field(default_factory=list)
    users: list[tuple[Any, ...]] = field(default_factory=list)
    memberships: list[tuple[Any, ...]] = field(default_factory=list)
    permissions: list[tuple[Any, ...]] = field(default_factory=list)
    roles: list[tuple[Any, ...]] = field(default_factory=list)
    role_permissions: list[tuple[Any, ...]] = field(default_factory=list)
    grants: list[tuple[Any, ...]] = field(default_factory=list)
    services: list[tuple[Any, ...]] = field(default_factory=list)
    dependencies: list[tuple[Any, ...]] = field(default_factory=list)
    configurations: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    metrics: list[tuple[Any, ...]] = field(default_factory=list)
    series: list[_Series] = field(default_factory=list)

    def samples_expected(self) -> int:
        return sum(s.count() for s in self.series)


@dataclass(frozen=True)
class _Series:
    """A metric series and the stretch of the sample window it reports in."""

    metric: str
    service_id: uuid.UUID
    environment_id: uuid.UUID
    labels: dict[str, str]
    created_at: dt.datetime
    first: int  # epoch seconds of the first sample
    last: int  # epoch seconds after the last sample
    interval: int
    level: float  # typical value (rate per second for counters)

    def count(self) -> int:
        return max(0, math.ceil((self.last - self.first) / self.interval))


EVENT_COLUMNS = (
    "seq", "kind", "at", "actor_id", "actor_name", "request_id", "id", "service_id", "environment_id", "version",
    "status", "rollback_of_id", "value", "secret_ref", "commit_sha", "artifact_digest",
)  # fmt: skip


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def uuid7(at: dt.datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for ``at`` with seeded random bits: time-ordered like the database's own, but reproducible."""
    ms = int(at.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


def _hex(*parts: object, digest: Callable[[bytes], Any] = hashlib.sha1) -> str:
    return str(digest(":".join(map(str, parts)).encode()).hexdigest())


def _zipf_weights(n: int, s: float, scale: int) -> list[float]:
    """Zipf-like weights of ``n`` things whose popularity ranks repeat ``scale`` times: scale N is N copies of
    scale 1's shape, so every count grows linearly with the scale."""
    return [1.0 / (i // scale + 1) ** s for i in range(n)]


class _Generator:
    """Builds a :class:`Dataset`. Each part draws from its own random stream, so changing one part of the
    generator leaves the others' rows as they were."""

    def __init__(self, scale: int, seed: int, now: dt.datetime) -> None:
        self.scale, self.seed, self.now = scale, seed, now
        self.start = now - dt.timedelta(days=HISTORY_DAYS)
        self.data = Dataset(scale=scale, seed=seed, now=now)
        self.env_ids: dict[str, uuid.UUID] = {}
        self.team_ids: list[uuid.UUID] = []
        self.team_members: list[list[tuple[uuid.UUID, dt.datetime]]] = []
        self.user_created: dict[uuid.UUID, dt.datetime] = {}
        self.active_users: list[uuid.UUID] = []
        self.admins: list[uuid.UUID] = []
        self.role_ids: dict[str, uuid.UUID] = {}
        self.latest_release: dict[int, tuple[str, dt.datetime]] = {}
        self.services: list[_Service] = []
        self.deployments: list[_Deployment] = []
        self._events: list[tuple[Any, ...]] = []

    def rng(self, part: str) -> random.Random:
        return random.Random(f"platformdb-seed:{self.seed}:{self.scale}:{part}")  # noqa: S311 - not cryptography

    def ago(self, rng: random.Random, low_days: float, high_days: float) -> dt.datetime:
        return self.now - dt.timedelta(seconds=rng.uniform(low_days, high_days) * 86400)

    def request_id(self, rng: random.Random, prefix: str) -> str:
        return f"{prefix}-{rng.getrandbits(64):016x}"

    def event(self, at: dt.datetime, kind: str, **values: Any) -> None:
        """Queue one history event; events after the anchor have not happened yet and are dropped."""
        if at <= self.now:
            self._events.append((at, len(self._events), kind, values))

    def build(self) -> Dataset:
        self.reference()
        self.identity()
        self.catalog()
        self.configuration()
        self.delivery()
        self.monitoring()
        # Rows land in the order they were created, as in production (where ids, uuidv7 or identity, follow it
        # too): physical order and index correlation are then what a real database has. created_at is last.
        d = self.data
        for rows in (d.environments, d.permissions, d.roles, d.role_permissions, d.teams, d.users, d.memberships,
                     d.grants, d.services, d.dependencies, d.configurations, d.metrics):  # fmt: skip
            rows.sort(key=lambda row: row[-1])
        d.series.sort(key=lambda s: s.created_at)
        self._events.sort(key=lambda e: (e[0], e[1]))
        for seq, (at, _, kind, v) in enumerate(self._events):
            self.data.events.append((
                seq, kind, at, v.get("actor_id"), v.get("actor_name"), v["request_id"], v["id"],
                v.get("service_id"), v.get("environment_id"), v.get("version"), v.get("status"),
                v.get("rollback_of_id"), v.get("value"), v.get("secret_ref"), v.get("commit_sha"),
                v.get("artifact_digest"),
            ))  # fmt: skip
        return self.data

    # --- reference data: environments, permissions, roles ---------------------------------------------
    def reference(self) -> None:
        rng = self.rng("reference")
        created = self.start - dt.timedelta(days=400)
        for name, production in ENVIRONMENTS:
            self.env_ids[name] = uuid7(created, rng)
            self.data.environments.append((self.env_ids[name], name, production, created))
        permission_ids = {}
        for name, description in PERMISSIONS:
            permission_ids[name] = uuid7(created, rng)
            self.data.permissions.append((permission_ids[name], name, description, created))
        for role, perms in ROLES.items():
            self.role_ids[role] = uuid7(created, rng)
            self.data.roles.append((self.role_ids[role], role, f"Holders may: {', '.join(perms)}.", created))
            for perm in perms:
                self.data.role_permissions.append((self.role_ids[role], permission_ids[perm], created))

    # --- identity: teams, users, memberships, grants ----------------------------------------------------
    def identity(self) -> None:
        rng = self.rng("identity")
        n_teams, n_users = PER_SCALE["teams"] * self.scale, PER_SCALE["users"] * self.scale
        for i in range(n_teams):
            word = TEAM_WORDS[i % len(TEAM_WORDS)]
            name = word if i < len(TEAM_WORDS) else f"{word}-{i // len(TEAM_WORDS) + 1}"
            created = self.ago(rng, HISTORY_DAYS + 200, HISTORY_DAYS + 400)
            self.team_ids.append(uuid7(created, rng))
            self.team_members.append([])
            display = " ".join(part.capitalize() for part in name.split("-"))
            self.data.teams.append((self.team_ids[-1], name, display, created))
        team_weights = _zipf_weights(n_teams, 0.6, self.scale)
        seen: dict[str, int] = {}
        for i in range(n_users):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            base = f"{first}.{last}"
            seen[base] = seen.get(base, 0) + 1
            local = base if seen[base] == 1 else f"{base}{seen[base]}"
            email = f"{local}@example.com"
            if rng.random() < 0.1:  # entered with capitals: login must still find it (lower(email))
                email = f"{local.title()}@Example.com"
            # Most people joined before the history starts; some joined during it.
            created = self.ago(rng, 30, HISTORY_DAYS) if rng.random() < 0.15 else self.ago(rng, HISTORY_DAYS, 900)
            user_id = uuid7(created, rng)
            self.user_created[user_id] = created
            deactivated = None
            if rng.random() < 0.06:
                deactivated = created + (self.now - created) * rng.uniform(0.3, 0.95)
            salt = _hex("salt", self.seed, i)[:22]
            password_hash = (
                f"$argon2id$v=19$m=65536,t=3,p=4${salt}${_hex('hash', self.seed, i, digest=hashlib.sha256)[:43]}"
            )
            self.data.users.append(
                (user_id, email, f"{first.title()} {last.title()}", password_hash, deactivated, created)
            )
            if deactivated is None:
                self.active_users.append(user_id)
            # Memberships: most people are in one team, some in two, a few in none (managers, auditors).
            if rng.random() < 0.04:
                continue
            teams = {rng.choices(range(n_teams), team_weights)[0]}
            if rng.random() < 0.2:
                teams.add(rng.randrange(n_teams))
            for team in sorted(teams):
                role = "maintainer" if rng.random() < 0.15 else "member"
                self.data.memberships.append((self.team_ids[team], user_id, role, created))
                if deactivated is None:
                    self.team_members[team].append((user_id, created))
        for team, members in enumerate(self.team_members):  # every team has somebody to act for it
            if not members:
                user_id = rng.choice(self.active_users)
                members.append((user_id, self.user_created[user_id]))
                self.data.memberships.append((self.team_ids[team], user_id, "maintainer", self.user_created[user_id]))
        self.admins = rng.sample(self.active_users, max(2, self.scale * 2))

    def grants(self) -> None:
        """Role grants: global viewers, scoped deployers and owners, a few admins and auditors; some expire."""
        rng = self.rng("grants")
        keys: set[tuple[Any, ...]] = set()
        owned: dict[int, list[_Service]] = {}
        for service in self.services:
            owned.setdefault(service.team, []).append(service)
        team_index = {team_id: i for i, team_id in enumerate(self.team_ids)}
        memberships = [(row[1], team_index[row[0]], row[2]) for row in self.data.memberships]
        envs = self.env_ids

        def grant(user: uuid.UUID, role: str, service: uuid.UUID | None, env: str | None) -> None:
            key = (user, role, service, env)
            if key in keys:
                return
            keys.add(key)
            created = max(self.ago(rng, 1, HISTORY_DAYS), self.user_created[user] + dt.timedelta(hours=1))
            expires = None
            if rng.random() < 0.1:  # temporary access, half of it already over
                expires = created + dt.timedelta(days=rng.choice([1, 7, 30, 90]))
            granted_by = rng.choice(self.admins) if rng.random() < 0.7 else None
            grant_id = uuid7(created, rng)
            env_id = envs[env] if env else None
            self.data.grants.append(
                (grant_id, user, self.role_ids[role], service, env_id, granted_by, expires, created)
            )

        for user in self.admins:
            grant(user, "admin", None, None)
        for user, team, team_role in memberships:
            grant(user, "viewer", None, None)
            services = owned.get(team, [])
            if team_role == "maintainer":
                for service in services[:3]:
                    grant(user, "service-owner", service.id, None)
            elif services and rng.random() < 0.6:
                grant(user, "deployer", None, rng.choice(["development", "staging"]))
                if rng.random() < 0.35:
                    grant(user, "deployer", rng.choice(services).id, rng.choice(["eu-production", "us-production"]))
        for user in rng.sample(self.active_users, max(1, len(self.active_users) // 50)):
            grant(user, "auditor", None, None)

    # --- catalog: services and dependencies -------------------------------------------------------------
    def catalog(self) -> None:
        rng = self.rng("catalog")
        n = PER_SCALE["services"] * self.scale
        combos = [f"{d}-{k}" for d in SERVICE_DOMAINS for k in SERVICE_KINDS]
        rng.shuffle(combos)
        ranks = [i // self.scale + 1 for i in range(n)]  # popularity: scale N has N services of each rank
        rng.shuffle(ranks)
        team_weights = _zipf_weights(len(self.team_ids), 0.7, self.scale)
        for i in range(n):
            name = combos[i % len(combos)] + ("" if i < len(combos) else f"-{i // len(combos) + 1}")
            status = rng.choices(["active", "incubating", "deprecated", "retired"], [0.75, 0.1, 0.1, 0.05])[0]
            if status == "incubating":
                created = self.ago(rng, 20, 60)
            else:
                created = self.ago(rng, HISTORY_DAYS, HISTORY_DAYS + 400)
            active_until = self.now
            if status == "retired":
                active_until = self.ago(rng, 20, HISTORY_DAYS * 0.6)
            tier = rng.choices([1, 2, 3, 4], [0.15, 0.3, 0.4, 0.15])[0]
            team = rng.choices(range(len(self.team_ids)), team_weights)[0]
            service = _Service(i, uuid7(created, rng), name, team, status, tier, created, ranks[i], active_until)
            self.services.append(service)
            description = f"{name.replace('-', ' ').capitalize()}: owned by {self.data.teams[team][1]}."
            self.data.services.append((service.id, name, description, self.team_ids[team], status, tier, created))
        # Dependencies: services call popular services far more often (Zipf); cycles may form, as in life.
        by_rank = sorted(self.services, key=lambda s: (s.rank, s.index))
        weights = [1.0 / service.rank**1.1 for service in by_rank]
        for service in self.services:
            wanted = min(n - 1, rng.choices([0, 1, 2, 3, 4, 5, 6, 8], [0.1, 0.2, 0.2, 0.18, 0.12, 0.1, 0.06, 0.04])[0])
            targets: set[int] = set()
            while len(targets) < wanted:
                target = rng.choices(by_rank, weights)[0]
                if target.index != service.index:
                    targets.add(target.index)
            for target_index in sorted(targets):
                target = self.services[target_index]
                created = max(service.created_at, target.created_at) + dt.timedelta(days=rng.uniform(0, 30))
                self.data.dependencies.append((service.id, target.id, min(created, self.now)))
        self.grants()

    def actor(self, rng: random.Random, service: _Service, human: float, at: dt.datetime) -> uuid.UUID | None:
        """Who does something to a service at ``at``: with probability ``human`` a member of the owning team
        (one who had joined by then), else automation (None)."""
        user, joined = rng.choice(self.team_members[service.team])
        return user if rng.random() < human and joined <= at else None

    # --- configuration: keys, overrides and their versions ----------------------------------------------
    def configuration(self) -> None:
        rng = self.rng("configuration")
        for service in self.services:
            n_keys = min(len(CONFIG_KEYS), 5 + int(9 / service.rank**0.5) + rng.randrange(3))
            keys = [CONFIG_KEYS[0], CONFIG_KEYS[1], *rng.sample(CONFIG_KEYS[2:], n_keys - 2)]
            flags = rng.sample(FEATURES, rng.choice([0, 0, 1, 2, 3]))
            keys += [(f"FEATURE_{flag.upper()}", "flag") for flag in flags]
            for key, shape in keys:
                self.config_slot(rng, service, key, shape, None)
                for env, rate in OVERRIDE_RATE.items():
                    if shape != "secret" and rng.random() < rate:
                        self.config_slot(rng, service, key, shape, env)

    def config_slot(self, rng: random.Random, service: _Service, key: str, shape: str, env: str | None) -> None:
        begin = max(service.created_at, self.start - dt.timedelta(days=30))
        created = begin if env is None else begin + (service.active_until - begin) * rng.uniform(0, 0.8)
        slot = uuid7(created, rng)
        self.data.configurations.append((slot, service.id, self.env_ids[env] if env else None, key, created))
        edits = 1 + min(40, int(rng.expovariate(1 / (4.0 if shape == "flag" else 0.9))))
        times = sorted(created + (service.active_until - created) * rng.random() for _ in range(edits - 1))
        deleted = False
        for n, at in enumerate([created, *times]):
            kind = "plain"
            if shape == "secret":
                kind = "secret"
            elif n > 0 and not deleted and rng.random() < 0.04:
                kind = "deleted"
            deleted = kind == "deleted"
            actor = self.actor(rng, service, 0.8, at)
            self.event(
                at, "configure", id=slot, actor_id=actor, actor_name=None if actor else "config-sync",
                request_id=self.request_id(rng, "cfg"), status=kind,
                value=self.config_value(rng, shape, service, env) if kind == "plain" else None,
                secret_ref=f"vault://kv/{service.name}/{key.lower()}#v{n + 1}" if kind == "secret" else None,
            )  # fmt: skip

    def config_value(self, rng: random.Random, shape: str, service: _Service, env: str | None) -> Any:
        match shape:
            case "timeout":
                return rng.choice([500, 1000, 1500, 2000, 2500, 3000, 5000, 10000])
            case "level":
                return rng.choice(["debug", "info", "info", "warn", "error"])
            case "pool" | "retries":
                return rng.randint(1, 10) if shape == "retries" else rng.choice([5, 10, 20, 32, 50, 100])
            case "ttl":
                return rng.choice([30, 60, 300, 900, 3600])
            case "rate":
                rps = rng.choice([50, 100, 200, 500, 1000])
                return {"rps": rps, "burst": rps * rng.choice([2, 3, 5])}
            case "url":
                target = rng.choice(self.services).name
                return f"http://{target}.{env or 'default'}.svc.cluster.local:8080"
            case "ratio":
                return round(rng.uniform(0.001, 0.5), 3)
            case "bytes":
                return rng.choice([65536, 1048576, 10485760])
            case "routing":
                return {"primary": rng.choice(list(REGIONS.values())), "failover": rng.random() < 0.5}
            case "queue":
                return f"{service.name}.{rng.choice(['jobs', 'events', 'commands'])}"
            case _:  # feature flag
                return rng.random() < 0.5

    # --- delivery: releases and their rollouts through the environments --------------------------------
    def delivery(self) -> None:
        rng = self.rng("delivery")
        busy: dict[tuple[int, str], dt.datetime] = {}
        last_good: dict[tuple[int, str], _Deployment] = {}
        for service in sorted(self.services, key=lambda s: s.index):
            begin = max(service.created_at + dt.timedelta(days=1), self.start)
            span = service.active_until - begin
            if span <= dt.timedelta(0):
                continue
            share = span / (self.now - self.start)
            n_releases = max(3, round((10 + 290 / service.rank**0.9) * share))
            times = sorted(begin + span * rng.random() for _ in range(n_releases))
            major, minor, patch = rng.choice([(0, 1, 0), (1, 0, 0), (2, 3, 0)])
            for built in times:
                bump = rng.random()
                if bump < 0.04:
                    major, minor, patch = major + 1, 0, 0
                elif bump < 0.3:
                    minor, patch = minor + 1, 0
                else:
                    patch += 1
                version = f"{major}.{minor}.{patch}"
                actor = self.actor(rng, service, 0.15, built)
                self.event(
                    built, "release", id=uuid7(built, rng), service_id=service.id, version=version,
                    commit_sha=_hex(service.name, version, self.seed),
                    artifact_digest="sha256:" + _hex(service.name, version, self.seed, digest=hashlib.sha256),
                    actor_id=actor, actor_name=None if actor else "ci-pipeline", request_id=self.request_id(rng, "ci"),
                )  # fmt: skip
                self.latest_release[service.index] = (version, built)
                self.promote(rng, service, version, built, busy, last_good)
        self.ongoing(busy)

    def promote(
        self,
        rng: random.Random,
        service: _Service,
        version: str,
        built: dt.datetime,
        busy: dict[tuple[int, str], dt.datetime],
        last_good: dict[tuple[int, str], _Deployment],
    ) -> None:
        """Roll a release out: development, staging, then each production region, each stage only after the
        one before succeeded. A production rollout is sometimes rolled back (always after a failure, now and
        then after a success that misbehaved), which ends the release's promotion."""
        ready = built
        for env, chance, (low_h, high_h) in PROMOTION:
            if rng.random() > chance:
                return
            wanted = ready + dt.timedelta(hours=rng.uniform(low_h, high_h))
            deployment = self.deploy(rng, service, env, version, wanted, busy)
            if deployment is None:
                return
            key = (service.index, env)
            previous = last_good.get(key)
            production = env in REGIONS
            if deployment.outcome == "succeeded":
                last_good[key] = deployment
                if production and previous is not None and rng.random() < 0.04:
                    self.roll_back(rng, deployment, previous, busy, last_good)
                    return
            else:
                if deployment.outcome == "failed" and production and previous is not None and rng.random() < 0.3:
                    self.roll_back(rng, deployment, previous, busy, last_good)
                return
            ready = deployment.finished

    def ongoing(self, busy: dict[tuple[int, str], dt.datetime]) -> None:
        """Rollouts under way at the anchor: a few services are mid-deployment (pending or in progress)."""
        rng = self.rng("ongoing")
        candidates = sorted((s for s in self.services if s.index in self.latest_release and s.status != "retired"),
                            key=lambda s: s.rank)  # fmt: skip
        for n, service in enumerate(candidates[: max(3, len(candidates) // 12)]):
            env = rng.choice([name for name, _ in ENVIRONMENTS])
            version, built = self.latest_release[service.index]
            wanted = max(self.now - dt.timedelta(minutes=rng.uniform(5, 20)), built + dt.timedelta(minutes=1))
            if wanted < self.now and busy.get((service.index, env), self.start) < wanted - dt.timedelta(minutes=30):
                status = "pending" if n % 3 == 2 else "in_progress"
                self.deploy(rng, service, env, version, wanted, busy, under_way=status)

    def deploy(
        self,
        rng: random.Random,
        service: _Service,
        env: str,
        version: str,
        wanted: dt.datetime,
        busy: dict[tuple[int, str], dt.datetime],
        rollback_of: _Deployment | None = None,
        *,
        under_way: str | None = None,
    ) -> _Deployment | None:
        """One rollout, after the previous one of the same service and environment has finished. Its events
        after the anchor have not happened: one ``under_way`` is left in that status (pending or in_progress)."""
        key = (service.index, env)
        created = max(wanted, busy.get(key, wanted) + dt.timedelta(minutes=rng.uniform(1, 30)))
        if created > min(self.now, service.active_until):
            return None
        production = env in REGIONS
        outcome = rng.choices(["succeeded", "failed", "cancelled"], OUTCOMES[production])[0]
        if rollback_of is not None:
            outcome = "succeeded" if rng.random() < 0.95 else "failed"
        started: dt.datetime | None = created + dt.timedelta(seconds=rng.uniform(5, 300))
        if outcome == "cancelled" and rng.random() < 0.5:
            started = None  # cancelled while still pending
        finished = (started or created) + dt.timedelta(minutes=rng.uniform(2, 25))
        if under_way is not None:
            outcome, finished = "succeeded", self.now + dt.timedelta(minutes=rng.uniform(1, 30))
            started = min(created + dt.timedelta(minutes=1), self.now) if under_way == "in_progress" else finished
        deployer = self.actor(rng, service, 0.85 if production else 0.5, created)
        deployment = _Deployment(
            uuid7(created, rng), service, env, version, created, outcome, started, finished, deployer, rollback_of
        )
        busy[key] = finished
        self.deployments.append(deployment)
        self.event(
            created, "deploy", id=deployment.id, service_id=service.id, environment_id=self.env_ids[env],
            version=version, rollback_of_id=rollback_of.id if rollback_of else None, actor_id=deployer,
            actor_name=None if deployer else "deploy-bot", request_id=self.request_id(rng, "deploy"),
        )  # fmt: skip
        controller = {"actor_name": "deploy-controller", "request_id": self.request_id(rng, "rollout")}
        if started is not None:
            self.event(started, "start", id=deployment.id, **controller)
        self.event(finished, "finish", id=deployment.id, status=outcome, **controller)
        return deployment

    def roll_back(
        self,
        rng: random.Random,
        bad: _Deployment,
        good: _Deployment,
        busy: dict[tuple[int, str], dt.datetime],
        last_good: dict[tuple[int, str], _Deployment],
    ) -> None:
        """Redeploy the last good version; once that succeeds, the bad deployment becomes rolled_back."""
        wanted = bad.finished + dt.timedelta(minutes=rng.uniform(10, 360))
        rollback = self.deploy(rng, bad.service, bad.env, good.version, wanted, busy, rollback_of=bad)
        if rollback is not None and rollback.outcome == "succeeded":
            last_good[(bad.service.index, bad.env)] = rollback
            at = rollback.finished + dt.timedelta(seconds=1)
            self.event(
                at, "roll_back", id=bad.id, actor_name="deploy-controller", request_id=self.request_id(rng, "rollout")
            )

    # --- monitoring: metric definitions, series per running instance, their samples ---------------------
    def monitoring(self) -> None:
        """Every successful production rollout starts a new instance whose series carry its pod name, so series
        accumulate over the whole history while samples exist only for the last SAMPLE_DAYS (retention)."""
        rng = self.rng("monitoring")
        created = self.start - dt.timedelta(days=300)
        for name, unit, kind, description in METRICS:
            self.data.metrics.append((name, unit, kind, description, created))
        window_start = self.now - dt.timedelta(days=SAMPLE_DAYS)
        live: dict[tuple[int, str], list[_Deployment]] = {}
        for deployment in sorted(self.deployments, key=lambda d: d.finished):
            if deployment.outcome == "succeeded" and deployment.finished <= self.now and deployment.env in REGIONS:
                live.setdefault((deployment.service.index, deployment.env), []).append(deployment)
        for (service_index, env), rollouts in sorted(live.items()):
            service = self.services[service_index]
            if env == "us-production" and service.tier > 1:
                continue  # only tier-1 services are measured in the second region
            metrics = METRICS[:3] if service.tier == 1 else METRICS[:2]
            ends = [d.finished for d in rollouts[1:]] + [min(self.now, service.active_until)]
            traffic = 2000 / service.rank  # requests per second, by popularity
            for rollout, end in zip(rollouts, ends, strict=True):
                pod = f"{service.name}-{rollout.id.hex[-10:-5]}-{rollout.id.hex[-5:]}"
                first = max(rollout.finished, window_start)
                for metric, _, _, _ in metrics:
                    interval = rng.choices(*SCRAPE_INTERVALS)[0]
                    start = int(first.timestamp()) + rng.randrange(interval)
                    level = {"http_requests_total": traffic, "cpu_usage_ratio": rng.uniform(0.2, 0.7)}.get(
                        metric, rng.lognormvariate(-2.5, 0.5)
                    )
                    labels = {"region": REGIONS[env], "pod": pod, "version": rollout.version}
                    self.data.series.append(
                        _Series(metric, service.id, self.env_ids[env], labels, rollout.finished, start,
                                int(end.timestamp()), interval, level)
                    )  # fmt: skip


def check_scale(scale: int) -> None:
    if scale < 1:
        raise UserError(f"--scale must be 1 or more, not {scale}")


def generate(scale: int, seed: int, now: dt.datetime) -> Dataset:
    """The data set for ``scale`` and ``seed`` with history ending at ``now`` (pure: no database)."""
    check_scale(scale)
    return _Generator(scale, seed, now).build()


# --- samples -------------------------------------------------------------------------------------------


class _Timestamps:
    """Formats epoch seconds as COPY text fast: cached per minute, then the seconds appended."""

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}
        self._seconds = [f"{s:02d}+00" for s in range(60)]

    def __call__(self, epoch: int) -> str:
        minute, second = divmod(epoch, 60)
        prefix = self._minutes.get(minute)
        if prefix is None:
            prefix = dt.datetime.fromtimestamp(minute * 60, dt.UTC).strftime("%Y-%m-%d %H:%M:")
            self._minutes[minute] = prefix
        return prefix + self._seconds[second]


def _sample_lines(series_id: int, series: _Series, rng: random.Random, stamp: _Timestamps) -> Iterator[str]:
    """COPY text lines of one series: counters grow with noisy traffic, gauges wander around their level."""
    if series.metric.endswith("_total"):
        total = rng.uniform(0, 1e6)
        for epoch in range(series.first, series.last, series.interval):
            daily = 1 + 0.5 * math.sin(epoch / 13751)  # a day-shaped traffic curve
            total += series.level * series.interval * daily * rng.uniform(0.8, 1.2)
            yield f"{series_id}\t{stamp(epoch)}\t{total:.0f}\n"
    else:
        value = series.level
        for epoch in range(series.first, series.last, series.interval):
            value = max(0.0, value + rng.gauss(0, series.level * 0.05) + (series.level - value) * 0.1)
            yield f"{series_id}\t{stamp(epoch)}\t{value:.6g}\n"


# --- loading -------------------------------------------------------------------------------------------


@dataclass
class SeedReport:
    """What a seed wrote: rows per table and how long each phase took."""

    scale: int
    seed: int
    now: dt.datetime
    server_version: str
    counts: dict[str, int]
    phases: dict[str, float]
    """Seconds per phase; the samples phase runs alongside the history replay."""
    seconds: float
    """Wall-clock seconds of the whole seed."""


_REPLAY_FUNCTION = """
CREATE FUNCTION pg_temp.seed_replay(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  n integer := 0;
BEGIN
  FOR e IN SELECT * FROM seed_events WHERE seq >= p_from AND seq < p_to ORDER BY seq LOOP
    PERFORM set_config('platformdb.actor_id', coalesce(e.actor_id::text, ''), true),
            set_config('platformdb.actor_name', coalesce(e.actor_name, ''), true),
            set_config('platformdb.request_id', e.request_id, true);
    CASE e.kind
    WHEN 'release' THEN
      INSERT INTO platform.releases (id, service_id, version, commit_sha, artifact_digest, created_by, created_at)
      VALUES (e.id, e.service_id, e.version, e.commit_sha, e.artifact_digest, e.actor_id, e.at);
    WHEN 'deploy' THEN
      INSERT INTO platform.deployments
        (id, service_id, version, environment_id, deployed_by, rollback_of_id, created_at)
      VALUES (e.id, e.service_id, e.version, e.environment_id, e.actor_id, e.rollback_of_id, e.at);
    WHEN 'start' THEN
      UPDATE platform.deployments SET status = 'in_progress', started_at = e.at WHERE id = e.id;
    WHEN 'finish' THEN
      UPDATE platform.deployments SET status = e.status, deployed_at = e.at WHERE id = e.id;
    WHEN 'roll_back' THEN
      UPDATE platform.deployments SET status = 'rolled_back' WHERE id = e.id;
    WHEN 'configure' THEN
      INSERT INTO platform.configuration_versions (configuration_id, kind, value, secret_ref, created_by, created_at)
      VALUES (e.id, e.status, e.value, e.secret_ref, e.actor_id, e.at);
    END CASE;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$
"""


class _Loader:
    """Writes a :class:`Dataset`: identity and catalog first, then the history replay and, at the same time on
    a second connection, the metric samples (they touch none of the replay's tables)."""

    def __init__(self, url: URL, conn: psycopg.Connection[Any], data: Dataset, progress: Progress) -> None:
        self.url, self.conn, self.data, self.progress = url, conn, data, progress
        self.phases: dict[str, float] = {}

    def copy(self, table: str, columns: str, rows: Sequence[tuple[Any, ...]], actor: str) -> None:
        """COPY rows into platform.<table> in one transaction, audited as done by ``actor``."""
        with self.conn.transaction():
            set_actor(self.conn, None, actor_name=actor, request_id=f"seed-{table}")
            with self.conn.cursor().copy(f"COPY platform.{table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def run(self) -> None:
        self.timed("identity and catalog", self.identity_and_catalog)
        history, samples_phase = "history (replayed through the triggers)", "metric samples (alongside the replay)"
        self.phases |= {history: 0.0, samples_phase: 0.0}  # reported in this order
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-samples") as pool:
            samples = pool.submit(self.timed, samples_phase, self.samples)
            try:
                self.timed(history, self.history)
            except BaseException:
                with contextlib.suppress(Exception):  # the replay's error is the one to report
                    samples.result()
                raise
            samples.result()  # wait for the samples; raises their error, if any

    def timed(self, phase: str, step: Callable[[], None]) -> None:
        started = time.perf_counter()
        step()
        self.phases[phase] = time.perf_counter() - started

    def identity_and_catalog(self) -> None:
        d = self.data
        steps: list[tuple[str, str, Sequence[tuple[Any, ...]], str]] = [
            ("environments", "id, name, is_production, created_at", d.environments, "platformdb seed"),
            ("permissions", "id, name, description, created_at", d.permissions, "platformdb seed"),
            ("roles", "id, name, description, created_at", d.roles, "platformdb seed"),
            ("role_permissions", "role_id, permission_id, created_at", d.role_permissions, "platformdb seed"),
            ("teams", "id, name, display_name, created_at", d.teams, "scim-provisioning"),
            ("users", "id, email, display_name, password_hash, deactivated_at, created_at", d.users,
             "scim-provisioning"),
            ("team_memberships", "team_id, user_id, role, created_at", d.memberships, "scim-provisioning"),
            ("services", "id, name, description, owner_team_id, status, tier, created_at", d.services,
             "service-catalog-sync"),
            ("service_dependencies", "service_id, depends_on_service_id, created_at", d.dependencies,
             "service-catalog-sync"),
            ("role_grants", "id, user_id, role_id, service_id, environment_id, granted_by, expires_at, created_at",
             d.grants, "access-review"),
            ("configurations", "id, service_id, environment_id, key, created_at", d.configurations, "config-sync"),
            ("metrics", "name, unit, kind, description, created_at", d.metrics, "metrics-registry"),
        ]  # fmt: skip
        task = self.progress.add_task("identity and catalog", total=len(steps) + 1)
        with self.conn.transaction():
            # Partitions for everything the load writes: audit rows (now) and the samples' days.
            self.conn.execute("SELECT platform.ensure_partitions('platform.audit_logs', 'month', now(), now())")
            self.conn.execute(
                "SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)",
                (d.now - dt.timedelta(days=SAMPLE_DAYS), d.now + dt.timedelta(days=1)),
            )
        self.progress.advance(task)
        for table, columns, rows, actor in steps:
            self.copy(table, columns, rows, actor)
            self.progress.advance(task)

    def history(self) -> None:
        """COPY the events into a temporary table, then replay them in time order, REPLAY_CHUNK per transaction."""
        events = self.data.events
        with self.conn.transaction():
            self.conn.execute(
                """CREATE TEMP TABLE seed_events (
                     seq bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL, actor_id uuid,
                     actor_name text, request_id text NOT NULL, id uuid NOT NULL, service_id uuid,
                     environment_id uuid, version text, status text, rollback_of_id uuid, value jsonb,
                     secret_ref text, commit_sha text, artifact_digest text)"""
            )
            self.conn.execute(_REPLAY_FUNCTION)
            value = EVENT_COLUMNS.index("value")
            with self.conn.cursor().copy(f"COPY seed_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for event in events:
                    copy.write_row((*event[:value], _jsonb(event[value]), *event[value + 1 :]))
        task = self.progress.add_task("history: releases, configuration, deployments", total=len(events))
        for low in range(0, len(events), REPLAY_CHUNK):
            with self.conn.transaction():
                self.conn.execute("SELECT pg_temp.seed_replay(%s, %s)", (low, low + REPLAY_CHUNK))
            self.progress.advance(task, min(REPLAY_CHUNK, len(events) - low))
        self.conn.execute("DROP TABLE seed_events")
        self.conn.execute("DROP FUNCTION pg_temp.seed_replay(bigint, bigint)")

    def samples(self) -> None:
        """The series, then their samples, SAMPLE_CHUNK rows per COPY, on a connection of their own."""
        d = self.data
        with connect(self.url, autocommit=True) as conn:
            with conn.transaction():
                metric_ids = {str(name): id_ for name, id_ in conn.execute("SELECT name, id FROM platform.metrics")}
                columns = "metric_id, service_id, environment_id, labels, created_at"
                with conn.cursor().copy(f"COPY platform.metric_series ({columns}) FROM STDIN") as copy:
                    for s in d.series:
                        copy.write_row((metric_ids[s.metric], s.service_id, s.environment_id, Jsonb(s.labels),
                                        s.created_at))  # fmt: skip
                # COPY assigns identity values in row order: the n-th series written has the n-th smallest id.
                ids = [int(str(row[0])) for row in conn.execute("SELECT id FROM platform.metric_series ORDER BY id")]
            task = self.progress.add_task("metric samples", total=d.samples_expected())
            stamp = _Timestamps()
            pending: list[str] = []
            for index, (series_id, series) in enumerate(zip(ids, d.series, strict=True)):
                rng = random.Random(f"platformdb-seed:{d.seed}:{d.scale}:samples:{index}")  # noqa: S311
                pending.extend(_sample_lines(series_id, series, rng, stamp))
                if len(pending) >= SAMPLE_CHUNK or index == len(ids) - 1:
                    with (
                        conn.transaction(),
                        conn.cursor().copy(
                            "COPY platform.metric_samples (series_id, sampled_at, value) FROM STDIN"
                        ) as copy,
                    ):
                        copy.write("".join(pending))
                    self.progress.advance(task, len(pending))
                    pending = []


def _analyze(conn: psycopg.Connection[Any]) -> None:
    conn.execute("ANALYZE")


def _tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'platform' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"""
    ).fetchall()
    return [str(r[0]) for r in rows]


def count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Exact row count of every platformdb table."""
    counts = {}
    for table in _tables(conn):
        row = conn.execute(f"SELECT count(*) FROM platform.{table}").fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def seed(
    url: URL,
    *,
    scale: int = 1,
    seed: int = 1,
    now: dt.datetime | None = None,
    console: Console | None = None,
) -> SeedReport:
    """Generate the data set and load it into the (migrated, empty) database at ``url``; then ANALYZE."""
    check_scale(scale)
    at = migrate.current(url)
    if at != migrate.head():
        raise UserError(
            f"the database is not migrated to head (it is at {at or 'base'}): run `platformdb upgrade` first"
        )
    anchor = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    console = console or Console(stderr=True)
    with connect(url, autocommit=True) as conn:  # each `with conn.transaction()` is a transaction of its own
        if conn.execute(
            "SELECT EXISTS (SELECT FROM platform.users) OR EXISTS (SELECT FROM platform.services)"
        ).fetchone() != (False,):
            raise UserError("the database already holds data: seed an empty database (migrated to head)")
        server_version = str(conn.info.parameter_status("server_version"))
        columns = (
            TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        )  # fmt: skip
        with Progress(*columns, console=console) as progress:
            began = started = time.perf_counter()
            task = progress.add_task(f"generating scale {scale} (seed {seed})", total=1)
            data = generate(scale, seed, anchor)
            progress.advance(task)
            loader = _Loader(url, conn, data, progress)
            loader.phases["generate"] = time.perf_counter() - started
            loader.run()
            task = progress.add_task("ANALYZE", total=1)
            loader.timed("analyze", lambda: _analyze(conn))
            progress.advance(task)
            seconds = time.perf_counter() - began
        counts = count_rows(conn)
    return SeedReport(scale, seed, anchor, server_version, counts, loader.phases, seconds)


def summary(report: SeedReport) -> Table:
    """Rows per table and phase timings, for the terminal."""
    table = Table("table", "rows", title=f"Seeded scale {report.scale} (seed {report.seed}) on PostgreSQL "
                  f"{report.server_version} in {report.seconds:.1f} s", title_justify="left")  # fmt: skip
    for name, n in report.counts.items():
        table.add_row(name, f"{n:,}")
    table.add_section()
    for phase, seconds in report.phases.items():
        table.add_row(f"[dim]{phase}[/dim]", f"[dim]{seconds:.1f} s[/dim]")
    return table


__all__ = ["Dataset", "SeedReport", "check_scale", "count_rows", "generate", "seed", "summary", "uuid7"]
