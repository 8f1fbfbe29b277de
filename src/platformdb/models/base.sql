-- Shared database-side functions of platformdb. Runs before any table is created.

CREATE SCHEMA IF NOT EXISTS platform;
COMMENT ON SCHEMA platform IS 'platformdb: control-plane schema shared by the platform''s microservices.';
-- Where `partitions prune --detach` puts the partitions it detaches (revision 0025): out of the schema services
-- use and lint checks, owned by the schema owner, granted to nobody.
CREATE SCHEMA IF NOT EXISTS platform_archive;
COMMENT ON SCHEMA platform_archive IS 'platformdb: partitions detached by retention, kept as plain tables to archive; no service has access.';

-- Time-ordered UUIDs. PostgreSQL 18 has uuidv7() built in; on 15-17 an equivalent (RFC 9562, millisecond
-- precision) is installed under the same name, so every key default reads platform.uuidv7().
DO $do$
BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE $f$
      CREATE FUNCTION platform.uuidv7() RETURNS uuid
      LANGUAGE sql VOLATILE PARALLEL SAFE
      RETURN pg_catalog.uuidv7()
    $f$;
  ELSE
    EXECUTE $f$
      CREATE FUNCTION platform.uuidv7() RETURNS uuid
      LANGUAGE sql VOLATILE PARALLEL SAFE
      RETURN encode(
        set_bit(set_bit(
          overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                  FROM 1 FOR 6),
          52, 1), 53, 1),
        'hex')::uuid
    $f$;
  END IF;
END
$do$;
COMMENT ON FUNCTION platform.uuidv7() IS 'Time-ordered UUID (version 7) for primary keys: native on PostgreSQL 18+, an equivalent SQL function before.';

CREATE FUNCTION platform.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.created_at IS DISTINCT FROM OLD.created_at THEN
    RAISE EXCEPTION '%.created_at cannot change', TG_TABLE_NAME
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME,
            SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'created_at';
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.set_updated_at() IS 'BEFORE UPDATE row trigger of mutable tables: keeps updated_at and refuses to rewrite created_at (SQLSTATE 23000).';

-- Immutability and append-only rules. The error names the trigger as the violated constraint, with
-- SQLSTATE 23000 (integrity_constraint_violation), so clients handle it like any other rule.
CREATE FUNCTION platform.forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on %.% is not allowed: %', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME,
        coalesce(TG_ARGV[0], 'the table is immutable')
    USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME,
          SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
END
$$;
COMMENT ON FUNCTION platform.forbid_change() IS 'BEFORE UPDATE/DELETE/TRUNCATE trigger of immutable and append-only tables: raises SQLSTATE 23000 naming the trigger.';

-- Range partitions by UTC calendar period, named <parent>_pYYYY_MM (month) or _pYYYY_MM_DD (day). A new
-- partition copies the DEFAULT partition's storage settings (so autovacuum is tuned in one place) and the
-- parent's statement-level triggers. Rows that landed in the DEFAULT partition for want of a partition are moved
-- into the new one (built beside the table, filled, then attached), so a late `ensure` loses nothing.
-- One partition at a time, built so that readers and writers of the parent are not blocked: the table is made on
-- its own (LIKE the parent: no lock on it), given the DEFAULT partition's storage settings, the parent's statement-level
-- triggers and a comment, filled with any rows the DEFAULT partition holds for its range, then attached, which
-- takes SHARE UPDATE EXCLUSIVE on the parent (readers and writers go on) and ACCESS EXCLUSIVE on the DEFAULT
-- partition only (to check it holds no rows of the range). Callers bound the wait with lock_timeout and retry
-- (`platformdb partitions ensure` does).
CREATE FUNCTION platform.ensure_partition(p_parent regclass, p_granularity text, p_at timestamptz) RETURNS boolean
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
COMMENT ON FUNCTION platform.ensure_partition(regclass, text, timestamptz) IS 'Creates the monthly or daily range partition of a partitioned table holding p_at (built apart with indexes named <parent index>_p<period>, then attached: SHARE UPDATE EXCLUSIVE on the parent), moving in any rows the DEFAULT partition holds for it; a detached table left under its name is archived first; returns whether it created one. Idempotent.';

