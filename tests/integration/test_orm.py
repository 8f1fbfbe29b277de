"""The ORM sees what the database wrote: the models through a real ``Session`` on a migrated database.

Values the database assigns (configuration version numbers, trigger-set stamps) are fetched by the flush that
makes them; a Python ``None`` JSON value is SQL NULL; the relationships a user navigates exist and never load
lazily; a rollback is started in the database and marks what it undid; ``set_actor`` refuses a connection on
which its transaction-local settings would vanish at once. Writes go through the service's own login.
"""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InvalidRequestError, SAWarning
from sqlalchemy.orm import Session, selectinload

from platformdb.actor import set_actor
from platformdb.db import engine as make_engine
from platformdb.db import libpq_dsn
from platformdb.errors import NoTransactionError, UserError
from platformdb.models import (
    Base,
    Configuration,
    ConfigurationVersion,
    Deployment,
    DeploymentStatusHistory,
    FreezeOverride,
    FreezePeriod,
    Release,
    Service,
    Team,
)
from platformdb.ops.roles import grant_login
from tests.factories import Make, rejected

Engines = Callable[[str | None], Engine]


@pytest.fixture
def engines(db: URL, conn: psycopg.Connection[Any]) -> Iterator[Engines]:
    """``engines(role)``: an engine logged in as a new login of the group ``role`` (None: the owner); the
    logins are dropped at the end of the test."""
    made: list[tuple[str | None, Engine]] = []

    def get(role: str | None) -> Engine:
        url = db
        if role is not None:
            name = f"orm_{uuid.uuid4().hex[:12]}"
            grant_login(db, name, role)
            url = db.set(username=name, password=None)
        eng = make_engine(url)
        made.append((url.username if role else None, eng))
        return eng

    yield get
    for name, eng in made:
        eng.dispose()
        if name is not None:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


@contextmanager
def orm_rejected(sqlstate: str, constraint: str) -> Iterator[None]:
    """:func:`tests.factories.rejected` for a write made through SQLAlchemy (which wraps the psycopg error)."""
    with rejected(sqlstate, constraint):
        try:
            yield
        except DBAPIError as exc:
            raise exc.orig from None  # type: ignore[misc]


@contextmanager
def no_sa_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        yield


# --- values the database assigns ------------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, "configuration"], ids=["owner", "configuration"])
def test_configuration_version_number_is_fetched_by_the_flush(make: Make, engines: Engines, role: str | None) -> None:
    """trg_configuration_versions_number assigns the version (part of the primary key): after flush() the
    object has it, without an SAWarning, and refresh() finds the row. Failed on 387045d: version was None
    ("Instance has a NULL identity key") and refresh() raised."""
    service = make.service()
    with Session(engines(role)) as session, session.begin(), no_sa_warnings():
        key = Configuration(service_id=service, key="HTTP_TIMEOUT")
        session.add(key)
        session.flush()
        first = ConfigurationVersion(configuration_id=key.id, kind="plain", value={"seconds": 5})
        session.add(first)
        session.flush()
        assert first.version == 1
        second = ConfigurationVersion(configuration_id=key.id, kind="plain", value={"seconds": 10})
        session.add(second)
        session.flush()
        assert second.version == 2
        session.refresh(second)
        assert (second.version, second.value, second.created_at is not None) == (2, {"seconds": 10}, True)
        assert inspect(second).identity == (key.id, 2)


def test_trigger_set_stamps_are_fetched_by_the_flush(make: Make, engines: Engines) -> None:
    """started_at, deployed_at (trg_deployments_timestamps) and updated_at (trg_deployments_updated_at) are set
    by triggers on UPDATE: the flush that moves the status returns them, so the object is not stale. Through the
    delivery service's login, with expire_on_commit off so nothing is reloaded behind the test's back. Failed
    on 387045d: started_at stayed None after the move to in_progress."""
    service, env = make.service(), make.environment()
    make.release(service, "1.0.0")
    with Session(engines("delivery"), expire_on_commit=False) as session, no_sa_warnings():
        with session.begin():
            d = Deployment(service_id=service, version="1.0.0", environment_id=env)
            session.add(d)
        assert (d.status, d.started_at, d.deployed_at) == ("pending", None, None)
        created = d.created_at
        for status, stamped in (("in_progress", "started_at"), ("succeeded", "deployed_at")):
            with session.begin():
                d.status = status
                session.flush()
                fresh = session.execute(
                    text("SELECT started_at, deployed_at, updated_at FROM platform.deployments WHERE id = :id"),
                    {"id": d.id},
                ).one()
            assert getattr(d, stamped) is not None, f"{stamped} is stale after the move to {status}"
            assert (d.started_at, d.deployed_at, d.updated_at) == tuple(fresh)
            assert d.updated_at > created


