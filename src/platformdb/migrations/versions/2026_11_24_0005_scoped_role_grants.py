"""Create role grants, optionally scoped to a service and/or an environment

Why: Grants need both identity (users, roles) and catalog (services, environments), so they come after both.
     UNIQUE NULLS NOT DISTINCT keeps one global grant per user and role even though its scopes are NULL.
Locks: Creates new objects only; takes no lock on anything that existed before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "role_grants",
        sa.Column(
            "id", sa.UUID(), server_default=sa.text("platform.uuidv7()"), nullable=False, comment="Grant id (UUIDv7)."
        ),
        sa.Column("user_id", sa.UUID(), nullable=False, comment="The user who holds the role."),
        sa.Column("role_id", sa.UUID(), nullable=False, comment="The role granted."),
        sa.Column(
            "service_id", sa.UUID(), nullable=True, comment="Service the grant is limited to; NULL means every service."
        ),
        sa.Column(
            "environment_id",
            sa.UUID(),
            nullable=True,
            comment="Environment the grant is limited to; NULL means every environment.",
        ),
        sa.Column(
            "granted_by",
            sa.UUID(),
            nullable=True,
            comment="User who made the grant; NULL for grants made by provisioning.",
        ),
        sa.Column(
            "expires_at",
            postgresql.TIMESTAMP(timezone=True),
            nullable=True,
            comment="When the grant stops counting; NULL for a permanent grant.",
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
            "expires_at IS NULL OR expires_at > created_at", name=op.f("ck_role_grants_expires_after_created")
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["platform.environments.id"],
            name=op.f("fk_role_grants_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["granted_by"], ["platform.users.id"], name=op.f("fk_role_grants_granted_by_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["platform.roles.id"], name=op.f("fk_role_grants_role_id_roles"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["platform.services.id"],
            name=op.f("fk_role_grants_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["platform.users.id"], name=op.f("fk_role_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_grants")),
        sa.UniqueConstraint(
            "user_id",
            "role_id",
            "service_id",
            "environment_id",
            name=op.f("uq_role_grants_user_id_role_id_service_id_environment_id"),
            postgresql_nulls_not_distinct=True,
        ),
        schema="platform",
        comment="A role held by a user: globally, or scoped to a service and/or an environment.",
    )
    op.create_index(
        "ix_role_grants_environment_id",
        "role_grants",
        ["environment_id"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("environment_id IS NOT NULL"),
    )
    op.create_index("ix_role_grants_granted_by", "role_grants", ["granted_by"], unique=False, schema="platform")
    op.create_index("ix_role_grants_role_id", "role_grants", ["role_id"], unique=False, schema="platform")
    op.create_index(
        "ix_role_grants_service_id",
        "role_grants",
        ["service_id"],
        unique=False,
        schema="platform",
        postgresql_where=sa.text("service_id IS NOT NULL"),
    )

    op.execute("COMMENT ON INDEX platform.ix_role_grants_environment_id IS 'Serves: FK role_grants.environment_id'")
    op.execute("COMMENT ON INDEX platform.ix_role_grants_granted_by IS 'Serves: FK role_grants.granted_by'")
    op.execute("COMMENT ON INDEX platform.ix_role_grants_role_id IS 'Serves: FK role_grants.role_id'")
    op.execute(
        "COMMENT ON INDEX platform.ix_role_grants_service_id IS 'Serves: FK role_grants.service_id; who may act on a service'"
    )
    op.execute(SQL)


def downgrade() -> None:
    op.drop_table("role_grants", schema="platform")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
SQL = r"""
-- Scoped grants: audit capture.
CREATE TRIGGER trg_role_grants_updated_at BEFORE UPDATE ON platform.role_grants
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_role_grants_audit AFTER INSERT OR UPDATE OR DELETE ON platform.role_grants
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');
"""
