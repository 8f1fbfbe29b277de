"""The extension's tables, typed. They live in the extension's own schema and reference platformdb only through
its stable foreign-key targets (``platformdb.extensions.STABLE_REFERENCES``)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, MetaData, SmallInteger
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from platformdb.models import Deployment, Service
from platformdb.models.base import NAMING_CONVENTION, NEW_ID, TYPE_ANNOTATION_MAP, CreatedAt, UpdatedAt

SCHEMA = "acme"
metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = TYPE_ANNOTATION_MAP


class Incident(Base):
    """Something that went wrong with a service, perhaps caused by a deployment."""

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity_range"),
        CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="title_length"),
        CheckConstraint("resolved_at IS NULL OR resolved_at >= created_at", name="resolved_after_created"),
        Index("ix_incidents_service_id_created_at", "service_id", "created_at"),
        Index("ix_incidents_deployment_id", "deployment_id"),
        {"comment": "Something that went wrong with a service, perhaps caused by a deployment."},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=NEW_ID, comment="Incident id.")
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(Service.id, ondelete="RESTRICT"), comment="The service affected (platform.services)."
    )
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(Deployment.id, ondelete="RESTRICT"),
        comment="The deployment suspected of causing it (platform.deployments), if any.",
    )
    severity: Mapped[int] = mapped_column(SmallInteger, comment="1 (critical) to 4 (minor).")
    title: Mapped[str] = mapped_column(comment="One line saying what is wrong.")
    resolved_at: Mapped[dt.datetime | None] = mapped_column(comment="When it was resolved; NULL while open.")
    created_at: Mapped[CreatedAt] = mapped_column(comment="When the incident was opened.")
    updated_at: Mapped[UpdatedAt] = mapped_column(comment="When the row was last changed (trg_incidents_updated_at).")
