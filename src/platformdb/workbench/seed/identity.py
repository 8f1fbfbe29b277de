"""Identity: permissions and roles, teams, users and their memberships, and scoped role grants."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from platformdb.workbench.seed.base import HISTORY_DAYS, PER_SCALE, Run, hex_digest, uuid7, zipf_weights

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


class Permission(NamedTuple):
    id: uuid.UUID
    name: str
    description: str
    created_at: dt.datetime


class Role(NamedTuple):
    id: uuid.UUID
    name: str
    description: str
    created_at: dt.datetime


class RolePermission(NamedTuple):
    role_id: uuid.UUID
    permission_id: uuid.UUID
    created_at: dt.datetime


class Team(NamedTuple):
    id: uuid.UUID
    name: str
    display_name: str
    parent_team_id: uuid.UUID | None
    created_at: dt.datetime


class User(NamedTuple):
    id: uuid.UUID
    email: str
    display_name: str
    password_hash: str
    deactivated_at: dt.datetime | None
    created_at: dt.datetime


class TeamMembership(NamedTuple):
    team_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    created_at: dt.datetime


class RoleGrant(NamedTuple):
    id: uuid.UUID
    user_id: uuid.UUID
    role_id: uuid.UUID
    service_id: uuid.UUID | None
    environment_id: uuid.UUID | None
    granted_by: uuid.UUID | None
    expires_at: dt.datetime | None
    created_at: dt.datetime


# --- permissions and roles (reference data) --------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    permissions: list[Permission]
    roles: list[Role]
    role_permissions: list[RolePermission]

    def role_ids(self) -> dict[str, uuid.UUID]:
        return {role.name: role.id for role in self.roles}


def access(run: Run, rng: random.Random) -> Access:
    """Permissions, then roles and what each role may do, all as old as the platform."""
    created = run.founded
    permissions = [Permission(uuid7(created, rng), name, text, created) for name, text in PERMISSIONS]
    permission_ids = {permission.name: permission.id for permission in permissions}
    roles: list[Role] = []
    role_permissions: list[RolePermission] = []
    for name, granted in ROLES.items():
        roles.append(Role(uuid7(created, rng), name, f"Holders may: {', '.join(granted)}.", created))
        role_permissions += [RolePermission(roles[-1].id, permission_ids[p], created) for p in granted]
    return Access(permissions, roles, role_permissions)


# --- teams, users and memberships ------------------------------------------------------------------------


@dataclass
class People:
    """Teams, users and memberships (in the order they were generated), and who is there to act."""

    teams: list[Team] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    memberships: list[TeamMembership] = field(default_factory=list)
    members: list[list[tuple[uuid.UUID, dt.datetime]]] = field(default_factory=list)
    """Per team (by index), its active members and when each joined the company."""
    admins: list[uuid.UUID] = field(default_factory=list)

    def active_users(self) -> list[uuid.UUID]:
        return [user.id for user in self.users if user.deactivated_at is None]

    def actor(self, rng: random.Random, team: int, human: float, at: dt.datetime) -> uuid.UUID | None:
        """Who does something to a service of ``team`` at ``at``: with probability ``human`` a member of the team
        (one who had joined by then), else automation (None)."""
        user, joined = rng.choice(self.members[team])
        return user if rng.random() < human and joined <= at else None

    def named(self, team: int, at: dt.datetime) -> uuid.UUID:
        """Someone to name where automation may not act alone (a protected environment's deployer): the team's
        first member who had joined by ``at``, else an administrator. Draws nothing from a stream."""
        return next((user for user, joined in self.members[team] if joined <= at), self.admins[0])


def people(run: Run) -> People:
    rng = run.rng("identity")
    found = People(teams=_teams(run, rng))
    found.members = [[] for _ in found.teams]
    weights = zipf_weights(len(found.teams), 0.6, run.scale)
    seen: collections.Counter[str] = collections.Counter()
    for i in range(PER_SCALE["users"] * run.scale):
        user = _user(run, rng, i, seen)
        found.users.append(user)
        for team, role in _teams_joined(rng, weights):
            found.memberships.append(TeamMembership(found.teams[team].id, user.id, role, user.created_at))
            if user.deactivated_at is None:
                found.members[team].append((user.id, user.created_at))
    _staff_empty_teams(rng, found)
    found.admins = rng.sample(found.active_users(), max(2, run.scale * 2))
    return found


def _teams(run: Run, rng: random.Random) -> list[Team]:
    teams = []
    for i in range(PER_SCALE["teams"] * run.scale):
        word = TEAM_WORDS[i % len(TEAM_WORDS)]
        name = word if i < len(TEAM_WORDS) else f"{word}-{i // len(TEAM_WORDS) + 1}"
        created = run.ago(rng, HISTORY_DAYS + 200, HISTORY_DAYS + 400)
        display = " ".join(part.capitalize() for part in name.split("-"))
        teams.append(Team(uuid7(created, rng), name, display, None, created))
    # Nested teams (revision 0030): the first tenth are departments; most other teams sit in one, and some in a
    # team that sits in one (three levels). A parent always comes earlier in the list, so there is no cycle and
    # COPY inserts it first. Its own random stream: the rest of the data set does not move.
    nest = run.rng("team-nesting")
    departments = max(1, len(teams) // 10)
    for i in range(departments, len(teams)):
        if nest.random() < 0.7:
            parent = nest.randrange(departments)
            if i > 3 * departments and nest.random() < 0.3 and teams[i - 2 * departments].parent_team_id is not None:
                parent = i - 2 * departments
            teams[i] = teams[i]._replace(parent_team_id=teams[parent].id)
    return teams


def _user(run: Run, rng: random.Random, i: int, seen: collections.Counter[str]) -> User:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    base = f"{first}.{last}"
    seen[base] += 1
    local = base if seen[base] == 1 else f"{base}{seen[base]}"
    email = f"{local}@example.com"
    if rng.random() < 0.1:  # entered with capitals: login must still find it (lower(email))
        email = f"{local.title()}@Example.com"
    # Most people joined before the history starts; some joined during it.
    created = run.ago(rng, 30, HISTORY_DAYS) if rng.random() < 0.15 else run.ago(rng, HISTORY_DAYS, 900)
    user_id = uuid7(created, rng)
    deactivated = None
    if rng.random() < 0.06:
        deactivated = created + (run.now - created) * rng.uniform(0.3, 0.95)
    return User(user_id, email, f"{first.title()} {last.title()}", _password_hash(run.seed, i), deactivated, created)


def _password_hash(seed: int, i: int) -> str:
    """A well-formed argon2 string that matches no password."""
    salt = hex_digest("salt", seed, i)[:22]
    return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${hex_digest('hash', seed, i, digest=hashlib.sha256)[:43]}"


def _teams_joined(rng: random.Random, weights: Sequence[float]) -> list[tuple[int, str]]:
    """Most people are in one team, some in two, a few in none (managers, auditors): (team, role) pairs."""
    if rng.random() < 0.04:
        return []
    teams = {rng.choices(range(len(weights)), weights)[0]}
    if rng.random() < 0.2:
        teams.add(rng.randrange(len(weights)))
    return [(team, "maintainer" if rng.random() < 0.15 else "member") for team in sorted(teams)]


def _staff_empty_teams(rng: random.Random, people: People) -> None:
    """Every team has somebody to act for it: a team without active members gets a maintainer."""
    active = people.active_users()
    joined = {user.id: user.created_at for user in people.users}
    for team, members in enumerate(people.members):
        if not members:
            user_id = rng.choice(active)
            members.append((user_id, joined[user_id]))
            people.memberships.append(TeamMembership(people.teams[team].id, user_id, "maintainer", joined[user_id]))


# --- role grants ---------------------------------------------------------------------------------------


class _Grants:
    """Role grants made one at a time, each (user, role, service, environment) at most once."""

    def __init__(
        self, run: Run, rng: random.Random, people: People, access: Access, env_ids: Mapping[str, uuid.UUID]
    ) -> None:
        self.run, self.rng, self.admins, self.env_ids = run, rng, people.admins, env_ids
        self.role_ids = access.role_ids()
        self.joined = {user.id: user.created_at for user in people.users}
        self.keys: set[tuple[uuid.UUID, str, uuid.UUID | None, str | None]] = set()
        self.rows: list[RoleGrant] = []

    def grant(self, user: uuid.UUID, role: str, service: uuid.UUID | None = None, env: str | None = None) -> None:
        key = (user, role, service, env)
        if key in self.keys:
            return
        self.keys.add(key)
        rng = self.rng
        created = max(self.run.ago(rng, 1, HISTORY_DAYS), self.joined[user] + dt.timedelta(hours=1))
        expires = None
        if rng.random() < 0.1:  # temporary access, half of it already over
            expires = created + dt.timedelta(days=rng.choice([1, 7, 30, 90]))
        granted_by = rng.choice(self.admins) if rng.random() < 0.7 else None
        if granted_by == user:  # nobody grants themselves (ck_role_grants_not_self_granted): the owner did
            granted_by = None
        env_id = self.env_ids[env] if env else None
        row = RoleGrant(uuid7(created, rng), user, self.role_ids[role], service, env_id, granted_by, expires, created)
        self.rows.append(row)


def grants(
    run: Run,
    access: Access,
    people: People,
    services_by_team: Mapping[uuid.UUID, Sequence[uuid.UUID]],
    env_ids: Mapping[str, uuid.UUID],
) -> list[RoleGrant]:
    """Global viewers, scoped deployers and owners, a few admins and auditors; some grants expire."""
    rng = run.rng("grants")
    made = _Grants(run, rng, people, access, env_ids)
    for user in people.admins:
        made.grant(user, "admin")
    for membership in people.memberships:
        user = membership.user_id
        made.grant(user, "viewer")
        services = services_by_team.get(membership.team_id, [])
        if membership.role == "maintainer":
            for service in services[:3]:
                made.grant(user, "service-owner", service)
        elif services and rng.random() < 0.6:
            made.grant(user, "deployer", env=rng.choice(["development", "staging"]))
            if rng.random() < 0.35:
                made.grant(user, "deployer", rng.choice(services), rng.choice(["eu-production", "us-production"]))
    active = people.active_users()
    for user in rng.sample(active, max(1, len(active) // 50)):
        made.grant(user, "auditor")
    return made.rows


# --- service accounts and API tokens (revision 0030) -------------------------------------------------------


class ServiceAccount(NamedTuple):
    id: uuid.UUID
    email: str
    display_name: str
    kind: str
    owner_team_id: uuid.UUID
    created_at: dt.datetime


class TeamGrant(NamedTuple):
    id: uuid.UUID
    team_id: uuid.UUID
    role_id: uuid.UUID
    created_at: dt.datetime


class ApiToken(NamedTuple):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    selector: str
    verifier: bytes
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    created_by: uuid.UUID | None
    last_used_at: dt.datetime | None
    rotated_from_id: uuid.UUID | None
    created_at: dt.datetime


class ApiTokenScope(NamedTuple):
    token_id: uuid.UUID
    permission_id: uuid.UUID
    created_at: dt.datetime


@dataclass
class Tokens:
    service_accounts: list[ServiceAccount] = field(default_factory=list)
    tokens: list[ApiToken] = field(default_factory=list)
    scopes: list[ApiTokenScope] = field(default_factory=list)
    team_grants: list[TeamGrant] = field(default_factory=list)


_SELECTOR = "abcdefghijklmnopqrstuvwxyz0123456789"
TOKEN_SCOPES = ["service:read", "deployment:create", "deployment:rollback", "configuration:read"]


def tokens(run: Run, access: Access, people: People) -> Tokens:
    """A CI service account per team (every third team), each with a few tokens, and personal tokens of most
    active people: mostly live, some revoked or expired; verifiers of secrets nobody knows. Its own random stream,
    so the other parts of the data set do not move."""
    rng = run.rng("tokens")
    found = Tokens()
    permission_ids = {p.name: p.id for p in access.permissions}
    viewer = access.role_ids()["viewer"]
    for team in people.teams[1::4]:  # some teams hold a role as a team (what their members may do)
        created = team.created_at + dt.timedelta(days=1)
        found.team_grants.append(TeamGrant(uuid7(created, rng), team.id, viewer, created))
    owners: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    for team in people.teams[::3]:
        created = team.created_at + dt.timedelta(hours=1)
        account = ServiceAccount(uuid7(created, rng), f"ci-{team.name}@bots.example.com", f"CI {team.name}",
                                 "service_account", team.id, created)  # fmt: skip
        found.service_accounts.append(account)
        owners += [(account.id, rng.choice(people.admins))] * rng.randint(1, 3)
    active = people.active_users()
    for user in active:  # personal tokens (CLI, scripts): most people have one or a few, rotated over time
        if rng.random() < 0.6:
            owners += [(user, user)] * rng.randint(1, 4)
    for i, (owner, issuer) in enumerate(owners):  # each slot: a chain of rotations up to now
        lifetime = dt.timedelta(days=rng.choice([30, 90, 365]))
        created = run.ago(rng, 1, 300)
        scopes = rng.sample(TOKEN_SCOPES, rng.randint(1, len(TOKEN_SCOPES)))
        previous: uuid.UUID | None = None
        for link in range(20):
            successor_at = created + lifetime - dt.timedelta(days=rng.randint(1, 5))
            rotated = successor_at < run.now and rng.random() < 0.9
            revoked = successor_at if rotated else None
            if not rotated and rng.random() < 0.05:
                revoked = created + (run.now - created) * rng.uniform(0.1, 0.9)
            used = (
                created + (min(run.now, successor_at) - created) * rng.uniform(0.5, 1.0) if rng.random() < 0.8 else None
            )
            selector = "".join(rng.choice(_SELECTOR) for _ in range(16))
            verifier = hashlib.sha256(f"{run.seed}:{i}:{link}:{rng.random()}".encode()).digest()
            token = ApiToken(uuid7(created, rng), owner, f"token-{i}", selector, verifier, created + lifetime, revoked,
                             issuer, used, previous, created)  # fmt: skip
            found.tokens.append(token)
            found.scopes += [ApiTokenScope(token.id, permission_ids[name], created) for name in scopes]
            if not rotated:
                break
            previous, created = token.id, successor_at
    return found
