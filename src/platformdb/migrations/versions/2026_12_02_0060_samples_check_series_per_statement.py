"""Samples check their series once per statement: the metric_samples foreign key becomes two triggers

Why: COPY of metric samples reached 37% of the physical limit (issue #13, point 3): the foreign key
     fk_metric_samples_series_id_metric_series runs its check once per row. trg_metric_samples_series_exists, an
     AFTER INSERT statement trigger with the statement's rows as a transition table, on the parent and on every
     partition (platform.ensure_partition now copies the parent's statement-level triggers, not only TRUNCATE's),
     locks the batch's distinct series FOR KEY SHARE and raises 23503 naming itself when one is missing;
     trg_metric_series_samples_restrict (BEFORE DELETE OR UPDATE OF id on metric_series) refuses to remove a
     series that samples name, with the foreign key's SQLSTATE (23001 since PostgreSQL 18, 23503 before), and
     under REPEATABLE READ or SERIALIZABLE fails with 40001 when a transaction its snapshot misses has committed.
     COPY into a day's partition keeps its multi-row inserts (a transition-table trigger on the partitioned parent
     makes COPY through the parent insert row by row, as PostgreSQL's copyfrom.c says; it still checks once per
     statement). The errors name the triggers instead of the foreign key: clients matching the name change.
     metric_samples_quarantine keeps its foreign key (small table, moved into by maintenance).
Locks: Expand, then contract, in one transaction: the functions and the triggers first (CREATE TRIGGER: SHARE ROW
       EXCLUSIVE on metric_series, metric_samples and each partition until commit; reads go on, writes wait),
       then the foreign key is dropped (ACCESS EXCLUSIVE on metric_samples, each partition and metric_series
       until commit, as observed in pg_locks: readers of both wait too, for milliseconds; no scan, no rewrite). No moment without a check. The migration's lock_timeout bounds the wait behind long ingest
       transactions: retry.
       Runs before the code that uses it (pre-deploy): v1 writers of samples (INSERT and COPY into the parent) keep
       working unchanged; only the rejected writes' constraint name differs. Downgrade adds the foreign key back
       (validating it scans every partition).

Revision ID: 0060
Revises: 0051
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0060"
down_revision: str | Sequence[str] | None = "0051"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = ("platform.metric_samples_series_exist()", "platform.metric_series_samples_restrict()")
FOREIGN_KEY = "fk_metric_samples_series_id_metric_series"

# Every partition of metric_samples (the DEFAULT one and each day's) gets the parent's statement trigger.
PARTITION_TRIGGERS = r"""
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT i.inhrelid::regclass AS part FROM pg_inherits i
            WHERE i.inhparent = 'platform.metric_samples'::regclass ORDER BY 1
  LOOP
    EXECUTE format('CREATE TRIGGER trg_metric_samples_series_exists AFTER INSERT ON %s'
                   ' REFERENCING NEW TABLE AS new_samples FOR EACH STATEMENT'
                   ' EXECUTE FUNCTION platform.metric_samples_series_exist()', r.part);
  END LOOP;
END
$$
"""

DROP_PARTITION_TRIGGERS = r"""
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT t.tgrelid::regclass AS part FROM pg_trigger t
             JOIN pg_inherits i ON i.inhrelid = t.tgrelid AND i.inhparent = 'platform.metric_samples'::regclass
            WHERE t.tgname = 'trg_metric_samples_series_exists' ORDER BY 1
  LOOP
    EXECUTE format('DROP TRIGGER trg_metric_samples_series_exists ON %s', r.part);
  END LOOP;
