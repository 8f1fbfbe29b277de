"""Catalog rules: services, environments and service dependencies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import (
    Make,
    assert_created_at_trigger,
    assert_keys_trigger,
    assert_updated_at_trigger,
    rejected,
    restrict_sqlstate,
)

OLD = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
BAD_NAMES = ["Payments", "payments_api", "-payments", "payments-", "pay--ments", "1payments", "pay ments", "a" * 64, ""]


# services ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NAMES)
def test_services_name_format(make: Make, name: str) -> None:
    with rejected("23514", "ck_services_name_format"):
        make.service(name=name)
    make.service(name="payments-api2")
    make.service(name="a" * 63)
    assert make.count("services") == 2


def test_services_name_is_unique(make: Make) -> None:
    make.service(name="payments-api")
    with rejected("23505", "uq_services_name"):
        make.service(name="payments-api")
    make.service(name="payments-worker")
    assert make.count("services") == 2


@pytest.mark.parametrize("status", ["live", "Active", "retiring", ""])
def test_services_status_allowed(make: Make, status: str) -> None:
    with rejected("23514", "ck_services_status_allowed"):
        make.service(status=status)
    for status_ok in ("incubating", "active", "deprecated", "retired"):
        make.service(status=status_ok)
    assert make.count("services") == 4


@pytest.mark.parametrize("tier", [0, 5, -1])
def test_services_tier_range(make: Make, tier: int) -> None:
    with rejected("23514", "ck_services_tier_range"):
        make.service(tier=tier)
    for tier_ok in (1, 2, 3, 4):
        make.service(tier=tier_ok)
    assert make.count("services") == 4


def test_services_description_length(make: Make) -> None:
    with rejected("23514", "ck_services_description_length"):
        make.service(description="x" * 2001)
    make.service(description="x" * 2000)
    make.service(description="")
    assert make.count("services") == 2


def test_services_defaults(conn: psycopg.Connection[Any], make: Make) -> None:
    service = make.service()
    row = conn.execute("SELECT status, tier, description FROM platform.services WHERE id = %s", (service,)).fetchone()
    assert row == ("active", 3, "")


def test_services_owner_team_cannot_be_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """Deleting a team that owns a service is refused (ON DELETE RESTRICT); the team and service stay."""
    team = make.team()
    make.service(owner_team_id=team)
    with rejected(restrict_sqlstate(conn), "fk_services_owner_team_id_teams"):
        conn.execute("DELETE FROM platform.teams WHERE id = %s", (team,))
    assert (make.count("teams"), make.count("services")) == (1, 1)
    idle_team = make.team()
    conn.execute("DELETE FROM platform.teams WHERE id = %s", (idle_team,))
    assert make.count("teams") == 1


def test_services_owner_team_must_exist(make: Make) -> None:
    with rejected("23503", "fk_services_owner_team_id_teams"):
        make.service(owner_team_id="00000000-0000-7000-8000-000000000000")
    assert make.count("services") == 0


@pytest.mark.parametrize(
    ("table", "change", "trigger"),
    [
        ("services", "description = 'Changed'", "trg_services_updated_at"),
        ("environments", "is_production = true", "trg_environments_updated_at"),
    ],
)
def test_catalog_updated_at_triggers(
    conn: psycopg.Connection[Any], make: Make, table: str, change: str, trigger: str
) -> None:
    """An UPDATE stamps updated_at with its transaction's time, whatever the writer set; created_at is refused."""
    factory = make.service if table == "services" else make.environment
    row_id = factory(created_at=OLD, updated_at=OLD)
    assert_updated_at_trigger(conn, table, "id = %s", (row_id,), change, guard=trigger)


# environments --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NAMES)
def test_environments_name_format(make: Make, name: str) -> None:
    with rejected("23514", "ck_environments_name_format"):
        make.environment(name=name)
    make.environment(name="eu-production")
    make.environment(name="a" * 63)
    assert make.count("environments") == 2


def test_environments_name_is_unique(make: Make) -> None:
    make.environment(name="staging")
    with rejected("23505", "uq_environments_name"):
        make.environment(name="staging")
    make.environment(name="production")
    assert make.count("environments") == 2


