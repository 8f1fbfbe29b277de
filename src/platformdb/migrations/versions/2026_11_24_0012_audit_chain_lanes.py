"""Give the audit hash chain 16 lanes, so that concurrent audited transactions stop queueing on one head

Why: With one chain head, every audited transaction held the same row lock from its first audited write to
     commit: 8 writers did no more than 1 (measured: 37% of the unaudited rate) and two transactions touching
     rows in opposite order could deadlock on the head. Now audit_chain has one head per lane (0-15) and each
     audit row records its lane (audit_logs.chain_lane). A transaction's first audited row takes the first lane
     no other transaction holds (SKIP LOCKED, starting from a lane derived from its backend) and keeps it to
     commit; only with more than 16 audited transactions at once does one wait. Each lane is a chain that
     cannot fork, in id order; `platformdb audit verify` walks every lane and compares each lane's end with
     its head. Rows already logged form lane 0, whose head is the old single head: no row is rehashed.
Locks: ACCESS EXCLUSIVE on audit_logs and its partitions for a catalog-only ADD COLUMN (constant default, no
       rewrite), and on audit_chain while it is rebuilt (16 rows). Audited writes wait for the revision's
       commit. The downgrade rehashes every audit row as one chain again (one UPDATE per row): on a large log,
       run it in a quiet window.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ZERO_HASH = r"'\x0000000000000000000000000000000000000000000000000000000000000000'"


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was last changed; maintained by trigger trg_<table>_updated_at.",
        ),
    ]


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file prefer-bigint-over-smallint, ban-drop-default, ban-drop-table -- a lane number is 0 to 15"
        " by CHECK; audit rows and the 16-row audit_chain (rebuilt here) are written only by the capture trigger,"
        " replaced in the same transaction"
    )
    op.add_column(
        "audit_logs",
        sa.Column(
            "chain_lane",
            sa.SmallInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Lane of the hash chain this row extends (audit_chain.lane); within a lane, chain order is id "
            "order.",
        ),
        schema="platform",
    )
    # Rows logged so far are lane 0; from now on the capture trigger always names the lane.
    op.alter_column("audit_logs", "chain_lane", server_default=None, schema="platform")

    # The head moves to lane 0 through a temporary table: the table is rebuilt, not renamed under its readers.
    op.execute("CREATE TEMPORARY TABLE audit_head ON COMMIT DROP AS SELECT last_hash FROM platform.audit_chain")
    op.drop_table("audit_chain", schema="platform")
    op.create_table(
        "audit_chain",
        sa.Column(
            "lane",
            sa.SmallInteger(),
            autoincrement=False,
            nullable=False,
            comment="Lane number: an audited transaction takes the first lane no other holds, starting from one "
            "derived from its backend, and keeps it to commit.",
        ),
        sa.Column(
            "last_hash",
            sa.LargeBinary(),
            nullable=False,
            comment="row_hash of the lane's newest audit row; verify compares the lane's end with it.",
        ),
        *_timestamps(),
        sa.CheckConstraint("lane BETWEEN 0 AND 15", name=op.f("ck_audit_chain_lane_range")),
        sa.PrimaryKeyConstraint("lane", name=op.f("pk_audit_chain")),
        schema="platform",
        comment="The head of one lane of the audit hash chain, locked by the audited transaction appending to it.",
        postgresql_with={
            "fillfactor": "50",
            "autovacuum_vacuum_threshold": "1000",
            "autovacuum_vacuum_scale_factor": "0",
        },
    )
    op.execute(
        "INSERT INTO platform.audit_chain (lane, last_hash)"
        f" SELECT lane, CASE WHEN lane = 0 THEN (SELECT last_hash FROM audit_head) ELSE {ZERO_HASH} END"
        "   FROM generate_series(0, 15) AS lane"
    )
    op.execute("GRANT SELECT ON platform.audit_chain TO platform_audit_reader, platform_readonly")
    op.execute(CAPTURE)


def downgrade() -> None:
    op.execute(OLD_CAPTURE)
    op.drop_table("audit_chain", schema="platform")  # RESEAL_AS_ONE_CHAIN recomputes the single head
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False, comment="Always true: one row."),
        sa.Column(
            "last_hash",
            sa.LargeBinary(),
            nullable=False,
            comment="row_hash of the newest audit row; verify compares the chain's end with it.",
        ),
        *_timestamps(),
        sa.CheckConstraint("id", name=op.f("ck_audit_chain_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
        schema="platform",
        comment="The head of the audit hash chain: one row, locked by each audited transaction while it appends.",
        postgresql_with={"autovacuum_vacuum_threshold": "1000", "autovacuum_vacuum_scale_factor": "0"},
    )
    op.execute(RESEAL_AS_ONE_CHAIN)
    op.execute("GRANT SELECT ON platform.audit_chain TO platform_audit_reader, platform_readonly")
    op.drop_column("audit_logs", "chain_lane", schema="platform")


# The single chain again: every row rehashed in id order (the lanes' rows interleave), the append-only trigger
# disabled for this one-time fill only (on the table and on each partition), inside this transaction.
RESEAL_AS_ONE_CHAIN = rf"""
DO $$
DECLARE
  r platform.audit_logs;
  v_prev bytea := {ZERO_HASH};
  p regclass;
BEGIN
  FOR p IN SELECT 'platform.audit_logs'::regclass
           UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'platform.audit_logs'::regclass
  LOOP
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER trg_audit_logs_append_only', p);
  END LOOP;
  FOR r IN SELECT * FROM platform.audit_logs ORDER BY id LOOP
    r.prev_hash := v_prev;
    r.row_hash := platform.audit_row_hash(r);
    UPDATE platform.audit_logs SET prev_hash = r.prev_hash, row_hash = r.row_hash
     WHERE id = r.id AND created_at = r.created_at
       AND (prev_hash, row_hash) IS DISTINCT FROM (r.prev_hash, r.row_hash);
    v_prev := r.row_hash;
  END LOOP;
  FOR p IN SELECT 'platform.audit_logs'::regclass
           UNION ALL SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'platform.audit_logs'::regclass
  LOOP
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER trg_audit_logs_append_only', p);
  END LOOP;
  INSERT INTO platform.audit_chain (id, last_hash) VALUES (true, v_prev);
END
$$;
"""

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
  SELECT string_agg(v_row ->> k, ',' ORDER BY ord) INTO v_entity_id
    FROM unnest(string_to_array(TG_ARGV[0], ',')) WITH ORDINALITY AS pk(k, ord);
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

  -- Append to the chain: lock its head (held to commit), take the next id, hash, insert, move the head.
  SELECT c.last_hash INTO v_log.prev_hash FROM platform.audit_chain c WHERE c.id FOR UPDATE;
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
  UPDATE platform.audit_chain SET last_hash = v_log.row_hash, updated_at = now() WHERE id;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.audit_capture() IS 'AFTER row trigger of audited tables: appends one hash-chained platform.audit_logs row per change. Arguments: primary-key columns (comma-separated), then columns to redact.';
"""
