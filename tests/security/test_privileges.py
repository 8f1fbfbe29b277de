"""Least privilege, checked cell by cell: every group role x every table x every operation.

Granted cells succeed; every other cell fails with SQLSTATE 42501. Statements touch no rows (WHERE false,
SELECT ... LIMIT 0), so each cell checks exactly the privilege; the workflow tests below then do real work
as each service, through the triggers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from platformdb.actor import set_actor
from platformdb.ops.roles import GROUP_ROLES
from tests.factories import COMMIT_SHA, DIGEST, PASSWORD_HASH, Make, rejected
from tests.reliability.report import Record

OPS = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
S, INS, U, D = "SELECT", "INSERT", "UPDATE", "DELETE"
ALL_TABLES = (
    "users",
    "teams",
    "team_memberships",
    "roles",
    "permissions",
    "role_permissions",
    "role_grants",
    "environments",
    "services",
    "service_dependencies",
    "releases",
    "deployments",
    "deployment_status_transitions",
    "deployment_status_history",
    "freeze_schedules",
    "freeze_periods",
    "freeze_overrides",
    "environment_promotions",
    "promotion_overrides",
    "configurations",
    "configuration_versions",
    "deployment_configurations",
    "audit_logs",
    "audit_chain",
    "metrics",
    "metric_series",
    "metric_samples",
    "metric_samples_quarantine",
    "partition_retention",
    "approval_rules",
    "deployment_approval_requirements",
    "deployment_approvals",
    "api_tokens",
    "api_token_scopes",
)
SENSITIVE = {"users": "password_hash", "configuration_versions": "secret_ref", "api_tokens": "verifier"}

# The specification: what each service owns and reads. Anything not listed is denied.
GRANTED: dict[str, dict[str, set[str]]] = {
    "platform_identity": {
        "users": {S, INS, U},
        **{
            t: {S, INS, U, D}
            for t in ("teams", "team_memberships", "roles", "permissions", "role_permissions", "role_grants")
        },
        "services": {S},
        "environments": {S},
        "approval_rules": {S, INS, U, D},  # policy beside the grants: the service running rollouts cannot move it
        # Tokens: issued and listed (never the verifier: its SELECT cell names the other columns); revoked through
        # platform.revoke_api_token, never by UPDATE (so no row locks on tokens).
        "api_tokens": {S, INS},
        "api_token_scopes": {S, INS, D},
    },
    "platform_catalog": {
        **{t: {S, INS, U, D} for t in ("services", "environments", "service_dependencies")},
        "teams": {S},
    },
    "platform_delivery": {
        "releases": {S, INS},
        "deployments": {S, INS, U},
        # Deploy freezes and the promotion path (0050): overrides are append-only, edges inserted or deleted.
        "freeze_schedules": {S, INS, U, D},
        "freeze_periods": {S, INS, U, D},
        "freeze_overrides": {S, INS},
        "promotion_overrides": {S, INS},
        "environment_promotions": {S, INS, D},
        "deployment_approvals": {S, INS},  # relays each approver's decision; append-only
        **{
            t: {S}
            for t in (
                "deployment_status_transitions",
                "deployment_status_history",
                "deployment_configurations",
                "services",
                "environments",
                "approval_rules",
                "deployment_approval_requirements",
                "permissions",  # the names of the permissions its captured rules name
            )
        },
    },
    "platform_configuration": {
        "configurations": {S, INS, D},
        "configuration_versions": {S, INS},
        **{t: {S} for t in ("deployment_configurations", "services", "environments")},
    },
    "platform_audit_reader": {"audit_logs": {S}, "audit_chain": {S}},
    "platform_metrics_writer": {
        "metrics": {S, INS, U},
        "metric_series": {S, INS},
        "metric_samples": {S, INS},
        "metric_samples_quarantine": {S},
        "services": {S},
        "environments": {S},
    },
    # Read-only reads every table; of users and configuration_versions every column but the sensitive one
    # (their SELECT cell names the other columns; the sensitive columns have a test of their own).
    "platform_readonly": {t: {S} for t in ALL_TABLES},
}


def _column(conn: psycopg.Connection[Any], table: str) -> str:
    """A column an INSERT/UPDATE may name: not an always-identity column, not sensitive."""
    row = conn.execute(
        """SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
              AND attidentity <> 'a' AND attname <> ALL(%s) ORDER BY attnum LIMIT 1""",
        (f"platform.{table}", list(SENSITIVE.values())),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _statement(conn: psycopg.Connection[Any], table: str, op: str) -> sql.Composable:
    t = sql.Identifier("platform", table)
    if op == "SELECT":
        columns = sql.SQL("*")
        if table in SENSITIVE:  # readonly may read all but the sensitive column; others read them all
            columns = sql.SQL(", ").join(
                sql.Identifier(r[0])
                for r in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                    " AND NOT attisdropped AND attname <> %s ORDER BY attnum",
                    (f"platform.{table}", SENSITIVE[table]),
                )
            )
        return sql.SQL("SELECT {} FROM {} LIMIT 0").format(columns, t)
    column = sql.Identifier(_column(conn, table))
    if op == "INSERT":
        return sql.SQL("INSERT INTO {} ({}) SELECT NULL WHERE false").format(t, column)
    if op == "UPDATE":
        return sql.SQL("UPDATE {} SET {} = DEFAULT WHERE false").format(t, column)
    if op == "DELETE":
        return sql.SQL("DELETE FROM {} WHERE false").format(t)
    return sql.SQL("TRUNCATE {}").format(t)


@contextmanager
def acting_as(conn: psycopg.Connection[Any], role: str) -> Iterator[None]:
    """Run the block as ``role`` inside a transaction that is always rolled back."""
    tx = conn.transaction(force_rollback=True)
    with tx:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        yield


def test_every_role_is_a_nologin_group_role(conn: psycopg.Connection[Any]) -> None:
    rows = dict(
        conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", (list(GROUP_ROLES.values()),)
        ).fetchall()
    )
    assert rows == dict.fromkeys(GROUP_ROLES.values(), False)
    assert set(GRANTED) == set(GROUP_ROLES.values())


def test_the_matrix_covers_every_table(conn: psycopg.Connection[Any]) -> None:
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'platform'::regnamespace AND relkind IN ('r', 'p')"
            " AND NOT relispartition"
        )
    }
    assert tables == set(ALL_TABLES)


@pytest.mark.parametrize("role", sorted(GRANTED))
def test_role_privileges_match_the_specification(conn: psycopg.Connection[Any], role: str, reliability: Record) -> None:
    """Every (table, operation) cell of the role: granted cells succeed, all others fail with 42501."""
    wrong = []
    for table in ALL_TABLES:
        for op in OPS:
            granted = op in GRANTED[role].get(table, set())
            try:
                with acting_as(conn, role):
                    conn.execute(_statement(conn, table, op))
                allowed = True
            except psycopg.errors.InsufficientPrivilege:
                allowed = False
            reliability.cases += 1
            reliability.add("granted and succeeded" if allowed and granted else "refused with 42501" if not allowed
                            and not granted else "mismatches")  # fmt: skip
            if allowed != granted:
                wrong.append(f"{table} {op}: {'allowed' if allowed else 'denied'} but the spec says otherwise")
    assert wrong == []


@pytest.mark.parametrize("table", sorted(SENSITIVE))
def test_readonly_cannot_read_sensitive_columns(conn: psycopg.Connection[Any], table: str, reliability: Record) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(conn, "platform_readonly"):
        conn.execute(
            sql.SQL("SELECT {} FROM {} LIMIT 0").format(
                sql.Identifier(SENSITIVE[table]), sql.Identifier("platform", table)
            )
        )
    reliability.cases = 1
    reliability.add(f"{table}.{SENSITIVE[table]} refused with 42501")


def test_nothing_is_granted_to_public(conn: psycopg.Connection[Any]) -> None:
    public = conn.execute(
        """SELECT 'schema' FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
            WHERE n.nspname = 'platform' AND a.grantee = 0
           UNION ALL
           SELECT c.relname FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
            WHERE c.relnamespace = 'platform'::regnamespace AND a.grantee = 0
           UNION ALL
           SELECT p.proname FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.pronamespace = 'platform'::regnamespace AND a.grantee = 0"""
    ).fetchall()
    assert public == []


LARGE_OBJECT_CREATORS = (
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_import(text, oid)",
)


@pytest.mark.parametrize("role", sorted(GRANTED))
def test_no_role_writes_temporary_tables_or_large_objects(
    conn: psycopg.Connection[Any], role: str, reliability: Record
) -> None:
    """Outside the tables of the matrix a service writes nothing that lasts: PUBLIC's TEMPORARY on the database
    and its EXECUTE on the functions that create large objects are revoked (revision 0020; the migrations run
    as a superuser here), and no group gets them back."""
    row = conn.execute(
        "SELECT has_database_privilege(%s, current_database(), 'TEMPORARY'),"
        " has_database_privilege('public', current_database(), 'TEMPORARY')",
        (role,),
    ).fetchone()
    assert row == (False, False)
    executable = [
        f
        for f in LARGE_OBJECT_CREATORS
        if conn.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, f"pg_catalog.{f}")).fetchone()
        != (False,)
    ]
    assert executable == []
    for statement in ("CREATE TEMP TABLE scratch (x int)", "SELECT lo_create(0)", "SELECT lo_from_bytea(0, '')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(conn, role):
            conn.execute(statement)
    reliability.cases = 3
    reliability.add("temporary table and large objects refused with 42501", 3)


def test_no_group_role_owns_anything(conn: psycopg.Connection[Any]) -> None:
    owned = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
            WHERE c.relnamespace = 'platform'::regnamespace AND r.rolname LIKE 'platform\\_%'"""
    ).fetchall()
    assert owned == []


