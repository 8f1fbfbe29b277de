"""Quiet checks generated per table: trg_<table>_validated runs static SQL of its own table, not the catalog

Why: platform.check_quietly() (revisions 0022, 0025) reads the table's rules from the catalog and runs them as
     dynamic SQL, parsed and planned again for every row: an insert on users cost about 2.8x one without it
     (issue #13). platform.install_quiet_checks(table) writes the same rules, read from the same catalog in the
     same order (NOT NULL by column, CHECK by name, unique keys but the primary key by name under the same
     advisory lock and 0051's budget of 256 per transaction, foreign keys by name), into platform.check_quietly_<table>(), static SQL planned once per
     session, with the same SQLSTATEs, constraint names and DETAILs, and points trg_<table>_validated at it
     (users, api_tokens, configuration_versions). platform.quiet_checks_source(table) returns the body it
     writes; a revision that changes a guarded table's constraints calls install_quiet_checks again.
     platform.check_quietly() stays, unused by the shipped tables.
Locks: CREATE OR REPLACE TRIGGER on users, api_tokens and configuration_versions takes SHARE ROW EXCLUSIVE until
       commit (writes to those tables wait for the commit, milliseconds; reads go on). No table is rewritten.
       Runs before or after the code that uses it (either): the rules, SQLSTATEs and names are unchanged.

Revision ID: 0065
Revises: 0060
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0065"
down_revision: str | Sequence[str] | None = "0060"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARDED = ("users", "api_tokens", "configuration_versions")


def upgrade() -> None:
    op.execute(GENERATOR)
    op.execute("REVOKE ALL ON FUNCTION platform.quiet_checks_source(regclass) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION platform.install_quiet_checks(regclass) FROM PUBLIC")
    for table in GUARDED:
        op.execute(f"SELECT platform.install_quiet_checks('platform.{table}')")


def downgrade() -> None:
    for table in GUARDED:
        op.execute(
            f"CREATE OR REPLACE TRIGGER trg_{table}_validated BEFORE INSERT OR UPDATE ON platform.{table}"
            " FOR EACH ROW EXECUTE FUNCTION platform.check_quietly()"
        )
        op.execute(f"DROP FUNCTION platform.check_quietly_{table}()")
    op.execute("DROP FUNCTION platform.install_quiet_checks(regclass), platform.quiet_checks_source(regclass)")


GENERATOR = r"""
-- The same checks, generated per table (revision 0065): platform.check_quietly() reads the catalog and runs
-- dynamic SQL (parsed and planned again) for every row, about 1 ms per insert on users. The generator writes the
-- table's rules, read from the same catalog in the same order, into a function of the table's own whose SQL is
-- static (planned once per session), with the same SQLSTATEs, names and DETAILs. A revision that changes a
-- guarded table's constraints calls platform.install_quiet_checks again; a test compares every generated body
-- with what the generator makes of today's catalog.
CREATE FUNCTION platform.quiet_checks_source(target regclass) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_rules text;
  v_body text;
  v_detail text := 'The row is not shown: this table holds secrets, password hashes or personal data.';
  v_key_detail text := 'The key is not shown: this table holds secrets, password hashes or personal data.';
