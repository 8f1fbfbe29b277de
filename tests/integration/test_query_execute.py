"""Query.execute runs a catalog query on a SQLAlchemy Session, a SQLAlchemy Connection or a psycopg connection,
with the same rows, whose columns are attributes and keys."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from platformdb.actor import set_actor
from platformdb.db import engine as make_engine
from platformdb.db import libpq_dsn
from platformdb.queries import CATALOG, Query, Row
from platformdb.queries.base import bind_style
from platformdb.queries.delivery import FIRST_PAGE, PAGE_SIZE
from tests.factories import Make

Run = Callable[[Query, dict[str, Any]], list[Row]]


@pytest.fixture
def engine(db: URL) -> Iterator[Engine]:
    e = make_engine(db)
    yield e
    e.dispose()


@pytest.fixture(params=["session", "connection", "psycopg"])
def run(request: pytest.FixtureRequest, engine: Engine, conn: psycopg.Connection[Any]) -> Run:
    def on_session(query: Query, params: dict[str, Any]) -> list[Row]:
        with Session(engine) as session, session.begin():
            set_actor(session, None, request_id="query-execute")
            return query.execute(session, **params)

    def on_connection(query: Query, params: dict[str, Any]) -> list[Row]:
        with engine.connect() as connection:
            return query.execute(connection, **params)

    def on_psycopg(query: Query, params: dict[str, Any]) -> list[Row]:
        return query.execute(conn, **params)

    return {"session": on_session, "connection": on_connection, "psycopg": on_psycopg}[request.param]


def test_rows_have_the_columns_as_attributes_and_keys(run: Run, make: Make) -> None:
    team = make.team()
    first, second = make.service(owner_team_id=team, name="billing"), make.service(owner_team_id=team, name="auth")
    rows = run(CATALOG["catalog.services_of_team"], {"team_id": team})
    assert [(r.id, r.name) for r in rows] == [(second, "auth"), (first, "billing")]
    assert rows[0]["name"] == rows[0][1] == "auth"
    assert rows[0]._asdict().keys() == {"id", "name", "status", "tier"}
    with pytest.raises(AttributeError):
        _ = rows[0].nope


def test_casts_and_colons_in_the_sql_are_not_parameters(run: Run, make: Make) -> None:
    """login_by_email has ``%(email)s::text``; the monitoring buckets have the literal '00:00:00+00'."""
    user = make.user(email="Ada@Example.com")
    rows = run(CATALOG["identity.login_by_email"], {"email": "ada@example.COM"})
    assert [r.id for r in rows] == [user]
    now = dt.datetime.now(dt.UTC)
    series = make.series()
    params = {"series_id": series, "since": now - dt.timedelta(hours=1), "until": now}
    assert run(CATALOG["monitoring.series_buckets_1h"], params) == []


def test_a_parameter_used_twice_and_a_row_value_cursor(run: Run, make: Make) -> None:
    service, environment = make.service(), make.environment()
    deployment = make.deployment(service, environment)
    rows = run(CATALOG["catalog.transitive_dependents"], {"service_id": service})
    assert rows == []
    params = {"service_id": service, **FIRST_PAGE, "page_size": PAGE_SIZE}
    assert [r.id for r in run(CATALOG["delivery.deployment_history"], params)] == [deployment]


def test_the_same_rows_on_every_runner(engine: Engine, conn: psycopg.Connection[Any], make: Make) -> None:
    user, role, permission = make.user(), make.role(), make.permission()
    conn.execute("INSERT INTO platform.role_permissions (role_id, permission_id) VALUES (%s, %s)", (role, permission))
    make.grant(user, role)
    name = conn.execute("SELECT name FROM platform.permissions WHERE id = %s", (permission,)).fetchone()
    assert name is not None
    params = {"user_id": user, "permission": name[0], "service_id": uuid.uuid4(), "environment_id": uuid.uuid4()}
    query = CATALOG["identity.may_user_do"]
    with Session(engine) as session:
        via_session = query.execute(session, **params)
    with engine.connect() as connection:
        via_connection = query.execute(connection, **params)
    assert via_session == via_connection == query.execute(conn, **params) == [(True,)]
    assert via_session[0].allowed is True


def test_a_psycopg_connection_with_another_row_factory(db: URL, make: Make) -> None:
    team = make.team()
    service = make.service(owner_team_id=team, name="billing")
    with psycopg.connect(libpq_dsn(db), row_factory=dict_row) as dict_conn:
        rows = CATALOG["catalog.services_of_team"].execute(dict_conn, team_id=team)
    assert [(r.id, r.name) for r in rows] == [(service, "billing")]


def test_a_missing_or_unknown_parameter_is_refused_before_anything_runs(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(TypeError, match=r"missing \['team_id'\], unknown \['team'\]"):
        CATALOG["catalog.services_of_team"].execute(conn, team=uuid.uuid4())


def test_bind_style_escapes_every_other_colon() -> None:
    assert bind_style("SELECT %(a)s::text, '00:00' LIKE 'x%%'") == "SELECT :a\\:\\:text, '00\\:00' LIKE 'x%'"
