"""Bounded key locks in the quiet checks: a bulk insert no longer takes a lock-table entry per row

Why: platform.check_quietly() (revision 0025) checks a unique key under a transaction-scoped advisory lock on
     (index, key), so a concurrent writer of the same key waits and then gets the quiet refusal. Every row took
     one lock-table entry per unique index until commit: a transaction inserting a few thousand users or API
     tokens filled the lock table, which every session of the cluster shares ("out of shared memory" for all;
     seeding scale 10 hit it with 9,000 tokens). Now a transaction takes at most 256 such locks (counted in the
     transaction-local setting platformdb.quiet_key_locks); past them the check still refuses a committed or
     own duplicate quietly, and a duplicate racing in from another uncommitted transaction is refused by the
     index itself (23505, with the index's DETAIL).
Locks: CREATE OR REPLACE FUNCTION only: no table lock; the triggers pick the new body up at their next call.
       Runs before or after the code deploy alike (no interface changes).

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0051"
down_revision: str | Sequence[str] | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(CHECK_QUIETLY)


def downgrade() -> None:
    op.execute(CHECK_QUIETLY_0025)


CHECK_QUIETLY = r"""
CREATE OR REPLACE FUNCTION platform.check_quietly() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_ok boolean;
  v_sql text;
  v_failed text;
  v_key text;
  v_old_key text;
  v_locks int;
