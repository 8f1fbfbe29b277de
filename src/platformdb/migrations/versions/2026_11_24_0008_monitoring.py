"""Create monitoring: metric definitions, series, and daily-partitioned samples

Why: Samples are the volume table: keyed by (series_id, sampled_at) with no surrogate, partitioned by day so
     retention drops partitions; series carry a compact bigint id.
Locks: Creates new objects only; takes no lock on anything that existed before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("-- squawk-ignore-file prefer-bigint-over-int -- metric definitions number in the thousands")
    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), sa.Identity(always=True), nullable=False, comment="Metric id (identity)."),
        sa.Column("name", sa.Text(), nullable=False, comment="Unique Prometheus-style name, e.g. http_requests_total."),
        sa.Column("unit", sa.Text(), nullable=False, comment="Unit of the values, e.g. seconds, bytes, requests."),
        sa.Column("kind", sa.Text(), nullable=False, comment="counter (monotonic) or gauge (point in time)."),
        sa.Column("description", sa.Text(), server_default="", nullable=False, comment="What the metric measures."),
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
        sa.CheckConstraint("kind IN ('counter', 'gauge')", name=op.f("ck_metrics_kind_allowed")),
        sa.CheckConstraint(
            "name ~ '^[a-zA-Z_:][a-zA-Z0-9_:]*$' AND char_length(name) <= 200", name=op.f("ck_metrics_name_format")
        ),
        sa.CheckConstraint(
            "unit ~ '^[a-z][a-z0-9_/]*$' AND char_length(unit) <= 32", name=op.f("ck_metrics_unit_format")
        ),
        sa.CheckConstraint("char_length(description) <= 1000", name=op.f("ck_metrics_description_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics")),
        sa.UniqueConstraint("name", name=op.f("uq_metrics_name")),
        schema="platform",
        comment="A metric definition: name, unit and kind.",
    )
    op.create_table(
        "metric_series",
        sa.Column(
            "id",
            sa.BigInteger(),
            sa.Identity(always=True),
            nullable=False,
            comment="Series id (identity): the compact key samples carry.",
        ),
        sa.Column("metric_id", sa.Integer(), nullable=False, comment="What is measured."),
        sa.Column("service_id", sa.UUID(), nullable=False, comment="Service measured."),
        sa.Column("environment_id", sa.UUID(), nullable=False, comment="Environment measured in."),
        sa.Column(
            "labels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment='Further dimensions, e.g. {"route": "/login"}.',
        ),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.CheckConstraint(
            "jsonb_typeof(labels) = 'object' AND octet_length(labels::text) <= 1024",
            name=op.f("ck_metric_series_labels_object"),
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["platform.environments.id"],
            name=op.f("fk_metric_series_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"], ["platform.metrics.id"], name=op.f("fk_metric_series_metric_id_metrics"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["platform.services.id"],
            name=op.f("fk_metric_series_service_id_services"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_series")),
        sa.UniqueConstraint(
            "service_id",
            "environment_id",
            "metric_id",
            "labels",
            name=op.f("uq_metric_series_service_id_environment_id_metric_id_labels"),
        ),
        schema="platform",
        comment="One time series: a metric measured for a service in an environment with a label set.",
    )
    op.create_index(
        "ix_metric_series_environment_id", "metric_series", ["environment_id"], unique=False, schema="platform"
    )
    op.create_index("ix_metric_series_metric_id", "metric_series", ["metric_id"], unique=False, schema="platform")
    op.create_table(
        "metric_samples",
        sa.Column("series_id", sa.BigInteger(), nullable=False, comment="The series observed."),
        sa.Column(
            "sampled_at",
            postgresql.TIMESTAMP(timezone=True),
            nullable=False,
            comment="When the value was observed; the partition key.",
        ),
        sa.Column("value", sa.Double(), nullable=False, comment="The observed value."),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["platform.metric_series.id"],
            name=op.f("fk_metric_samples_series_id_metric_series"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("series_id", "sampled_at", name=op.f("pk_metric_samples")),
        schema="platform",
        comment="One observed value of a series at a point in time.",
        postgresql_partition_by="RANGE (sampled_at)",
    )

    op.execute("COMMENT ON INDEX platform.ix_metric_series_environment_id IS 'Serves: FK metric_series.environment_id'")
    op.execute("COMMENT ON INDEX platform.ix_metric_series_metric_id IS 'Serves: FK metric_series.metric_id'")
    op.execute(SQL)


def downgrade() -> None:
    op.drop_table("metric_samples", schema="platform")
    op.drop_table("metric_series", schema="platform")
    op.drop_table("metrics", schema="platform")


# Frozen copy of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
SQL = r"""
-- Monitoring: timestamps, audit of metric definitions, and the sample partitions.

CREATE TRIGGER trg_metrics_updated_at BEFORE UPDATE ON platform.metrics
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_metrics_audit AFTER INSERT OR UPDATE OR DELETE ON platform.metrics
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_metric_series_immutable BEFORE UPDATE ON platform.metric_series
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a series is identified by its metric, service, environment and labels');

CREATE TABLE platform.metric_samples_default PARTITION OF platform.metric_samples DEFAULT;
COMMENT ON TABLE platform.metric_samples_default IS 'Catch-all partition: holds samples whose day has no partition yet, so ingest never fails for want of one.';
SELECT platform.ensure_partitions('platform.metric_samples', 'day', now(), now() + interval '7 days');
"""