# --- real work under least privilege: the triggers (audit, history, numbering) run for every service -----
def _as(conn: psycopg.Connection[Any], role: str) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))


def test_identity_service_registers_a_user_and_the_audit_records_it(conn: psycopg.Connection[Any]) -> None:
    _as(conn, "platform_identity")
    with conn.transaction():
        set_actor(conn, None, actor_name="signup", request_id="req-1")
        conn.execute(
            "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, %s, %s)",
            ("new@example.com", "New", PASSWORD_HASH),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # users are deactivated, never deleted
        conn.execute("DELETE FROM platform.users")
    conn.execute("RESET ROLE")
    assert conn.execute(
        "SELECT db_role, actor_name FROM platform.audit_logs WHERE entity_type = 'users'"
    ).fetchall() == [("postgres", "signup")]


def test_delivery_service_runs_a_deployment_end_to_end(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env = make.service(), make.environment()
    cfg = make.configuration(service)
    make.config_version(cfg, 5)
    _as(conn, "platform_delivery")
    conn.execute(
        "INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest) VALUES (%s, %s, %s, %s)",
        (service, "2.0.0", COMMIT_SHA, DIGEST),
    )
    row = conn.execute(
        "INSERT INTO platform.deployments (service_id, version, environment_id) VALUES (%s, %s, %s) RETURNING id",
        (service, "2.0.0", env),
    ).fetchone()
    assert row is not None
    for status in ("in_progress", "succeeded"):
        conn.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (status, row[0]))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status)"
            " VALUES (%s, 'succeeded', 'rolled_back')",
            (row[0],),
        )
    history = conn.execute(
        "SELECT to_status FROM platform.deployment_status_history WHERE deployment_id = %s ORDER BY id", (row[0],)
    ).fetchall()
    assert [h[0] for h in history] == ["pending", "in_progress", "succeeded"]
    assert conn.execute(
        "SELECT version FROM platform.deployment_configurations WHERE deployment_id = %s", (row[0],)
    ).fetchall() == [(1,)]


