"""Delivery: releases of a service and their deployments to environments, with a database-enforced
status state machine and an append-only status history."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import (
    CheckConstraint,
    FetchedValue,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import INTERVAL, TSTZRANGE, Range
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship, remote

from platformdb.models.base import Base, BigIdPk, CreatedOnly, Timestamps, UUIDPk
from platformdb.models.identity import INVISIBLE, WHITESPACE

if TYPE_CHECKING:
    from platformdb.models.catalog import Environment, Service
    from platformdb.models.configuration import DeploymentConfiguration
    from platformdb.models.identity import Permission, User

DEPLOYMENT_STATUSES = ("pending", "in_progress", "succeeded", "failed", "cancelled", "rolled_back")
ACTIVE_STATUSES = ("pending", "in_progress")
SEMVER = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    # Pre-release identifiers: numeric ones without leading zeros (semver.org 2.0, rule 9).
    r"(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)


class Release(CreatedOnly, Base):
    """An immutable, built version of a service: what can be deployed."""

    __volume__ = "medium"

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("service_id", "version"),
        CheckConstraint(f"version ~ '{SEMVER}' AND char_length(version) <= 128", name="version_semver"),
        CheckConstraint("commit_sha ~ '^([0-9a-f]{40}|[0-9a-f]{64})$'", name="commit_sha_format"),
        CheckConstraint("artifact_digest ~ '^sha256:[0-9a-f]{64}$'", name="artifact_digest_format"),
        Index("ix_releases_created_by", "created_by", info={"serves": "FK releases.created_by"}),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Release id (UUIDv7).")
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="RESTRICT"), comment="The service this is a release of."
    )
    version: Mapped[str] = mapped_column(comment="Semantic version (semver.org 2.0), unique per service.")
    commit_sha: Mapped[str] = mapped_column(comment="Git commit the release was built from (SHA-1 or SHA-256).")
    artifact_digest: Mapped[str] = mapped_column(comment="Content digest of the built artifact: sha256:<64 hex>.")
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        comment="Who registered the release; NULL for CI systems.",
    )

    service: Mapped[Service] = relationship(back_populates="releases", lazy="raise")
    creator: Mapped[User | None] = relationship(lazy="raise")
    deployments: Mapped[list[Deployment]] = relationship(back_populates="release", lazy="raise")


class Deployment(Timestamps, Base):
    """One rollout of a release to an environment; its status moves only along legal transitions."""

    __volume__ = "medium"

    __tablename__ = "deployments"
    __table_args__ = (
        # The release is named by (service_id, version): the deployment stores no copy of either.
        ForeignKeyConstraint(
            ["service_id", "version"], ["releases.service_id", "releases.version"], ondelete="RESTRICT"
        ),
        # A rollback undoes an earlier deployment of the same service in the same environment.
        ForeignKeyConstraint(
            ["rollback_of_id", "service_id", "environment_id"],
            ["deployments.id", "deployments.service_id", "deployments.environment_id"],
            ondelete="RESTRICT",
            name="fk_deployments_rollback_of_id_deployments",
        ),
        UniqueConstraint("id", "service_id", "environment_id"),
        CheckConstraint(f"status IN {DEPLOYMENT_STATUSES!r}", name="status_allowed"),
        CheckConstraint("deployed_at >= started_at", name="deployed_after_started"),
        CheckConstraint(
            "(status IN ('pending', 'cancelled')) OR started_at IS NOT NULL", name="started_at_when_started"
        ),
        CheckConstraint(f"(status IN {ACTIVE_STATUSES!r}) = (deployed_at IS NULL)", name="deployed_at_when_finished"),
        CheckConstraint("rollback_of_id <> id", name="no_self_rollback"),
        Index(
            "uq_deployments_active_service_id_environment_id",
            "service_id",
            "environment_id",
            unique=True,
            postgresql_where=text(f"status IN {ACTIVE_STATUSES!r}"),
            info={
                "serves": "rule: at most one active deployment per service and environment; "
                "delivery.pending_approvals_of_approver (a service's pending rollouts)",
                "rebuild": True,  # every rollout passes through: platformdb indexes rebuild
            },
        ),
        Index(
            "ix_deployments_created_at_active",
            "created_at",
            postgresql_where=text(f"status IN {ACTIVE_STATUSES!r}"),
            info={
                "serves": "delivery.active_deployments (the active rollouts, oldest first); "
                "delivery.pending_approvals_of_approver (the pending rollouts)",
                "rebuild": True,
            },
        ),
        Index(
            "ix_deployments_service_id_created_at",
            "service_id",
            "created_at",
            "id",
            info={"serves": "delivery.deployment_history (keyset pages)"},
        ),
        Index(
            "ix_deployments_service_id_version",
            "service_id",
            "version",
            info={"serves": "FK deployments -> releases; deployments of a release"},
        ),
        Index(
            "ix_deployments_environment_id_service_id_deployed_at",
            "environment_id",
            "service_id",
            "deployed_at",
            info={"serves": "delivery.running_in_environment (latest success per service); FK"},
        ),
        Index("ix_deployments_deployed_by", "deployed_by", info={"serves": "FK deployments.deployed_by"}),
        Index(
            "ix_deployments_rollback_of_id_service_id_environment_id",
            "rollback_of_id",
            "service_id",
            "environment_id",
            postgresql_where=text("rollback_of_id IS NOT NULL"),
            info={"serves": "FK deployments.rollback_of_id; rollbacks of a deployment"},
        ),
        # Status moves are frequent small updates: room for HOT updates, and vacuum at 5% dead rows.
        {"postgresql_with": {"fillfactor": "90", "autovacuum_vacuum_scale_factor": "0.05"}},
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Deployment id (UUIDv7).")
    service_id: Mapped[uuid.UUID] = mapped_column(comment="Service deployed; with version, names the release.")
    version: Mapped[str] = mapped_column(comment="Release version deployed; with service_id, names the release.")
    environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), comment="Environment deployed to."
    )
    status: Mapped[str] = mapped_column(
        server_default="pending",
        comment="pending, in_progress, succeeded, failed, cancelled or rolled_back; "
        "transitions are checked by trigger trg_deployments_status_transition; rolled_back is entered when a "
        "rollback of the deployment succeeds (trg_deployments_rolled_back_by_rollback), and only then.",
    )
    deployed_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        comment="Who started the deployment; NULL for automation.",
    )
    rollback_of_id: Mapped[uuid.UUID | None] = mapped_column(
        comment="The earlier deployment (same service and environment) that this one rolls back; see "
        "platform.start_rollback()."
    )
    # Both stamps are written by trigger trg_deployments_timestamps on a status move: fetched back by that flush.
    started_at: Mapped[dt.datetime | None] = mapped_column(
        server_onupdate=FetchedValue(),
        comment="When the rollout began: set by trigger trg_deployments_timestamps on entering in_progress "
        "(the database clock; a given stamp within 30 s before to 5 s after it is kept), then frozen.",
    )
    deployed_at: Mapped[dt.datetime | None] = mapped_column(
        server_onupdate=FetchedValue(),
        comment="When the rollout finished, whatever its outcome: set by trigger trg_deployments_timestamps on "
        "leaving an active status (the database clock; a given stamp within 30 s before to 5 s after it is kept), "
        "then frozen.",
    )

    release: Mapped[Release] = relationship(back_populates="deployments", lazy="raise")
    environment: Mapped[Environment] = relationship(lazy="raise")
    deployer: Mapped[User | None] = relationship(lazy="raise")
    # Joined on the id alone (the primary key): assigning rollback_of sets rollback_of_id only, while the
    # composite foreign key keeps the rollback in the release's service and environment.
    rollback_of: Mapped[Deployment | None] = relationship(
        primaryjoin=lambda: foreign(Deployment.rollback_of_id) == remote(Deployment.id),
        back_populates="rollbacks",
        lazy="raise",
    )
    rollbacks: Mapped[list[Deployment]] = relationship(
        primaryjoin=lambda: remote(foreign(Deployment.rollback_of_id)) == Deployment.id,
        back_populates="rollback_of",
        lazy="raise",
    )
    status_history: Mapped[list[DeploymentStatusHistory]] = relationship(
        back_populates="deployment", order_by="DeploymentStatusHistory.id", viewonly=True, lazy="raise"
    )
    """Written by trigger only: read-only here."""
    configurations: Mapped[list[DeploymentConfiguration]] = relationship(
        back_populates="deployment", viewonly=True, lazy="raise"
    )
    """The configuration in force when the deployment was created (captured by trigger): read-only here."""


class DeploymentStatusTransition(CreatedOnly, Base):
    """A legal move of the deployment state machine; reference data written by migrations only."""

    __volume__ = "reference"

    __tablename__ = "deployment_status_transitions"
    __table_args__ = (
        CheckConstraint(f"from_status IN {DEPLOYMENT_STATUSES!r}", name="from_status_allowed"),
        CheckConstraint(f"to_status IN {DEPLOYMENT_STATUSES!r}", name="to_status_allowed"),
    )

    from_status: Mapped[str] = mapped_column(primary_key=True, comment="Status moved from.")
    to_status: Mapped[str] = mapped_column(primary_key=True, comment="Status moved to.")


class DeploymentStatusHistory(CreatedOnly, Base):
    """Append-only log of every status a deployment entered, written by trigger."""

    __volume__ = "medium"

    __tablename__ = "deployment_status_history"
    __table_args__ = (
        ForeignKeyConstraint(
            ["from_status", "to_status"],
            ["deployment_status_transitions.from_status", "deployment_status_transitions.to_status"],
            ondelete="RESTRICT",
            name="fk_deployment_status_history_transition",
        ),
        CheckConstraint(f"to_status IN {DEPLOYMENT_STATUSES!r}", name="to_status_allowed"),
        CheckConstraint("(from_status IS NULL) = (to_status = 'pending')", name="initial_status_pending"),
        Index(
            "ix_deployment_status_history_deployment_id_id",
            "deployment_id",
            "id",
            info={"serves": "delivery.deployment_timeline; FK"},
        ),
        Index(
            "ix_deployment_status_history_from_status_to_status",
            "from_status",
            "to_status",
            info={"serves": "FK to deployment_status_transitions"},
        ),
    )

    id: Mapped[BigIdPk] = mapped_column(comment="Row id; orders the transitions of one deployment.")
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="RESTRICT"), comment="The deployment whose status changed."
    )
    from_status: Mapped[str | None] = mapped_column(comment="Previous status; NULL for the initial pending.")
    to_status: Mapped[str] = mapped_column(comment="Status entered.")

    deployment: Mapped[Deployment] = relationship(back_populates="status_history", viewonly=True, lazy="raise")


# --- governance (issue #12): deploy freezes and the promotion path ------------------------------------------
def _cron_field(value: str) -> str:
    """One cron field (a regex): ``*`` or a value or range, optionally stepped, comma-separated."""
    item = rf"(\*|{value}(-{value})?)(/[1-9][0-9]?)?"
    return rf"{item}(,{item})*"


CRON = (
    "^"
    + " ".join(
        _cron_field(v)
        for v in (
            "([0-5]?[0-9])",  # minute 0-59
            "([01]?[0-9]|2[0-3])",  # hour 0-23
            "(0?[1-9]|[12][0-9]|3[01])",  # day of month 1-31
            "(0?[1-9]|1[0-2])",  # month 1-12
            "[0-7]",  # day of week 0-7 (0 and 7 are Sunday)
        )
    )
    + "$"
)
"""A five-field cron expression (minute hour day-of-month month day-of-week) with numbers, ``*``, ranges, lists
and steps; no names, no seconds, no ``@`` macros. What ``platformdb freezes ensure`` expands (with cronsim)."""
REASON_RULE = f"char_length(reason) BETWEEN 1 AND 1000 AND reason ~ '[^{WHITESPACE}]' AND reason !~ '[{INVISIBLE}]'"


class FreezeSchedule(Timestamps, Base):
    """A recurring deploy freeze: a cron expression in an IANA time zone, each firing starting a freeze of the
    given duration; expanded into freeze_periods ahead of time by `platformdb freezes ensure`."""

    __tablename__ = "freeze_schedules"
    __table_args__ = (
        CheckConstraint(f"cron ~ '{CRON}'", name="cron_format"),
        CheckConstraint("char_length(time_zone) BETWEEN 1 AND 64", name="time_zone_length"),
        CheckConstraint("duration > interval '0' AND duration <= interval '14 days'", name="duration_bounded"),
        CheckConstraint(REASON_RULE, name="reason_visible"),
        Index("ix_freeze_schedules_environment_id", "environment_id", info={"serves": "FK"}),
        Index("ix_freeze_schedules_service_id", "service_id", info={"serves": "FK"}),
        Index("ix_freeze_schedules_created_by", "created_by", info={"serves": "FK"}),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Schedule id (UUIDv7).")
    environment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), comment="Environment frozen; NULL for every one."
    )
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="RESTRICT"), comment="Service frozen; NULL for every one."
    )
    cron: Mapped[str] = mapped_column(
        comment="Five-field cron expression (numbers, *, ranges, lists, steps) of the freeze starts."
    )
    time_zone: Mapped[str] = mapped_column(
        comment="IANA time zone the cron expression is read in (checked against pg_timezone_names by trigger "
        "trg_freeze_schedules_time_zone); starts follow its daylight-saving changes."
    )
    duration: Mapped[dt.timedelta] = mapped_column(INTERVAL, comment="How long each freeze lasts (at most 14 days).")
    reason: Mapped[str] = mapped_column(comment="Why deployments are frozen: shown to whoever is refused.")
    freezes_rollbacks: Mapped[bool] = mapped_column(
        server_default=text("false"), comment="Whether rollbacks are frozen too (by default they are not)."
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        comment="Who made the schedule; when set, holds freeze:manage in its scope (trg_freeze_schedules_manager).",
    )


class FreezePeriod(Timestamps, Base):
    """A concrete deploy freeze: no rollout of a matching deployment starts during it without an override."""

    __tablename__ = "freeze_periods"
    __table_args__ = (
        CheckConstraint(
            "NOT isempty(during) AND NOT lower_inf(during) AND NOT upper_inf(during)"
            " AND lower_inc(during) AND NOT upper_inc(during)",
            name="during_bounded",
        ),
        CheckConstraint("upper(during) - lower(during) <= interval '366 days'", name="during_at_most_a_year"),
        CheckConstraint(REASON_RULE, name="reason_visible"),
        Index(
            "ix_freeze_periods_during",
            "during",
            postgresql_using="gist",
            info={"serves": "trg_deployments_not_frozen; delivery.freeze_calendar (range overlap)"},
        ),
        Index(
            "uq_freeze_periods_schedule_id_lower_during",
            "schedule_id",
            text("lower(during)"),
            unique=True,
            # Only the periods made from a schedule are keyed so; NULLS NOT DISTINCT states that none is NULL here.
            postgresql_nulls_not_distinct=True,
            postgresql_where=text("schedule_id IS NOT NULL"),
            info={"serves": "rule: freezes ensure makes one period per schedule firing (idempotent); FK"},
        ),
        Index("ix_freeze_periods_environment_id", "environment_id", info={"serves": "FK"}),
        Index("ix_freeze_periods_service_id", "service_id", info={"serves": "FK"}),
        Index("ix_freeze_periods_created_by", "created_by", info={"serves": "FK"}),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Freeze id (UUIDv7).")
    environment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), comment="Environment frozen; NULL for every one."
    )
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="RESTRICT"), comment="Service frozen; NULL for every one."
    )
    during: Mapped[Range[dt.datetime]] = mapped_column(
        TSTZRANGE,
        comment="When the freeze holds: [start, end), both finite; a rollout starting at the end instant is not "
        "frozen. Fixed once begun (trg_freeze_periods_begun_fixed).",
    )
    reason: Mapped[str] = mapped_column(comment="Why deployments are frozen: shown to whoever is refused.")
    freezes_rollbacks: Mapped[bool] = mapped_column(
        server_default=text("false"), comment="Whether rollbacks are frozen too (by default they are not)."
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        comment="Who declared the freeze; when set, holds freeze:manage in its scope (trg_freeze_periods_manager).",
    )
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("freeze_schedules.id", ondelete="SET NULL"),
        comment="The schedule this period was expanded from; NULL for a one-off freeze (or a deleted schedule).",
    )


class FreezeOverride(CreatedOnly, Base):
    """Permission for one deployment to start during one freeze, approved by a second person; append-only."""

    __tablename__ = "freeze_overrides"
    __table_args__ = (
        UniqueConstraint("freeze_period_id", "deployment_id"),
        CheckConstraint("approved_by <> requested_by", name="four_eyes"),
        CheckConstraint(REASON_RULE, name="reason_visible"),
        Index("ix_freeze_overrides_deployment_id", "deployment_id", info={"serves": "FK; overrides of a rollout"}),
        Index("ix_freeze_overrides_requested_by", "requested_by", info={"serves": "FK"}),
        Index("ix_freeze_overrides_approved_by", "approved_by", info={"serves": "FK"}),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Override id (UUIDv7).")
    freeze_period_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("freeze_periods.id", ondelete="RESTRICT"), comment="The freeze lifted."
    )
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="RESTRICT"), comment="The deployment allowed to start during it."
    )
    requested_by: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), comment="Who asked for the override."
    )
    approved_by: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        comment="Who approved it: not the requester, not the deployer, and holding freeze:override for the "
        "deployment's service and environment at the time (trg_freeze_overrides_approver).",
    )
    reason: Mapped[str] = mapped_column(comment="Why the freeze is lifted for this deployment.")


class EnvironmentPromotion(CreatedOnly, Base):
    """An edge of the promotion graph: a release reaches to_environment only after succeeding in
    from_environment (and in every environment before that); the graph is acyclic."""

    __tablename__ = "environment_promotions"
    __table_args__ = (
        CheckConstraint("from_environment_id <> to_environment_id", name="not_self"),
        Index(
            "ix_environment_promotions_to_environment_id",
            "to_environment_id",
            info={"serves": "FK; trg_deployments_promoted (predecessors of an environment)"},
        ),
    )

    from_environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"),
        primary_key=True,
        comment="The environment a release must succeed in first.",
    )
    to_environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"),
        primary_key=True,
        comment="The environment it is promoted to; no edge may close a cycle (trg_environment_promotions_acyclic).",
    )


class PromotionOverride(CreatedOnly, Base):
    """Break-glass: one deployment may start without the promotion path's prior successes, approved by a second
    person; append-only and audited."""

    __tablename__ = "promotion_overrides"
    __table_args__ = (
        UniqueConstraint("deployment_id"),
        CheckConstraint("approved_by <> requested_by", name="four_eyes"),
        CheckConstraint(REASON_RULE, name="reason_visible"),
        Index("ix_promotion_overrides_requested_by", "requested_by", info={"serves": "FK"}),
        Index("ix_promotion_overrides_approved_by", "approved_by", info={"serves": "FK"}),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Override id (UUIDv7).")
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="RESTRICT"), comment="The deployment exempted from the promotion path."
    )
    requested_by: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), comment="Who asked for the override."
    )
    approved_by: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        comment="Who approved it: not the requester, not the deployer, and holding promotion:override for the "
        "deployment's service and environment at the time (trg_promotion_overrides_approver).",
    )
    reason: Mapped[str] = mapped_column(comment="Why the promotion path is bypassed for this deployment.")


APPROVAL_DECISIONS = ("approved", "rejected")


class ApprovalRule(Timestamps, Base):
    """A four-eyes rule of an environment: deployments to it need approvals by holders of a permission."""

    __volume__ = "reference"

    __tablename__ = "approval_rules"
    __table_args__ = (
        # NULL scopes mean "every service" / "any tier": two such rules of one permission are the same rule.
        UniqueConstraint(
            "environment_id",
            "service_id",
            "max_service_tier",
            "approver_permission_id",
            name="uq_approval_rules_scope",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint("required_approvals BETWEEN 1 AND 10", name="required_approvals_range"),
        CheckConstraint("max_service_tier BETWEEN 1 AND 4", name="max_service_tier_range"),
        CheckConstraint("service_id IS NULL OR max_service_tier IS NULL", name="service_or_tier"),
        CheckConstraint("disabled_at >= created_at", name="disabled_after_created"),
        Index(
            "ix_approval_rules_service_id",
            "service_id",
            postgresql_where=text("service_id IS NOT NULL"),
            info={"serves": "FK approval_rules.service_id"},
        ),
        Index(
            "ix_approval_rules_approver_permission_id",
            "approver_permission_id",
            info={"serves": "FK approval_rules.approver_permission_id"},
        ),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Rule id (UUIDv7).")
    environment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"),
        comment="The protected environment: one with a rule in force (created, not yet disabled) is deployed to by a "
        "named deployer only.",
    )
    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), comment="Service the rule is limited to; NULL for every service."
    )
    max_service_tier: Mapped[int | None] = mapped_column(
        SmallInteger,
        comment="Services of this tier or more critical (tier <= it) only; NULL for any tier. Not with service_id.",
    )
    approver_permission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("permissions.id", ondelete="RESTRICT"),
        comment="Permission an approver must hold for the service and environment (platform.may_user_do), e.g. "
        "deployment:approve: the roles that carry it are the approver roles.",
    )
    required_approvals: Mapped[int] = mapped_column(SmallInteger, comment="Approvals needed, 1 to 10.")
    allow_self_approval: Mapped[bool] = mapped_column(
        server_default="false", comment="Whether the deployer may approve their own rollout."
    )
    applies_to_rollbacks: Mapped[bool] = mapped_column(
        server_default="false", comment="Whether rollbacks (rollback_of_id set) need the approvals too."
    )
    disabled_at: Mapped[dt.datetime | None] = mapped_column(
        comment="When the rule stops applying to new deployments (a captured rule is disabled, not deleted)."
    )

    environment: Mapped[Environment] = relationship(lazy="raise")
    service: Mapped[Service | None] = relationship(lazy="raise")
    approver_permission: Mapped[Permission] = relationship(lazy="raise")


class DeploymentApprovalRequirement(CreatedOnly, Base):
    """An approval rule as it was when a deployment was created: the rollout's goalposts, written by trigger."""

    __volume__ = "medium"

    __tablename__ = "deployment_approval_requirements"
    __table_args__ = (
        CheckConstraint("required_approvals BETWEEN 1 AND 10", name="required_approvals_range"),
        Index(
            "ix_deployment_approval_requirements_approval_rule_id",
            "approval_rule_id",
            info={"serves": "FK deployment_approval_requirements.approval_rule_id"},
        ),
        Index(
            "ix_deployment_approval_requirements_approver_permission_id",
            "approver_permission_id",
            info={"serves": "FK deployment_approval_requirements.approver_permission_id"},
        ),
    )

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="RESTRICT"), primary_key=True, comment="The deployment."
    )
    approval_rule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(
            "approval_rules.id", ondelete="RESTRICT", name="fk_deployment_approval_requirements_approval_rule_id"
        ),
        primary_key=True,
        comment="The rule captured.",
    )
    approver_permission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(
            "permissions.id", ondelete="RESTRICT", name="fk_deployment_approval_requirements_approver_permission_id"
        ),
        comment="The rule's approver permission, as captured.",
    )
    required_approvals: Mapped[int] = mapped_column(SmallInteger, comment="Approvals needed, as captured.")
    allow_self_approval: Mapped[bool] = mapped_column(comment="Whether the deployer may approve, as captured.")

    # Written by trigger only: read-only here.
    deployment: Mapped[Deployment] = relationship(viewonly=True, lazy="raise")
    approval_rule: Mapped[ApprovalRule] = relationship(viewonly=True, lazy="raise")


