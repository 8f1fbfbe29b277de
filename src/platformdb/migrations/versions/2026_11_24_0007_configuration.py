"""Create versioned configuration with secrets by reference only

Why: Every change is a new immutable version numbered without gaps under the key's row lock; a secret is
     only ever a reference (CHECK); each deployment records the configuration version in force per key.
Locks: Creates new objects only; takes no lock on anything that existed before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("-- squawk-ignore-file prefer-bigint-over-int -- a version counts the edits of one key")
    op.create_table(
        "configurations",
        sa.Column(
            "id",
            sa.UUID(),
            server_default=sa.text("platform.uuidv7()"),
            nullable=False,
            comment="Configuration slot id (UUIDv7).",
        ),
        sa.Column("service_id", sa.UUID(), nullable=False, comment="Service the key belongs to."),
        sa.Column(
            "environment_id",
            sa.UUID(),
            nullable=True,
            comment="Environment this override applies to; NULL for the service-wide default.",
        ),
        sa.Column("key", sa.Text(), nullable=False, comment="Setting name, e.g. HTTP_TIMEOUT or db.pool.size."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "key ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND char_length(key) <= 200", name=op.f("ck_configurations_key_format")
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["platform.environments.id"],
            name=op.f("fk_configurations_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["platform.services.id"],
            name=op.f("fk_configurations_service_id_services"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_configurations")),
        sa.UniqueConstraint(
            "service_id",
            "key",
            "environment_id",
            name=op.f("uq_configurations_service_id_key_environment_id"),
            postgresql_nulls_not_distinct=True,
        ),
        schema="platform",
        comment="A configuration key of a service, service-wide or overridden for one environment.",
    )
    op.create_index(
        "ix_configurations_environment_id", "configurations", ["environment_id"], unique=False, schema="platform"
    )
    op.create_table(
        "configuration_versions",
        sa.Column("configuration_id", sa.UUID(), nullable=False, comment="The key changed."),
        sa.Column(
            "version",
            sa.Integer(),
            nullable=False,
            comment="1, 2, 3... per key without gaps; assigned by trigger trg_configuration_versions_number.",
        ),
        sa.Column(
            "kind",
            sa.Text(),
            nullable=False,
            comment="plain (value holds it), secret (secret_ref points at it) or deleted (key removed).",
        ),
        sa.Column(
            "value",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="The setting as JSON (string, number, object...); only for kind plain.",
        ),
        sa.Column(
            "secret_ref",
            sa.Text(),
            nullable=True,
            comment="URI of the secret in a secret manager, e.g. vault://kv/payments/db#password; only for kind secret.",
        ),
        sa.Column("created_by", sa.UUID(), nullable=True, comment="Who made the change; NULL for automation."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "(kind = 'plain') = (value IS NOT NULL) AND (kind = 'secret') = (secret_ref IS NOT NULL) AND jsonb_typeof(value) IS DISTINCT FROM 'null'",
            name=op.f("ck_configuration_versions_value_matches_kind"),
        ),
        sa.CheckConstraint(
            "kind <> 'secret' OR value IS NULL", name=op.f("ck_configuration_versions_secret_has_no_plaintext")
        ),
        sa.CheckConstraint(
            "kind IN ('plain', 'secret', 'deleted')", name=op.f("ck_configuration_versions_kind_allowed")
        ),
        sa.CheckConstraint(
            "secret_ref ~ '^[a-z][a-z0-9+.-]*://[!-~]+$' AND char_length(secret_ref) <= 1024",
            name=op.f("ck_configuration_versions_secret_ref_format"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_configuration_versions_version_positive")),
        sa.ForeignKeyConstraint(
            ["configuration_id"],
            ["platform.configurations.id"],
            name=op.f("fk_configuration_versions_configuration_id_configurations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["platform.users.id"],
            name=op.f("fk_configuration_versions_created_by_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("configuration_id", "version", name=op.f("pk_configuration_versions")),
        schema="platform",
        comment="One immutable value of a configuration key; the highest version is in force.",
    )
    op.create_index(
        "ix_configuration_versions_created_by",
        "configuration_versions",
        ["created_by"],
        unique=False,
        schema="platform",
    )
    op.create_table(
        "deployment_configurations",
        sa.Column("deployment_id", sa.UUID(), nullable=False, comment="The deployment."),
        sa.Column("configuration_id", sa.UUID(), nullable=False, comment="A key in force."),
        sa.Column("version", sa.Integer(), nullable=False, comment="The version of that key in force."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.ForeignKeyConstraint(
            ["configuration_id", "version"],
            ["platform.configuration_versions.configuration_id", "platform.configuration_versions.version"],
            name=op.f("fk_deployment_configurations_configuration_id_version_configuration_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["platform.deployments.id"],
            name=op.f("fk_deployment_configurations_deployment_id_deployments"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("deployment_id", "configuration_id", name=op.f("pk_deployment_configurations")),
        schema="platform",
        comment="The configuration version in force for each key when a deployment was created.",
    )
    op.create_index(
        "ix_deployment_configurations_configuration_id_version",
        "deployment_configurations",
        ["configuration_id", "version"],
        unique=False,
        schema="platform",
    )

    op.execute(
        "COMMENT ON INDEX platform.ix_configurations_environment_id IS 'Serves: FK configurations.environment_id'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_configuration_versions_created_by IS 'Serves: FK configuration_versions.created_by'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_deployment_configurations_configuration_id_version IS 'Serves: FK to configuration_versions; deployments that used a version'"
    )
    op.execute(SQL)


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_deployments_capture_configuration ON platform.deployments")
    op.drop_table("deployment_configurations", schema="platform")
    op.drop_table("configuration_versions", schema="platform")
    op.drop_table("configurations", schema="platform")
    op.execute("DROP FUNCTION platform.capture_deployment_configuration()")
    op.execute("DROP FUNCTION platform.effective_configuration(uuid, uuid)")
    op.execute("DROP FUNCTION platform.number_configuration_version()")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
SQL = r"""
-- Configuration: gap-free version numbers, immutable history, effective configuration, and the
-- configuration captured at each deployment.