def test_updated_at_is_fetched_by_the_flush(make: Make, engines: Engines) -> None:
    """Every table with trg_<table>_updated_at: an UPDATE through the ORM returns the new updated_at (here teams,
    through the identity service's login). Failed on 387045d: updated_at kept the insert's value."""
    with Session(engines("identity"), expire_on_commit=False) as session, no_sa_warnings():
        with session.begin():
            team = Team(name="payments", display_name="Payments")
            session.add(team)
        before = team.updated_at
        with session.begin():
            team.display_name = "Payments core"
            session.flush()
            now = session.execute(text("SELECT now()")).scalar_one()
        assert team.updated_at == now > before


# --- JSON NULL ------------------------------------------------------------------------------------------
def test_configuration_value_none_is_sql_null(make: Make, engines: Engines) -> None:
    """value=None is SQL NULL, not JSON null: a secret version (no value) is accepted through the ORM, and a
    plain one without a value is refused by ck_configuration_versions_value_matches_kind, not misreported as a
    plaintext secret. Failed on 387045d: the secret was refused as ck_configuration_versions_secret_has_no_plaintext."""
    service = make.service()
    key = make.configuration(service, "DB_PASSWORD")
    with Session(engines("configuration")) as session:
        with session.begin():
            secret = ConfigurationVersion(
                configuration_id=key, kind="secret", value=None, secret_ref="vault://kv/payments/db#password"
            )
            omitted = ConfigurationVersion(configuration_id=key, kind="deleted")
            session.add(secret)
            session.flush()
            session.add(omitted)
            session.flush()
            stored = session.execute(
                text(
                    "SELECT version, value IS NULL FROM platform.configuration_versions"
                    " WHERE configuration_id = :id ORDER BY version"
                ),
                {"id": key},
            ).all()
            assert [tuple(r) for r in stored] == [(1, True), (2, True)]
        with orm_rejected("23514", "ck_configuration_versions_value_matches_kind"), session.begin():
            session.add(ConfigurationVersion(configuration_id=key, kind="plain", value=None))
            session.flush()


# --- relationships --------------------------------------------------------------------------------------
EXPECTED_RELATIONSHIPS = {
    "Team.services", "Team.memberships", "User.memberships", "TeamMembership.team", "TeamMembership.user",
    "Role.grants", "Role.permissions", "RolePermission.role", "RolePermission.permission", "RoleGrant.user",
    "RoleGrant.role", "RoleGrant.service", "RoleGrant.environment",
    "Service.owner_team", "Service.releases", "Service.dependencies", "Service.dependents",
    "ServiceDependency.service", "ServiceDependency.depends_on",
    "Release.service", "Release.creator", "Release.deployments",
    "Deployment.release", "Deployment.environment", "Deployment.deployer", "Deployment.rollback_of",
    "Deployment.rollbacks", "Deployment.status_history", "Deployment.configurations",
    "DeploymentStatusHistory.deployment",
    "Configuration.service", "Configuration.environment", "Configuration.versions",
    "ConfigurationVersion.configuration", "ConfigurationVersion.creator",
    "DeploymentConfiguration.deployment", "DeploymentConfiguration.configuration_version",
    "MetricSeries.metric", "MetricSeries.service", "MetricSeries.environment", "MetricSample.series",
    "ApprovalRule.environment", "ApprovalRule.service", "ApprovalRule.approver_permission",
    "DeploymentApprovalRequirement.deployment", "DeploymentApprovalRequirement.approval_rule",
    "DeploymentApproval.approver", "DeploymentApproval.requirement",
}  # fmt: skip


