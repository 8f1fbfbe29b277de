"""Alembic revisions: one linear, documented, frozen history that upgrades, downgrades and round-trips.

Every revision is exercised on an empty database of its own (each full upgrade takes a fraction of a
second), on both test servers. Schema comparisons use :func:`platformdb.review.snapshot.snapshot`, which reads
the catalogs, so functions, triggers, partitions and comments count as much as tables and columns.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.db import libpq_dsn
from platformdb.models import metadata
from platformdb.review.snapshot import snapshot
from tests.factories import COMMIT_SHA, DIGEST, PASSWORD_HASH
from tests.pg import Server

pytestmark = pytest.mark.migration

VERSIONS_DIR = Path(migrate.__file__).parent / "migrations" / "versions"
REVISION_FILENAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})_(?P<rev>\d{4})_[a-z0-9_]+\.py$")

REVISIONS: list[tuple[str, str]] = [(rev, down) for rev, down, _ in migrate.history()]
"""(revision, down revision) from base to head; the first one's down revision is 'base'."""

CREATED_TABLES: dict[str, set[str]] = {
    "0001": set(),
    "0002": {"audit_logs"},
    "0003": {"users", "teams", "team_memberships", "roles", "permissions", "role_permissions"},
    "0004": {"environments", "services", "service_dependencies"},
    "0005": {"role_grants"},
    "0006": {"releases", "deployments", "deployment_status_transitions", "deployment_status_history"},
    "0007": {"configurations", "configuration_versions", "deployment_configurations"},
    "0008": {"metrics", "metric_series", "metric_samples"},
    "0009": set(),
    "0010": {"audit_chain"},
    "0011": set(),
    "0012": set(),
    "0013": set(),
    "0014": set(),
    "0015": {"metric_samples_quarantine"},
    "0016": set(),
    "0017": set(),
    "0018": set(),
    "0019": set(),
    "0020": set(),
    "0021": set(),
    "0022": set(),
    "0023": set(),
    "0024": set(),
    "0025": {"partition_retention"},
    "0027": set(),
    "0028": set(),
    "0030": {"api_tokens", "api_token_scopes"},
    "0031": set(),
    "0032": set(),
    "0040": set(),
    "0041": set(),
    "0042": {"approval_rules", "deployment_approval_requirements", "deployment_approvals"},
    "0050": {"freeze_schedules", "freeze_periods", "freeze_overrides", "environment_promotions", "promotion_overrides"},
    "0051": set(),
    "0060": set(),
    "0065": set(),
    "0066": set(),
    "0067": set(),
    "0068": set(),
}
"""The tables each revision creates (and its downgrade drops); checked against the revisions and models."""

REBUILT_TABLES: dict[str, set[str]] = {"0012": {"audit_chain"}}
"""Tables a revision rebuilds with new rows (and its downgrade rebuilds back): audit_chain's one head became 16."""


REFERENCE_ROWS: dict[str, set[str]] = {"0030": {"permissions"}, "0050": {"permissions"}}
"""Tables a revision adds reference rows to (and its downgrade removes them from): the well-known permissions."""


def owned_tables(rev: str) -> set[str]:
    """The tables whose rows revision ``rev`` (up or down) may change."""
    return CREATED_TABLES[rev] | REBUILT_TABLES.get(rev, set()) | REFERENCE_ROWS.get(rev, set())


def schema_snapshot(url: URL, *, dated_partitions: bool = True) -> str:
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        return snapshot(conn, dated_partitions=dated_partitions)


def table_names(url: URL) -> set[str]:
    """The platform tables of the database at ``url`` (partitions not counted)."""
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        rows = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'platform' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
        ).fetchall()
    return {str(name) for (name,) in rows}


# --- the revision files ----------------------------------------------------------------------------------


def test_migrations_have_one_head() -> None:
    assert len(migrate.script_directory().get_heads()) == 1
    assert REVISIONS[0][1] == "base"
    assert REVISIONS[-1][0] == migrate.head()


def test_created_tables_table_lists_every_revision_and_model() -> None:
    """Keeps CREATED_TABLES (used below) honest: every revision listed, every model table created once."""
    assert list(CREATED_TABLES) == [rev for rev, _ in REVISIONS]
    created = [table for tables in CREATED_TABLES.values() for table in tables]
    assert sorted(created) == sorted({t.name for t in metadata.sorted_tables})


