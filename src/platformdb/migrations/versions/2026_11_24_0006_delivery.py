"""Create delivery: releases, deployments, their state machine and status history

Why: Deployments name their release by (service_id, version), a foreign key, so nothing is stored twice.
     Statuses move only along deployment_status_transitions (trigger), at most one deployment per service
     and environment is active (partial unique index), and every status entered is logged append-only.
Locks: Creates new objects only; takes no lock on anything that existed before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column(
            "id", sa.UUID(), server_default=sa.text("platform.uuidv7()"), nullable=False, comment="Release id (UUIDv7)."
        ),
        sa.Column("service_id", sa.UUID(), nullable=False, comment="The service this is a release of."),
        sa.Column(
            "version", sa.Text(), nullable=False, comment="Semantic version (semver.org 2.0), unique per service."
        ),
        sa.Column(
            "commit_sha", sa.Text(), nullable=False, comment="Git commit the release was built from (SHA-1 or SHA-256)."
        ),
        sa.Column(
            "artifact_digest",
            sa.Text(),
            nullable=False,
            comment="Content digest of the built artifact: sha256:<64 hex>.",
        ),
        sa.Column("created_by", sa.UUID(), nullable=True, comment="Who registered the release; NULL for CI systems."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "artifact_digest ~ '^sha256:[0-9a-f]{64}$'", name=op.f("ck_releases_artifact_digest_format")
        ),
        sa.CheckConstraint("commit_sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'", name=op.f("ck_releases_commit_sha_format")),
        sa.CheckConstraint(
            "version ~ '^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$' AND char_length(version) <= 128",
            name=op.f("ck_releases_version_semver"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["platform.users.id"], name=op.f("fk_releases_created_by_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["platform.services.id"], name=op.f("fk_releases_service_id_services"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("service_id", "version", name=op.f("uq_releases_service_id_version")),
        schema="platform",
        comment="An immutable, built version of a service: what can be deployed.",
    )
    op.create_index("ix_releases_created_by", "releases", ["created_by"], unique=False, schema="platform")
    op.create_table(
        "deployments",
        sa.Column(
            "id",
            sa.UUID(),
            server_default=sa.text("platform.uuidv7()"),
            nullable=False,
            comment="Deployment id (UUIDv7).",
        ),
        sa.Column(
            "service_id", sa.UUID(), nullable=False, comment="Service deployed; with version, names the release."
        ),
        sa.Column(
            "version",
            sa.Text(),
            nullable=False,
            comment="Release version deployed; with service_id, names the release.",
        ),
        sa.Column("environment_id", sa.UUID(), nullable=False, comment="Environment deployed to."),
        sa.Column(
            "status",
            sa.Text(),
            server_default="pending",
            nullable=False,
            comment="pending, in_progress, succeeded, failed, cancelled or rolled_back; transitions are checked by trigger trg_deployments_status_transition.",
        ),
        sa.Column("deployed_by", sa.UUID(), nullable=True, comment="Who started the deployment; NULL for automation."),
        sa.Column(
            "rollback_of_id",
            sa.UUID(),
            nullable=True,
            comment="The earlier deployment (same service and environment) that this one rolls back.",
        ),
        sa.Column(
            "started_at",
            postgresql.TIMESTAMP(timezone=True),
            nullable=True,
            comment="When the rollout began (set on entering in_progress if not given).",
        ),
        sa.Column(
            "deployed_at",
            postgresql.TIMESTAMP(timezone=True),
            nullable=True,
            comment="When the rollout finished, whatever its outcome (set on leaving an active status if not given).",
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
        sa.CheckConstraint(
            "(status IN ('pending', 'cancelled')) OR started_at IS NOT NULL",
            name=op.f("ck_deployments_started_at_when_started"),
        ),
        sa.CheckConstraint(
            "(status IN ('pending', 'in_progress')) = (deployed_at IS NULL)",
            name=op.f("ck_deployments_deployed_at_when_finished"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'succeeded', 'failed', 'cancelled', 'rolled_back')",
            name=op.f("ck_deployments_status_allowed"),
        ),
        sa.CheckConstraint("deployed_at >= started_at", name=op.f("ck_deployments_deployed_after_started")),
        sa.CheckConstraint("rollback_of_id <> id", name=op.f("ck_deployments_no_self_rollback")),
        sa.ForeignKeyConstraint(
            ["deployed_by"], ["platform.users.id"], name=op.f("fk_deployments_deployed_by_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["platform.environments.id"],
            name=op.f("fk_deployments_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["rollback_of_id", "service_id", "environment_id"],
            ["platform.deployments.id", "platform.deployments.service_id", "platform.deployments.environment_id"],
            name="fk_deployments_rollback_of_id_deployments",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["service_id", "version"],
            ["platform.releases.service_id", "platform.releases.version"],
            name=op.f("fk_deployments_service_id_version_releases"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint(
            "id", "service_id", "environment_id", name=op.f("uq_deployments_id_service_id_environment_id")
        ),
        schema="platform",
        comment="One rollout of a release to an environment; its status moves only along legal transitions.",
    )
    op.create_index("ix_deployments_deployed_by", "deployments", ["deployed_by"], unique=False, schema="platform")
    op.create_index(
        "ix_deployments_environment_id_service_id_deployed_at",
        "deployments",
        ["environment_id", "service_id", "deployed_at"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_deployments_rollback_of_id_service_id_environment_id",
        "deployments",
        ["rollback_of_id", "service_id", "environment_id"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("rollback_of_id IS NOT NULL"),
    )
    op.create_index(
        "ix_deployments_service_id_created_at",
        "deployments",
        ["service_id", "created_at", "id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_deployments_service_id_version", "deployments", ["service_id", "version"], unique=False, schema="platform"
    )
    op.create_index(
        "uq_deployments_active_service_id_environment_id",
        "deployments",
        ["service_id", "environment_id"],
        unique=True,
        schema="platform",
        postgresql_where=sa.text("status IN ('pending', 'in_progress')"),
    )
    op.create_table(
        "deployment_status_transitions",
        sa.Column("from_status", sa.Text(), nullable=False, comment="Status moved from."),
        sa.Column("to_status", sa.Text(), nullable=False, comment="Status moved to."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "from_status IN ('pending', 'in_progress', 'succeeded', 'failed', 'cancelled', 'rolled_back')",
            name=op.f("ck_deployment_status_transitions_from_status_allowed"),
        ),
        sa.CheckConstraint(
            "to_status IN ('pending', 'in_progress', 'succeeded', 'failed', 'cancelled', 'rolled_back')",
            name=op.f("ck_deployment_status_transitions_to_status_allowed"),
        ),
        sa.PrimaryKeyConstraint("from_status", "to_status", name=op.f("pk_deployment_status_transitions")),
        schema="platform",
        comment="A legal move of the deployment state machine; reference data written by migrations only.",
    )
    op.create_table(
        "deployment_status_history",
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Row id; orders the transitions of one deployment.",
        ),
        sa.Column("deployment_id", sa.UUID(), nullable=False, comment="The deployment whose status changed."),
        sa.Column("from_status", sa.Text(), nullable=True, comment="Previous status; NULL for the initial pending."),
        sa.Column("to_status", sa.Text(), nullable=False, comment="Status entered."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "(from_status IS NULL) = (to_status = 'pending')",
            name=op.f("ck_deployment_status_history_initial_status_pending"),
        ),
        sa.CheckConstraint(
            "to_status IN ('pending', 'in_progress', 'succeeded', 'failed', 'cancelled', 'rolled_back')",
            name=op.f("ck_deployment_status_history_to_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["platform.deployments.id"],
            name=op.f("fk_deployment_status_history_deployment_id_deployments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["from_status", "to_status"],
            ["platform.deployment_status_transitions.from_status", "platform.deployment_status_transitions.to_status"],
            name="fk_deployment_status_history_transition",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_status_history")),
        schema="platform",
        comment="Append-only log of every status a deployment entered, written by trigger.",
    )
    op.create_index(
        "ix_deployment_status_history_deployment_id_id",
        "deployment_status_history",
        ["deployment_id", "id"],
        unique=False,
        schema="platform",
    )
    op.create_index(
        "ix_deployment_status_history_from_status_to_status",
        "deployment_status_history",
        ["from_status", "to_status"],
        unique=False,
        schema="platform",
    )

    op.execute("COMMENT ON INDEX platform.ix_releases_created_by IS 'Serves: FK releases.created_by'")
    op.execute("COMMENT ON INDEX platform.ix_deployments_deployed_by IS 'Serves: FK deployments.deployed_by'")
    op.execute(
        "COMMENT ON INDEX platform.ix_deployments_environment_id_service_id_deployed_at IS 'Serves: delivery.running_in_environment (latest success per service); FK'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_deployments_rollback_of_id_service_id_environment_id IS 'Serves: FK deployments.rollback_of_id; rollbacks of a deployment'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_deployments_service_id_created_at IS 'Serves: delivery.deployment_history (keyset pages)'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_deployments_service_id_version IS 'Serves: FK deployments -> releases; deployments of a release'"
    )
    op.execute(
        "COMMENT ON INDEX platform.uq_deployments_active_service_id_environment_id IS 'Serves: rule: at most one active deployment per service and environment; delivery.active_deployments'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_deployment_status_history_deployment_id_id IS 'Serves: delivery.deployment_timeline; FK'"
    )
    op.execute(
        "COMMENT ON INDEX platform.ix_deployment_status_history_from_status_to_status IS 'Serves: FK to deployment_status_transitions'"
    )
    op.execute(SQL)


def downgrade() -> None:
    op.drop_table("deployment_status_history", schema="platform")
    op.drop_table("deployments", schema="platform")
    op.drop_table("deployment_status_transitions", schema="platform")
    op.drop_table("releases", schema="platform")
    op.execute("DROP FUNCTION platform.record_deployment_status()")
    op.execute("DROP FUNCTION platform.deployment_status_guard()")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
SQL = r"""
-- Delivery: the deployment state machine, its status history, and immutability of releases.