def test_relationships_exist_and_never_load_lazily() -> None:
    """The relationships a user expects are mapped, and every relationship is lazy="raise": a query says what
    it loads (selectinload/joinedload), so no attribute access fires a hidden query. Failed on 387045d: none."""
    found = {f"{m.class_.__name__}.{r.key}": r.lazy for m in Base.registry.mappers for r in m.relationships}
    assert set(found) >= EXPECTED_RELATIONSHIPS, sorted(EXPECTED_RELATIONSHIPS - set(found))
    assert {name: lazy for name, lazy in found.items() if lazy != "raise"} == {}


def test_relationships_navigate_when_loaded(make: Make, engines: Engines) -> None:
    """deployment.release.service.owner_team and deployment.rollback_of load with explicit options, as the
    readonly service's login; an attribute not loaded raises instead of querying."""
    team = make.team()
    service, env = make.service(owner_team_id=team), make.environment()
    good = make.deployment(service, env, "1.0.0")
    make.set_status(good, "in_progress", "succeeded")
    bad = make.deployment(service, env, "1.1.0")
    make.set_status(bad, "in_progress", "succeeded")
    back = make.deployment(service, env, "1.0.0", rollback_of_id=bad)
    with Session(engines("readonly")) as session, session.begin():
        d = session.scalars(
            select(Deployment)
            .where(Deployment.id == back)
            .options(
                selectinload(Deployment.release).selectinload(Release.service).selectinload(Service.owner_team),
                selectinload(Deployment.rollback_of).selectinload(Deployment.rollbacks),
                selectinload(Deployment.status_history),
            )
        ).one()
        assert d.release.version == "1.0.0"
        assert d.release.service.owner_team.id == team
        assert d.rollback_of is not None
        assert (d.rollback_of.id, d.rollback_of.version, [r.id for r in d.rollback_of.rollbacks]) == (
            bad,
            "1.1.0",
            [back],
        )
        assert [(h.from_status, h.to_status) for h in d.status_history] == [(None, "pending")]
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = d.environment
        assert isinstance(d.status_history[0], DeploymentStatusHistory)


def test_relationships_write_the_foreign_keys(make: Make, engines: Engines) -> None:
    """Building objects through relationships fills the foreign keys (composite ones included) at flush, as the
    delivery service's login."""
    service, env = make.service(), make.environment()
    with Session(engines("delivery")) as session, session.begin(), no_sa_warnings():
        svc = session.get_one(Service, service)
        release = Release(service=svc, version="2.0.0", commit_sha="ab" * 20, artifact_digest="sha256:" + "cd" * 32)
        d = Deployment(release=release, environment_id=env)
        session.add(d)
        session.flush()
        assert (d.service_id, d.version) == (service, "2.0.0")


# --- rollback -------------------------------------------------------------------------------------------
def rolled_out(make: Make, service: uuid.UUID, env: uuid.UUID, version: str, outcome: str = "succeeded") -> uuid.UUID:
    d = make.deployment(service, env, version)
    make.set_status(d, "in_progress", outcome)
    return d


