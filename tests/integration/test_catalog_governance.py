"""Environment tiers (is_production derived and kept for v1) and the service lifecycle's effects (revision 0040)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from tests.factories import Make, rejected


def as_role(conn: psycopg.Connection[Any], role: str) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))


def tier(conn: psycopg.Connection[Any], env: uuid.UUID) -> tuple[str, bool]:
    row = conn.execute("SELECT tier, is_production FROM platform.environments WHERE id = %s", (env,)).fetchone()
    assert row is not None
    return str(row[0]), bool(row[1])


# tiers ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, "platform_catalog"])
def test_v1_writer_sending_only_is_production_gets_a_tier(conn: psycopg.Connection[Any], role: str | None) -> None:
    if role:
        as_role(conn, role)
    prod = conn.execute(
        "INSERT INTO platform.environments (name, is_production) VALUES ('eu-prod', true) RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    dev = conn.execute("INSERT INTO platform.environments (name) VALUES ('dev') RETURNING id").fetchone()[0]  # type: ignore[index]
    assert tier(conn, prod) == ("production", True)
    assert tier(conn, dev) == ("other", False)
    # A v1 writer flips is_production: the tier follows; a v2 writer changes the tier: is_production follows.
    conn.execute("UPDATE platform.environments SET is_production = false WHERE id = %s", (prod,))
    assert tier(conn, prod) == ("other", False)
    conn.execute("UPDATE platform.environments SET tier = 'staging' WHERE id = %s", (dev,))
    assert tier(conn, dev) == ("staging", False)
    conn.execute("UPDATE platform.environments SET tier = 'production' WHERE id = %s", (dev,))
    assert tier(conn, dev) == ("production", True)
    conn.execute("UPDATE platform.environments SET is_production = false WHERE id = %s", (dev,))
    assert tier(conn, dev) == ("other", False)
    conn.execute("UPDATE platform.environments SET tier = 'staging' WHERE id = %s", (dev,))
    conn.execute("UPDATE platform.environments SET is_production = false, name = 'dev-2' WHERE id = %s", (dev,))
    assert tier(conn, dev) == ("staging", False)  # trg_environments_tier_sync keeps a tier that agrees


@pytest.mark.parametrize("role", [None, "platform_catalog"])
def test_environment_tier_rules(conn: psycopg.Connection[Any], make: Make, role: str | None) -> None:
    if role:
        as_role(conn, role)
    with rejected("23514", "ck_environments_tier_allowed"):
        make.environment(tier="prod")
    with rejected("23514", "ck_environments_is_production_tier"):
        make.environment(tier="staging", is_production=True)
    env = make.environment(tier="testing")
    assert tier(conn, env) == ("testing", False)
    with rejected("23514", "ck_environments_is_production_tier"):
        conn.execute("UPDATE platform.environments SET tier = 'staging', is_production = true WHERE id = %s", (env,))
    assert tier(conn, make.environment(tier="production")) == ("production", True)
    assert tier(conn, make.environment(tier="production", is_production=True)) == ("production", True)


# lifecycle ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["platform_delivery"])
def test_no_deployment_of_a_retired_service(conn: psycopg.Connection[Any], make: Make, role: str) -> None:
    service, env = make.service(), make.environment()
    make.release(service, "1.0.0")
    deprecated = make.service(status="deprecated")
    make.release(deprecated, "1.0.0")
    conn.execute("UPDATE platform.services SET status = 'retired' WHERE id = %s", (service,))
    if role:
        as_role(conn, role)
    with rejected("23514", "trg_deployments_service_not_retired"):
        make.insert("deployments", service_id=service, version="1.0.0", environment_id=env)
    make.insert("deployments", service_id=deprecated, version="1.0.0", environment_id=env)  # deprecated: still may


@pytest.mark.parametrize("role", ["platform_catalog"])
@pytest.mark.parametrize("status", ["deprecated", "retired"])
def test_no_new_dependency_on_a_deprecated_or_retired_service(
    conn: psycopg.Connection[Any], make: Make, role: str, status: str
) -> None:
    target, other = make.service(status=status), make.service(status="incubating")
    dependent = make.service()
    if role:
        as_role(conn, role)
    with rejected("23514", "trg_service_dependencies_target_active"):
        make.insert("service_dependencies", "service_id", service_id=dependent, depends_on_service_id=target)
    make.insert("service_dependencies", "service_id", service_id=dependent, depends_on_service_id=other)


@pytest.mark.parametrize("role", ["platform_catalog"])
def test_a_service_with_live_dependents_cannot_be_retired(conn: psycopg.Connection[Any], make: Make, role: str) -> None:
    target, dependent = make.service(), make.service()
    make.insert("service_dependencies", "service_id", service_id=dependent, depends_on_service_id=target)
    if role:
        as_role(conn, role)
    conn.execute("UPDATE platform.services SET status = 'deprecated' WHERE id = %s", (target,))  # deprecating may
    with rejected("23514", "trg_services_retire_without_dependents"):
        conn.execute("UPDATE platform.services SET status = 'retired' WHERE id = %s", (target,))
    conn.execute("UPDATE platform.services SET status = 'retired' WHERE id = %s", (dependent,))
    conn.execute("UPDATE platform.services SET status = 'retired' WHERE id = %s", (target,))  # dependents retired


def test_the_table_owner_replays_history_past_the_lifecycle_rules(conn: psycopg.Connection[Any], make: Make) -> None:
    """History replays and restores (the owner, here the test's superuser): a dependency made before its target
    was deprecated, a retirement with dependents, a deployment of a retired service all load as they were."""
    target, dependent = make.service(status="deprecated"), make.service()
    make.insert("service_dependencies", "service_id", service_id=dependent, depends_on_service_id=target)
    conn.execute("UPDATE platform.services SET status = 'retired' WHERE id = %s", (target,))
    make.deployment(target, make.environment())


Statement = tuple[str, tuple[Any, ...]]


def second_waits_for_first(db: URL, first: list[Statement], second: list[Statement]) -> psycopg.Error | None:
    """Run ``first`` on one connection, leave it open, start ``second`` on another, see it wait on a lock (by
    pg_stat_activity, not by time), commit the first, and return the error the second then ends with, if any."""
    errors: list[psycopg.Error] = []
    with psycopg.connect(libpq_dsn(db)) as a, psycopg.connect(libpq_dsn(db)) as b:
        for statement in first:
            a.execute(*statement)

        def run_second() -> None:
            try:
                for statement in second:
                    b.execute(*statement)
                b.commit()
            except psycopg.Error as e:
                errors.append(e)
                b.rollback()

        t = threading.Thread(target=run_second)
        t.start()
        with psycopg.connect(libpq_dsn(db), autocommit=True) as watcher:
            query = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock')"
            while t.is_alive() and not watcher.execute(query, (b.info.backend_pid,)).fetchone()[0]:  # type: ignore[index]
                time.sleep(0.005)
        assert t.is_alive(), "the second transaction did not wait for the first"
        a.commit()
        t.join()
    return errors[0] if errors else None


def test_a_dependency_racing_a_retirement_is_one_or_the_other(
    db: URL, conn: psycopg.Connection[Any], make: Make
) -> None:
    """Two connections: the dependency insert holds the target's share lock; the retirement waits for it and then
    sees the dependency (refused). The other order: the retirement holds the row; the insert waits and then reads
    the retired status (refused). Never both."""
    target, dependent = make.service(), make.service()
    insert: Statement = (
        "INSERT INTO platform.service_dependencies (service_id, depends_on_service_id) VALUES (%s, %s)",
        (dependent, target),
    )
    retire: Statement = ("UPDATE platform.services SET status = 'retired' WHERE id = %s", (target,))
    catalog: Statement = ("SET ROLE platform_catalog", ())
    for first, second, refused_by in (
        (insert, retire, "trg_services_retire_without_dependents"),
        (retire, insert, "trg_service_dependencies_target_active"),
    ):
        error = second_waits_for_first(db, [catalog, first], [catalog, second])
        assert error is not None
        assert (error.sqlstate, error.diag.constraint_name) == ("23514", refused_by)
        conn.execute("DELETE FROM platform.service_dependencies WHERE depends_on_service_id = %s", (target,))
        conn.execute("UPDATE platform.services SET status = 'active' WHERE id = %s", (target,))
