"""Extensions: platformdb's revisions carry the branch label platformdb; audit rows name their schema; enable_audit

Why: A team extending platformdb keeps its own tables in its own schema and its own Alembic branch. Its
     revisions depend on a platformdb revision (depends_on "0027" or later), never on a down_revision, and
     `platformdb upgrade` applies both lineages to their heads. Released revisions are frozen, so the label sits
     here: Alembic gives a branch label to the labelled revision, its descendants and its ancestors back to
     the first branch or merge point, which for platformdb's linear history is every revision from 0001 on
     (platformdb@head, platformdb@base resolve; an extension that branched off with down_revision would make
     0027 a branch point and break that, which is why extensions use depends_on). An extension's table opts into
     the same audit capture with one call, platform.enable_audit(regclass[, redact]). An audit row's
     entity_type is the bare table name, ambiguous across schemas: the new audit_logs.entity_schema names the
     schema (default 'platform', which is what every earlier row is), and from hash_version 3 on row_hash
     covers it. entity_type keeps its meaning, so v0.2 readers that filter entity_type = 'deployments' work
     unchanged.
Locks: ADD COLUMN with a constant default is catalog-only on PostgreSQL 11 and later, also on a partitioned
       table: ACCESS EXCLUSIVE on audit_logs and its partitions for milliseconds, no rewrite, no scan (audited
       writes wait for this revision's commit). The functions are replaced atomically at commit. Runs before the
       code that uses it, with this release's `audit verify` (which knows hash_version 3; an older verifier
       reports version-3 rows as not matching their hash). The downgrade rehashes each lane's version-3 rows in
       the version-2 form (one UPDATE per row): on a large log, run it in a quiet window.

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = ("platformdb",)
depends_on: str | Sequence[str] | None = None

HASH_VERSION_BEFORE = "Canonical form row_hash covers: 1 (before revision 0017), 2 (also hash_version, chain_lane and claimed_client_addr)."
HASH_VERSION_AFTER = (
    "Canonical form row_hash covers: 1 (before revision 0017), 2 (also hash_version, chain_lane and "
    "claimed_client_addr), 3 (revision 0027: also entity_schema)."
)
ENTITY_TYPE_BEFORE = "Table the changed row belongs to, e.g. deployments."
ENTITY_TYPE_AFTER = "Table the changed row belongs to, e.g. deployments (its schema: entity_schema)."
ENTITY_SCHEMA = (
    "Schema of the table the changed row belongs to: platform, or an extension's schema (platform.enable_audit). "
    "Rows from before revision 0027 read platform."
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute("ALTER TABLE platform.audit_logs ADD COLUMN entity_schema text NOT NULL DEFAULT 'platform'")
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.entity_schema IS {_literal(ENTITY_SCHEMA)}")
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.entity_type IS {_literal(ENTITY_TYPE_AFTER)}")
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.hash_version IS {_literal(HASH_VERSION_AFTER)}")
    op.execute(ROW_HASH)
    op.execute(CAPTURE)
    op.execute(ENABLE_AUDIT)
    op.execute("REVOKE ALL ON FUNCTION platform.enable_audit(regclass, text[]) FROM PUBLIC")


def downgrade() -> None:
    op.execute(RESEAL_VERSION_3_ROWS)
    op.execute("DROP FUNCTION platform.enable_audit(regclass, text[])")
    op.execute(OLD_CAPTURE)
    op.execute(OLD_ROW_HASH)
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.hash_version IS {_literal(HASH_VERSION_BEFORE)}")
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.entity_type IS {_literal(ENTITY_TYPE_BEFORE)}")
    op.execute("ALTER TABLE platform.audit_logs DROP COLUMN entity_schema")


# Each lane from its first version-3 row on, rehashed as version 2 (the form without entity_schema), the
# append-only trigger disabled for this one-time fill only, inside this transaction; heads follow. An
# extension's rows keep their entity_type; which schema they came from is lost with the column.
RESEAL_VERSION_3_ROWS = r"""
DO $$
DECLARE
  r platform.audit_logs;
  v_prev bytea;
  v_lane smallint := -1;
  p regclass;
BEGIN
  FOR p IN SELECT 'platform.audit_logs'::regclass
           UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'platform.audit_logs'::regclass
  LOOP
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER trg_audit_logs_append_only', p);
  END LOOP;
  FOR r IN SELECT * FROM platform.audit_logs l
            WHERE l.id >= (SELECT min(v.id) FROM platform.audit_logs v WHERE v.hash_version = 3
                            AND v.chain_lane = l.chain_lane)
            ORDER BY chain_lane, id LOOP
    IF r.chain_lane <> v_lane THEN
      v_lane := r.chain_lane;
      v_prev := r.prev_hash;
    END IF;
    r.prev_hash := v_prev;
    r.hash_version := 2;
    r.row_hash := platform.audit_row_hash(r);
    UPDATE platform.audit_logs SET prev_hash = r.prev_hash, row_hash = r.row_hash, hash_version = 2
     WHERE id = r.id AND created_at = r.created_at;
    UPDATE platform.audit_chain SET last_hash = r.row_hash WHERE lane = r.chain_lane;
    v_prev := r.row_hash;
  END LOOP;
  FOR p IN SELECT 'platform.audit_logs'::regclass
           UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'platform.audit_logs'::regclass
  LOOP
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER trg_audit_logs_append_only', p);
  END LOOP;
END
$$;
"""

# Frozen copies of the database-side SQL as it was when this revision landed (see models/audit.sql for today's),
# and of what it replaced (for the downgrade).
ROW_HASH = r"""
CREATE OR REPLACE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea
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
"""

CAPTURE = r"""
CREATE OR REPLACE FUNCTION platform.audit_capture() RETURNS trigger
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
"""

ENABLE_AUDIT = r"""
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
"""

OLD_ROW_HASH = r"""
CREATE OR REPLACE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN sha256(convert_to(CASE r.hash_version
  WHEN 1 THEN jsonb_build_array(
    r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
    r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex'))
  ELSE jsonb_build_array(
    r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
    r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex'),
    r.hash_version, r.chain_lane, r.claimed_client_addr)
END::text, 'UTF8'));
COMMENT ON FUNCTION platform.audit_row_hash(platform.audit_logs) IS 'SHA-256 of an audit row''s canonical form (a JSON array of its fields, timestamps in UTC, and its prev_hash; from hash_version 2 on also its hash_version, chain_lane and claimed_client_addr); used by the capture trigger. `platformdb audit verify` computes the same form itself and does not call it.';
"""

OLD_CAPTURE = r"""
CREATE OR REPLACE FUNCTION platform.audit_capture() RETURNS trigger
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
  v_log.entity_type := TG_TABLE_NAME;
  v_log.entity_id := v_entity_id;
  v_log.request_id := v_request_id;
  v_log.client_addr := inet_client_addr();
  v_log.claimed_client_addr := v_claimed;
  v_log.hash_version := 2;
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
"""
