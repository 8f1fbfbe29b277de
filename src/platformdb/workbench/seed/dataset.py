"""The data set: every context's rows, generated in dependency order, each part from its own random stream."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from platformdb.workbench.seed import catalog, configuration, delivery, identity, monitoring
from platformdb.workbench.seed.base import Run, check_scale
from platformdb.workbench.seed.catalog import Environment, Service, ServiceDependency
from platformdb.workbench.seed.configuration import Configuration
from platformdb.workbench.seed.delivery import ApprovalRule
from platformdb.workbench.seed.history import Event, History
from platformdb.workbench.seed.identity import (
    ApiToken,
    ApiTokenScope,
    Permission,
    Role,
    RoleGrant,
    RolePermission,
    ServiceAccount,
    Team,
    TeamGrant,
    TeamMembership,
    User,
)
from platformdb.workbench.seed.monitoring import Metric, Series


@dataclass
class Dataset:
    """Every row the seed writes, in load order, except metric samples (generated while they stream). Plain
    Python values only (JSON values as dicts, lists, strings...), so two data sets compare equal when their rows
    do."""

    scale: int
    seed: int
    now: dt.datetime
    environments: list[Environment] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    memberships: list[TeamMembership] = field(default_factory=list)
    permissions: list[Permission] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)
    role_permissions: list[RolePermission] = field(default_factory=list)
    grants: list[RoleGrant] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    dependencies: list[ServiceDependency] = field(default_factory=list)
    configurations: list[Configuration] = field(default_factory=list)
    approval_rules: list[ApprovalRule] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    service_accounts: list[ServiceAccount] = field(default_factory=list)
    tokens: list[ApiToken] = field(default_factory=list)
    token_scopes: list[ApiTokenScope] = field(default_factory=list)
    team_grants: list[TeamGrant] = field(default_factory=list)

    def samples_expected(self) -> int:
        return sum(s.count() for s in self.series)


class _Created(Protocol):
    @property
    def created_at(self) -> dt.datetime: ...


_Row = TypeVar("_Row", bound=_Created)


def _in_creation_order(rows: list[_Row]) -> list[_Row]:
    """Rows land in the order they were created, as in production (where ids, uuidv7 or identity, follow it
    too): physical order and index correlation are then what a real database has."""
    return sorted(rows, key=lambda row: row.created_at)


def generate(scale: int, seed: int, now: dt.datetime) -> Dataset:
    """The data set for ``scale`` and ``seed`` with history ending at ``now`` (pure: no database)."""
    check_scale(scale)
    run = Run(scale, seed, now)
    reference = run.rng("reference")  # one stream: environments first, then permissions and roles
    environments = catalog.environments(run, reference)
    access = identity.access(run, reference)
    env_ids = {environment.name: environment.id for environment in environments}
    people = identity.people(run)
    services = catalog.services(run, people.teams)
    grants = identity.grants(run, access, people, services.by_team(), env_ids)
    history = History(now)  # configuration first: events at the same time replay in the order generated
    configurations = configuration.configurations(run, services.profiles, env_ids, people, history)
    rollouts = delivery.rollouts(run, services.profiles, env_ids, people, history)
    made = identity.tokens(run, access, people)
    return Dataset(
        scale, seed, now,
        environments=_in_creation_order(environments), teams=_in_creation_order(people.teams),
        users=_in_creation_order(people.users), memberships=_in_creation_order(people.memberships),
        permissions=_in_creation_order(access.permissions), roles=_in_creation_order(access.roles),
        role_permissions=_in_creation_order(access.role_permissions), grants=_in_creation_order(grants),
        services=_in_creation_order(services.rows), dependencies=_in_creation_order(services.dependencies),
        configurations=_in_creation_order(configurations), events=history.events(),
        approval_rules=delivery.approval_rules(run, env_ids, {p.name: p.id for p in access.permissions}),
        metrics=_in_creation_order(monitoring.metrics(run)),
        series=_in_creation_order(monitoring.series(run, services.profiles, rollouts, env_ids)),
        service_accounts=_in_creation_order(made.service_accounts), tokens=_in_creation_order(made.tokens),
        token_scopes=_in_creation_order(made.scopes), team_grants=_in_creation_order(made.team_grants),
    )  # fmt: skip