CREATE FUNCTION platform.ensure_partitions(
  p_parent regclass, p_granularity text, p_from timestamptz, p_to timestamptz
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval := CASE p_granularity WHEN 'month' THEN interval '1 month' ELSE interval '1 day' END;
  v_at timestamptz := p_from;
  v_created integer := 0;
BEGIN
  IF NOT (isfinite(p_from) AND isfinite(p_to)) OR p_to - p_from > interval '1000 days' THEN
    RAISE EXCEPTION 'partitions are made for a finite range of at most 1000 days, not [%, %]', p_from, p_to
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  WHILE date_trunc(p_granularity, v_at AT TIME ZONE 'UTC') <= p_to AT TIME ZONE 'UTC' LOOP
    IF platform.ensure_partition(p_parent, p_granularity, v_at) THEN
      v_created := v_created + 1;
    END IF;
    v_at := v_at + v_step;
  END LOOP;
  RETURN v_created;
END
$$;
COMMENT ON FUNCTION platform.ensure_partitions(regclass, text, timestamptz, timestamptz) IS 'Creates the missing monthly or daily range partitions of a partitioned table covering [p_from, p_to] (at most 1000 days), one platform.ensure_partition each; returns how many it created. Idempotent.';

-- Rows a service wrote far outside the window maintenance keeps partitions for would otherwise wait in the
-- DEFAULT partition for ever, and every partition attached would scan them: they move to <table>_quarantine.
CREATE FUNCTION platform.quarantine_default_rows(p_parent regclass, p_keep_from timestamptz, p_keep_until timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_schema text;
  v_table text;
  v_key text;
  v_default regclass;
  v_moved bigint;
BEGIN
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  IF to_regclass(format('%I.%I', v_schema, v_table || '_quarantine')) IS NULL THEN
    RETURN 0;
  END IF;
  SELECT a.attname INTO v_key
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = p_parent;
  SELECT c.oid::regclass INTO v_default FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I < %L OR %I >= %L RETURNING *)'
                 ' INSERT INTO %I.%I SELECT * FROM moved', v_default, v_key, p_keep_from, v_key, p_keep_until,
                 v_schema, v_table || '_quarantine');
  GET DIAGNOSTICS v_moved = ROW_COUNT;
  RETURN v_moved;
END
$$;
COMMENT ON FUNCTION platform.quarantine_default_rows(regclass, timestamptz, timestamptz) IS 'Moves the rows of a partitioned table''s DEFAULT partition whose key lies outside [p_keep_from, p_keep_until) into <table>_quarantine, when the table has one; returns how many moved.';

-- Partition indexes are named <parent's index>_p<period> or <parent's index>_default (revision 0025), so that a
-- duplicate sample or audit row names its rule (pk_metric_samples) as a stable prefix, not <partition>_pkey.
-- ensure_partition builds new partitions' indexes so named; this renames those of existing partitions (ALTER
-- INDEX ... RENAME: ACCESS EXCLUSIVE on each index renamed, for a moment).
CREATE FUNCTION platform.name_partition_indexes(p_parent regclass) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_renamed integer := 0;
BEGIN
  FOR r IN
    SELECT ci.oid::regclass AS idx, ci.relname AS name,
           pi.relname || substring(pc.relname FROM char_length(pp.relname) + 1) AS new_name
      FROM pg_inherits ih JOIN pg_class pc ON pc.oid = ih.inhrelid JOIN pg_class pp ON pp.oid = ih.inhparent
      JOIN pg_index x ON x.indrelid = pc.oid JOIN pg_class ci ON ci.oid = x.indexrelid
      JOIN pg_inherits ii ON ii.inhrelid = ci.oid JOIN pg_class pi ON pi.oid = ii.inhparent
     WHERE ih.inhparent = p_parent ORDER BY 2
  LOOP
    CONTINUE WHEN r.name = r.new_name;
    EXECUTE format('ALTER INDEX %s RENAME TO %I', r.idx, r.new_name);
    v_renamed := v_renamed + 1;
  END LOOP;
  RETURN v_renamed;
END
$$;
COMMENT ON FUNCTION platform.name_partition_indexes(regclass) IS 'Renames the indexes of a partitioned table''s partitions to <parent index>_p<period> (or _default); returns how many it renamed. Idempotent.';

-- A detached partition leaves schema platform (where services look and lint checks) for platform_archive, under
-- its name, or with a _<UTC time> suffix when the archive already holds that name (a day detached twice).
-- SET SCHEMA takes ACCESS EXCLUSIVE on the detached table only.
CREATE FUNCTION platform.archive_table(p_table regclass) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_name text := (SELECT c.relname FROM pg_class c WHERE c.oid = p_table);
BEGIN
  IF to_regclass(format('platform_archive.%I', v_name)) IS NOT NULL THEN
    v_name := v_name || to_char(clock_timestamp() AT TIME ZONE 'UTC', '"_"YYYYMMDD"T"HH24MISSUS');
    EXECUTE format('ALTER TABLE %s RENAME TO %I', p_table, v_name);
  END IF;
  EXECUTE format('ALTER TABLE %s SET SCHEMA platform_archive', p_table);
  RETURN format('platform_archive.%I', v_name);
END
$$;
COMMENT ON FUNCTION platform.archive_table(regclass) IS 'Moves a detached partition into schema platform_archive (renamed with a _<UTC time> suffix if the name is taken there); returns its new name.';

