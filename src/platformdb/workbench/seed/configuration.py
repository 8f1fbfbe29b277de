"""Configuration: keys per service and environment (the rows), and their versions (history events)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from platformdb.workbench.seed.base import Run, request_id, uuid7
from platformdb.workbench.seed.catalog import REGIONS, ServiceProfile
from platformdb.workbench.seed.history import UNNUMBERED, Event, History, JsonValue
from platformdb.workbench.seed.identity import People

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


class Configuration(NamedTuple):
    id: uuid.UUID
    service_id: uuid.UUID
    environment_id: uuid.UUID | None
    key: str
    created_at: dt.datetime


class _Slot(NamedTuple):
    """A configuration being written: its id, and the service, key, value shape and environment it is for."""

    id: uuid.UUID
    service: ServiceProfile
    key: str
    shape: str
    env: str | None


class _Configurator:
    """Writes the configuration of one service after another: each key's slot, then its versions as events."""

    def __init__(
        self,
        run: Run,
        services: Sequence[ServiceProfile],
        env_ids: Mapping[str, uuid.UUID],
        people: People,
        history: History,
    ) -> None:
        self.run, self.services, self.env_ids, self.people, self.history = run, services, env_ids, people, history
        self.rng = run.rng("configuration")
        self.rows: list[Configuration] = []

    def service(self, service: ServiceProfile) -> None:
        """A service's keys: a default slot each, and now and then an override per environment."""
        for key, shape in self.keys(service):
            self.slot(service, key, shape, None)
            for env, rate in OVERRIDE_RATE.items():
                if shape != "secret" and self.rng.random() < rate:
                    self.slot(service, key, shape, env)

    def keys(self, service: ServiceProfile) -> list[tuple[str, str]]:
        """Every service has the first two keys; popular services have more, and some have feature flags."""
        rng = self.rng
        n_keys = min(len(CONFIG_KEYS), 5 + int(9 / service.rank**0.5) + rng.randrange(3))
        keys = [CONFIG_KEYS[0], CONFIG_KEYS[1], *rng.sample(CONFIG_KEYS[2:], n_keys - 2)]
        flags = rng.sample(FEATURES, rng.choice([0, 0, 1, 2, 3]))
        return keys + [(f"FEATURE_{flag.upper()}", "flag") for flag in flags]

    def slot(self, service: ServiceProfile, key: str, shape: str, env: str | None) -> None:
        """One configuration (a key, for all environments or one) and its edits until the service retires."""
        rng = self.rng
        begin = max(service.created_at, self.run.start - dt.timedelta(days=30))
        created = begin if env is None else begin + (service.active_until - begin) * rng.uniform(0, 0.8)
        slot = _Slot(uuid7(created, rng), service, key, shape, env)
        self.rows.append(Configuration(slot.id, service.id, self.env_ids[env] if env else None, key, created))
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
            self.version(slot, n, at, kind)

    def version(self, slot: _Slot, n: int, at: dt.datetime, kind: str) -> None:
        """The ``n``-th version of ``slot``, of ``kind`` plain (a value), secret (a reference) or deleted."""
        rng, service = self.rng, slot.service
        actor = self.people.actor(rng, service.team, 0.8, at)
        request = request_id(rng, "cfg")  # drawn before the value: the stream's order is part of the data set
        value = self.value(slot.shape, service, slot.env) if kind == "plain" else None
        secret_ref = f"vault://kv/{service.name}/{slot.key.lower()}#v{n + 1}" if kind == "secret" else None
        actor_name = None if actor else "config-sync"
        self.history.add(
            Event(UNNUMBERED, "configure", at, actor, actor_name, request, slot.id, status=kind, value=value,
                  secret_ref=secret_ref)
        )  # fmt: skip

    def value(self, shape: str, service: ServiceProfile, env: str | None) -> JsonValue:
        rng = self.rng
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


def configurations(
    run: Run,
    services: Sequence[ServiceProfile],
    env_ids: Mapping[str, uuid.UUID],
    people: People,
    history: History,
) -> list[Configuration]:
    """Every service's configuration rows; their versions go into ``history``."""
    configurator = _Configurator(run, services, env_ids, people, history)
    for service in services:
        configurator.service(service)
    return configurator.rows