INSERT INTO platform.deployment_status_transitions (from_status, to_status) VALUES
  ('pending', 'in_progress'),
  ('pending', 'cancelled'),
  ('in_progress', 'succeeded'),
  ('in_progress', 'failed'),
  ('in_progress', 'cancelled'),
  ('succeeded', 'rolled_back'),
  ('failed', 'rolled_back');

CREATE TRIGGER trg_deployment_status_transitions_immutable
  BEFORE UPDATE ON platform.deployment_status_transitions
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('the state machine changes only by migration');

CREATE TRIGGER trg_releases_immutable BEFORE UPDATE ON platform.releases
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a release is immutable; register a new version');
CREATE TRIGGER trg_releases_audit AFTER INSERT OR UPDATE OR DELETE ON platform.releases
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

-- A deployment is born pending and moves only along platform.deployment_status_transitions. Entering
-- in_progress stamps started_at, leaving the active statuses stamps deployed_at, unless the writer gave them.
-- Stamps use clock_timestamp(), not now(): a transaction that began before the rollout started may finish it.
CREATE FUNCTION platform.deployment_status_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'pending' THEN
      RAISE EXCEPTION 'a deployment starts as pending, not %', NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    PERFORM FROM platform.deployment_status_transitions t
      WHERE t.from_status = OLD.status AND t.to_status = NEW.status;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'illegal deployment status transition % -> %', OLD.status, NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  END IF;
  IF NEW.status = 'in_progress' AND NEW.started_at IS NULL THEN
    NEW.started_at := clock_timestamp();
  END IF;
  IF NEW.status NOT IN ('pending', 'in_progress') AND NEW.deployed_at IS NULL THEN
    NEW.deployed_at := clock_timestamp();
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_status_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: enforces the status state machine (SQLSTATE 23514, constraint trg_deployments_status_transition) and stamps started_at/deployed_at.';

CREATE FUNCTION platform.record_deployment_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status)
  VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.record_deployment_status() IS 'AFTER trigger of deployments: appends each status entered to deployment_status_history.';

CREATE TRIGGER trg_deployments_status_transition BEFORE INSERT OR UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_status_guard();
CREATE TRIGGER trg_deployments_immutable_columns BEFORE UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_column_change(
    'service_id', 'version', 'environment_id', 'deployed_by', 'rollback_of_id', 'created_at');
CREATE TRIGGER trg_deployments_updated_at BEFORE UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_deployments_status_history_insert AFTER INSERT ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.record_deployment_status();
CREATE TRIGGER trg_deployments_status_history_update AFTER UPDATE OF status ON platform.deployments
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION platform.record_deployment_status();
CREATE TRIGGER trg_deployments_audit AFTER INSERT OR UPDATE OR DELETE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_deployment_status_history_append_only
  BEFORE UPDATE OR DELETE ON platform.deployment_status_history
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('deployment_status_history is append-only');
"""
