"""Make the audit log tamper-evident: a SHA-256 hash chain over its rows, with its head in audit_chain

Why: An audit trail nobody can quietly rewrite. Each row now carries prev_hash and row_hash =
     SHA-256(canonical row || prev_hash); audit_capture() appends under a lock on the one-row audit_chain head,
     so concurrent writers extend a single chain (the cost: audited transactions serialize on the head from their
     first audited write to commit). `platformdb audit verify` walks the chain.
Locks: ACCESS EXCLUSIVE on audit_logs and its partitions while the columns are added, existing rows hashed
       (one UPDATE per row, in id order, with the append-only trigger disabled for this one-time fill) and the
       columns set NOT NULL. Run it in a quiet window on a large audit log.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file adding-not-nullable-field, constraint-missing-not-valid -- the backfill rewrites every row here anyway"
    )
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False, comment="Always true: one row."),
        sa.Column(
            "last_hash",
            sa.LargeBinary(),
            nullable=False,
            comment="row_hash of the newest audit row; verify compares the chain's end with it.",
        ),
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
        sa.CheckConstraint("id", name=op.f("ck_audit_chain_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
        schema="platform",
        comment="The head of the audit hash chain: one row, locked by each audited transaction while it appends.",
    )
    op.add_column(
        "audit_logs",
        sa.Column(
            "prev_hash",
            sa.LargeBinary(),
            nullable=True,
            comment="row_hash of the previous row of the chain (32 zero bytes for the first).",
        ),
        schema="platform",
    )
    op.add_column(
        "audit_logs",
        sa.Column(
            "row_hash",
            sa.LargeBinary(),
            nullable=True,
            comment="SHA-256 over this row's canonical form and prev_hash (platform.audit_row_hash): "
            "changing, removing, inserting or reordering rows breaks the chain.",
        ),
        schema="platform",
    )
    op.execute(ROW_HASH)
    op.execute(BACKFILL)
    op.alter_column("audit_logs", "prev_hash", nullable=False, schema="platform")
    op.alter_column("audit_logs", "row_hash", nullable=False, schema="platform")
    op.create_check_constraint(
        op.f("ck_audit_logs_hashes_are_sha256"),
        "audit_logs",
        "octet_length(prev_hash) = 32 AND octet_length(row_hash) = 32",
        schema="platform",
    )
    op.execute(CAPTURE)
    op.execute("GRANT SELECT ON platform.audit_chain TO platform_audit_reader, platform_readonly")
    op.execute("REVOKE ALL ON FUNCTION platform.audit_row_hash(platform.audit_logs) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION platform.audit_row_hash(platform.audit_logs) TO platform_audit_reader")


def downgrade() -> None:
    op.execute(OLD_CAPTURE)
    op.execute("DROP FUNCTION platform.audit_row_hash(platform.audit_logs)")
    op.drop_constraint(op.f("ck_audit_logs_hashes_are_sha256"), "audit_logs", schema="platform")
    op.drop_column("audit_logs", "row_hash", schema="platform")
    op.drop_column("audit_logs", "prev_hash", schema="platform")
    op.drop_table("audit_chain", schema="platform")


# Frozen copies of the database-side SQL as it was when this revision landed (see models/audit.sql for today's).
ROW_HASH = r"""
CREATE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN sha256(convert_to(jsonb_build_array(
  r.id, r.created_at AT TIME ZONE 'UTC', r.transaction_id, r.actor_id, r.actor_name, r.db_role, r.action,
  r.entity_type, r.entity_id, r.request_id, r.client_addr, r.before, r.after, encode(r.prev_hash, 'hex')
)::text, 'UTF8'));
COMMENT ON FUNCTION platform.audit_row_hash(platform.audit_logs) IS 'SHA-256 of an audit row''s canonical form (a JSON array of its fields, timestamps in UTC) and its prev_hash; used by the capture trigger and by `platformdb audit verify`.';
"""

# Hash the rows already there, oldest first, and point the head at the newest. The append-only trigger is
# disabled for this one-time fill only (on the table and on each partition), inside this transaction.
BACKFILL = r"""
DO $$
DECLARE
  r platform.audit_logs;
  v_prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
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
     WHERE id = r.id AND created_at = r.created_at;
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
  INSERT INTO platform.audit_logs
    (actor_id, actor_name, db_role, action, entity_type, entity_id, request_id, client_addr, before, after)
  VALUES
    (v_actor_id, coalesce(v_actor_name, 'db:' || session_user), session_user, lower(TG_OP), TG_TABLE_NAME,
     v_entity_id, nullif(current_setting('platformdb.request_id', true), ''), v_client, v_before, v_after);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.audit_capture() IS 'AFTER row trigger of audited tables: writes one platform.audit_logs row per change. Arguments: primary-key columns (comma-separated), then columns to redact.';

"""