def test_environments_is_production_defaults_to_false(conn: psycopg.Connection[Any], make: Make) -> None:
    staging = make.environment()
    production = make.environment(is_production=True)
    rows = dict(conn.execute("SELECT id, is_production FROM platform.environments").fetchall())
    assert rows == {staging: False, production: True}


# service dependencies ------------------------------------------------------------------------------------
def depend(make: Make, service_id: Any, depends_on_service_id: Any) -> None:
    make.insert(
        "service_dependencies",
        returning="service_id",
        service_id=service_id,
        depends_on_service_id=depends_on_service_id,
    )


def test_service_dependencies_no_self_dependency(make: Make) -> None:
    api, db = make.service(), make.service()
    with rejected("23514", "ck_service_dependencies_no_self_dependency"):
        depend(make, api, api)
    depend(make, api, db)
    assert make.count("service_dependencies") == 1


def test_service_dependencies_are_unique(make: Make) -> None:
    api, db = make.service(), make.service()
    depend(make, api, db)
    with rejected("23505", "pk_service_dependencies"):
        depend(make, api, db)
    depend(make, db, api)
    assert make.count("service_dependencies") == 2


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("service_id", "fk_service_dependencies_service_id_services"),
        ("depends_on_service_id", "fk_service_dependencies_depends_on_service_id_services"),
    ],
)
def test_service_dependencies_services_must_exist(make: Make, column: str, constraint: str) -> None:
    values = {"service_id": make.service(), "depends_on_service_id": make.service()}
    with rejected("23503", constraint):
        depend(make, **(values | {column: uuid.uuid4()}))
    assert make.count("service_dependencies") == 0
    depend(make, **values)
    assert make.count("service_dependencies") == 1


def test_service_dependencies_cascade_when_service_is_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """Deleting a service removes its dependencies in both directions (fk_service_dependencies_service_id_services
    and fk_service_dependencies_depends_on_service_id_services are ON DELETE CASCADE); others' stay."""
    api, db, cache = make.service(), make.service(), make.service()
    depend(make, api, db)
    depend(make, db, cache)
    depend(make, api, cache)
    conn.execute("DELETE FROM platform.services WHERE id = %s", (db,))
    assert make.count("services") == 2
    rows = conn.execute("SELECT service_id, depends_on_service_id FROM platform.service_dependencies").fetchall()
    assert rows == [(api, cache)]


def test_service_dependencies_are_never_updated(conn: psycopg.Connection[Any], make: Make) -> None:
    a, b, c = make.service(), make.service(), make.service()
    make.insert("service_dependencies", "service_id", service_id=a, depends_on_service_id=b)
    with rejected("23000", "trg_service_dependencies_immutable"):
        conn.execute("UPDATE platform.service_dependencies SET depends_on_service_id = %s", (c,))
    conn.execute("DELETE FROM platform.service_dependencies WHERE service_id = %s", (a,))
    make.insert("service_dependencies", "service_id", service_id=a, depends_on_service_id=c)


# ids and creation times are the database's ------------------------------------------------------------------
def new_catalog_row(make: Make, table: str) -> dict[str, Any]:
    n = make.n()
    return {
        "environments": lambda: {"name": f"new-{n}"},
        "services": lambda: {"name": f"new-{n}", "owner_team_id": make.team()},
        "service_dependencies": lambda: {"service_id": make.service(), "depends_on_service_id": make.service()},
    }[table]()


@pytest.mark.parametrize(
    ("table", "trigger"),
    [
        ("environments", "trg_environments_created_at"),
        ("services", "trg_services_created_at"),
        ("service_dependencies", "trg_service_dependencies_created_at"),
    ],
)
def test_catalog_created_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """The catalog service cannot backdate a row: its stamps become now(); the owner's are kept."""
    assert_created_at_trigger(conn, table, "platform_catalog", new_catalog_row(make, table), trigger)


@pytest.mark.parametrize(
    ("table", "trigger"),
    [("environments", "trg_environments_keys_immutable"), ("services", "trg_services_keys_immutable")],
)
def test_catalog_keys_immutable_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """A row's id never changes, even where no foreign key holds it."""
    row_id = make.insert(table, **new_catalog_row(make, table))
    assert_keys_trigger(conn, table, "id = %s", (row_id,), "id = gen_random_uuid()", trigger)
