"""Create the catalog: environments, services and their dependencies

Why: Environments become a table of their own; services get an owner team, a constrained lifecycle status and
     a tier; dependencies cannot point at themselves.
Locks: Creates new objects only; takes no lock on anything that existed before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("-- squawk-ignore-file prefer-bigint-over-smallint -- services.tier is 1 to 4 by CHECK")
    op.create_table(
        "environments",
        sa.Column(
            "id",
            sa.UUID(),
            server_default=sa.text("platform.uuidv7()"),
            nullable=False,
            comment="Environment id (UUIDv7).",
        ),
        sa.Column("name", sa.Text(), nullable=False, comment="Unique kebab-case name, e.g. eu-production."),
        sa.Column(
            "is_production",
            sa.Boolean(),
            server_default="false",
            nullable=False,
            comment="Whether the environment serves production traffic.",
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
            "name ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' AND char_length(name) <= 63",
            name=op.f("ck_environments_name_format"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("name", name=op.f("uq_environments_name")),
        schema="platform",
        comment="A place services are deployed to, e.g. staging or production.",
    )
    op.create_table(
        "services",
        sa.Column(
            "id", sa.UUID(), server_default=sa.text("platform.uuidv7()"), nullable=False, comment="Service id (UUIDv7)."
        ),
        sa.Column("name", sa.Text(), nullable=False, comment="Unique kebab-case service name (DNS-label safe)."),
        sa.Column("description", sa.Text(), server_default="", nullable=False, comment="What the service does."),
        sa.Column("owner_team_id", sa.UUID(), nullable=False, comment="Team accountable for the service."),
        sa.Column(
            "status",
            sa.Text(),
            server_default="active",
            nullable=False,
            comment="Lifecycle: incubating, active, deprecated or retired.",
        ),
        sa.Column(
            "tier",
            sa.SmallInteger(),
            server_default="3",
            nullable=False,
            comment="Criticality, 1 (most critical) to 4 (least).",
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
            "name ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' AND char_length(name) <= 63", name=op.f("ck_services_name_format")
        ),
        sa.CheckConstraint(
            "status IN ('incubating', 'active', 'deprecated', 'retired')", name=op.f("ck_services_status_allowed")
        ),
        sa.CheckConstraint("char_length(description) <= 2000", name=op.f("ck_services_description_length")),
        sa.CheckConstraint("tier BETWEEN 1 AND 4", name=op.f("ck_services_tier_range")),
        sa.ForeignKeyConstraint(
            ["owner_team_id"], ["platform.teams.id"], name=op.f("fk_services_owner_team_id_teams"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("name", name=op.f("uq_services_name")),
        schema="platform",
        comment="A deployable microservice, owned by one team.",
    )
    op.create_index("ix_services_owner_team_id", "services", ["owner_team_id"], unique=False, schema="platform")
    op.create_table(
        "service_dependencies",
        sa.Column("service_id", sa.UUID(), nullable=False, comment="The dependent service."),
        sa.Column("depends_on_service_id", sa.UUID(), nullable=False, comment="The service it depends on."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "service_id <> depends_on_service_id", name=op.f("ck_service_dependencies_no_self_dependency")
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_service_id"],
            ["platform.services.id"],
            name=op.f("fk_service_dependencies_depends_on_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["platform.services.id"],
            name=op.f("fk_service_dependencies_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_id", "depends_on_service_id", name=op.f("pk_service_dependencies")),
        schema="platform",
        comment="That one service calls or otherwise needs another at run time.",
    )
    op.create_index(
        "ix_service_dependencies_depends_on_service_id",
        "service_dependencies",
        ["depends_on_service_id"],
        unique=False,
        schema="platform",
    )

    op.execute("COMMENT ON INDEX platform.ix_services_owner_team_id IS 'Serves: catalog.services_of_team; FK'")
    op.execute(
        "COMMENT ON INDEX platform.ix_service_dependencies_depends_on_service_id IS 'Serves: catalog.transitive_dependents (blast radius); FK'"
    )
    op.execute(SQL)


def downgrade() -> None:
    op.drop_table("service_dependencies", schema="platform")
    op.drop_table("services", schema="platform")
    op.drop_table("environments", schema="platform")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
SQL = r"""
-- Catalog: timestamps and audit capture.

CREATE TRIGGER trg_environments_updated_at BEFORE UPDATE ON platform.environments
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_environments_audit AFTER INSERT OR UPDATE OR DELETE ON platform.environments
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_services_updated_at BEFORE UPDATE ON platform.services
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_services_audit AFTER INSERT OR UPDATE OR DELETE ON platform.services
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_service_dependencies_immutable BEFORE UPDATE ON platform.service_dependencies
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('link rows are inserted and deleted, never updated');
CREATE TRIGGER trg_service_dependencies_audit AFTER INSERT OR UPDATE OR DELETE ON platform.service_dependencies
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('service_id,depends_on_service_id');
"""