def status(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> str:
    row = conn.execute("SELECT status FROM platform.deployments WHERE id = %s", (deployment,)).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def delivery(db: URL, conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection as a new login of platform_delivery, dropped at the end of the test."""
    name = f"orm_{uuid.uuid4().hex[:12]}"
    grant_login(db, name, "delivery")
    with psycopg.connect(libpq_dsn(db.set(username=name, password=None)), autocommit=True) as c:
        yield c
    conn.execute(f'DROP OWNED BY "{name}"')
    conn.execute(f'DROP ROLE "{name}"')


def test_rolled_back_needs_a_succeeded_rollback(
    conn: psycopg.Connection[Any], make: Make, delivery: psycopg.Connection[Any]
) -> None:
    """A service moves a deployment to rolled_back only once a rollback of it succeeded
    (trg_deployments_rolled_back_has_rollback, 23514), through the delivery login: not without one, not while
    the rollback is pending or in progress, not when it failed. When it succeeds the database marks the undone
    deployment rolled_back itself (trg_deployments_rolled_back_by_rollback), in the same transaction, and the
    service's own move (v0.1's convention) is then a no-op. Failed on 387045d: rolled_back was taken freely."""
    service, env = make.service(), make.environment()
    rolled_out(make, service, env, "1.0.0")
    bad = rolled_out(make, service, env, "1.1.0")
    move = "UPDATE platform.deployments SET status = 'rolled_back' WHERE id = %s"
    with rejected("23514", "trg_deployments_rolled_back_has_rollback"):
        delivery.execute(move, (bad,))
    failed = make.deployment(service, env, "1.0.0", rollback_of_id=bad)
    with rejected("23514", "trg_deployments_rolled_back_has_rollback"):
        delivery.execute(move, (bad,))
    make.set_status(failed, "in_progress")
    with rejected("23514", "trg_deployments_rolled_back_has_rollback"):
        delivery.execute(move, (bad,))
    make.set_status(failed, "failed")
    with rejected("23514", "trg_deployments_rolled_back_has_rollback"):
        delivery.execute(move, (bad,))
    assert status(conn, bad) == "succeeded"

    rollback = make.deployment(service, env, "1.0.0", rollback_of_id=bad)
    with delivery.transaction():
        delivery.execute("UPDATE platform.deployments SET status = 'in_progress' WHERE id = %s", (rollback,))
        delivery.execute("UPDATE platform.deployments SET status = 'succeeded' WHERE id = %s", (rollback,))
        assert status(delivery, bad) == "rolled_back"  # within the rollback's own transaction
    delivery.execute(move, (bad,))  # what a v0.1 service then did: still accepted, changes nothing
    assert status(conn, bad) == "rolled_back"
    history = conn.execute(
        "SELECT from_status, to_status FROM platform.deployment_status_history WHERE deployment_id = %s ORDER BY id",
        (bad,),
    ).fetchall()
    assert [tuple(h) for h in history][-1] == ("succeeded", "rolled_back")
    assert [tuple(h) for h in history].count(("succeeded", "rolled_back")) == 1


def test_a_rollback_of_a_failed_deployment_marks_it(
    conn: psycopg.Connection[Any], make: Make, delivery: psycopg.Connection[Any]
) -> None:
    """failed -> rolled_back too; a rollback of a deployment already rolled back (or cancelled) leaves it as it
    is, so the rollback's own success is never refused by trg_deployments_status_transition."""
    service, env = make.service(), make.environment()
    rolled_out(make, service, env, "1.0.0")
    bad = rolled_out(make, service, env, "1.1.0", "failed")
    first = make.deployment(service, env, "1.0.0", rollback_of_id=bad)
    for s in ("in_progress", "succeeded"):
        delivery.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (s, first))
    assert status(conn, bad) == "rolled_back"
    again = make.deployment(service, env, "1.0.0", rollback_of_id=bad)
    for s in ("in_progress", "succeeded"):
        delivery.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (s, again))
    cancelled = make.deployment(service, env, "1.1.0")
    make.set_status(cancelled, "cancelled")
    third = make.deployment(service, env, "1.0.0", rollback_of_id=cancelled)
    for s in ("in_progress", "succeeded"):
        delivery.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (s, third))
    assert (status(conn, bad), status(conn, again), status(conn, cancelled)) == (
        "rolled_back",
        "succeeded",
        "cancelled",
    )


def test_the_owner_may_still_mark_rolled_back(conn: psycopg.Connection[Any], make: Make) -> None:
    """The table owner (backfills, repairs, restores) is not held to trg_deployments_rolled_back_has_rollback,
    as with trg_deployments_created_at."""
    service, env = make.service(), make.environment()
    d = rolled_out(make, service, env, "1.0.0")
    make.set_status(d, "rolled_back")
    assert status(conn, d) == "rolled_back"


