"""Monitoring: metric definitions, the series of a metric per service and environment, and their samples.

Samples are the volume table: keyed by (series_id, sampled_at) with no per-sample surrogate, range-
partitioned by day so retention drops whole partitions instead of deleting rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from platformdb.models.base import Base, BigIdPk, CreatedOnly, Partitioning, Timestamps

if TYPE_CHECKING:
    from platformdb.models.catalog import Environment, Service

METRIC_KINDS = ("counter", "gauge")


class Metric(Timestamps, Base):
    """A metric definition: name, unit and kind."""

    __tablename__ = "metrics"
    __table_args__ = (
        CheckConstraint("name ~ '^[a-zA-Z_:][a-zA-Z0-9_:]*$' AND char_length(name) <= 200", name="name_format"),
        CheckConstraint("unit ~ '^[a-z][a-z0-9_/]*$' AND char_length(unit) <= 32", name="unit_format"),
        CheckConstraint(f"kind IN {METRIC_KINDS!r}", name="kind_allowed"),
        CheckConstraint("char_length(description) <= 1000", name="description_length"),
        UniqueConstraint("name"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True, comment="Metric id (identity).")
    name: Mapped[str] = mapped_column(comment="Unique Prometheus-style name, e.g. http_requests_total.")
    unit: Mapped[str] = mapped_column(comment="Unit of the values, e.g. seconds, bytes, requests.")
    kind: Mapped[str] = mapped_column(comment="counter (monotonic) or gauge (point in time).")
    description: Mapped[str] = mapped_column(server_default="", comment="What the metric measures.")


class MetricSeries(CreatedOnly, Base):
    """One time series: a metric measured for a service in an environment with a label set."""

    __volume__ = "medium"

    __tablename__ = "metric_series"
    __table_args__ = (
        UniqueConstraint("service_id", "environment_id", "metric_id", "labels"),
        CheckConstraint("jsonb_typeof(labels) = 'object' AND octet_length(labels::text) <= 1024", name="labels_object"),
        Index("ix_metric_series_metric_id", "metric_id", info={"serves": "FK metric_series.metric_id"}),
        Index(
            "ix_metric_series_environment_id",
            "environment_id",
            info={"serves": "FK metric_series.environment_id"},
        ),
    )

    id: Mapped[BigIdPk] = mapped_column(comment="Series id (identity): the compact key samples carry.")
    metric_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("metrics.id", ondelete="RESTRICT"), comment="What is measured."
    )
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="RESTRICT"), comment="Service measured."
    )
    environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), comment="Environment measured in."
    )
    labels: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), comment='Further dimensions, e.g. {"route": "/login"}.'
    )

    metric: Mapped[Metric] = relationship(lazy="raise")
    service: Mapped[Service] = relationship(lazy="raise")
    environment: Mapped[Environment] = relationship(lazy="raise")


class MetricSample(Base):
    """One observed value of a series at a point in time."""

    __volume__ = "huge"
    __partitioning__ = Partitioning("day", "sampled_at", keep_days=35)

    __tablename__ = "metric_samples"
    __table_args__ = (CheckConstraint("isfinite(sampled_at)", name="sampled_at_finite"),)

    # No foreign key (revision 0060): trg_metric_samples_series_exists (monitoring.sql) checks each statement's
    # series at once and trg_metric_series_samples_restrict keeps a series with samples, so COPY keeps batching.
    series_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, comment="The series observed; it exists (trg_metric_samples_series_exists)."
    )
    sampled_at: Mapped[dt.datetime] = mapped_column(
        primary_key=True, comment="When the value was observed; the partition key."
    )
    value: Mapped[float] = mapped_column(Double, comment="The observed value.")

    series: Mapped[MetricSeries] = relationship(
        primaryjoin="foreign(MetricSample.series_id) == MetricSeries.id", lazy="raise"
    )


class MetricSampleQuarantine(CreatedOnly, Base):
    """A sample that partition maintenance set aside: its time lay outside the window partitions are kept for."""

    __volume__ = "small"

    __tablename__ = "metric_samples_quarantine"

    series_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("metric_series.id", ondelete="RESTRICT"),
        primary_key=True,
        comment="The series observed.",
    )
    sampled_at: Mapped[dt.datetime] = mapped_column(primary_key=True, comment="When the value was observed, as sent.")
    value: Mapped[float] = mapped_column(Double, comment="The observed value.")


class PartitionRetention(Timestamps, Base):
    """How many days of a time-partitioned table partition maintenance keeps (platformdb partitions prune)."""

    # One row per partitioned table, seeded from the models' Partitioning.keep_days; changed by the owner only
    # (`platformdb partitions retention TABLE DAYS`). Data, not a command-line flag, so that one table's
    # retention is never applied to another's.

    __tablename__ = "partition_retention"
    __table_args__ = (
        CheckConstraint("table_name ~ '^[a-z][a-z0-9_]*$' AND char_length(table_name) <= 63", name="table_name_format"),
        CheckConstraint("keep_days BETWEEN 1 AND 36500", name="keep_days_range"),
    )

    table_name: Mapped[str] = mapped_column(primary_key=True, comment="The partitioned table of schema platform.")
    keep_days: Mapped[int] = mapped_column(
        comment="Partitions that end more than this many days ago are pruned; 1 to 36500."
    )
