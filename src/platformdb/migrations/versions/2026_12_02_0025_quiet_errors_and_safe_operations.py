"""Rejected writes show no value whichever rule refuses them; a stale expected version says where the key is

Why: On users and configuration_versions (secrets, secret references, password hashes, emails, names) a NOT NULL
     violation still printed the row ("Failing row contains ..."), a unique violation the key ("Key
     (lower(email))=(...)") and a foreign key violation its key, to the client and the server log. The
     trg_<table>_validated trigger (platform.check_quietly(), revision 0022) now also checks NOT NULL, unique
     (but the primary key, whose ids the database makes) and foreign key constraints, in PostgreSQL's order, and
     raises the same SQLSTATE and name with a DETAIL that shows nothing; a unique key is checked under an advisory
     lock on (index, key), so concurrent writers of one key get the quiet error too (READ COMMITTED) or 40001
     (REPEATABLE READ, SERIALIZABLE). It becomes SECURITY DEFINER (a foreign key may point at a table the writer
     cannot read). trg_configuration_versions_number's refusal of a stale expected version gets a JSON DETAIL
     {configuration_id, current_version, expected_version} and a HINT, the same under every isolation level.
Locks: CREATE OR REPLACE FUNCTION locks only the functions' catalog rows; no table lock, nothing waits.
       Runs before the code that uses it (pre-deploy): clients matching SQLSTATE and constraint name see no change;
       only the DETAIL of these errors changes.

Revision ID: 0025
Revises: 0022
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(CHECK_QUIETLY)
    op.execute(NUMBER_CONFIGURATION_VERSION)


def downgrade() -> None:
    op.execute(CHECK_QUIETLY_0022)
    op.execute(NUMBER_CONFIGURATION_VERSION_0022)


# Frozen copies of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
CHECK_QUIETLY = r"""
CREATE OR REPLACE FUNCTION platform.check_quietly() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_ok boolean;
  v_column text;
  v_key text;
  v_old_key text;