def test_start_rollback(conn: psycopg.Connection[Any], make: Make, delivery: psycopg.Connection[Any]) -> None:
    """platform.start_rollback(deployment, version, deployed_by) makes the pending rollback deployment: of the
    newest earlier succeeded version in that service and environment, or of the version named; it refuses an
    unfinished or cancelled deployment (55000), one with nothing earlier to go back to and an unknown one (P0002)."""
    service, env = make.service(), make.environment()
    user = make.holder("deployment:create", service_id=service)  # a named deployer may deploy (revision 0042)
    rolled_out(make, service, env, "1.0.0")
    rolled_out(make, service, env, "1.1.0", "failed")
    rolled_out(make, service, env, "1.2.0")
    bad = rolled_out(make, service, env, "1.3.0")
    row = delivery.execute("SELECT platform.start_rollback(%s, p_deployed_by => %s)", (bad, user)).fetchone()
    assert row is not None
    rollback = row[0]
    got = conn.execute(
        "SELECT status, version, rollback_of_id, deployed_by, service_id, environment_id"
        " FROM platform.deployments WHERE id = %s",
        (rollback,),
    ).fetchone()
    assert got == ("pending", "1.2.0", bad, user, service, env)
    make.set_status(rollback, "cancelled")

    row = delivery.execute("SELECT platform.start_rollback(%s, '1.0.0')", (bad,)).fetchone()
    assert row is not None
    assert conn.execute(
        "SELECT version, deployed_by FROM platform.deployments WHERE id = %s", (row[0],)
    ).fetchone() == (
        "1.0.0",
        None,
    )
    make.set_status(row[0], "cancelled")

    first = conn.execute(
        "SELECT id FROM platform.deployments WHERE service_id = %s AND version = '1.0.0'", (service,)
    ).fetchone()
    assert first is not None
    pending = make.deployment(service, env, "1.2.0")
    for target, sqlstate in ((pending, "55000"), (first[0], "P0002"), (uuid.uuid4(), "P0002")):
        with pytest.raises(psycopg.Error) as info:
            delivery.execute("SELECT platform.start_rollback(%s)", (target,))
        assert info.value.sqlstate == sqlstate, info.value
    make.set_status(pending, "cancelled")
    with pytest.raises(psycopg.Error) as info:
        delivery.execute("SELECT platform.start_rollback(%s)", (pending,))
    assert info.value.sqlstate == "55000"


@pytest.mark.parametrize("role", ["configuration", "readonly", "catalog"])
def test_only_delivery_may_start_a_rollback(db: URL, make: Make, role: str, engines: Engines) -> None:
    """EXECUTE on platform.start_rollback is the delivery service's alone (revoked from PUBLIC)."""
    service, env = make.service(), make.environment()
    d = rolled_out(make, service, env, "1.0.0")
    with engines(role).connect() as c, pytest.raises(DBAPIError) as info:
        c.execute(text("SELECT platform.start_rollback(:d)"), {"d": d})
    assert getattr(info.value.orig, "sqlstate", None) == "42501"


def test_start_rollback_from_python_and_the_orm_sees_the_outcome(make: Make, engines: Engines) -> None:
    """platformdb.rollback.start_rollback(session, ...) returns the new deployment's id; moving it to succeeded
    through the ORM marks the undone deployment rolled_back, which the session sees after a refresh."""
    from platformdb.rollback import start_rollback

    service, env = make.service(), make.environment()
    rolled_out(make, service, env, "1.0.0")
    bad = rolled_out(make, service, env, "1.1.0")
    with Session(engines("delivery")) as session, session.begin(), no_sa_warnings():
        undone = session.get_one(Deployment, bad)
        rollback_id = start_rollback(session, bad)
        rollback = session.get_one(Deployment, rollback_id)
        assert (rollback.version, rollback.rollback_of_id, rollback.status) == ("1.0.0", bad, "pending")
        rollback.status = "in_progress"
        session.flush()
        rollback.status = "succeeded"
        session.flush()
        assert rollback.deployed_at is not None
        session.refresh(undone)
        assert undone.status == "rolled_back"


# --- set_actor ------------------------------------------------------------------------------------------
def test_set_actor_refuses_an_autocommit_psycopg_connection(db: URL) -> None:
    """Transaction-local settings on an autocommit connection outside a transaction vanish with the statement:
    set_actor raises NoTransactionError (a UserError) instead of doing nothing. Inside conn.transaction(), or with
    local=False, it works. Failed on 387045d: no error, and the next write was audited as db:<role>."""
    actor = uuid.uuid4()
    with psycopg.connect(libpq_dsn(db), autocommit=True) as c:
        for target in (c, c.cursor()):
            with pytest.raises(NoTransactionError, match="autocommit"):
                set_actor(target, actor)
        assert issubclass(NoTransactionError, UserError)
        with c.transaction():
            set_actor(c, actor)
            assert c.execute("SELECT current_setting('platformdb.actor_id')").fetchone() == (str(actor),)
        set_actor(c, actor, local=False)
        assert c.execute("SELECT current_setting('platformdb.actor_id')").fetchone() == (str(actor),)
    with psycopg.connect(libpq_dsn(db)) as c:  # not autocommit: the call opens the transaction
        set_actor(c, actor)
        assert c.execute("SELECT current_setting('platformdb.actor_id')").fetchone() == (str(actor),)