class DeploymentApproval(CreatedOnly, Base):
    """An approver's decision on a deployment, under one of its captured rules; append-only."""

    __volume__ = "medium"

    __tablename__ = "deployment_approvals"
    __table_args__ = (
        ForeignKeyConstraint(
            ["deployment_id", "approval_rule_id"],
            ["deployment_approval_requirements.deployment_id", "deployment_approval_requirements.approval_rule_id"],
            ondelete="RESTRICT",
            name="fk_deployment_approvals_requirement",
        ),
        CheckConstraint(f"decision IN {APPROVAL_DECISIONS!r}", name="decision_allowed"),
        CheckConstraint("char_length(comment) <= 1000", name="comment_length"),
        Index(
            "ix_deployment_approvals_deployment_id_approval_rule_id",
            "deployment_id",
            "approval_rule_id",
            info={"serves": "FK to deployment_approval_requirements; approvals counted per rule"},
        ),
        Index(
            "ix_deployment_approvals_approver_id",
            "approver_id",
            info={"serves": "FK deployment_approvals.approver_id; decisions of an approver"},
        ),
    )

    # The deployment is referenced through its captured rule (fk_deployment_approvals_requirement).
    deployment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="The deployment decided on.")
    approver_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"),
        primary_key=True,
        comment="Who decided (one decision per approver and deployment); relayed by the delivery service.",
    )
    approval_rule_id: Mapped[uuid.UUID] = mapped_column(comment="The captured rule the decision counts toward.")
    decision: Mapped[str] = mapped_column(comment="approved or rejected; a rejection leaves cancel as the only move.")
    comment: Mapped[str] = mapped_column(server_default="", comment="Why, in the approver's words.")

    approver: Mapped[User] = relationship(lazy="raise")
    requirement: Mapped[DeploymentApprovalRequirement] = relationship(viewonly=True, lazy="raise")