END
$$
"""


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file ban-drop-constraint -- the guarantee stays: the triggers made above in this"
        " transaction enforce it"
    )
    op.execute(ENSURE_PARTITION)
    op.execute(RULES)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    op.execute(PARTITION_TRIGGERS)
    op.execute(f"ALTER TABLE platform.metric_samples DROP CONSTRAINT {FOREIGN_KEY}")
    op.execute(
        "COMMENT ON COLUMN platform.metric_samples.series_id IS"
        " 'The series observed; it exists (trg_metric_samples_series_exists).'"
    )


def downgrade() -> None:
    op.execute(
        f"ALTER TABLE platform.metric_samples ADD CONSTRAINT {FOREIGN_KEY} FOREIGN KEY (series_id)"
        " REFERENCES platform.metric_series (id) ON DELETE RESTRICT"
    )
    op.execute("COMMENT ON COLUMN platform.metric_samples.series_id IS 'The series observed.'")
    op.execute(DROP_PARTITION_TRIGGERS)
    op.execute("DROP TRIGGER trg_metric_samples_series_exists ON platform.metric_samples")
    op.execute("DROP TRIGGER trg_metric_series_samples_restrict ON platform.metric_series")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.execute(ENSURE_PARTITION_0025)


# Frozen copies of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
RULES = r"""
-- A sample names an existing series, and a series with samples stays (revision 0060). This was a foreign key, whose
-- check runs once per row; these triggers check once per statement, so COPY into a day's partition keeps its
-- multi-row inserts. AFTER INSERT, per statement, with the statement's rows as a transition table: the distinct
-- series of the batch are locked FOR KEY SHARE (as the foreign key's check locks each row's series), so a
-- concurrent DELETE of one waits for the batch's commit, and a series deleted meanwhile is missing from what
-- the lock returns (READ COMMITTED) or fails it with 40001 (REPEATABLE READ and SERIALIZABLE). A statement trigger
-- fires only for the table the statement names: the parent has one (INSERT and COPY routed through it) and so has
-- every partition (platform.ensure_partition copies the parent's statement-level triggers to each new one).
-- SECURITY DEFINER: FOR KEY SHARE needs more than the writers' SELECT on metric_series.
CREATE FUNCTION platform.metric_samples_series_exist() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_ids bigint[];
  v_locked bigint;
  v_missing bigint;
BEGIN
  SELECT array_agg(DISTINCT n.series_id) INTO v_ids FROM new_samples n;
  IF v_ids IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT count(*) INTO v_locked
    FROM (SELECT FROM platform.metric_series s WHERE s.id = ANY (v_ids) FOR KEY SHARE OF s) l;
  IF v_locked < cardinality(v_ids) THEN
    SELECT min(i) INTO v_missing FROM unnest(v_ids) i
     WHERE NOT EXISTS (SELECT FROM platform.metric_series s WHERE s.id = i);
    RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, TG_NAME
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (series_id)=(%s) is not present in table "metric_series".', v_missing);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.metric_samples_series_exist() IS 'AFTER INSERT statement trigger of metric_samples and each of its partitions (trg_metric_samples_series_exists): locks the distinct series of the inserted rows FOR KEY SHARE and raises 23503 naming the trigger when one does not exist.';

-- The other half: a series is not deleted (nor its id changed) while samples name it. The check reads the
-- samples after this row is locked, and the lock waits for any batch holding the series FOR KEY SHARE: under READ
-- COMMITTED each query sees what committed before it, so a batch that committed meanwhile is seen and the
-- delete refused, and a batch still to lock the series waits for this delete and then fails. A REPEATABLE READ
-- or SERIALIZABLE snapshot cannot see a batch that committed after it began (the foreign key's check used a
-- newer crosscheck snapshot, which no trigger can): when any transaction this snapshot does not see has
-- committed by now, the delete fails with 40001 (retry, or delete under READ COMMITTED). Same SQLSTATE as the
-- RESTRICT foreign key it replaces: 23001 since PostgreSQL 18, 23503 before.
CREATE FUNCTION platform.metric_series_samples_restrict() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_snapshot pg_snapshot;
  v_own xid8;
  v_xid bigint;
  v_newer boolean;
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.id IS NOT DISTINCT FROM NEW.id THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT FROM platform.metric_samples m WHERE m.series_id = OLD.id) THEN
    RAISE EXCEPTION 'update or delete on table "%" violates RESTRICT setting of foreign key constraint "%"',
          TG_TABLE_NAME, TG_NAME
      USING ERRCODE = CASE WHEN current_setting('server_version_num')::integer >= 180000 THEN '23001' ELSE '23503' END,
            CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (id)=(%s) is referenced from table "metric_samples".', OLD.id);
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    -- Walk the ids from the snapshot's xmin up to the newest one assigned (pg_xact_status refuses an id in the
    -- future: the walk ends there), looking for one the snapshot does not see that has committed.
    v_snapshot := pg_current_snapshot();
    v_own := pg_current_xact_id();
    v_xid := pg_snapshot_xmin(v_snapshot)::text::bigint;
    BEGIN
      LOOP
        v_newer := v_xid - pg_snapshot_xmin(v_snapshot)::text::bigint > 100000
          OR (v_xid <> v_own::text::bigint AND NOT pg_visible_in_snapshot(v_xid::text::xid8, v_snapshot)
              AND pg_xact_status(v_xid::text::xid8) = 'committed');
        EXIT WHEN v_newer;
        v_xid := v_xid + 1;
      END LOOP;
    EXCEPTION WHEN invalid_parameter_value THEN
      v_newer := false;
    END;
    IF v_newer THEN
      RAISE EXCEPTION 'could not serialize access due to a transaction committed since this snapshot'
        USING ERRCODE = 'serialization_failure', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'Samples it wrote for the series would be invisible to the check.',
              HINT = 'Retry the transaction, or delete series under READ COMMITTED.';
    END IF;
  END IF;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION platform.metric_series_samples_restrict() IS 'BEFORE DELETE OR UPDATE OF id row trigger of metric_series (trg_metric_series_samples_restrict): raises 23001 (23503 before PostgreSQL 18) naming the trigger when samples name the series; under REPEATABLE READ or SERIALIZABLE, 40001 when a transaction committed since the snapshot.';

