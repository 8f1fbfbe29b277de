"""Audit rows that hash their lane and keep a claimed address apart; retention recorded; settings checked up front

Why: A security review showed the owner could rewrite history unnoticed and any service could read personal data
     through an error. Rows now carry hash_version: from 2 on, row_hash also covers the row's hash_version,
     chain_lane and claimed_client_addr, so moving a lane to another number breaks its hashes. The address a
     service claims (platformdb.client_addr) goes to the new claimed_client_addr; client_addr keeps what the
     database observed (inet_client_addr()). audit_chain records, per lane, the newest row retention removed
     (pruned_through_id/_hash, written by prune_partitions in the same transaction), so a lane's oldest
     remaining row must link to it: rows removed any other way are evident. The capture function checks the
     four client settings before writing, with errors that name the setting: before, a 129-character request
     id failed a CHECK on the audit row whose DETAIL printed the row, including the email the SECURITY DEFINER
     function had looked up for a caller who may not read users. Control characters are refused in
     actor_name and request_id (log injection).
Locks: ADD COLUMN with a constant default or none is catalog-only (ACCESS EXCLUSIVE on audit_logs, its
       partitions and audit_chain for milliseconds: audited writes wait for this revision's commit). Each
       lane's prune anchor is read with one probe of the primary key per lane, not a scan. The functions are
       replaced atomically at commit. Runs before the code that uses it (`platformdb audit verify` of this
       release checks hash_version 2 rows and the anchors; older verifiers do not know version 2).
       The downgrade rehashes the version-2 rows of each lane in the old form (one UPDATE per row): on a large
       log, run it in a quiet window.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ZERO_HASH = r"'\x0000000000000000000000000000000000000000000000000000000000000000'"
CLIENT_ADDR_BEFORE = "End-user address (setting platformdb.client_addr), else the database client's address."
CLIENT_ADDR_AFTER = (
    "Address of the database client that wrote (inet_client_addr(); NULL over a Unix socket). Until hash_version 2"
    " (revision 0017): the claimed end-user address when one was set."
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file prefer-bigint-over-smallint -- hash_version numbers canonical forms (1, 2, ...), two bytes"
        " a row on the largest table"
    )
    op.add_column(
        "audit_logs",
        sa.Column(
            "hash_version",
            sa.SmallInteger(),
            server_default=sa.text("1"),
            nullable=False,
            comment="Canonical form row_hash covers: 1 (before revision 0017), 2 (also hash_version, chain_lane and "
            "claimed_client_addr).",
        ),
        schema="platform",
    )
    op.add_column(
        "audit_logs",
        sa.Column(
            "claimed_client_addr",
            postgresql.INET(),
            nullable=True,
            comment="End-user address the writing service claimed (setting platformdb.client_addr), kept apart from "
            "client_addr: a claim, not an observation.",
        ),
        schema="platform",
    )
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.client_addr IS {_literal(CLIENT_ADDR_AFTER)}")
    op.add_column(
        "audit_chain",
        sa.Column(
            "pruned_through_id",
            sa.BigInteger(),
            nullable=True,
            comment="Id of the lane's newest row that retention removed (partitions prune); NULL if none or unknown.",
        ),
        schema="platform",
    )
    op.add_column(
        "audit_chain",
        sa.Column(
            "pruned_through_hash",
            sa.LargeBinary(),
            nullable=True,
            comment="row_hash the lane's oldest remaining row must link to: of the newest row retention removed "
            "(written by prune in the same transaction), or as found at revision 0017; NULL: the lane starts at zero.",
        ),
        schema="platform",
    )
    # Retention before this revision left no record: each lane's oldest row as found now is its anchor.
    op.execute(
        f"""UPDATE platform.audit_chain c SET pruned_through_hash = f.prev_hash
              FROM generate_series(0, 15) AS k,
                   LATERAL (SELECT l.prev_hash FROM platform.audit_logs l WHERE l.chain_lane = k
                             ORDER BY l.id LIMIT 1) f
             WHERE c.lane = k AND f.prev_hash <> {ZERO_HASH}"""
    )
    op.execute(ROW_HASH)
    op.execute(CAPTURE)
    op.execute(PRUNE)


def downgrade() -> None:
    op.execute(OLD_ROW_HASH_AS_V1)
    op.execute(RESEAL_VERSION_2_ROWS)
    op.execute(OLD_CAPTURE)
    op.execute(OLD_PRUNE)
    op.execute(OLD_ROW_HASH)
    op.drop_column("audit_chain", "pruned_through_hash", schema="platform")
    op.drop_column("audit_chain", "pruned_through_id", schema="platform")
    op.execute(f"COMMENT ON COLUMN platform.audit_logs.client_addr IS {_literal(CLIENT_ADDR_BEFORE)}")
    op.drop_column("audit_logs", "claimed_client_addr", schema="platform")
    op.drop_column("audit_logs", "hash_version", schema="platform")


# The old form, for the rehash below (the row type still has hash_version; the form ignores it).
OLD_ROW_HASH_AS_V1 = r"""
CREATE OR REPLACE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN sha256(convert_to(jsonb_build_array(
  r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
  r.entity_type, r.entity_id, r.request_id, coalesce(r.claimed_client_addr, r.client_addr), r.before, r.after,
  encode(r.prev_hash, 'hex')
)::text, 'UTF8'));
"""

# Each lane from its first version-2 row on, rehashed in the old form (the claimed address back in client_addr),
# the append-only trigger disabled for this one-time fill only, inside this transaction; heads follow.
RESEAL_VERSION_2_ROWS = r"""
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
            WHERE l.id >= (SELECT min(v.id) FROM platform.audit_logs v WHERE v.hash_version = 2
                            AND v.chain_lane = l.chain_lane)
            ORDER BY chain_lane, id LOOP
    IF r.chain_lane <> v_lane THEN
      v_lane := r.chain_lane;
      v_prev := r.prev_hash;
    END IF;
    r.prev_hash := v_prev;
    r.client_addr := coalesce(r.claimed_client_addr, r.client_addr);
    r.row_hash := platform.audit_row_hash(r);
    UPDATE platform.audit_logs SET prev_hash = r.prev_hash, row_hash = r.row_hash, client_addr = r.client_addr
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

