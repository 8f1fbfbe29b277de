"""Create the append-only, monthly-partitioned audit log and its capture trigger function

Why: Audit rows are written by a trigger on every audited table, so no service can skip them; they are
     append-only (UPDATE, DELETE and TRUNCATE raise) and partitioned by month so retention drops partitions.
     A DEFAULT partition catches rows for months without a partition, so an audited write never fails.
Locks: Creates new objects only; takes no lock on anything that existed before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_logs",
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Row id from an identity sequence: increases in insertion order.",
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the change was made (transaction time); the partition key.",
        ),
        sa.Column(
            "transaction_id",
            sa.BigInteger(),
            server_default=sa.text("txid_current()"),
            nullable=False,
            comment="Database transaction that made the change.",
        ),
        sa.Column(
            "actor_id",
            sa.UUID(),
            nullable=True,
            comment="Acting user (setting platformdb.actor_id) as it was; NULL when the writer set none. Deliberately not a foreign key: audit rows outlive and never block what they describe.",
        ),
        sa.Column(
            "actor_name",
            sa.Text(),
            nullable=False,
            comment="Actor's name frozen at the time (setting platformdb.actor_name, else the user's email, else db:<role>).",
        ),
        sa.Column(
            "db_role",
            sa.Text(),
            server_default=sa.text("session_user"),
            nullable=False,
            comment="Database role the writing service logged in as.",
        ),
        sa.Column("action", sa.Text(), nullable=False, comment="insert, update or delete."),
        sa.Column(
            "entity_type", sa.Text(), nullable=False, comment="Table the changed row belongs to, e.g. deployments."
        ),
        sa.Column(
            "entity_id",
            sa.Text(),
            nullable=False,
            comment="Primary key of the changed row as text; composite keys joined with ','.",
        ),
        sa.Column(
            "request_id",
            sa.Text(),
            nullable=True,
            comment="Request or trace id of the causing request (setting platformdb.request_id).",
        ),
        sa.Column(
            "client_addr",
            postgresql.INET(),
            nullable=True,
            comment="End-user address (setting platformdb.client_addr), else the database client's address.",
        ),
        sa.Column(
            "before",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Row image before the change, sensitive columns redacted; NULL for inserts.",
        ),
        sa.Column(
            "after",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Row image after the change, sensitive columns redacted; NULL for deletes.",
        ),
        sa.CheckConstraint(
            "(action = 'insert' AND before IS NULL AND after IS NOT NULL) OR (action = 'update' AND before IS NOT NULL AND after IS NOT NULL) OR (action = 'delete' AND before IS NOT NULL AND after IS NULL)",
            name=op.f("ck_audit_logs_images_match_action"),
        ),
        sa.CheckConstraint("action IN ('insert', 'update', 'delete')", name=op.f("ck_audit_logs_action_allowed")),
        sa.CheckConstraint("entity_type ~ '^[a-z_][a-z0-9_]*$'", name=op.f("ck_audit_logs_entity_type_format")),
        sa.CheckConstraint("char_length(actor_name) BETWEEN 1 AND 320", name=op.f("ck_audit_logs_actor_name_length")),
        sa.CheckConstraint("char_length(request_id) BETWEEN 1 AND 128", name=op.f("ck_audit_logs_request_id_length")),
        sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_audit_logs")),
        schema="platform",
        comment="One captured change (insert, update or delete) of one row of an audited table.",
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(
        "ix_audit_logs_actor_id_created_at",
        "audit_logs",
        ["actor_id", "created_at"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("actor_id IS NOT NULL"),
    )
    op.create_index("ix_audit_logs_created_at", "audit_logs", ["created_at"], unique=False, schema="platform")
    op.create_index(
        "ix_audit_logs_entity_type_entity_id_created_at",
        "audit_logs",
        ["entity_type", "entity_id", "created_at"],
        unique=False,
        schema="platform",
    )

    op.execute("COMMENT ON INDEX platform.ix_audit_logs_actor_id_created_at IS 'Serves: audit.actor_activity'")
    op.execute("COMMENT ON INDEX platform.ix_audit_logs_created_at IS 'Serves: audit.latest_events'")
    op.execute(
        "COMMENT ON INDEX platform.ix_audit_logs_entity_type_entity_id_created_at IS 'Serves: audit.entity_trail'"
    )
    op.execute(SQL)


def downgrade() -> None:
    op.drop_table("audit_logs", schema="platform")
    op.execute("DROP FUNCTION platform.audit_capture()")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
SQL = r"""
-- Audit capture: one row in platform.audit_logs per changed row of every audited table.

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

CREATE TRIGGER trg_audit_logs_append_only
  BEFORE UPDATE OR DELETE ON platform.audit_logs
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('audit_logs is append-only');
CREATE TRIGGER trg_audit_logs_no_truncate
  BEFORE TRUNCATE ON platform.audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION platform.forbid_change('audit_logs is append-only');

CREATE TABLE platform.audit_logs_default PARTITION OF platform.audit_logs DEFAULT;
CREATE TRIGGER trg_audit_logs_no_truncate BEFORE TRUNCATE ON platform.audit_logs_default
  FOR EACH STATEMENT EXECUTE FUNCTION platform.forbid_change('audit_logs is append-only');
COMMENT ON TABLE platform.audit_logs_default IS 'Catch-all partition: holds rows whose month has no partition yet, so an audited write never fails for want of one.';
SELECT platform.ensure_partitions('platform.audit_logs', 'month', now(), now() + interval '2 months');
"""