def test_set_actor_refuses_an_autocommit_sqlalchemy_connection(db: URL) -> None:
    """The same through SQLAlchemy: a Connection or Session on an AUTOCOMMIT engine is refused; an ordinary
    Session's transaction is not."""
    actor = uuid.uuid4()
    eng = make_engine(db)
    try:
        auto = eng.execution_options(isolation_level="AUTOCOMMIT")
        with auto.connect() as c:
            with pytest.raises(NoTransactionError):
                set_actor(c, actor)
            set_actor(c, actor, local=False)
        with Session(auto) as session, pytest.raises(NoTransactionError):
            set_actor(session, actor)
        with Session(eng) as session, session.begin():
            set_actor(session, actor)
            setting = session.execute(text("SELECT current_setting('platformdb.actor_id')")).scalar_one()
            assert setting == str(actor)
    finally:
        eng.dispose()


# --- a rollback undoes what runs (revision 0028) ----------------------------------------------------------
ROLLBACK_TARGET = "trg_deployments_rollback_target"
ROLLBACK_INSERT = (
    "INSERT INTO platform.deployments (service_id, version, environment_id, rollback_of_id)"
    " VALUES (%s, %s, %s, %s) RETURNING id"
)


def start(delivery: psycopg.Connection[Any], deployment: uuid.UUID, version: str | None = None) -> uuid.UUID:
    row = delivery.execute("SELECT platform.start_rollback(%s, %s)", (deployment, version)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def insert_rollback(
    delivery: psycopg.Connection[Any], service: uuid.UUID, env: uuid.UUID, version: str, of: uuid.UUID
) -> uuid.UUID:
    row = delivery.execute(ROLLBACK_INSERT, (service, version, env, of)).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def succeed(delivery: psycopg.Connection[Any], deployment: uuid.UUID) -> None:
    for s in ("in_progress", "succeeded"):
        delivery.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (s, deployment))


def test_a_rollback_must_undo_what_runs(
    conn: psycopg.Connection[Any], make: Make, delivery: psycopg.Connection[Any]
) -> None:
    """Security review, revision 0028: a rollback (rollback_of_id set, through start_rollback or a plain INSERT
    as v0.2 services make them) undoes the latest finished deployment of its service and environment, to a
    different version that succeeded there (trg_deployments_rollback_target, 23514), through the delivery login.
    Refused: the same version again; an older deployment than the one in force, "rolled back" forward; a version
    that never succeeded there; a rollback while a rollout is under way (a plain INSERT: start_rollback says
    55000 first). The valid rollback works on both paths and marks what it undid. Failed on fbacbba: each attack
    was accepted and ended with its target rolled_back."""
    service, env = make.service(), make.environment()
    d0 = rolled_out(make, service, env, "1.0.0")
    rolled_out(make, service, env, "1.1.0", "failed")
    d1 = rolled_out(make, service, env, "2.0.0")
    make.release(service, "2.1.0")
    for attack in (
        lambda: start(delivery, d1, "2.0.0"),  # the version that already runs
        lambda: insert_rollback(delivery, service, env, "2.0.0", d1),
        lambda: insert_rollback(delivery, service, env, "2.1.0", d0),  # not the one in force, and forward
        lambda: insert_rollback(delivery, service, env, "1.0.0", d0),
        lambda: start(delivery, d0, "1.1.0"),
        lambda: start(delivery, d1, "1.1.0"),  # a version that never succeeded there
        lambda: insert_rollback(delivery, service, env, "1.1.0", d1),
        lambda: start(delivery, d1, "2.1.0"),  # nor ever ran
    ):
        with rejected("23514", ROLLBACK_TARGET):
            attack()
    assert (status(conn, d0), status(conn, d1)) == ("succeeded", "succeeded")
    under_way = make.deployment(service, env, "2.1.0")
    with rejected("23514", ROLLBACK_TARGET):
        insert_rollback(delivery, service, env, "1.0.0", d1)
    make.set_status(under_way, "cancelled")  # a cancelled rollout changed nothing: d1 is still the one in force

    rollback = start(delivery, d1, "1.0.0")
    succeed(delivery, rollback)
    assert (status(conn, d1), status(conn, rollback)) == ("rolled_back", "succeeded")
    # v0.2's write path: a plain INSERT of the rollback, of a failed deployment (it counts as finished)
    d2 = rolled_out(make, service, env, "2.1.0", "failed")
    with rejected("23514", ROLLBACK_TARGET):
        insert_rollback(delivery, service, env, "1.0.0", rollback)  # d2 came after it
    with rejected("23514", ROLLBACK_TARGET):
        insert_rollback(delivery, service, env, "2.0.0", d2)  # 2.0.0 was rolled back: not a good version
    back = insert_rollback(delivery, service, env, "1.0.0", d2)
    succeed(delivery, back)
    assert status(conn, d2) == "rolled_back"