BEGIN
  SELECT 'SELECT coalesce(' || string_agg(format('CASE WHEN ($1).%I IS NULL THEN %L END', a.attname, a.attname),
                                          ', ' ORDER BY a.attnum) || ')'
    INTO v_key
    FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull;
  IF v_key IS NOT NULL THEN
    EXECUTE v_key INTO v_column USING NEW;
    IF v_column IS NOT NULL THEN
      RAISE EXCEPTION 'null value in column "%" of relation "%" violates not-null constraint', v_column, TG_TABLE_NAME
        USING ERRCODE = 'not_null_violation', COLUMN = v_column, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END IF;
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
  IF TG_OP = 'UPDATE' OR current_query() !~* '\mon\s+conflict\M' THEN
    FOR c IN
      SELECT x.relname AS name, coalesce(pg_get_expr(i.indpred, i.indrelid, true), 'true') AS pred,
             (SELECT string_agg(pg_get_indexdef(i.indexrelid, n, true), ', ' ORDER BY n)
                FROM generate_series(1, i.indnkeyatts::int) n) AS cols
        FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
       WHERE i.indrelid = TG_RELID AND i.indisunique AND NOT i.indisprimary AND i.indisvalid ORDER BY x.relname
    LOOP
      -- The key as text, or NULL when the row is not in the index's scope or the key has a NULL (never equal).
      v_key := format('SELECT CASE WHEN (%s) AND num_nulls(%s) = 0 THEN ROW(%s)::text END FROM (SELECT ($1).*) AS t',
                      c.pred, c.cols, c.cols);
      IF TG_OP = 'UPDATE' THEN
        EXECUTE v_key INTO v_old_key USING OLD;
      END IF;
      EXECUTE v_key INTO v_key USING NEW;
      CONTINUE WHEN v_key IS NULL OR v_key IS NOT DISTINCT FROM v_old_key;
      IF NOT pg_try_advisory_xact_lock(hashtext(c.name), hashtext(v_key)) THEN
        PERFORM pg_advisory_xact_lock(hashtext(c.name), hashtext(v_key));
        IF current_setting('transaction_isolation') <> 'read committed' THEN
          RAISE EXCEPTION 'could not serialize access due to a concurrent write of the same key of "%"', c.name
            USING ERRCODE = 'serialization_failure', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  HINT = 'Retry the transaction.';
        END IF;
      END IF;
      -- Inner names resolve to the new row (t), the outer ones to the table's rows (o).
      EXECUTE format('SELECT EXISTS (SELECT FROM %s o WHERE (%s) AND (%s) = (SELECT %s FROM (SELECT ($1).*) AS t))',
                     TG_RELID::regclass, c.pred, c.cols, c.cols)
        INTO v_ok USING NEW;
      IF v_ok THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "%"', c.name
          USING ERRCODE = 'unique_violation', CONSTRAINT = c.name, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                DETAIL = 'The key is not shown: this table holds secrets, password hashes or personal data.';
      END IF;
    END LOOP;
  END IF;
  v_old_key := NULL;
  FOR c IN
    SELECT k.conname, k.confrelid::regclass AS ref,
           (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.conkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.att) AS cols,
           (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.confkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.att) AS ref_cols
      FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'f' ORDER BY k.conname
  LOOP
    EXECUTE format('SELECT CASE WHEN num_nulls(%s) = 0 THEN ROW(%s)::text END FROM (SELECT ($1).*) AS t', c.cols, c.cols)
      INTO v_key USING NEW;
    IF TG_OP = 'UPDATE' THEN
      EXECUTE format('SELECT ROW(%s)::text FROM (SELECT ($1).*) AS t', c.cols) INTO v_old_key USING OLD;
    END IF;
    CONTINUE WHEN v_key IS NULL OR v_key IS NOT DISTINCT FROM v_old_key;
    EXECUTE format('SELECT EXISTS (SELECT FROM %s r WHERE (%s) = (SELECT %s FROM (SELECT ($1).*) AS t))',
                   c.ref, c.ref_cols, c.cols)
      INTO v_ok USING NEW;
    IF NOT v_ok THEN
      RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, c.conname
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = c.conname, SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The key is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.check_quietly() IS 'BEFORE INSERT OR UPDATE row trigger of tables holding secrets, hashes or personal data: checks the row''s NOT NULL, CHECK, unique (but the primary key) and foreign key constraints, in PostgreSQL''s order, and raises the violation (23502, 23514, 23505, 23503, with the constraint''s name) with a DETAIL that shows no value.';
"""

NUMBER_CONFIGURATION_VERSION = r"""
CREATE OR REPLACE FUNCTION platform.number_configuration_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_next integer;
BEGIN
  UPDATE platform.configurations c SET key = c.key WHERE c.id = NEW.configuration_id;
  SELECT v.version + 1 INTO v_next
    FROM platform.configuration_versions v WHERE v.configuration_id = NEW.configuration_id
   ORDER BY v.version DESC LIMIT 1;
  v_next := coalesce(v_next, 1);
  IF NEW.version IS NOT NULL AND NEW.version <> v_next THEN
    RAISE EXCEPTION 'configuration % is at version %, cannot write version %',
          NEW.configuration_id, v_next - 1, NEW.version
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'version',
            DETAIL = json_build_object('configuration_id', NEW.configuration_id, 'current_version', v_next - 1,
                                       'expected_version', NEW.version)::text,
            HINT = 'Read the current version, then write current_version + 1 (or no version, to append).';
  END IF;
  NEW.version := v_next;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.number_configuration_version() IS 'BEFORE INSERT trigger of configuration_versions: assigns the next gap-free version under the key''s row lock; refuses a stale expected version (SQLSTATE 23514, DETAIL {configuration_id, current_version, expected_version} as JSON); a REPEATABLE READ or SERIALIZABLE writer behind a concurrent version gets 40001 (retry the transaction).';
"""

# What 0022 (and 0018) left, for the downgrade.
CHECK_QUIETLY_0022 = r"""
CREATE OR REPLACE FUNCTION platform.check_quietly() RETURNS trigger
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

NUMBER_CONFIGURATION_VERSION_0022 = r"""
CREATE OR REPLACE FUNCTION platform.number_configuration_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_next integer;
BEGIN
  UPDATE platform.configurations c SET key = c.key WHERE c.id = NEW.configuration_id;
  SELECT v.version + 1 INTO v_next
    FROM platform.configuration_versions v WHERE v.configuration_id = NEW.configuration_id
   ORDER BY v.version DESC LIMIT 1;
  v_next := coalesce(v_next, 1);
  IF NEW.version IS NOT NULL AND NEW.version <> v_next THEN
    RAISE EXCEPTION 'configuration % is at version %, cannot write version %',
          NEW.configuration_id, v_next - 1, NEW.version
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
  END IF;
  NEW.version := v_next;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.number_configuration_version() IS 'BEFORE INSERT trigger of configuration_versions: assigns the next gap-free version under the key''s row lock; refuses a stale expected version (SQLSTATE 23514); a REPEATABLE READ writer behind a concurrent version gets 40001.';
"""
