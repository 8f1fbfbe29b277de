"""The grants match the query catalog: every catalog query runs as every group role it names, on seeded data.

A role a query does not name, and that is not meant to read what it reads, is refused (42501). The read API
(SECURITY DEFINER functions the catalog calls) is executable by exactly the roles of the queries that call it,
returns secret references only to the roles that may read them, and no function in schema platform is PUBLIC's.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from platformdb.db import libpq_dsn
from platformdb.ops.roles import GROUP_ROLES
from platformdb.queries import CATALOG, Query
from platformdb.workbench.samplers import Sampler, draw
from tests.conftest import Seeded
from tests.factories import Make

CASES = [(q, role) for q in CATALOG.values() for role in q.roles]

# (query, role): a role the query does not name and that may not read what the query reads.
REFUSED = [
    ("identity.login_by_email", "platform_readonly"),  # password hashes
    ("identity.login_by_email", "platform_audit_reader"),
    ("identity.teams_of_user", "platform_delivery"),
    ("catalog.transitive_dependents", "platform_audit_reader"),
    ("delivery.deployment_timeline", "platform_configuration"),
    ("configuration.effective_configuration", "platform_catalog"),  # EXECUTE on the read API
    ("configuration.effective_configuration", "platform_metrics_writer"),
    ("configuration.configuration_at_deployment", "platform_identity"),
    ("configuration.configuration_at_deployment", "platform_audit_reader"),
    ("monitoring.series_of_service", "platform_delivery"),
    ("audit.latest_events", "platform_catalog"),
]

SECRET_READERS = {"platform_configuration", "platform_delivery"}
"""The group roles the read API returns secret references to (and the owner); every other caller gets NULL."""

PUBLIC_EXECUTE_ALLOWED: set[str] = set()
"""Functions of schema platform that PUBLIC may execute: none (trigger functions need no EXECUTE to fire)."""


@pytest.fixture(scope="module")
def seeded_db(seeded: Seeded) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq_dsn(seeded.url), autocommit=True) as conn:
        yield conn


def _params(conn: psycopg.Connection[Any], query: Query) -> dict[str, Any]:
    return draw(query, Sampler(conn, random.Random(query.name)))  # noqa: S311


def _as(conn: psycopg.Connection[Any], role: str, query: Query, params: dict[str, Any]) -> list[Any]:
    """Run ``query`` as ``role`` in a transaction that is rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        return query.execute(conn, **params)


@pytest.mark.parametrize(("query", "role"), CASES, ids=[f"{q.name}-{r}" for q, r in CASES])
def test_every_catalog_query_runs_as_every_role_it_names(
    seeded_db: psycopg.Connection[Any], query: Query, role: str
) -> None:
    params = _params(seeded_db, query)
    rows = _as(seeded_db, role, query, params)
    expected = query.execute(seeded_db, **params)  # the owner's answer, with secret references if any
    if role not in SECRET_READERS:
        expected = [row._replace(secret_ref=None) if "secret_ref" in row._fields else row for row in expected]
    assert rows == expected


@pytest.mark.parametrize(("name", "role"), REFUSED, ids=[f"{n}-{r}" for n, r in REFUSED])
def test_a_role_the_query_does_not_name_is_refused(seeded_db: psycopg.Connection[Any], name: str, role: str) -> None:
    query = CATALOG[name]
    assert role not in query.roles
    params = _params(seeded_db, query)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(seeded_db, role, query, params)


def test_every_role_named_is_a_group_role() -> None:
    named = {role for query in CATALOG.values() for role in query.roles}
    assert named <= set(GROUP_ROLES.values())


def _definer_functions(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """name -> the roles that may EXECUTE it, of every SECURITY DEFINER function in platform that is no trigger."""
    rows = conn.execute(
        """SELECT p.proname, coalesce(array_agg(r.rolname) FILTER (WHERE r.rolname IS NOT NULL), '{}')
             FROM pg_proc p
             LEFT JOIN LATERAL aclexplode(p.proacl) a ON a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
             LEFT JOIN pg_roles r ON r.oid = a.grantee
            WHERE p.pronamespace = 'platform'::regnamespace AND p.prosecdef
              AND p.prorettype <> 'trigger'::regtype
            GROUP BY p.proname"""
    ).fetchall()
    return {str(name): set(roles) for name, roles in rows}


def test_the_read_api_is_executable_by_exactly_the_roles_of_the_queries_that_call_it(
    conn: psycopg.Connection[Any],
) -> None:
    functions = _definer_functions(conn)
    for name in ("may_user_do", "effective_configuration", "configuration_at_deployment"):
        callers = [q for q in CATALOG.values() if re.search(rf"\bplatform\.{name}\(", q.sql)]
        assert callers, name
        assert functions[name] == {role for q in callers for role in q.roles}, name


def test_no_function_in_platform_is_executable_by_public(conn: psycopg.Connection[Any]) -> None:
    public = conn.execute(
        """SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'platform'::regnamespace
              AND (p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) a
                                                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))"""
    ).fetchall()
    assert {name for (name,) in public} == PUBLIC_EXECUTE_ALLOWED


SECRET_REF = "vault://kv/payments/db#password"


@pytest.fixture
def secret(conn: psycopg.Connection[Any], make: Make) -> dict[str, uuid.UUID]:
    """A service with a plain key and a secret key in force, and a deployment that recorded both."""
    service, environment = make.service(), make.environment()
    make.config_version(make.configuration(service, key="TIMEOUT"), value=30)
    make.config_version(make.configuration(service, key="DB_PASSWORD"), kind="secret", secret_ref=SECRET_REF)
    deployment = make.deployment(service, environment)
    return {"service_id": service, "environment_id": environment, "deployment_id": deployment}


@pytest.mark.parametrize("name", ["configuration.effective_configuration", "configuration.configuration_at_deployment"])
@pytest.mark.parametrize("role", ["platform_configuration", "platform_delivery", "platform_readonly", None])
def test_secret_references_only_for_the_roles_that_may_read_them(
    conn: psycopg.Connection[Any], secret: dict[str, uuid.UUID], name: str, role: str | None
) -> None:
    query = CATALOG[name]
    params = {k: v for k, v in secret.items() if k in query.param_names}
    rows = _as(conn, role, query, params) if role else query.execute(conn, **params)
    refs = {row.key: row.secret_ref for row in rows}
    expected = SECRET_REF if role is None or role in SECRET_READERS else None
    assert refs == {"DB_PASSWORD": expected, "TIMEOUT": None}
    assert {row.key: row.kind for row in rows} == {"DB_PASSWORD": "secret", "TIMEOUT": "plain"}


def test_a_login_of_read_only_gets_no_secret_reference(
    conn: psycopg.Connection[Any], secret: dict[str, uuid.UUID]
) -> None:
    """Without SET ROLE the caller is the login itself (session_user), a member of platform_readonly."""
    login = f"reader_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE platform_readonly").format(sql.Identifier(login)))
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL SESSION AUTHORIZATION {}").format(sql.Identifier(login)))
            assert conn.execute("SELECT current_setting('role')").fetchone() == ("none",)
            rows = CATALOG["configuration.effective_configuration"].execute(
                conn, service_id=secret["service_id"], environment_id=secret["environment_id"]
            )
        assert {row.key: row.secret_ref for row in rows} == {"DB_PASSWORD": None, "TIMEOUT": None}
    finally:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