def test_configuration_service_edits_a_key_and_versions_are_numbered(conn: psycopg.Connection[Any], make: Make) -> None:
    service = make.service()
    _as(conn, "platform_configuration")
    row = conn.execute(
        "INSERT INTO platform.configurations (service_id, key) VALUES (%s, 'RETRIES') RETURNING id", (service,)
    ).fetchone()
    assert row is not None
    for value in ("1", "2", "3"):
        conn.execute(
            "INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES (%s, 'plain', %s)",
            (row[0], value),
        )
    versions = conn.execute(
        "SELECT version FROM platform.configuration_versions WHERE configuration_id = %s ORDER BY 1", (row[0],)
    ).fetchall()
    assert [v[0] for v in versions] == [1, 2, 3]


def test_metrics_writer_ingests_samples(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env = make.service(), make.environment()
    _as(conn, "platform_metrics_writer")
    metric = conn.execute(
        "INSERT INTO platform.metrics (name, unit, kind) VALUES ('up', 'ratio', 'gauge') RETURNING id"
    ).fetchone()
    assert metric is not None
    series = conn.execute(
        "INSERT INTO platform.metric_series (metric_id, service_id, environment_id) VALUES (%s, %s, %s) RETURNING id",
        (metric[0], service, env),
    ).fetchone()
    assert series is not None
    with conn.cursor().copy("COPY platform.metric_samples (series_id, sampled_at, value) FROM STDIN") as copy:
        copy.write_row((series[0], "now", 1.0))
    assert conn.execute("SELECT count(*) FROM platform.metric_samples").fetchone() == (1,)


def test_audit_rows_cannot_be_written_directly_by_any_service(conn: psycopg.Connection[Any]) -> None:
    for role in GROUP_ROLES.values():
        with pytest.raises(psycopg.errors.InsufficientPrivilege), acting_as(conn, role):
            conn.execute(
                "INSERT INTO platform.audit_logs (actor_name, action, entity_type, entity_id, after)"
                " VALUES ('forger', 'insert', 'users', %s, '{}')",
                (str(uuid.uuid4()),),
            )


def test_the_owner_is_stopped_by_the_append_only_triggers(conn: psycopg.Connection[Any], make: Make) -> None:
    make.team()
    with rejected("23000", "trg_audit_logs_append_only"):
        conn.execute("UPDATE platform.audit_logs SET actor_name = 'x'")
    with rejected("23000", "trg_audit_logs_append_only"):
        conn.execute("DELETE FROM platform.audit_logs")
    with rejected("23000", "trg_audit_logs_no_truncate"):
        conn.execute("TRUNCATE platform.audit_logs")
