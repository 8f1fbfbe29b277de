"""`platformdb lint`: silent on our schema, and it bites: on the original task's DDL and on seeded defects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.review.introspect import read_schema
from platformdb.review.lint import RULES, Finding, lint, load_exceptions

ORIGINAL_DDL = Path(__file__).resolve().parents[2] / "bench" / "baseline" / "original_task.sql"


def findings(conn: psycopg.Connection[Any], schema: str = "platform") -> set[tuple[str, str]]:
    found = read_schema(conn, schema)
    assert found is not None
    bad, _ = lint(found, load_exceptions())
    if schema == "platform" and read_schema(conn, "x") is not None:  # seeded tables of an extension's schema x
        bad += lint(read_schema(conn, "x") or pytest.fail("no schema x"), [])[0]
    return {(f.rule, f.obj) for f in bad}


def test_our_schema_has_no_findings(conn: psycopg.Connection[Any]) -> None:
    found = read_schema(conn)
    assert found is not None
    bad, allowed = lint(found, load_exceptions())
    assert bad == []
    assert {f.rule for f in allowed} <= set(RULES)


def test_every_exception_is_still_needed(conn: psycopg.Connection[Any]) -> None:
    """An exception that no longer matches a finding is stale and must go."""
    found = read_schema(conn)
    assert found is not None
    _, allowed = lint(found, load_exceptions())
    assert {(e.rule, e.obj) for e in load_exceptions()} == {(f.rule, f.obj) for f in allowed}


def test_exceptions_need_a_reason() -> None:
    with pytest.raises(ValueError, match="no reason"):
        load_exceptions('[[exception]]\nrule = "L013"\nobject = "x"\nreason = " "\n')


def test_original_task_ddl_reports_its_known_defects(empty_db: URL) -> None:
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        conn.execute(ORIGINAL_DDL.read_text().encode())
        found = findings(conn, "public")
    known = {
        ("L006", "users.idx_users_email"),  # duplicates the UNIQUE constraint's index
        ("L006", "services.idx_services_name"),
        ("L008", "users.created_at"),  # TIMESTAMP without time zone
        ("L008", "deployments.deployed_at"),
        ("L015", "deployments.idx_deployments_status"),  # a status-only index serves no query
        ("L017", "users.roles"),  # roles as TEXT[]
        ("L016", "deployments.deployments_service_id_fkey"),  # no ON DELETE
        ("L018", "users.id"),  # keys without defaults
        ("L009", "services.status"),  # free-text status
        ("L011", "users"),  # updated_at nothing maintains
        ("L002", "deployments"),  # undocumented
        ("L012", "users.users_pkey"),  # no naming convention
        ("L019", "users"),  # no audit trail of any change
        ("L019", "deployments"),
    }
    assert known <= found, sorted(known - found)


# One seeded defect per rule, applied to our own schema (a new table to schema x, linted on request as an
# extension's: lint leaves tables in schema platform that no model declares alone): the rule must report it.
SEEDED = [
    (
        "L001",
        "CREATE SCHEMA x; CREATE TABLE x.x_no_pk (n int, created_at timestamptz NOT NULL DEFAULT now())",
        "x_no_pk",
    ),
    ("L002", "CREATE SCHEMA x; CREATE TABLE x.x_t (id int PRIMARY KEY)", "x_t"),
    ("L003", "ALTER TABLE platform.teams ADD COLUMN motto text", "teams.motto"),
    ("L004", "DROP INDEX platform.ix_services_owner_team_id", "services.fk_services_owner_team_id_teams"),
    (
        "L005",
        # (the trigger that freezes the key depends on the column's type: it goes first)
        "DROP TRIGGER trg_metrics_keys_immutable ON platform.metrics;"
        " ALTER TABLE platform.metrics ALTER id TYPE bigint",
        "metric_series.fk_metric_series_metric_id_metrics",
    ),
    (
        "L006",
        "CREATE INDEX ix_deployments_service_id ON platform.deployments (service_id)",
        "deployments.ix_deployments_service_id",
    ),
    (
        "L007",
        "CREATE UNIQUE INDEX uq_users_deactivated_at ON platform.users (deactivated_at)",
        "users.uq_users_deactivated_at",
    ),
    ("L008", "ALTER TABLE platform.teams ADD COLUMN founded timestamp", "teams.founded"),
    ("L009", "ALTER TABLE platform.teams ADD COLUMN code varchar(10)", "teams.code"),
    ("L010", "ALTER TABLE platform.teams ALTER created_at DROP DEFAULT", "teams.created_at"),
    ("L011", "DROP TRIGGER trg_teams_updated_at ON platform.teams", "teams"),
    (
        "L012",
        "ALTER INDEX platform.ix_services_owner_team_id RENAME TO services_owner_idx",
        "services.services_owner_idx",
    ),
    ("L014", "ALTER TABLE platform.teams ADD COLUMN umbrella_team_id uuid", "teams.umbrella_team_id"),
    ("L015", "CREATE INDEX ix_services_status ON platform.services (status)", "services.ix_services_status"),
    (
        "L016",
        "ALTER TABLE platform.services DROP CONSTRAINT fk_services_owner_team_id_teams;"
        " ALTER TABLE platform.services ADD CONSTRAINT fk_services_owner_team_id_teams FOREIGN KEY (owner_team_id)"
        " REFERENCES platform.teams (id)",
        "services.fk_services_owner_team_id_teams",
    ),
    ("L017", "ALTER TABLE platform.users ADD COLUMN roles text[]", "users.roles"),
    ("L018", "ALTER TABLE platform.teams ALTER id DROP DEFAULT", "teams.id"),
    ("L019", "DROP TRIGGER trg_teams_audit ON platform.teams", "teams"),
]


@pytest.mark.parametrize(("rule", "ddl", "obj"), SEEDED, ids=[s[0] for s in SEEDED])
def test_lint_rule_reports_a_seeded_defect(conn: psycopg.Connection[Any], rule: str, ddl: str, obj: str) -> None:
    assert findings(conn) == set()
    conn.execute(ddl.encode())
    assert (rule, obj) in findings(conn), RULES[rule]


def test_lint_rule_l013_reports_an_isolated_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA x; CREATE TABLE x.x_island (id uuid PRIMARY KEY DEFAULT platform.uuidv7())")
    assert ("L013", "x_island") in findings(conn)


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TRIGGER trg_teams_audit AFTER INSERT OR UPDATE ON platform.teams"
        " FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id')",  # misses DELETE
        "CREATE TRIGGER trg_teams_audit BEFORE INSERT OR UPDATE OR DELETE ON platform.teams"
        " FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id')",  # before the change is made
        "CREATE TRIGGER trg_teams_audit AFTER INSERT OR UPDATE OR DELETE ON platform.teams"
        " FOR EACH STATEMENT EXECUTE FUNCTION platform.audit_capture('id')",  # no row images
    ],
    ids=["no-delete", "before", "per-statement"],
)
def test_lint_rule_l019_reports_an_audit_trigger_that_misses_changes(conn: psycopg.Connection[Any], ddl: str) -> None:
    conn.execute("DROP TRIGGER trg_teams_audit ON platform.teams")
    conn.execute(ddl)
    assert findings(conn) == {("L019", "teams")}


def test_lint_rule_l019_counts_tables_unknown_to_the_models_outside_the_audit_context(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE SCHEMA x; CREATE TABLE x.x_unknown (id uuid PRIMARY KEY DEFAULT platform.uuidv7())")
    assert ("L019", "x_unknown") in findings(conn)
    conn.execute(
        "CREATE TRIGGER trg_x_unknown_audit AFTER INSERT OR UPDATE OR DELETE ON x.x_unknown"
        " FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id')"
    )
    assert ("L019", "x_unknown") not in findings(conn)


def test_lint_rule_l019_spares_the_audit_context(conn: psycopg.Connection[Any]) -> None:
    """The audit log's own tables are not audited (their rows are the audit), and need no exception."""
    assert not any(e.rule == "L019" and e.obj.startswith("audit_") for e in load_exceptions())
    assert findings(conn) == set()


def test_every_rule_has_a_test() -> None:
    tested = {rule for rule, _, _ in SEEDED} | {"L013"}
    assert tested == set(RULES)


def test_findings_print_as_one_line_with_the_rule_id() -> None:
    assert str(Finding("L004", "t.fk", "no index")) == "L004 t.fk: no index"
