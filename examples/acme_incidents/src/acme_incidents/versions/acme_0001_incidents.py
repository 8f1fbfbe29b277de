"""acme: schema acme and its incidents table, audited like platformdb's own

Why: The Acme team records incidents against platformdb's services and deployments without forking it. The
     extension's revisions are their own Alembic branch (label acme, starting from nothing) that depends on
     platformdb's revision 0027, which brings platform.enable_audit().
Locks: New objects only; the foreign keys take SHARE ROW EXCLUSIVE on platform.services and platform.deployments
       for milliseconds (writes to them wait for the commit). Runs before the code that uses it.

Revision ID: acme_0001
Revises:
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "acme_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("acme",)
depends_on: str | Sequence[str] | None = "0027"


def upgrade() -> None:
    op.execute(
        """
CREATE SCHEMA acme;
COMMENT ON SCHEMA acme IS 'The Acme team''s extension of platformdb (sample: examples/acme_incidents).';
CREATE TABLE acme.incidents (
  id uuid NOT NULL DEFAULT platform.uuidv7(),
  service_id uuid NOT NULL,
  deployment_id uuid,
  severity smallint NOT NULL,
  title text NOT NULL,
  resolved_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pk_incidents PRIMARY KEY (id),
  CONSTRAINT fk_incidents_service_id_services FOREIGN KEY (service_id)
    REFERENCES platform.services (id) ON DELETE RESTRICT,
  CONSTRAINT fk_incidents_deployment_id_deployments FOREIGN KEY (deployment_id)
    REFERENCES platform.deployments (id) ON DELETE RESTRICT,
  CONSTRAINT ck_incidents_severity_range CHECK (severity BETWEEN 1 AND 4),
  CONSTRAINT ck_incidents_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
  CONSTRAINT ck_incidents_resolved_after_created CHECK (resolved_at IS NULL OR resolved_at >= created_at)
);
CREATE INDEX ix_incidents_service_id_created_at ON acme.incidents (service_id, created_at);
CREATE INDEX ix_incidents_deployment_id ON acme.incidents (deployment_id);
COMMENT ON TABLE acme.incidents IS 'Something that went wrong with a service, perhaps caused by a deployment.';
COMMENT ON COLUMN acme.incidents.id IS 'Incident id.';
COMMENT ON COLUMN acme.incidents.service_id IS 'The service affected (platform.services).';
COMMENT ON COLUMN acme.incidents.deployment_id IS 'The deployment suspected of causing it (platform.deployments), if any.';
COMMENT ON COLUMN acme.incidents.severity IS '1 (critical) to 4 (minor).';
COMMENT ON COLUMN acme.incidents.title IS 'One line saying what is wrong.';
COMMENT ON COLUMN acme.incidents.resolved_at IS 'When it was resolved; NULL while open.';
COMMENT ON COLUMN acme.incidents.created_at IS 'When the incident was opened.';
COMMENT ON COLUMN acme.incidents.updated_at IS 'When the row was last changed (trg_incidents_updated_at).';
CREATE TRIGGER trg_incidents_updated_at BEFORE UPDATE ON acme.incidents
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
-- The one documented call: the same capture trigger as platformdb's tables (trg_incidents_audit) and a guard
-- against TRUNCATE, which no row trigger sees (trg_incidents_no_truncate).
SELECT platform.enable_audit('acme.incidents');
GRANT USAGE ON SCHEMA acme TO platform_delivery, platform_readonly;
GRANT SELECT, INSERT, UPDATE ON acme.incidents TO platform_delivery;
GRANT SELECT ON acme.incidents TO platform_readonly;
"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE acme.incidents")
    op.execute("DROP SCHEMA acme")