CREATE TRIGGER trg_metric_samples_series_exists AFTER INSERT ON platform.metric_samples
  REFERENCING NEW TABLE AS new_samples FOR EACH STATEMENT EXECUTE FUNCTION platform.metric_samples_series_exist();
CREATE TRIGGER trg_metric_series_samples_restrict BEFORE DELETE OR UPDATE OF id ON platform.metric_series
  FOR EACH ROW EXECUTE FUNCTION platform.metric_series_samples_restrict();
"""

ENSURE_PARTITION = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partition(p_parent regclass, p_granularity text, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval;
  v_format text;
  v_start timestamp;
  v_schema text;
  v_table text;
  v_key text;
  v_default regclass;
  v_options text[];
  v_name text;
  v_lo timestamptz;
  v_hi timestamptz;
  v_moved bigint := 0;
  v_trigger text;
  v_existing regclass;
  v_index record;
  v_index_name text;
BEGIN
  IF p_granularity = 'month' THEN
    v_step := interval '1 month'; v_format := 'YYYY_MM';
  ELSIF p_granularity = 'day' THEN
    v_step := interval '1 day'; v_format := 'YYYY_MM_DD';
  ELSE
    RAISE EXCEPTION 'granularity must be month or day, not %', p_granularity
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT isfinite(p_at) THEN
    RAISE EXCEPTION 'a partition needs a finite time, not %', p_at USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  v_start := date_trunc(p_granularity, p_at AT TIME ZONE 'UTC');
  v_name := v_table || '_p' || to_char(v_start, v_format);
  v_existing := to_regclass(format('%I.%I', v_schema, v_name));
  IF v_existing IS NOT NULL THEN
    IF EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = v_existing AND i.inhparent = p_parent) THEN
      RETURN false;
    END IF;
    -- A partition detached before revision 0025 stayed here under the name: archive it and make the day again.
    RAISE NOTICE 'archived detached % as % to make its partition again', v_existing, platform.archive_table(v_existing);
  END IF;
  v_lo := v_start AT TIME ZONE 'UTC';
  v_hi := (v_start + v_step) AT TIME ZONE 'UTC';
  SELECT a.attname INTO v_key
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = p_parent;
  SELECT c.oid::regclass, c.reloptions INTO v_default, v_options
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_schema, v_name, p_parent);
  EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_schema, v_name,
                 format('Partition of %s for %s (UTC).', p_parent, to_char(v_start, v_format)));
  IF v_options IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %I.%I SET (%s)', v_schema, v_name, array_to_string(v_options, ', '));
  END IF;
  -- The partition's indexes are made here, named <parent's index>_p<period> (pk_metric_samples_p2026_12_01), so
  -- that an error naming one starts with the rule's name; ATTACH adopts them instead of making <partition>_pkey.
  FOR v_index IN
    SELECT x.relname AS name, k.oid AS con, pg_get_constraintdef(k.oid) AS condef, pg_get_indexdef(i.indexrelid) AS def
      FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
      LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = p_parent AND k.contype IN ('p', 'u')
     WHERE i.indrelid = p_parent ORDER BY x.relname
  LOOP
    v_index_name := v_index.name || substring(v_name FROM char_length(v_table) + 1);
    IF octet_length(v_index_name) > 63 THEN
      RAISE EXCEPTION 'index name % of partition % would be longer than 63 bytes', v_index_name, v_name
        USING ERRCODE = 'name_too_long';
    END IF;
    IF v_index.con IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', v_schema, v_name, v_index_name, v_index.condef);
    ELSE
      EXECUTE regexp_replace(v_index.def, ' INDEX \S+ ON ONLY \S+ ',
                             format(' INDEX %I ON %I.%I ', v_index_name, v_schema, v_name));
    END IF;
  END LOOP;
  -- Statement-level triggers (TRUNCATE guards; metric_samples' series check, revision 0060) are not inherited by
  -- partitions and fire only for the table a statement names: copy the parent's, so a write straight into the
  -- partition meets them too.
  FOR v_trigger IN
    SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
     WHERE t.tgrelid = p_parent AND NOT t.tgisinternal AND (t.tgtype & 1) = 0
  LOOP
    EXECUTE replace(v_trigger, format(' ON %s ', p_parent), format(' ON %I.%I ', v_schema, v_name));
  END LOOP;
  IF v_default IS NOT NULL THEN
    EXECUTE format('SELECT count(*) FROM %s WHERE %I >= %L AND %I < %L', v_default, v_key, v_lo, v_key, v_hi)
      INTO v_moved;
  END IF;
  IF v_moved > 0 THEN
    -- The append-only guard is off for this move only, inside this transaction.
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', v_default);
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *)'
                   ' INSERT INTO %I.%I SELECT * FROM moved', v_default, v_key, v_lo, v_key, v_hi, v_schema, v_name);
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER USER', v_default);
    RAISE NOTICE 'moved % rows from % into %.%', v_moved, v_default, v_schema, v_name;
  END IF;
  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                 p_parent, v_schema, v_name, v_lo, v_hi);
  RETURN true;
END
$$;
"""

