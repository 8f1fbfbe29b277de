-- Audit capture: one row in platform.audit_logs per changed row of every audited table.

-- Tamper evidence: every row carries prev_hash (the previous row's row_hash in its lane) and row_hash = SHA-256
-- of the row's canonical form and prev_hash. The chain has AUDIT_LANES (16) lanes; audit_chain holds each lane's
-- newest row_hash and the transaction holding it. An audited transaction appends to one lane, locked until it
-- commits: lanes never fork, and up to 16 transactions append at once instead of queueing on a single head.
INSERT INTO platform.audit_chain (lane, last_hash)
SELECT lane, '\x0000000000000000000000000000000000000000000000000000000000000000' FROM generate_series(0, 15) AS lane;

CREATE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN sha256(convert_to(CASE r.hash_version
  WHEN 1 THEN jsonb_build_array(
    r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
    r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex'))
  WHEN 2 THEN jsonb_build_array(
    r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
    r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex'),
    r.hash_version, r.chain_lane, r.claimed_client_addr)
  ELSE jsonb_build_array(
    r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
    r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex'),
    r.hash_version, r.chain_lane, r.claimed_client_addr, r.entity_schema)
END::text, 'UTF8'));
COMMENT ON FUNCTION platform.audit_row_hash(platform.audit_logs) IS 'SHA-256 of an audit row''s canonical form (a JSON array of its fields, timestamps in UTC, and its prev_hash; from hash_version 2 on also its hash_version, chain_lane and claimed_client_addr, from 3 on its entity_schema); used by the capture trigger. `platformdb audit verify` computes the same form itself and does not call it.';

-- Attached to an audited table as
--   AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('<pk cols>'[, '<redacted col>'...])
-- TG_ARGV[0] lists the primary-key columns (comma-separated) that form entity_id; further arguments name
-- sensitive columns whose values are replaced by '[redacted]' in the row images.
-- SECURITY DEFINER: services write audit rows only through this function, never directly.
CREATE FUNCTION platform.audit_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_before jsonb;
  v_after jsonb;
  v_row jsonb;
  v_actor_text text := nullif(current_setting('platformdb.actor_id', true), '');
  v_actor_id uuid;
  v_actor_name text := nullif(current_setting('platformdb.actor_name', true), '');
  v_request_id text := nullif(current_setting('platformdb.request_id', true), '');
  v_claimed_text text := nullif(current_setting('platformdb.client_addr', true), '');
  v_claimed inet;
  v_entity_id text;
  v_log platform.audit_logs;
  v_hint text;
  v_start integer;
  v_waited integer;
  i integer;
BEGIN
  -- The settings come from the client: check them here, with errors that name the setting and show nothing the
  -- caller could not read (a failed CHECK on the audit row would print the whole row, looked-up email included).
  IF v_actor_text IS NOT NULL THEN
    IF v_actor_text !~* '^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$' THEN
      RAISE EXCEPTION 'platformdb.actor_id must be a UUID' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_actor_id := v_actor_text::uuid;
  END IF;
  IF v_actor_name IS NOT NULL AND (char_length(v_actor_name) > 320 OR v_actor_name ~ '[\x01-\x1f\x7f-\x9f\u2028\u2029]') THEN
    RAISE EXCEPTION 'platformdb.actor_name must be at most 320 characters, none of them a control character'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_request_id IS NOT NULL AND v_request_id !~ '^[ -~]{1,128}$' THEN
    RAISE EXCEPTION 'platformdb.request_id must be 1 to 128 printable ASCII characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_claimed_text IS NOT NULL THEN
    IF v_claimed_text !~ '^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$' THEN
      RAISE EXCEPTION 'platformdb.client_addr must be an IP address' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
      v_claimed := v_claimed_text::inet;
    EXCEPTION WHEN invalid_text_representation THEN
      RAISE EXCEPTION 'platformdb.client_addr must be an IP address' USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  IF TG_OP <> 'INSERT' THEN v_before := to_jsonb(OLD); END IF;
  IF TG_OP <> 'DELETE' THEN v_after := to_jsonb(NEW); END IF;
  -- An UPDATE that changes nothing but updated_at is not a change worth a row.
  IF TG_OP = 'UPDATE' AND v_before - 'updated_at' = v_after - 'updated_at' THEN
    RETURN NULL;
  END IF;
  v_row := coalesce(v_after, v_before);
  IF strpos(TG_ARGV[0], ',') = 0 THEN  -- a one-column key, the usual case: no query needed
    v_entity_id := v_row ->> TG_ARGV[0];
  ELSE
    SELECT string_agg(v_row ->> k, ',' ORDER BY ord) INTO v_entity_id
      FROM unnest(string_to_array(TG_ARGV[0], ',')) WITH ORDINALITY AS pk(k, ord);
  END IF;
  FOR i IN 1 .. TG_NARGS - 1 LOOP
    IF v_before ->> TG_ARGV[i] IS NOT NULL THEN
      v_before := jsonb_set(v_before, ARRAY[TG_ARGV[i]], '"[redacted]"');
    END IF;
    IF v_after ->> TG_ARGV[i] IS NOT NULL THEN
      v_after := jsonb_set(v_after, ARRAY[TG_ARGV[i]], '"[redacted]"');
    END IF;
  END LOOP;
  IF v_actor_name IS NULL AND v_actor_id IS NOT NULL THEN
    SELECT u.email INTO v_actor_name FROM platform.users u WHERE u.id = v_actor_id;
  END IF;

  -- Append to a lane of the chain: lock its head (held to commit), take the next id, hash, insert, move the head.
  -- A transaction holds at most one lane, and nothing a client sets decides which: audit_chain.holder_txid names the
  -- transaction that last moved each head, so the lane this transaction already holds is found by that. The
  -- setting platformdb.audit_lane is only a hint, checked against holder_txid. A first row takes the first lane
  -- nobody holds (SKIP LOCKED, one probe by key per lane, starting from one derived from the backend so
  -- concurrent writers spread out); when all are held it polls for whichever frees first, never queueing behind
  -- one, for at most min(lock_timeout, 10 s). Every lookup is by key (lane, or holder_txid's index), so dead
  -- versions of other lanes' heads are never read.
  v_hint := nullif(current_setting('platformdb.audit_lane', true), '');
  IF v_hint ~ '^(0|[1-9][0-9]?)$' THEN
    SELECT c.lane, c.last_hash INTO v_log.chain_lane, v_log.prev_hash FROM platform.audit_chain c
     WHERE c.lane = v_hint::smallint AND c.holder_txid = txid_current();
  END IF;
  IF v_log.chain_lane IS NULL THEN  -- no hint, or a wrong one: the lane this transaction holds, if any
    SELECT c.lane, c.last_hash INTO v_log.chain_lane, v_log.prev_hash FROM platform.audit_chain c
     WHERE c.holder_txid = txid_current();
  END IF;
  v_waited := 0;
  WHILE v_log.chain_lane IS NULL LOOP  -- take a free lane, probing each by key
    v_start := pg_backend_pid() % 16;
    FOR i IN 0 .. 15 LOOP
      SELECT c.lane, c.last_hash INTO v_log.chain_lane, v_log.prev_hash FROM platform.audit_chain c
       WHERE c.lane = (v_start + i) % 16 FOR UPDATE SKIP LOCKED;
      EXIT WHEN FOUND;
    END LOOP;
    EXIT WHEN v_log.chain_lane IS NOT NULL;
    IF v_waited >= least(10000, extract(epoch FROM
         coalesce(nullif(current_setting('lock_timeout'), '0'), '10s')::interval) * 1000) THEN
      RAISE EXCEPTION USING ERRCODE = 'lock_not_available',
        MESSAGE = 'every audit chain lane is held by another open transaction',
        HINT = 'an audited transaction holds its lane until it ends: look for sessions idle in transaction';
    END IF;
    PERFORM pg_sleep(0.005);
    v_waited := v_waited + 5;
  END LOOP;
  IF v_hint IS DISTINCT FROM v_log.chain_lane::text THEN
    PERFORM set_config('platformdb.audit_lane', v_log.chain_lane::text, true);
  END IF;
  v_log.id := nextval(pg_get_serial_sequence('platform.audit_logs', 'id'));
  v_log.created_at := now();
  v_log.transaction_id := txid_current();
  v_log.actor_id := v_actor_id;
  v_log.actor_name := coalesce(v_actor_name, 'db:' || session_user);
  v_log.db_role := session_user;
  v_log.action := lower(TG_OP);
  v_log.entity_schema := TG_TABLE_SCHEMA;
  v_log.entity_type := TG_TABLE_NAME;
  v_log.entity_id := v_entity_id;
  v_log.request_id := v_request_id;
  v_log.client_addr := inet_client_addr();
  v_log.claimed_client_addr := v_claimed;
  v_log.hash_version := 3;
  v_log.before := v_before;
  v_log.after := v_after;
  v_log.row_hash := platform.audit_row_hash(v_log);
  INSERT INTO platform.audit_logs OVERRIDING SYSTEM VALUE SELECT v_log.*;
  UPDATE platform.audit_chain SET last_hash = v_log.row_hash, holder_txid = txid_current(), updated_at = now()
   WHERE lane = v_log.chain_lane;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.audit_capture() IS 'AFTER row trigger of audited tables: appends one hash-chained platform.audit_logs row per change, to one lane of the chain per transaction. Arguments: primary-key columns (comma-separated), then columns to redact.';

-- Audit capture for a table platformdb does not own (an extension's, in its own schema; revision 0027): the one
-- documented call. It attaches what platformdb's audited tables carry, trg_<table>_audit (the capture trigger,
-- the primary-key columns read from the catalog), and trg_<table>_no_truncate (TRUNCATE fires no row trigger, so
-- it would remove rows unrecorded). Idempotent. Owner only (no EXECUTE for PUBLIC); SECURITY DEFINER so that a
-- migrator granted EXECUTE attaches the platform's capture function as the platform's owner, who must be allowed
-- to create triggers on the table (own it, or hold TRIGGER on it).
CREATE FUNCTION platform.enable_audit(target regclass, redact text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_schema name;
  v_table name;
  v_kind "char";
  v_keys text;
  v_args text;
  v_column text;
BEGIN
  SELECT n.nspname, k.relname, k.relkind INTO v_schema, v_table, v_kind
    FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE k.oid = target;
  IF v_kind <> 'r' THEN
    RAISE EXCEPTION '% is not a plain table', target USING ERRCODE = 'wrong_object_type';
  END IF;
  IF v_schema = 'platform' THEN
    RAISE EXCEPTION '% is in schema platform, whose tables platformdb''s revisions audit', target
      USING ERRCODE = 'wrong_object_type', HINT = 'an extension''s tables belong in its own schema';
  END IF;
  SELECT string_agg(a.attname, ',' ORDER BY k.ord) INTO v_keys
    FROM pg_constraint p CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = k.attnum
   WHERE p.conrelid = target AND p.contype = 'p';
  IF v_keys IS NULL THEN
    RAISE EXCEPTION '% has no primary key: an audit row names the changed row by it', target
      USING ERRCODE = 'invalid_table_definition';
  END IF;
  IF v_schema !~ '^[a-z_][a-z0-9_]*$' OR v_table !~ '^[a-z_][a-z0-9_]*$'
     OR v_keys !~ '^[a-z_][a-z0-9_]*(,[a-z_][a-z0-9_]*)*$' THEN
    RAISE EXCEPTION 'an audited table, its schema and its key columns need lower-case names (a-z, 0-9, _): %', target
      USING ERRCODE = 'invalid_name';
  END IF;
  IF octet_length('trg_' || v_table || '_no_truncate') > 63 THEN
    RAISE EXCEPTION 'the name of % is too long for its trigger names (trg_<table>_no_truncate)', target
      USING ERRCODE = 'name_too_long';
  END IF;
  v_args := quote_literal(v_keys);
  FOREACH v_column IN ARRAY coalesce(redact, '{}') LOOP
    IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = target AND a.attname = v_column
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
      RAISE EXCEPTION 'column % of % does not exist', quote_ident(v_column), target USING ERRCODE = 'undefined_column';
    END IF;
    v_args := v_args || ', ' || quote_literal(v_column);
  END LOOP;
  EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW'
                 ' EXECUTE FUNCTION platform.audit_capture(%s)', 'trg_' || v_table || '_audit', target, v_args);
  EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT'
                 ' EXECUTE FUNCTION platform.forbid_change(%L)', 'trg_' || v_table || '_no_truncate', target,
                 'TRUNCATE would remove rows without an audit row');
END
$$;
COMMENT ON FUNCTION platform.enable_audit(regclass, text[]) IS 'Owner only: attaches platformdb''s audit capture (trg_<table>_audit) and a TRUNCATE guard (trg_<table>_no_truncate) to a table outside schema platform, e.g. an extension''s; redact names columns whose values audit rows replace by [redacted]. Idempotent.';

-- The watchdog for sessions that stall others: an audited transaction holds its lane until it ends, and any open
-- transaction holds its locks. Login settings (`platformdb roles grant-login`) bound both, but a login can SET
-- its own timeouts; this owner-run function (cron: `platformdb watchdog`) ends what they did not. It needs the
-- owner to be a superuser or a member of pg_signal_backend, and never ends a superuser's session or the owner's.
CREATE FUNCTION platform.end_stalled_sessions(max_idle interval, max_transaction interval)
RETURNS TABLE (pid integer, login text, lane smallint, state text, transaction_age interval)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH holders AS (
    SELECT c.lane, c.holder_txid FROM platform.audit_chain c WHERE c.holder_txid IS NOT NULL
  ), stalled AS (
    SELECT a.pid, a.usename::text AS login, h.lane, a.state, now() - a.xact_start AS transaction_age
      FROM pg_stat_activity a
      LEFT JOIN holders h ON h.holder_txid % 4294967296 = a.backend_xid::text::bigint
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
       AND a.usename <> current_user
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid)
       AND ((a.state LIKE 'idle in transaction%' AND now() - a.state_change > max_idle)
            OR now() - a.xact_start > max_transaction)
       AND (h.lane IS NOT NULL OR EXISTS (
             SELECT FROM pg_locks l JOIN pg_class k ON k.oid = l.relation
              WHERE l.pid = a.pid AND k.relnamespace = 'platform'::regnamespace))
  )
  SELECT s.pid, s.login, s.lane, s.state, s.transaction_age FROM stalled s WHERE pg_terminate_backend(s.pid)
$$;
COMMENT ON FUNCTION platform.end_stalled_sessions(interval, interval) IS 'Watchdog (owner only): ends the sessions of this database that hold an audit lane or a lock on a platform table and have been idle in transaction longer than max_idle, or in one transaction longer than max_transaction; returns what it ended.';

CREATE TRIGGER trg_audit_logs_append_only
  BEFORE UPDATE OR DELETE ON platform.audit_logs
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('audit_logs is append-only');
CREATE TRIGGER trg_audit_logs_no_truncate
  BEFORE TRUNCATE ON platform.audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION platform.forbid_change('audit_logs is append-only');

CREATE TABLE platform.audit_logs_default PARTITION OF platform.audit_logs DEFAULT;
SELECT platform.name_partition_indexes('platform.audit_logs');  -- pk_audit_logs_default, not audit_logs_default_pkey
CREATE TRIGGER trg_audit_logs_no_truncate BEFORE TRUNCATE ON platform.audit_logs_default
  FOR EACH STATEMENT EXECUTE FUNCTION platform.forbid_change('audit_logs is append-only');
-- Append-only and time-ordered: vacuum by inserts (keeps the visibility map fresh for index-only scans and
-- spreads freezing), analyze often (the current partition grows from empty). Every new partition copies these.
ALTER TABLE platform.audit_logs_default SET (autovacuum_vacuum_insert_threshold = 100000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_analyze_scale_factor = 0.05);
COMMENT ON TABLE platform.audit_logs_default IS 'Catch-all partition: holds rows whose month has no partition yet, so an audited write never fails for want of one.';
SELECT platform.ensure_partitions('platform.audit_logs', 'month', now(), now() + interval '2 months');

-- The chain's lanes are fixed (revision 0020): an UPDATE may move a lane's head, never its number or creation
-- time (no trg_audit_chain_updated_at guards created_at here, so this trigger does).
CREATE TRIGGER trg_audit_chain_keys_immutable BEFORE UPDATE ON platform.audit_chain
  FOR EACH ROW WHEN ((OLD.lane, OLD.created_at) IS DISTINCT FROM (NEW.lane, NEW.created_at))
  EXECUTE FUNCTION platform.forbid_column_change('lane', 'created_at');