-- Retention: whole partitions whose range ends at or before p_older_than are dropped (or detached, to archive
-- them) -- never a bulk DELETE, which would lock and bloat the table.
CREATE FUNCTION platform.prune_partitions(
  p_parent regclass, p_older_than timestamptz, p_detach boolean DEFAULT false
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_name text;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS part, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent ORDER BY c.relname
  LOOP
    CONTINUE WHEN r.bound = 'DEFAULT';
    IF substring(r.bound FROM 'TO \(''([^'']+)''\)')::timestamptz <= p_older_than THEN
      v_name := r.part::text;  -- before the drop, after which the name no longer resolves
      IF p_parent = 'platform.audit_logs'::regclass THEN
        -- What retention removes is recorded with it: each lane's oldest remaining row must link to the
        -- newest one removed, so rows removed any other way are evident to `audit verify`.
        EXECUTE format(
          'UPDATE platform.audit_chain c SET pruned_through_id = p.id, pruned_through_hash = p.row_hash'
          '  FROM (SELECT DISTINCT ON (chain_lane) chain_lane, id, row_hash FROM %s ORDER BY chain_lane, id DESC) p'
          ' WHERE c.lane = p.chain_lane AND (c.pruned_through_id IS NULL OR c.pruned_through_id < p.id)', r.part);
      END IF;
      IF p_detach THEN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, r.part);
        v_name := platform.archive_table(r.part);
      ELSE
        EXECUTE format('DROP TABLE %s', r.part);
      END IF;
      RETURN NEXT v_name;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) IS 'Drops (or detaches into schema platform_archive) the range partitions of a partitioned table that end at or before p_older_than, recording for audit_logs each lane''s newest removed row in audit_chain; returns their names (the archived names when detached). Idempotent.';

CREATE FUNCTION platform.forbid_column_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_old jsonb := to_jsonb(OLD);
  v_new jsonb := to_jsonb(NEW);
  i integer;
BEGIN
  FOR i IN 0 .. TG_NARGS - 1 LOOP
    IF v_old -> TG_ARGV[i] IS DISTINCT FROM v_new -> TG_ARGV[i] THEN
      RAISE EXCEPTION '%.% cannot change once set', TG_TABLE_NAME, TG_ARGV[i]
        USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME,
              SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = TG_ARGV[i];
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.forbid_column_change() IS 'BEFORE UPDATE row trigger: raises SQLSTATE 23000 naming the trigger when one of the columns given as arguments changes.';

-- A row's creation time is the database's: on INSERT, a created_at (and updated_at) other than now() is replaced
-- by now(), unless the writer holds the table owner's privileges (migrations, restores, the seed's history),
-- which may backdate. The triggers call this only when a stamp differs from now() (their WHEN clause), so an
-- insert that leaves the defaults alone costs no function call. Keys that JSON names but the row lacks are
-- ignored by jsonb_populate_record, so one function serves tables with and without updated_at.
CREATE FUNCTION platform.set_created_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
  THEN
    NEW := jsonb_populate_record(NEW, jsonb_build_object('created_at', now(), 'updated_at', now()));
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.set_created_at() IS 'BEFORE INSERT row trigger (trg_<table>_created_at): a created_at or updated_at other than now() becomes now(), unless the writer holds the table owner''s privileges.';

-- A rejected write prints values: a NOT NULL or CHECK violation the whole row ("Failing row contains ..."), a
-- unique violation the key ("Key (lower(email))=(...)"), a foreign key violation the key, to the client and the
-- server log. On tables holding secrets, password hashes or personal data this BEFORE trigger checks the row the
-- way PostgreSQL would next, in the same order (NOT NULL, CHECK, unique, foreign key), reading the rules from the
-- catalog (so each is still written once, in the model), and raises the same SQLSTATE and name with a DETAIL that
-- shows nothing; the constraints stay as the last line. A unique key is checked under a transaction advisory lock
-- on (index, key), so a concurrent writer of the same key waits for the first to finish and, under READ COMMITTED,
-- then sees its row; under REPEATABLE READ or SERIALIZABLE, whose snapshot cannot, it gets 40001 (retry). For at
-- most 256 keys per transaction (revision 0051): a bulk insert must not fill the lock table every session shares. Primary
-- keys (ids the database makes) are left to the index. An INSERT ... ON CONFLICT is left to its arbiter (the
-- check would pre-empt DO NOTHING / DO UPDATE), so such a statement's unique violation can still show its key.
-- SECURITY DEFINER: a foreign key's referenced table (users, for created_by) may be one the writer cannot read.
-- Named trg_<table>_validated so that it runs after the BEFORE triggers that complete the row (name order).
CREATE FUNCTION platform.check_quietly() RETURNS trigger
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