def test_revision_files_are_dated_sortable_and_match_their_revision() -> None:
    files = sorted(p.name for p in VERSIONS_DIR.glob("*.py") if p.name != "__init__.py")
    bad = [name for name in files if not REVISION_FILENAME.match(name)]
    assert bad == [], "revision files must be named YYYY_MM_DD_NNNN_slug.py"
    in_file_order = [m["rev"] for name in files if (m := REVISION_FILENAME.match(name))]
    assert in_file_order == [rev for rev, _ in REVISIONS], "file names must sort in revision order"
    for script in migrate.script_directory().walk_revisions():
        assert script.path is not None
        match = REVISION_FILENAME.match(Path(script.path).name)
        assert match is not None
        assert match["rev"] == script.revision, f"{script.path} holds revision {script.revision}"


@pytest.mark.parametrize("path", sorted(VERSIONS_DIR.glob("[0-9]*.py")), ids=lambda p: p.name[:15])
def test_revision_docstring_says_why_and_what_it_locks(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Why:" in doc, f"{path.name}: the docstring must explain Why: the change is made"
    assert "Locks:" in doc, f"{path.name}: the docstring must say which Locks: the revision takes"


@pytest.mark.parametrize("path", sorted(VERSIONS_DIR.glob("[0-9]*.py")), ids=lambda p: p.name[:15])
def test_revision_does_not_import_platformdb(path: Path) -> None:
    """Revisions are frozen history: importing today's models or SQL would silently rewrite the past."""
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert [m for m in imported if m.split(".")[0] == "platformdb"] == []
    source = path.read_text()
    assert "import_module" not in source
    assert "__import__" not in source


# --- upgrade and downgrade -------------------------------------------------------------------------------


def test_upgrade_base_to_head_on_empty_database(empty_db: URL) -> None:
    assert migrate.current(empty_db) is None
    migrate.upgrade(empty_db, "head")
    assert migrate.current(empty_db) == migrate.head()
    assert table_names(empty_db) == {t.name for t in metadata.sorted_tables}


def test_each_revision_round_trips(empty_db: URL) -> None:
    """Upgrade to r, downgrade one step, upgrade again: the same schema, and the step down is exact."""
    for rev, down in REVISIONS:
        before = schema_snapshot(empty_db)
        migrate.upgrade(empty_db, rev)
        first = schema_snapshot(empty_db)
        migrate.downgrade(empty_db, down)
        assert migrate.current(empty_db) == (None if down == "base" else down)
        assert schema_snapshot(empty_db) == before, f"downgrade of {rev} does not restore the schema of {down}"
        migrate.upgrade(empty_db, rev)
        assert migrate.current(empty_db) == rev
        assert schema_snapshot(empty_db) == first, f"{rev} builds a different schema the second time"
        assert table_names(empty_db) >= CREATED_TABLES[rev]


# Everything of a database outside the system schemas. Empty on a fresh database; the alembic_version
# table in public (with its key index and row types) is Alembic's and may stay behind, empty.
LEFTOVERS = """
SELECT 'schema ' || nspname FROM pg_namespace
 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'public')
   AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
UNION ALL
SELECT 'relation ' || c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND NOT (n.nspname = 'public' AND c.relname IN ('alembic_version', 'alembic_version_pkc'))
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'type ' || t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND NOT (n.nspname = 'public' AND t.typname IN ('alembic_version', '_alembic_version'))
UNION ALL
SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'event trigger ' || evtname FROM pg_event_trigger
UNION ALL
SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
ORDER BY 1
"""


def leftovers(url: URL) -> list[str]:
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        return [str(what) for (what,) in conn.execute(LEFTOVERS)]


def test_downgrade_to_base_leaves_nothing_behind(empty_db: URL) -> None:
    assert leftovers(empty_db) == []
    migrate.upgrade(empty_db, "head")
    assert "schema platform" in leftovers(empty_db)  # the query does see what the migrations create
    migrate.downgrade(empty_db, "base")
    assert migrate.current(empty_db) is None
    assert leftovers(empty_db) == []
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.alembic_version").fetchone() == (0,)


# --- migrations with data in every table -----------------------------------------------------------------

SEED = [
    f"""INSERT INTO platform.users (id, email, display_name, password_hash) VALUES
         ('00000000-0000-7000-8000-000000000001', 'ann@example.com', 'Ann', '{PASSWORD_HASH}')""",
    """INSERT INTO platform.teams (id, name, display_name) VALUES
         ('00000000-0000-7000-8000-000000000002', 'payments', 'Payments')""",
    """INSERT INTO platform.team_memberships (team_id, user_id, role) VALUES
         ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001', 'maintainer')""",
    """INSERT INTO platform.roles (id, name) VALUES ('00000000-0000-7000-8000-000000000003', 'service-owner')""",
    """INSERT INTO platform.permissions (id, name) VALUES
         ('00000000-0000-7000-8000-000000000004', 'deployment:create')""",
    """INSERT INTO platform.role_permissions (role_id, permission_id) VALUES
         ('00000000-0000-7000-8000-000000000003', '00000000-0000-7000-8000-000000000004')""",
    """INSERT INTO platform.environments (id, name, is_production) VALUES
         ('00000000-0000-7000-8000-000000000005', 'production', true)""",
    """INSERT INTO platform.services (id, name, owner_team_id) VALUES
         ('00000000-0000-7000-8000-000000000006', 'checkout', '00000000-0000-7000-8000-000000000002'),
         ('00000000-0000-7000-8000-000000000007', 'ledger', '00000000-0000-7000-8000-000000000002')""",
    """INSERT INTO platform.service_dependencies (service_id, depends_on_service_id) VALUES
         ('00000000-0000-7000-8000-000000000006', '00000000-0000-7000-8000-000000000007')""",
    """INSERT INTO platform.role_grants (user_id, role_id, service_id) VALUES
         ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000003',
          '00000000-0000-7000-8000-000000000006')""",
    f"""INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest, created_by) VALUES
         ('00000000-0000-7000-8000-000000000006', '1.0.0', '{COMMIT_SHA}', '{DIGEST}',
          '00000000-0000-7000-8000-000000000001')""",
    """INSERT INTO platform.configurations (id, service_id, key) VALUES
         ('00000000-0000-7000-8000-000000000008', '00000000-0000-7000-8000-000000000006', 'HTTP_TIMEOUT')""",
    """INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES
         ('00000000-0000-7000-8000-000000000008', 'plain', '30')""",
    """INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES
         ('00000000-0000-7000-8000-000000000008', 'plain', '45')""",
    # The deployment captures the configuration in force and logs each status it enters.
    """INSERT INTO platform.deployments (id, service_id, version, environment_id, deployed_by) VALUES
         ('00000000-0000-7000-8000-000000000009', '00000000-0000-7000-8000-000000000006', '1.0.0',
          '00000000-0000-7000-8000-000000000005', '00000000-0000-7000-8000-000000000001')""",
    "UPDATE platform.deployments SET status = 'in_progress' WHERE id = '00000000-0000-7000-8000-000000000009'",
    "UPDATE platform.deployments SET status = 'succeeded' WHERE id = '00000000-0000-7000-8000-000000000009'",
    # Production protected by a four-eyes rule: a second rollout captures it and has one approval so far.
    f"""INSERT INTO platform.users (id, email, display_name, password_hash) VALUES
         ('00000000-0000-7000-8000-00000000000b', 'ben@example.com', 'Ben', '{PASSWORD_HASH}')""",
    """INSERT INTO platform.permissions (id, name) VALUES
         ('00000000-0000-7000-8000-00000000000a', 'deployment:approve')""",
    """INSERT INTO platform.roles (id, name) VALUES ('00000000-0000-7000-8000-00000000000c', 'approver')""",
    """INSERT INTO platform.role_permissions (role_id, permission_id) VALUES
         ('00000000-0000-7000-8000-00000000000c', '00000000-0000-7000-8000-00000000000a')""",
    """INSERT INTO platform.role_grants (user_id, role_id) VALUES
         ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-00000000000c')""",
    """INSERT INTO platform.approval_rules (id, environment_id, approver_permission_id, required_approvals) VALUES
         ('00000000-0000-7000-8000-00000000000d', '00000000-0000-7000-8000-000000000005',
          '00000000-0000-7000-8000-00000000000a', 2)""",
    """INSERT INTO platform.deployments (id, service_id, version, environment_id, deployed_by) VALUES
         ('00000000-0000-7000-8000-00000000000e', '00000000-0000-7000-8000-000000000006', '1.0.0',
          '00000000-0000-7000-8000-000000000005', '00000000-0000-7000-8000-000000000001')""",
    """INSERT INTO platform.deployment_approvals (deployment_id, approver_id, approval_rule_id, decision) VALUES
         ('00000000-0000-7000-8000-00000000000e', '00000000-0000-7000-8000-00000000000b',
          '00000000-0000-7000-8000-00000000000d', 'approved')""",
    "INSERT INTO platform.metrics (name, unit, kind) VALUES ('http_requests_total', 'requests', 'counter')",
    """INSERT INTO platform.metric_series (metric_id, service_id, environment_id, labels)
       SELECT id, '00000000-0000-7000-8000-000000000006', '00000000-0000-7000-8000-000000000005',
              '{"route": "/pay"}' FROM platform.metrics""",
    # Samples in today's daily partitions and one a year back, in the DEFAULT partition.
    """INSERT INTO platform.metric_samples (series_id, sampled_at, value)
       SELECT s.id, now() - i * interval '1 minute', i FROM platform.metric_series s, generate_series(0, 2) i
       UNION ALL SELECT s.id, now() - interval '1 year', 0 FROM platform.metric_series s""",
    # Deploy freezes and the promotion path (0050): a second person who may override, a freeze to come, a
    # schedule (its creator named: none, as no one holds freeze:manage), an override, an edge staging ->
    # production, a break-glass override.
    f"""INSERT INTO platform.users (id, email, display_name, password_hash) VALUES
         ('00000000-0000-7000-8000-000000000021', 'bea@example.com', 'Bea', '{PASSWORD_HASH}')""",
    """INSERT INTO platform.roles (id, name) VALUES ('00000000-0000-7000-8000-000000000022', 'freeze-manager')""",
    # freeze:override and promotion:override are the schema's own rows (0050).
    """INSERT INTO platform.role_permissions (role_id, permission_id)
       SELECT '00000000-0000-7000-8000-000000000022', id FROM platform.permissions
        WHERE name IN ('freeze:override', 'promotion:override')""",
    """INSERT INTO platform.role_grants (user_id, role_id) VALUES
         ('00000000-0000-7000-8000-000000000021', '00000000-0000-7000-8000-000000000022')""",
    """INSERT INTO platform.environments (id, name) VALUES ('00000000-0000-7000-8000-000000000025', 'staging')""",
    """INSERT INTO platform.environment_promotions (from_environment_id, to_environment_id) VALUES
         ('00000000-0000-7000-8000-000000000025', '00000000-0000-7000-8000-000000000005')""",
    """INSERT INTO platform.freeze_schedules (id, environment_id, cron, time_zone, duration, reason, created_by)
       VALUES ('00000000-0000-7000-8000-000000000026', '00000000-0000-7000-8000-000000000005', '0 18 * * 5',
               'Europe/Berlin', '2 days 15 hours', 'Weekend freeze', NULL)""",
    """INSERT INTO platform.freeze_periods (id, environment_id, during, reason, schedule_id) VALUES
         ('00000000-0000-7000-8000-000000000027', '00000000-0000-7000-8000-000000000005',
          tstzrange(now() + interval '1 day', now() + interval '2 days'), 'Weekend freeze',
          '00000000-0000-7000-8000-000000000026')""",
    """INSERT INTO platform.freeze_overrides (freeze_period_id, deployment_id, requested_by, approved_by, reason)
       VALUES ('00000000-0000-7000-8000-000000000027', '00000000-0000-7000-8000-000000000009',
               '00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000021', 'Hotfix')""",
    """INSERT INTO platform.promotion_overrides (deployment_id, requested_by, approved_by, reason)
       VALUES ('00000000-0000-7000-8000-000000000009', '00000000-0000-7000-8000-000000000001',
               '00000000-0000-7000-8000-000000000021', 'Staging is down')""",
    # A sample partition maintenance set aside: far outside the window it keeps partitions for.
    """INSERT INTO platform.metric_samples_quarantine (series_id, sampled_at, value)
       SELECT s.id, now() - interval '20 years', 0 FROM platform.metric_series s""",
    # An API token of Ann's, with one scope (revision 0030).
    """INSERT INTO platform.api_tokens (id, user_id, name, selector, verifier, expires_at) VALUES
         ('00000000-0000-7000-8000-0000000000a1', '00000000-0000-7000-8000-000000000001', 'ci', 'aaaaaaaaaaaaaaaa',
          sha256('not a secret'), now() + interval '30 days')""",
    """INSERT INTO platform.api_token_scopes (token_id, permission_id) VALUES
         ('00000000-0000-7000-8000-0000000000a1', '00000000-0000-7000-8000-000000000004')""",
]


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows per platform table (a partitioned table counts the rows of all its partitions)."""
    tables = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'platform' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
    ).fetchall()
    counts = {}
    for (table,) in tables:
        row = conn.execute(f'SELECT count(*) FROM platform."{table}"').fetchone()
        assert row is not None
        counts[str(table)] = int(row[0])
    return counts


def test_migrations_run_with_data_present(db: URL, conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for statement in SEED:
            conn.execute(statement)
    counts = row_counts(conn)
    assert [t for t, n in counts.items() if n == 0] == [], "the seed must put rows in every table"

    # Step each of the last revisions down and back up; we are at `rev` at the top of each iteration.
    for rev, down in reversed(REVISIONS[REVISIONS.index(("0006", "0005")) :]):
        counts = row_counts(conn)
        untouched = {t: n for t, n in counts.items() if t not in owned_tables(rev)}

        migrate.downgrade(db, down)
        after = row_counts(conn)
        changed = REBUILT_TABLES.get(rev, set()) | REFERENCE_ROWS.get(rev, set())
        assert {t: n for t, n in after.items() if t not in changed} == untouched, (
            f"downgrade of {rev} changed rows of tables it does not own"
        )

        migrate.upgrade(db, rev)
        again = row_counts(conn)
        assert {t: n for t, n in again.items() if t not in owned_tables(rev)} == untouched, (
            f"upgrade to {rev} changed rows of tables it does not own"
        )
        assert set(again) == set(counts), f"upgrade to {rev} with data present did not recreate its tables"

        migrate.downgrade(db, down)  # on to the next revision down
    assert migrate.current(db) == "0005"


# --- offline SQL for DBAs --------------------------------------------------------------------------------

ALEMBIC_BOOKKEEPING = re.compile(
    r"^(CREATE TABLE alembic_version \(|    CONSTRAINT alembic_version_pkc PRIMARY KEY \(version_num\)"
    r"|INSERT INTO alembic_version \(version_num\) VALUES|UPDATE alembic_version SET version_num="
    r"|DELETE FROM alembic_version WHERE)"
)


@pytest.mark.parametrize(("rev", "down"), REVISIONS, ids=[rev for rev, _ in REVISIONS])
def test_offline_sql_renders_each_revision(rev: str, down: str) -> None:
    sql = migrate.offline_sql(down, rev)
    assert "CREATE" in sql or "ALTER TABLE" in sql, "a revision changes the schema"
    assert f"-- Running upgrade {'' if down == 'base' else down} -> {rev}" in sql
    for table in CREATED_TABLES[rev]:
        assert f"CREATE TABLE platform.{table} (" in sql
    if down == "base":
        assert "CREATE SCHEMA IF NOT EXISTS platform;" in sql
    version_lines = [line for line in sql.splitlines() if "alembic_version" in line]
    assert [line for line in version_lines if not ALEMBIC_BOOKKEEPING.match(line)] == []
    assert sum(line.startswith(("INSERT INTO", "UPDATE")) for line in version_lines) == 1


def test_offline_sql_renders_downgrade_head_to_base() -> None:
    sql = migrate.offline_sql("head", "base")
    for rev, down in REVISIONS:
        assert f"-- Running downgrade {rev} -> {'' if down == 'base' else down}" in sql
    for table in (t.name for t in metadata.sorted_tables):
        assert f"DROP TABLE platform.{table};" in sql
    assert "DROP SCHEMA platform;" in sql
    assert "DELETE FROM alembic_version" in sql


def psql_file(server: Server, url: URL, sql: str) -> None:
    """Run ``sql`` the way a DBA runs a script: psql, statement by statement, stopping at the first error (a
    single multi-statement string would be one implicit transaction, where CREATE INDEX CONCURRENTLY fails)."""
    result = subprocess.run(
        [str(server.cluster.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", libpq_dsn(url), "-f", "-"],
        input=sql,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_offline_sql_builds_and_removes_the_same_schema(server: Server, empty_db: URL, db: URL) -> None:
    """What a DBA would run by hand (base:head, then head:base) does what the online migrations do."""
    psql_file(server, empty_db, migrate.offline_sql("base", "head"))
    assert migrate.current(empty_db) == migrate.head()
    assert schema_snapshot(empty_db, dated_partitions=False) == schema_snapshot(db, dated_partitions=False)
    psql_file(server, empty_db, migrate.offline_sql("head", "base"))
    assert migrate.current(empty_db) is None
    assert leftovers(empty_db) == []


# --- revision 0020 under an owner that is not a superuser ------------------------------------------------


@pytest.mark.parametrize("owns_database", [True, False], ids=["database-owner", "no-database-owner"])
def test_revision_0020_privileges_step_without_a_superuser(server: Server, empty_db: URL, owns_database: bool) -> None:
    """Revision 0020's TEMPORARY and large-object step, run by a role that is no superuser: what it may revoke
    it revokes (TEMPORARY, when it owns the database); the rest stays and a NOTICE gives the statement a DBA
    runs. The migration does not fail either way."""
    module = migrate.script_directory().get_revision("0020").module
    role = f"owner_{empty_db.database}"
    database = sql.Identifier(str(empty_db.database))
    with server.admin() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        if owns_database:
            admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, sql.Identifier(role)))
    try:
        notices: list[str] = []
        with psycopg.connect(libpq_dsn(empty_db.set(username=role, password=None)), autocommit=True) as c:
            c.add_notice_handler(lambda d: notices.append(f"{d.message_primary} HINT: {d.message_hint}"))
            c.execute(module.NO_TEMP_NO_LARGE_OBJECTS)
            row = c.execute(
                "SELECT has_database_privilege('public', current_database(), 'TEMPORARY'),"
                " has_function_privilege('public', 'pg_catalog.lo_create(oid)', 'EXECUTE')"
            ).fetchone()
        assert row == (not owns_database, True)
        assert any("large-object" in n and "REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid)" in n for n in notices)
        assert any("keeps TEMPORARY" in n for n in notices) is not owns_database, notices
    finally:
        with server.admin() as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(database))
            admin.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO PUBLIC").format(database))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_revision_0025_on_a_database_in_use(db: URL, conn: psycopg.Connection[Any]) -> None:
    """Revision 0025 on a live database: a partition detached before it (left in schema platform) moves to
    platform_archive, every partition index already made gets its <parent index>_p<period> name, and a service
    login made before it (a group member relying on PUBLIC's CONNECT) keeps connecting while PUBLIC loses CONNECT."""
    migrate.downgrade(db, "0022")
    conn.execute(
        "SELECT platform.ensure_partitions('platform.metric_samples', 'day', now() - interval '3 days', now())"
    )
    old = conn.execute(
        "SELECT 'metric_samples_p' || to_char((now() - interval '3 days') AT TIME ZONE 'UTC', 'YYYY_MM_DD')"
    ).fetchone()
    assert old is not None
    conn.execute(f"ALTER TABLE platform.metric_samples DETACH PARTITION platform.{old[0]}")
    conn.execute("INSERT INTO platform.teams (name, display_name) VALUES ('in-use', 'In use')")  # audited: in use
    login = f"before_0025_{db.database}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
    conn.execute(sql.SQL("GRANT platform_delivery TO {}").format(sql.Identifier(login)))
    try:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '%%_pkey'").fetchone() != (0,)
        migrate.upgrade(db, "head")
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"platform_archive.{old[0]}",)).fetchone() == (True,)
        wrong = conn.execute(
            """SELECT ci.relname FROM pg_inherits ih JOIN pg_index x ON x.indrelid = ih.inhrelid
                 JOIN pg_class ci ON ci.oid = x.indexrelid JOIN pg_inherits ii ON ii.inhrelid = ci.oid
                 JOIN pg_class pi ON pi.oid = ii.inhparent
                WHERE ih.inhparent IN ('platform.metric_samples'::regclass, 'platform.audit_logs'::regclass)
                  AND ci.relname NOT LIKE pi.relname || '\\_%%'"""
        ).fetchall()
        assert wrong == []
        assert conn.execute("SELECT has_database_privilege('public', current_database(), 'CONNECT')").fetchone() == (
            False,
        )
        with psycopg.connect(libpq_dsn(db.set(username=login, password=None))) as c:
            assert c.execute("SELECT current_user").fetchone() == (login,)
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