def test_the_owner_may_still_insert_any_rollback(conn: psycopg.Connection[Any], make: Make) -> None:
    """The table owner (backfills, the seed's history) is not held to trg_deployments_rollback_target, as with
    trg_deployments_rolled_back_has_rollback."""
    service, env = make.service(), make.environment()
    d = rolled_out(make, service, env, "1.0.0")
    make.deployment(service, env, "1.0.0", rollback_of_id=d)


def test_start_rollback_while_a_rollout_is_under_way(
    make: Make, delivery: psycopg.Connection[Any], engines: Engines
) -> None:
    """Security review, revision 0028: start_rollback fails at once (55000) while the service has a pending or
    in_progress deployment in the environment, instead of waiting, with the deployment locked, on that
    rollout's transaction through uq_deployments_active_service_id_environment_id (which deadlocked against
    the rollout's success marking the same deployment). Failed on fbacbba: 23505 with the rollout committed,
    55P03 (lock_timeout) with its move uncommitted in another transaction."""
    service, env = make.service(), make.environment()
    rolled_out(make, service, env, "1.0.0")
    bad = rolled_out(make, service, env, "1.1.0")
    rollback = make.deployment(service, env, "1.0.0", rollback_of_id=bad)
    delivery.execute("SET lock_timeout = '5s'")
    with rejected("55000", None):
        start(delivery, bad)
    with engines("delivery").connect() as other:  # the rollout moves on in a transaction still open
        other.execute(text("UPDATE platform.deployments SET status = 'in_progress' WHERE id = :r"), {"r": rollback})
        with pytest.raises(psycopg.Error) as info:
            start(delivery, bad, "1.0.0")
        assert info.value.sqlstate == "55000", info.value
        assert "under way" in (info.value.diag.message_primary or "")
        other.execute(text("UPDATE platform.deployments SET status = 'succeeded' WHERE id = :r"), {"r": rollback})
        other.commit()
    assert status(delivery, bad) == "rolled_back"


def test_rollback_functions_pin_their_search_path(conn: psycopg.Connection[Any]) -> None:
    """Every function of revisions 0024 and 0028 runs with search_path pg_catalog, pg_temp, whatever the
    caller's. Failed on fbacbba for deployment_rolled_back_guard and mark_rolled_back."""
    names = sorted(["deployment_rolled_back_guard", "mark_rolled_back", "start_rollback", "deployment_rollback_guard"])
    rows = conn.execute(
        "SELECT p.proname, p.proconfig FROM pg_catalog.pg_proc p"
        " WHERE p.pronamespace = 'platform'::regnamespace AND p.proname = ANY(%s) ORDER BY 1",
        (names,),
    ).fetchall()
    assert [tuple(r) for r in rows] == [(name, ["search_path=pg_catalog, pg_temp"]) for name in names]


