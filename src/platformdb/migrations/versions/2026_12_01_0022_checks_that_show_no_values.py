"""Rejected writes on users and configuration_versions show no value: CHECKs evaluated by a trigger first

Why: A failed CHECK prints the whole row in its DETAIL ("Failing row contains ..."), to the client and the
     server log: a rejected secret write echoed the plaintext and the secret reference, a bad email echoed the
     password hash. platform.check_quietly() evaluates the table's own CHECK constraints (read from the catalog,
     so each rule stays written once, in the model) in a BEFORE trigger and raises the same SQLSTATE (23514) and
     constraint name with a DETAIL that shows nothing; the CHECKs stay as the last line. Clients that match the
     constraint name see no change.
Locks: CREATE TRIGGER takes SHARE ROW EXCLUSIVE on users and configuration_versions until commit (reads go on,
       writes wait for the commit, milliseconds). Runs before the code that uses it (nothing uses it: errors only
       lose their DETAIL).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("users", "configuration_versions")


def upgrade() -> None:
    op.execute(CHECK_QUIETLY)
    op.execute("REVOKE ALL ON FUNCTION platform.check_quietly() FROM PUBLIC")
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER trg_{table}_validated BEFORE INSERT OR UPDATE ON platform.{table}"
            " FOR EACH ROW EXECUTE FUNCTION platform.check_quietly()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER trg_{table}_validated ON platform.{table}")
    op.execute("DROP FUNCTION platform.check_quietly()")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/base.sql for today's).
CHECK_QUIETLY = r"""
CREATE FUNCTION platform.check_quietly() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  c record;
  v_ok boolean;
BEGIN
  FOR c IN
    SELECT k.conname, pg_get_expr(k.conbin, k.conrelid) AS expr
      FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'c' ORDER BY k.conname
  LOOP
    EXECUTE format('SELECT %s FROM (SELECT ($1).*) AS t', c.expr) INTO v_ok USING NEW;
    IF v_ok IS FALSE THEN
      RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, c.conname
        USING ERRCODE = 'check_violation', CONSTRAINT = c.conname, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.check_quietly() IS 'BEFORE INSERT OR UPDATE row trigger of tables holding secrets, hashes or personal data: evaluates the table''s CHECK constraints and raises a violation (23514, the constraint''s name) whose DETAIL shows no value.';
"""
