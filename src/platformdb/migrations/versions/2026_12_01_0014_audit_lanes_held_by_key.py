"""Audit lanes cannot be chosen, hoarded or waited on by a client; a watchdog ends stalled sessions

Why: A security review showed that one connection of the weakest role could stop every audited write: the
     capture trigger took its lane from the client-settable platformdb.audit_lane, so a transaction could lock
     all 16 lanes and stay idle; two transactions could deadlock by taking lanes in opposite order; and with all
     lanes busy a writer queued on one fixed lane however many freed up. Now audit_chain.holder_txid records the
     transaction that last moved each head, so a transaction finds the one lane it holds by that key and can
     never hold two; the setting is only a hint checked against it. A first row takes a free lane with one SKIP
     LOCKED probe by key per lane and, when all are held, polls for any that frees (at most min(lock_timeout,
     10 s), then 55P03), never queueing behind a single holder. Every lane lookup reads by key, so dead versions
     of other lanes' heads (piling up under an old snapshot) are not read. platform.end_stalled_sessions(), run
     by the owner from cron (`platformdb watchdog`), ends the sessions that hold a lane or a lock on a platform
     table and sit idle in transaction, or in one transaction, too long.
Locks: ACCESS EXCLUSIVE on audit_chain (16 rows) for the catalog-only ADD COLUMN and the index build: audited
       writes wait for this revision's commit (milliseconds). CREATE OR REPLACE FUNCTION swaps the trigger
       function atomically at commit. Runs before the code that uses it (nothing in the services changes: the
       setting they never had to set is still accepted as a hint).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file require-concurrent-index-creation -- audit_chain has 16 rows; its lock is taken for"
        " milliseconds either way, and the capture function that reads the index is replaced in the same transaction"
    )
    op.add_column(
        "audit_chain",
        sa.Column(
            "holder_txid",
            sa.BigInteger(),
            nullable=True,
            comment="txid_current() of the transaction that last appended to the lane: while it is open it holds the "
            "lane, found by this key (never by a client setting). NULL before the lane's first append.",
        ),
        schema="platform",
    )
    op.create_index("ix_audit_chain_holder_txid", "audit_chain", ["holder_txid"], schema="platform")
    op.execute(
        "COMMENT ON INDEX platform.ix_audit_chain_holder_txid IS"
        " 'Serves: rule: an audited transaction appends to the one lane it holds'"
    )
    op.execute(CAPTURE)
    op.execute(WATCHDOG)
    op.execute("REVOKE ALL ON FUNCTION platform.end_stalled_sessions(interval, interval) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION platform.end_stalled_sessions(interval, interval)")
    op.execute(OLD_CAPTURE)
    op.drop_index("ix_audit_chain_holder_txid", table_name="audit_chain", schema="platform")
    op.drop_column("audit_chain", "holder_txid", schema="platform")


# Frozen copies of the database-side SQL as it was when this revision landed (see models/audit.sql for today's).
CAPTURE = r"""
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

WATCHDOG = r"""
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
"""

# The capture function of revision 0012, restored by the downgrade.
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
  -- The transaction's first audited row takes the first lane nobody holds, starting from one derived from the
  -- backend (so concurrent writers spread out), and remembers it for the rest of the transaction. When all
  -- lanes are held, it waits for its own.
  v_log.chain_lane := nullif(current_setting('platformdb.audit_lane', true), '')::smallint;
  IF v_log.chain_lane IS NULL THEN
    SELECT c.lane, c.last_hash INTO v_log.chain_lane, v_log.prev_hash FROM platform.audit_chain c
     ORDER BY (c.lane - pg_backend_pid() % 16 + 16) % 16
     LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      v_log.chain_lane := pg_backend_pid() % 16;
    END IF;
    PERFORM set_config('platformdb.audit_lane', v_log.chain_lane::text, true);
  END IF;
  IF v_log.prev_hash IS NULL THEN
    SELECT c.last_hash INTO STRICT v_log.prev_hash FROM platform.audit_chain c WHERE c.lane = v_log.chain_lane
       FOR UPDATE;
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
  UPDATE platform.audit_chain SET last_hash = v_log.row_hash, updated_at = now() WHERE lane = v_log.chain_lane;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.audit_capture() IS 'AFTER row trigger of audited tables: appends one hash-chained platform.audit_logs row per change, to one lane of the chain per transaction. Arguments: primary-key columns (comma-separated), then columns to redact.';
"""
