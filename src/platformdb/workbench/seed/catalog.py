"""Catalog: environments, services and the dependencies between them."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from platformdb.workbench.seed.base import HISTORY_DAYS, PER_SCALE, Run, uuid7, zipf_weights
from platformdb.workbench.seed.identity import Team

ENVIRONMENTS = [("development", False), ("staging", False), ("eu-production", True), ("us-production", True)]
REGIONS = {"eu-production": "eu-west-1", "us-production": "us-east-1"}
SERVICE_DOMAINS = [
    "account", "order", "cart", "payment", "invoice", "ledger", "user", "session", "search", "catalog", "price",
    "stock", "shipment", "notification", "email", "review", "recommendation", "media", "report", "fraud",
    "loyalty", "coupon", "tax", "refund", "profile",
]  # fmt: skip
SERVICE_KINDS = ["api", "service", "worker", "gateway", "sync", "store", "scheduler"]


class Environment(NamedTuple):
    id: uuid.UUID
    name: str
    is_production: bool
    tier: str
    created_at: dt.datetime


class Service(NamedTuple):
    id: uuid.UUID
    name: str
    description: str
    owner_team_id: uuid.UUID
    status: str
    tier: int
    created_at: dt.datetime


class ServiceDependency(NamedTuple):
    service_id: uuid.UUID
    depends_on_service_id: uuid.UUID
    created_at: dt.datetime


@dataclass(frozen=True)
class ServiceProfile:
    """A service as the simulation sees it: what the other parts of the history need to know about it."""

    index: int
    id: uuid.UUID
    name: str
    team: int  # index of the owning team
    status: str
    tier: int
    created_at: dt.datetime
    rank: int  # popularity, 1 = most popular; each rank is held by `scale` services
    active_until: dt.datetime  # retired services stop changing


@dataclass(frozen=True)
class Services:
    profiles: list[ServiceProfile]  # by index
    rows: list[Service]  # by index
    dependencies: list[ServiceDependency]

    def by_team(self) -> dict[uuid.UUID, list[uuid.UUID]]:
        """The ids of each team's services, by owning team id."""
        owned: dict[uuid.UUID, list[uuid.UUID]] = {}
        for service in self.rows:
            owned.setdefault(service.owner_team_id, []).append(service.id)
        return owned


def environments(run: Run, rng: random.Random) -> list[Environment]:
    created = run.founded
    return [
        Environment(uuid7(created, rng), name, production, "production" if production else name, created)
        for name, production in ENVIRONMENTS
    ]


def services(run: Run, teams: Sequence[Team]) -> Services:
    rng = run.rng("catalog")
    profiles = _profiles(run, rng, len(teams))
    rows = [_service(profile, teams) for profile in profiles]
    return Services(profiles, rows, _dependencies(run, rng, profiles))


def _profiles(run: Run, rng: random.Random, n_teams: int) -> list[ServiceProfile]:
    n = PER_SCALE["services"] * run.scale
    combos = [f"{d}-{k}" for d in SERVICE_DOMAINS for k in SERVICE_KINDS]
    rng.shuffle(combos)
    ranks = [i // run.scale + 1 for i in range(n)]  # popularity: scale N has N services of each rank
    rng.shuffle(ranks)
    team_weights = zipf_weights(n_teams, 0.7, run.scale)
    profiles = []
    for i in range(n):
        name = combos[i % len(combos)] + ("" if i < len(combos) else f"-{i // len(combos) + 1}")
        profiles.append(_profile(run, rng, i, name, ranks[i], team_weights))
    return profiles


def _profile(run: Run, rng: random.Random, i: int, name: str, rank: int, team_weights: list[float]) -> ServiceProfile:
    status = rng.choices(["active", "incubating", "deprecated", "retired"], [0.75, 0.1, 0.1, 0.05])[0]
    young = status == "incubating"
    created = run.ago(rng, 20, 60) if young else run.ago(rng, HISTORY_DAYS, HISTORY_DAYS + 400)
    active_until = run.now
    if status == "retired":
        active_until = run.ago(rng, 20, HISTORY_DAYS * 0.6)
    tier = rng.choices([1, 2, 3, 4], [0.15, 0.3, 0.4, 0.15])[0]
    team = rng.choices(range(len(team_weights)), team_weights)[0]
    return ServiceProfile(i, uuid7(created, rng), name, team, status, tier, created, rank, active_until)


def _service(profile: ServiceProfile, teams: Sequence[Team]) -> Service:
    owner = teams[profile.team]
    description = f"{profile.name.replace('-', ' ').capitalize()}: owned by {owner.name}."
    return Service(profile.id, profile.name, description, owner.id, profile.status, profile.tier, profile.created_at)


def _dependencies(run: Run, rng: random.Random, profiles: list[ServiceProfile]) -> list[ServiceDependency]:
    """Services call popular services far more often (Zipf); cycles may form, as in life."""
    by_rank = sorted(profiles, key=lambda s: (s.rank, s.index))
    weights = [1.0 / service.rank**1.1 for service in by_rank]
    rows = []
    for service in profiles:
        for target_index in _callees(rng, service, by_rank, weights):
            target = profiles[target_index]
            created = max(service.created_at, target.created_at) + dt.timedelta(days=rng.uniform(0, 30))
            rows.append(ServiceDependency(service.id, target.id, min(created, run.now)))
    return rows


def _callees(
    rng: random.Random, service: ServiceProfile, by_rank: list[ServiceProfile], weights: list[float]
) -> list[int]:
    """Indexes of the services ``service`` depends on, in index order."""
    drawn = rng.choices([0, 1, 2, 3, 4, 5, 6, 8], [0.1, 0.2, 0.2, 0.18, 0.12, 0.1, 0.06, 0.04])[0]
    wanted = min(len(by_rank) - 1, drawn)
    targets: set[int] = set()
    while len(targets) < wanted:
        target = rng.choices(by_rank, weights)[0]
        if target.index != service.index:
            targets.add(target.index)
    return sorted(targets)