# Frozen copies of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
ROW_HASH = r"""
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
"""

PRUNE = r"""
CREATE OR REPLACE FUNCTION platform.prune_partitions(
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
      ELSE
        EXECUTE format('DROP TABLE %s', r.part);
      END IF;
      RETURN NEXT v_name;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) IS 'Drops (or detaches) the range partitions of a partitioned table that end at or before p_older_than, recording for audit_logs each lane''s newest removed row in audit_chain; returns their names. Idempotent.';
"""

# As revisions 0010, 0014 and 0011 left them, restored by the downgrade.
OLD_ROW_HASH = r"""
CREATE OR REPLACE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN sha256(convert_to(jsonb_build_array(
  r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
  r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex')
)::text, 'UTF8'));
COMMENT ON FUNCTION platform.audit_row_hash(platform.audit_logs) IS 'SHA-256 of an audit row''s canonical form (a JSON array of its fields, timestamps in UTC) and its prev_hash; used by the capture trigger and by `platformdb audit verify`.';
"""

OLD_CAPTURE = r"""
CREATE OR REPLACE FUNCTION platform.audit_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_before jsonb;
  v_after jsonb;
  v_row jsonb;
  v_actor_id uuid := nullif(current_setting('platformdb.actor_id', true), '')::uuid;
  v_actor_name text := nullif(current_setting('platformdb.actor_name', true), '');
  v_client inet := coalesce(nullif(current_setting('platformdb.client_addr', true), '')::inet,
                            inet_client_addr());
  v_entity_id text;
  v_log platform.audit_logs;
  v_hint text;
  v_start integer;
  v_waited integer;
  i integer;
BEGIN
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
  v_log.request_id := nullif(current_setting('platformdb.request_id', true), '');
  v_log.client_addr := v_client;
  v_log.before := v_before;
  v_log.after := v_after;
  v_log.row_hash := platform.audit_row_hash(v_log);
  INSERT INTO platform.audit_logs OVERRIDING SYSTEM VALUE SELECT v_log.*;
  UPDATE platform.audit_chain SET last_hash = v_log.row_hash, holder_txid = txid_current(), updated_at = now()
   WHERE lane = v_log.chain_lane;
  RETURN NULL;
END
$$;
"""

OLD_PRUNE = r"""
-- Retention: whole partitions whose range ends at or before p_older_than are dropped (or detached, to archive
-- them) -- never a bulk DELETE, which would lock and bloat the table.
CREATE OR REPLACE FUNCTION platform.prune_partitions(
  p_parent regclass, p_older_than timestamptz, p_detach boolean DEFAULT false
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS part, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent ORDER BY c.relname
  LOOP
    CONTINUE WHEN r.bound = 'DEFAULT';
    IF substring(r.bound FROM 'TO \(''([^'']+)''\)')::timestamptz <= p_older_than THEN
      IF p_detach THEN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, r.part);
      ELSE
        EXECUTE format('DROP TABLE %s', r.part);
      END IF;
      RETURN NEXT r.part::text;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) IS 'Drops (or detaches) the range partitions of a partitioned table that end at or before p_older_than; returns their names. Idempotent.';
"""