CREATE TRIGGER trg_configurations_immutable BEFORE UPDATE ON platform.configurations
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a configuration key is immutable; add a version instead');
CREATE TRIGGER trg_configurations_audit AFTER INSERT OR UPDATE OR DELETE ON platform.configurations
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

-- Numbers a new version max+1 while holding the key's row lock, so concurrent edits serialize, versions
-- stay contiguous and the last to commit wins. A writer may pass the version it expects to create
-- (optimistic concurrency): any other number is refused.
CREATE FUNCTION platform.number_configuration_version() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_next integer;
BEGIN
  PERFORM FROM platform.configurations c WHERE c.id = NEW.configuration_id FOR NO KEY UPDATE;
  SELECT coalesce(max(v.version), 0) + 1 INTO v_next
    FROM platform.configuration_versions v WHERE v.configuration_id = NEW.configuration_id;
  IF NEW.version IS NOT NULL AND NEW.version <> v_next THEN
    RAISE EXCEPTION 'configuration % is at version %, cannot write version %',
          NEW.configuration_id, v_next - 1, NEW.version
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
  END IF;
  NEW.version := v_next;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.number_configuration_version() IS 'BEFORE INSERT trigger of configuration_versions: assigns the next gap-free version under the key''s row lock; refuses a stale expected version (SQLSTATE 23514).';

CREATE TRIGGER trg_configuration_versions_number BEFORE INSERT ON platform.configuration_versions
  FOR EACH ROW EXECUTE FUNCTION platform.number_configuration_version();
CREATE TRIGGER trg_configuration_versions_append_only
  BEFORE UPDATE OR DELETE ON platform.configuration_versions
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('configuration versions are immutable');
CREATE TRIGGER trg_configuration_versions_audit AFTER INSERT OR UPDATE OR DELETE ON platform.configuration_versions
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('configuration_id,version', 'secret_ref');

-- For each key of the service: the environment override if it has a live (not deleted) latest version,
-- else the service-wide default's live latest version; keys whose only live versions are deleted vanish.
CREATE FUNCTION platform.effective_configuration(p_service_id uuid, p_environment_id uuid)
RETURNS TABLE (configuration_id uuid, key text, version integer, kind text, value jsonb, secret_ref text)
LANGUAGE sql STABLE AS $$
  SELECT DISTINCT ON (c.key) c.id, c.key, v.version, v.kind, v.value, v.secret_ref
    FROM platform.configurations c
    CROSS JOIN LATERAL (
      SELECT cv.version, cv.kind, cv.value, cv.secret_ref
        FROM platform.configuration_versions cv
       WHERE cv.configuration_id = c.id
       ORDER BY cv.version DESC
       LIMIT 1) v
   WHERE c.service_id = p_service_id
     AND (c.environment_id = p_environment_id OR c.environment_id IS NULL)
     AND v.kind <> 'deleted'
   ORDER BY c.key, c.environment_id NULLS LAST
$$;
COMMENT ON FUNCTION platform.effective_configuration(uuid, uuid) IS 'The configuration in force for a service in an environment: per key, the live override, else the live default.';

CREATE FUNCTION platform.capture_deployment_configuration() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO platform.deployment_configurations (deployment_id, configuration_id, version)
  SELECT NEW.id, e.configuration_id, e.version
    FROM platform.effective_configuration(NEW.service_id, NEW.environment_id) e;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.capture_deployment_configuration() IS 'AFTER INSERT trigger of deployments: records the configuration version in force for each key.';

CREATE TRIGGER trg_deployments_capture_configuration AFTER INSERT ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.capture_deployment_configuration();
CREATE TRIGGER trg_deployment_configurations_append_only
  BEFORE UPDATE OR DELETE ON platform.deployment_configurations
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('what was in force at a deployment is history');
"""