ENSURE_PARTITION_0025 = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partition(p_parent regclass, p_granularity text, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval;
  v_format text;
  v_start timestamp;
  v_schema text;
  v_table text;
  v_key text;
  v_default regclass;
  v_options text[];
  v_name text;
  v_lo timestamptz;
  v_hi timestamptz;
  v_moved bigint := 0;
  v_trigger text;
  v_existing regclass;
  v_index record;
  v_index_name text;
BEGIN
  IF p_granularity = 'month' THEN
    v_step := interval '1 month'; v_format := 'YYYY_MM';
  ELSIF p_granularity = 'day' THEN
    v_step := interval '1 day'; v_format := 'YYYY_MM_DD';
  ELSE
    RAISE EXCEPTION 'granularity must be month or day, not %', p_granularity
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT isfinite(p_at) THEN
    RAISE EXCEPTION 'a partition needs a finite time, not %', p_at USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  v_start := date_trunc(p_granularity, p_at AT TIME ZONE 'UTC');
  v_name := v_table || '_p' || to_char(v_start, v_format);
  v_existing := to_regclass(format('%I.%I', v_schema, v_name));
  IF v_existing IS NOT NULL THEN
    IF EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = v_existing AND i.inhparent = p_parent) THEN
      RETURN false;
    END IF;
    -- A partition detached before revision 0025 stayed here under the name: archive it and make the day again.
    RAISE NOTICE 'archived detached % as % to make its partition again', v_existing, platform.archive_table(v_existing);
  END IF;
  v_lo := v_start AT TIME ZONE 'UTC';
  v_hi := (v_start + v_step) AT TIME ZONE 'UTC';
  SELECT a.attname INTO v_key
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = p_parent;
  SELECT c.oid::regclass, c.reloptions INTO v_default, v_options
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_schema, v_name, p_parent);
  EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_schema, v_name,
                 format('Partition of %s for %s (UTC).', p_parent, to_char(v_start, v_format)));
  IF v_options IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %I.%I SET (%s)', v_schema, v_name, array_to_string(v_options, ', '));
  END IF;
  -- The partition's indexes are made here, named <parent's index>_p<period> (pk_metric_samples_p2026_12_01), so
  -- that an error naming one starts with the rule's name; ATTACH adopts them instead of making <partition>_pkey.
  FOR v_index IN
    SELECT x.relname AS name, k.oid AS con, pg_get_constraintdef(k.oid) AS condef, pg_get_indexdef(i.indexrelid) AS def
      FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
      LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = p_parent AND k.contype IN ('p', 'u')
     WHERE i.indrelid = p_parent ORDER BY x.relname
  LOOP
    v_index_name := v_index.name || substring(v_name FROM char_length(v_table) + 1);
    IF octet_length(v_index_name) > 63 THEN
      RAISE EXCEPTION 'index name % of partition % would be longer than 63 bytes', v_index_name, v_name
        USING ERRCODE = 'name_too_long';
    END IF;
    IF v_index.con IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', v_schema, v_name, v_index_name, v_index.condef);
    ELSE
      EXECUTE regexp_replace(v_index.def, ' INDEX \S+ ON ONLY \S+ ',
                             format(' INDEX %I ON %I.%I ', v_index_name, v_schema, v_name));
    END IF;
  END LOOP;
  -- Statement-level TRUNCATE triggers are not inherited by partitions: copy the parent's.
  FOR v_trigger IN
    SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
     WHERE t.tgrelid = p_parent AND NOT t.tgisinternal AND (t.tgtype & 32) <> 0
  LOOP
    EXECUTE replace(v_trigger, format(' ON %s ', p_parent), format(' ON %I.%I ', v_schema, v_name));
  END LOOP;
  IF v_default IS NOT NULL THEN
    EXECUTE format('SELECT count(*) FROM %s WHERE %I >= %L AND %I < %L', v_default, v_key, v_lo, v_key, v_hi)
      INTO v_moved;
  END IF;
  IF v_moved > 0 THEN
    -- The append-only guard is off for this move only, inside this transaction.
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', v_default);
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *)'
                   ' INSERT INTO %I.%I SELECT * FROM moved', v_default, v_key, v_lo, v_key, v_hi, v_schema, v_name);
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER USER', v_default);
    RAISE NOTICE 'moved % rows from % into %.%', v_moved, v_default, v_schema, v_name;
  END IF;
  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                 p_parent, v_schema, v_name, v_lo, v_hi);
  RETURN true;
END
$$;
"""