def test_freezes_and_overrides_through_the_orm(make: Make, engines: Engines) -> None:
    """The delivery service's login, through its models: a freeze (a tstzrange) refuses the start by
    trg_deployments_not_frozen, and an override a second person approved lets it go."""
    service, env = make.service(), make.environment()
    make.release(service, "1.0.0")
    approver = make.permit("freeze:override", environment_id=env)
    requester = make.user()
    now = dt.datetime.now(dt.UTC)
    with Session(engines("delivery"), expire_on_commit=False) as session, no_sa_warnings():
        with session.begin():
            freeze = FreezePeriod(environment_id=env, during=Range(now - dt.timedelta(minutes=1),
                                  now + dt.timedelta(hours=1)), reason="Release train")  # fmt: skip
            d = Deployment(service_id=service, version="1.0.0", environment_id=env)
            session.add_all([freeze, d])
        assert freeze.during.lower is not None
        assert freeze.during.upper is not None
        assert (freeze.during.lower, freeze.during.upper) == (
            now - dt.timedelta(minutes=1),
            now + dt.timedelta(hours=1),
        )
        assert (freeze.freezes_rollbacks, freeze.schedule_id) == (False, None)
        with orm_rejected("23514", "trg_deployments_not_frozen"), session.begin():
            d.status = "in_progress"
            session.flush()
        with session.begin():
            session.add(FreezeOverride(freeze_period_id=freeze.id, deployment_id=d.id, requested_by=requester,
                                       approved_by=approver, reason="Fix for the outage"))  # fmt: skip
        with session.begin():
            d.status = "in_progress"
            session.flush()
        assert d.started_at is not None


# --- four-eyes through the ORM (revision 0042) ----------------------------------------------------------
def test_approvals_through_the_orm_as_the_delivery_service(make: Make, engines: Engines) -> None:
    """The delivery service's ORM path: a deployment to a protected environment captures the rule, its start
    is refused (IntegrityError naming trg_deployments_approved) until an approval relayed as a
    DeploymentApproval lands; the relationships load what they name."""
    from platformdb.models import ApprovalRule, DeploymentApproval, DeploymentApprovalRequirement

    service, env = make.service(), make.environment(tier="production")
    make.release(service, "1.0.0")
    rule_id = make.approval_rule(env)
    scope = {"service_id": service, "environment_id": env}
    deployer, approver = make.holder("deployment:create", **scope), make.holder("deployment:approve", **scope)
    with Session(engines("delivery")) as session, session.begin(), no_sa_warnings():
        deployment = Deployment(service_id=service, version="1.0.0", environment_id=env, deployed_by=deployer)
        session.add(deployment)
        session.flush()
        captured = session.scalars(
            select(DeploymentApprovalRequirement)
            .where(DeploymentApprovalRequirement.deployment_id == deployment.id)
            .options(selectinload(DeploymentApprovalRequirement.approval_rule).selectinload(ApprovalRule.environment))
        ).one()
        assert (captured.approval_rule.id, captured.approval_rule.environment.id) == (rule_id, env)
        with orm_rejected("23514", "trg_deployments_approved"), session.begin_nested():
            deployment.status = "in_progress"
            session.flush()
        session.refresh(deployment)
        session.add(DeploymentApproval(deployment_id=deployment.id, approver_id=approver, approval_rule_id=rule_id,
                                       decision="approved"))  # fmt: skip
        session.flush()
        deployment.status = "in_progress"
        session.flush()
        assert deployment.started_at is not None


def test_the_readme_v1_deployment_flow_is_unchanged_as_the_delivery_login(make: Make, engines: Engines) -> None:
    """The README's v1 flow, as a login of platform_delivery: set_actor, add a Deployment that names no deployer
    to an environment no approval rule protects (a v1 one: is_production only), run it to success."""
    service, prod = make.service(), make.environment(is_production=True)
    make.release(service, "1.4.0")
    make.approval_rule(make.environment())  # another environment's rule protects only that one
    with Session(engines("delivery")) as session, session.begin(), no_sa_warnings():
        set_actor(session, None, actor_name="deploy-bot", request_id="v1-flow")
        deployment = Deployment(service_id=service, version="1.4.0", environment_id=prod)
        session.add(deployment)
        session.flush()
        for status in ("in_progress", "succeeded"):
            deployment.status = status
            session.flush()
        assert deployment.deployed_at is not None
