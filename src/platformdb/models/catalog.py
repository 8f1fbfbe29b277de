"""Catalog: the services of the platform, the environments they run in, and who depends on whom."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, FetchedValue, ForeignKey, Index, SmallInteger, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from platformdb.models.base import Base, CreatedOnly, Timestamps, UUIDPk
from platformdb.models.identity import SLUG

if TYPE_CHECKING:
    from platformdb.models.delivery import Release
    from platformdb.models.identity import Team

SERVICE_STATUSES = ("incubating", "active", "deprecated", "retired")
ENVIRONMENT_TIERS = ("production", "staging", "testing", "development", "other")


class Environment(Timestamps, Base):
    """A place services are deployed to, e.g. staging or production."""

    __volume__ = "reference"

    __tablename__ = "environments"
    __table_args__ = (
        CheckConstraint(f"name ~ '{SLUG}' AND char_length(name) <= 63", name="name_format"),
        UniqueConstraint("name"),
        CheckConstraint(f"tier IN {ENVIRONMENT_TIERS!r}", name="tier_allowed"),
        CheckConstraint("is_production = (tier = 'production')", name="is_production_tier"),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Environment id (UUIDv7).")
    name: Mapped[str] = mapped_column(comment="Unique kebab-case name, e.g. eu-production.")
    is_production: Mapped[bool] = mapped_column(
        server_default="false",
        comment="Whether the environment serves production traffic: tier = production (kept for v1 readers and "
        "writers; trigger trg_environments_tier_sync keeps the two in step).",
    )
    # Added by revision 0040 (ADD COLUMN): after the stamps, as in a migrated database.
    tier: Mapped[str] = mapped_column(
        server_default=FetchedValue(),
        sort_order=1,
        comment="production, staging, testing, development or other; left out by a v1 writer, derived from "
        "is_production (production, else other) by trigger trg_environments_tier_sync.",
    )


class Service(Timestamps, Base):
    """A deployable microservice, owned by one team."""

    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint(f"name ~ '{SLUG}' AND char_length(name) <= 63", name="name_format"),
        CheckConstraint("char_length(description) <= 2000", name="description_length"),
        CheckConstraint(f"status IN {SERVICE_STATUSES!r}", name="status_allowed"),
        CheckConstraint("tier BETWEEN 1 AND 4", name="tier_range"),
        # The columns a directory page returns ride in the key (revision 0067): an index-only scan.
        UniqueConstraint("name", postgresql_include=["id", "status", "tier"]),
        Index("ix_services_owner_team_id", "owner_team_id", info={"serves": "catalog.services_of_team; FK"}),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Service id (UUIDv7).")
    name: Mapped[str] = mapped_column(comment="Unique kebab-case service name (DNS-label safe).")
    description: Mapped[str] = mapped_column(server_default="", comment="What the service does.")
    owner_team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="RESTRICT"), comment="Team accountable for the service."
    )
    status: Mapped[str] = mapped_column(
        server_default="active", comment="Lifecycle: incubating, active, deprecated or retired."
    )
    tier: Mapped[int] = mapped_column(
        SmallInteger, server_default="3", comment="Criticality, 1 (most critical) to 4 (least)."
    )

    owner_team: Mapped[Team] = relationship(back_populates="services", lazy="raise")
    releases: Mapped[list[Release]] = relationship(back_populates="service", lazy="raise")
    dependencies: Mapped[list[ServiceDependency]] = relationship(
        back_populates="service", foreign_keys="ServiceDependency.service_id", lazy="raise"
    )
    """What this service depends on."""
    dependents: Mapped[list[ServiceDependency]] = relationship(
        back_populates="depends_on", foreign_keys="ServiceDependency.depends_on_service_id", lazy="raise"
    )
    """The services that depend on this one."""


class ServiceDependency(CreatedOnly, Base):
    """That one service calls or otherwise needs another at run time."""

    __tablename__ = "service_dependencies"
    __table_args__ = (
        CheckConstraint("service_id <> depends_on_service_id", name="no_self_dependency"),
        Index(
            "ix_service_dependencies_depends_on_service_id",
            "depends_on_service_id",
            info={"serves": "catalog.transitive_dependents (blast radius); FK"},
        ),
    )

    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True, comment="The dependent service."
    )
    depends_on_service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"),
        primary_key=True,
        comment="The service it depends on.",
    )

    service: Mapped[Service] = relationship(back_populates="dependencies", foreign_keys=[service_id], lazy="raise")
    depends_on: Mapped[Service] = relationship(
        back_populates="dependents", foreign_keys=[depends_on_service_id], lazy="raise"
    )