BEGIN
  v_body := E'\n#variable_conflict use_column\nDECLARE\n  quiet_failed text;\n  quiet_key text;\n  quiet_old_key text;\n  quiet_locks int;\nBEGIN\n';
  -- NOT NULL (by column order), then CHECK (by name), in one statement: the first rule the row breaks.
  SELECT string_agg(w, E'\n' ORDER BY o) INTO v_rules
    FROM (SELECT format('      WHEN t.%I IS NULL THEN %L', a.attname, 'n' || a.attname) AS w, to_char(a.attnum, 'FM00000') AS o
            FROM pg_attribute a WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
          UNION ALL
          SELECT format('      WHEN (%s) IS FALSE THEN %L', pg_get_expr(k.conbin, k.conrelid), 'c' || k.conname), 'z' || k.conname
            FROM pg_constraint k WHERE k.conrelid = target AND k.contype = 'c') rules;
  IF v_rules IS NOT NULL THEN
    v_body := v_body || E'  SELECT CASE\n' || v_rules || E'\n    END INTO quiet_failed FROM (SELECT NEW.*) AS t;\n'
      || E'  IF left(quiet_failed, 1) = ''n'' THEN\n'
      || E'    RAISE EXCEPTION ''null value in column "%" of relation "%" violates not-null constraint'', substr(quiet_failed, 2),\n'
      || E'          TG_TABLE_NAME\n'
      || E'      USING ERRCODE = ''not_null_violation'', COLUMN = substr(quiet_failed, 2), SCHEMA = TG_TABLE_SCHEMA,\n'
      || format(E'            TABLE = TG_TABLE_NAME, DETAIL = %L;\n', v_detail)
      || E'  ELSIF left(quiet_failed, 1) = ''c'' THEN\n'
      || E'    RAISE EXCEPTION ''new row for relation "%" violates check constraint "%"'', TG_TABLE_NAME, substr(quiet_failed, 2)\n'
      || E'      USING ERRCODE = ''check_violation'', CONSTRAINT = substr(quiet_failed, 2), SCHEMA = TG_TABLE_SCHEMA,\n'
      || format(E'            TABLE = TG_TABLE_NAME, DETAIL = %L;\n', v_detail)
      || E'  END IF;\n';
  END IF;
  -- Unique keys but the primary key, by name; an INSERT ... ON CONFLICT is left to its arbiter.
  v_rules := '';
  FOR c IN
    SELECT x.relname AS name, coalesce(pg_get_expr(i.indpred, i.indrelid, true), 'true') AS pred,
           (SELECT string_agg(pg_get_indexdef(i.indexrelid, n, true), ', ' ORDER BY n)
              FROM generate_series(1, i.indnkeyatts::int) n) AS cols
      FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
     WHERE i.indrelid = target AND i.indisunique AND NOT i.indisprimary AND i.indisvalid ORDER BY x.relname
  LOOP
    v_rules := v_rules
      || format(E'    -- %s: the key as text, or NULL when the row is not in the index''s scope or the key has a NULL.\n', c.name)
      || format(E'    SELECT CASE WHEN (%s) AND num_nulls(%s) = 0 THEN ROW(%s)::text END INTO quiet_key FROM (SELECT NEW.*) AS t;\n',
                c.pred, c.cols, c.cols)
      || E'    quiet_old_key := NULL;\n    IF TG_OP = ''UPDATE'' THEN\n'
      || format(E'      SELECT CASE WHEN (%s) AND num_nulls(%s) = 0 THEN ROW(%s)::text END INTO quiet_old_key FROM (SELECT OLD.*) AS t;\n',
                c.pred, c.cols, c.cols)
      || E'    END IF;\n    IF quiet_key IS NOT NULL AND quiet_key IS DISTINCT FROM quiet_old_key THEN\n'
      -- At most 256 key locks per transaction (revision 0051: the lock table is shared by every session).
      || E'      quiet_locks := coalesce(nullif(current_setting(''platformdb.quiet_key_locks'', true), ''''), ''0'')::int;\n'
      || E'      IF quiet_locks < 256 THEN\n'
      || E'        PERFORM set_config(''platformdb.quiet_key_locks'', (quiet_locks + 1)::text, true);\n'
      || format(E'        IF NOT pg_try_advisory_xact_lock(hashtext(%L), hashtext(quiet_key)) THEN\n', c.name)
      || format(E'          PERFORM pg_advisory_xact_lock(hashtext(%L), hashtext(quiet_key));\n', c.name)
      || E'          IF current_setting(''transaction_isolation'') <> ''read committed'' THEN\n'
      || format(E'            RAISE EXCEPTION ''could not serialize access due to a concurrent write of the same key of "%%"'', %L\n', c.name)
      || E'              USING ERRCODE = ''serialization_failure'', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,\n'
      || E'                    HINT = ''Retry the transaction.'';\n          END IF;\n        END IF;\n      END IF;\n'
      || E'      -- Inner names resolve to the new row (t), the outer ones to the table''s rows (o).\n'
      || format(E'      IF EXISTS (SELECT FROM %s o WHERE (%s) AND (%s) = (SELECT %s FROM (SELECT NEW.*) AS t)) THEN\n',
                target, c.pred, c.cols, c.cols)
      || format(E'        RAISE EXCEPTION ''duplicate key value violates unique constraint "%%"'', %L\n', c.name)
      || format(E'          USING ERRCODE = ''unique_violation'', CONSTRAINT = %L, SCHEMA = TG_TABLE_SCHEMA,\n', c.name)
      || format(E'                TABLE = TG_TABLE_NAME, DETAIL = %L;\n', v_key_detail)
      || E'      END IF;\n    END IF;\n';
  END LOOP;
  IF v_rules <> '' THEN
    v_body := v_body || E'  IF TG_OP = ''UPDATE'' OR current_query() !~* ''\\mon\\s+conflict\\M'' THEN\n' || v_rules
      || E'  END IF;\n';
  END IF;
  -- Foreign keys, by name: true when the key has a NULL (MATCH SIMPLE) or its row exists.
  FOR c IN
    SELECT k.conname, k.confrelid::regclass AS ref,
           (SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.conkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.att) AS cols,
           (SELECT string_agg(format('r.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.confkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.att) AS ref_cols
      FROM pg_constraint k WHERE k.conrelid = target AND k.contype = 'f' ORDER BY k.conname
  LOOP
    v_body := v_body
      || format(E'  IF NOT (SELECT num_nulls(%s) > 0 OR EXISTS (SELECT FROM %s r WHERE (%s) = (%s)) FROM (SELECT NEW.*) AS t) THEN\n',
                c.cols, c.ref, c.ref_cols, c.cols)
      || format(E'    RAISE EXCEPTION ''insert or update on table "%%" violates foreign key constraint "%%"'', TG_TABLE_NAME, %L\n', c.conname)
      || format(E'      USING ERRCODE = ''foreign_key_violation'', CONSTRAINT = %L, SCHEMA = TG_TABLE_SCHEMA,\n', c.conname)
      || format(E'            TABLE = TG_TABLE_NAME, DETAIL = %L;\n', v_key_detail)
      || E'  END IF;\n';
  END LOOP;
  RETURN v_body || E'  RETURN NEW;\nEND\n';
END
$$;
COMMENT ON FUNCTION platform.quiet_checks_source(regclass) IS 'The body platform.install_quiet_checks writes for a table: its NOT NULL, CHECK, unique (but the primary key) and foreign key rules, read from the catalog, as static SQL raising each violation as platform.check_quietly() does.';

CREATE FUNCTION platform.install_quiet_checks(target regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_table name;
BEGIN
  SELECT k.relname INTO v_table FROM pg_class k WHERE k.oid = target AND k.relnamespace = 'platform'::regnamespace;
  IF v_table IS NULL THEN
    RAISE EXCEPTION '% is not a table of schema platform', target USING ERRCODE = 'wrong_object_type';
  END IF;
  EXECUTE format('CREATE OR REPLACE FUNCTION platform.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER'
                 ' SET search_path = pg_catalog, pg_temp AS %L', 'check_quietly_' || v_table,
                 platform.quiet_checks_source(target));
  EXECUTE format('REVOKE ALL ON FUNCTION platform.%I() FROM PUBLIC', 'check_quietly_' || v_table);
  EXECUTE format('COMMENT ON FUNCTION platform.%I() IS %L', 'check_quietly_' || v_table,
                 format('BEFORE INSERT OR UPDATE row trigger of %s (trg_%s_validated), generated by '
                        'platform.install_quiet_checks: raises a violation of the table''s NOT NULL, CHECK, unique or '
                        'foreign key rules (23502, 23514, 23505, 23503, with the rule''s name) with a DETAIL that '
                        'shows no value.', v_table, v_table));
  EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION platform.%I()',
                 'trg_' || v_table || '_validated', target, 'check_quietly_' || v_table);
END
$$;
COMMENT ON FUNCTION platform.install_quiet_checks(regclass) IS 'Owner only: (re)generates platform.check_quietly_<table>() from the table''s constraints and points trg_<table>_validated at it. Call it again after changing the constraints of a table it guards.';
"""