BEGIN
  -- NOT NULL (by column order), then CHECK (by name), in one statement: the first rule the row breaks.
  SELECT 'SELECT CASE ' || string_agg(w, ' ' ORDER BY o) || ' END FROM (SELECT ($1).*) AS t' INTO v_sql
    FROM (SELECT format('WHEN t.%I IS NULL THEN %L', a.attname, 'n' || a.attname) AS w, to_char(a.attnum, 'FM00000') AS o
            FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
          UNION ALL
          SELECT format('WHEN (%s) IS FALSE THEN %L', pg_get_expr(k.conbin, k.conrelid), 'c' || k.conname), 'z' || k.conname
            FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'c') rules;
  IF v_sql IS NOT NULL THEN
    EXECUTE v_sql INTO v_failed USING NEW;
    IF left(v_failed, 1) = 'n' THEN
      RAISE EXCEPTION 'null value in column "%" of relation "%" violates not-null constraint', substr(v_failed, 2),
            TG_TABLE_NAME
        USING ERRCODE = 'not_null_violation', COLUMN = substr(v_failed, 2), SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    ELSIF left(v_failed, 1) = 'c' THEN
      RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, substr(v_failed, 2)
        USING ERRCODE = 'check_violation', CONSTRAINT = substr(v_failed, 2), SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END IF;
  IF TG_OP = 'UPDATE' OR current_query() !~* '\mon\s+conflict\M' THEN
    FOR c IN
      SELECT x.relname AS name, coalesce(pg_get_expr(i.indpred, i.indrelid, true), 'true') AS pred,
             (SELECT string_agg(pg_get_indexdef(i.indexrelid, n, true), ', ' ORDER BY n)
                FROM generate_series(1, i.indnkeyatts::int) n) AS cols
        FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
       WHERE i.indrelid = TG_RELID AND i.indisunique AND NOT i.indisprimary AND i.indisvalid ORDER BY x.relname
    LOOP
      -- The key as text, or NULL when the row is not in the index's scope or the key has a NULL (never equal).
      v_sql := format('SELECT CASE WHEN (%s) AND num_nulls(%s) = 0 THEN ROW(%s)::text END FROM (SELECT ($1).*) AS t',
                      c.pred, c.cols, c.cols);
      IF TG_OP = 'UPDATE' THEN
        EXECUTE v_sql INTO v_old_key USING OLD;
      END IF;
      EXECUTE v_sql INTO v_key USING NEW;
      CONTINUE WHEN v_key IS NULL OR v_key IS NOT DISTINCT FROM v_old_key;
      -- At most 256 key locks per transaction (the lock table is shared by every session): past that, a
      -- concurrent writer of the same key meets the index instead, which refuses it too (with its DETAIL).
      v_locks := coalesce(nullif(current_setting('platformdb.quiet_key_locks', true), ''), '0')::int;
      IF v_locks < 256 THEN
        PERFORM set_config('platformdb.quiet_key_locks', (v_locks + 1)::text, true);
        IF NOT pg_try_advisory_xact_lock(hashtext(c.name), hashtext(v_key)) THEN
          PERFORM pg_advisory_xact_lock(hashtext(c.name), hashtext(v_key));
          IF current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'could not serialize access due to a concurrent write of the same key of "%"', c.name
              USING ERRCODE = 'serialization_failure', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                    HINT = 'Retry the transaction.';
          END IF;
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
  -- Foreign keys: one statement each, true when the key has a NULL (MATCH SIMPLE) or its row exists.
  FOR c IN
    SELECT k.conname, k.confrelid::regclass AS ref,
           (SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.conkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.att) AS cols,
           (SELECT string_agg(format('r.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.confkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.att) AS ref_cols
      FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'f' ORDER BY k.conname
  LOOP
    EXECUTE format('SELECT num_nulls(%s) > 0 OR EXISTS (SELECT FROM %s r WHERE (%s) = (%s)) FROM (SELECT ($1).*) AS t',
                   c.cols, c.ref, c.ref_cols, c.cols)
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
COMMENT ON FUNCTION platform.check_quietly() IS 'BEFORE INSERT OR UPDATE row trigger of tables holding secrets, hashes or personal data: checks the row''s NOT NULL, CHECK, unique (but the primary key) and foreign key constraints, in PostgreSQL''s order, and raises the violation (23502, 23514, 23505, 23503, with the constraint''s name) with a DETAIL that shows no value. A unique key is checked under a transaction advisory lock on it, for at most 256 keys per transaction.';
"""

# 0025's body, restored on downgrade (frozen here: 0025 is history, not a module to import).
CHECK_QUIETLY_0025 = r"""
CREATE OR REPLACE FUNCTION platform.check_quietly() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_ok boolean;
  v_sql text;
  v_failed text;
  v_key text;
  v_old_key text;
BEGIN
  -- NOT NULL (by column order), then CHECK (by name), in one statement: the first rule the row breaks.
  SELECT 'SELECT CASE ' || string_agg(w, ' ' ORDER BY o) || ' END FROM (SELECT ($1).*) AS t' INTO v_sql
    FROM (SELECT format('WHEN t.%I IS NULL THEN %L', a.attname, 'n' || a.attname) AS w, to_char(a.attnum, 'FM00000') AS o
            FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
          UNION ALL
          SELECT format('WHEN (%s) IS FALSE THEN %L', pg_get_expr(k.conbin, k.conrelid), 'c' || k.conname), 'z' || k.conname
            FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'c') rules;
  IF v_sql IS NOT NULL THEN
    EXECUTE v_sql INTO v_failed USING NEW;
    IF left(v_failed, 1) = 'n' THEN
      RAISE EXCEPTION 'null value in column "%" of relation "%" violates not-null constraint', substr(v_failed, 2),
            TG_TABLE_NAME
        USING ERRCODE = 'not_null_violation', COLUMN = substr(v_failed, 2), SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    ELSIF left(v_failed, 1) = 'c' THEN
      RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, substr(v_failed, 2)
        USING ERRCODE = 'check_violation', CONSTRAINT = substr(v_failed, 2), SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END IF;
  IF TG_OP = 'UPDATE' OR current_query() !~* '\mon\s+conflict\M' THEN
    FOR c IN
      SELECT x.relname AS name, coalesce(pg_get_expr(i.indpred, i.indrelid, true), 'true') AS pred,
             (SELECT string_agg(pg_get_indexdef(i.indexrelid, n, true), ', ' ORDER BY n)
                FROM generate_series(1, i.indnkeyatts::int) n) AS cols
        FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
       WHERE i.indrelid = TG_RELID AND i.indisunique AND NOT i.indisprimary AND i.indisvalid ORDER BY x.relname
    LOOP
      -- The key as text, or NULL when the row is not in the index's scope or the key has a NULL (never equal).
      v_sql := format('SELECT CASE WHEN (%s) AND num_nulls(%s) = 0 THEN ROW(%s)::text END FROM (SELECT ($1).*) AS t',
                      c.pred, c.cols, c.cols);
      IF TG_OP = 'UPDATE' THEN
        EXECUTE v_sql INTO v_old_key USING OLD;
      END IF;
      EXECUTE v_sql INTO v_key USING NEW;
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
  -- Foreign keys: one statement each, true when the key has a NULL (MATCH SIMPLE) or its row exists.
  FOR c IN
    SELECT k.conname, k.confrelid::regclass AS ref,
           (SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.conkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.att) AS cols,
           (SELECT string_agg(format('r.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.confkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.att) AS ref_cols
      FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'f' ORDER BY k.conname
  LOOP
    EXECUTE format('SELECT num_nulls(%s) > 0 OR EXISTS (SELECT FROM %s r WHERE (%s) = (%s)) FROM (SELECT ($1).*) AS t',
                   c.cols, c.ref, c.ref_cols, c.cols)
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
