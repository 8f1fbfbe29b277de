"""platformdb's typed SQLAlchemy models, one module per bounded context (see :mod:`platformdb.contexts`).

Importing this package registers every table on :data:`metadata`; ``metadata.create_all()`` builds the same
schema as the migrations (a test proves it), running each context's SQL in the registry's order.
"""

from platformdb.models.audit import AuditChain, AuditLog
from platformdb.models.base import SCHEMA, Base, Partitioning, metadata
from platformdb.models.catalog import Environment, Service, ServiceDependency
from platformdb.models.configuration import Configuration, ConfigurationVersion, DeploymentConfiguration
from platformdb.models.delivery import (
    ApprovalRule,
    Deployment,
    DeploymentApproval,
    DeploymentApprovalRequirement,
    DeploymentStatusHistory,
    DeploymentStatusTransition,
    EnvironmentPromotion,
    FreezeOverride,
    FreezePeriod,
    FreezeSchedule,
    PromotionOverride,
    Release,
)
from platformdb.models.identity import (
    ApiToken,
    ApiTokenScope,
    Permission,
    Role,
    RoleGrant,
    RolePermission,
    Team,
    TeamMembership,
    User,
)
from platformdb.models.monitoring import Metric, MetricSample, MetricSeries, PartitionRetention

__all__ = [
    "SCHEMA",
    "ApiToken",
    "ApiTokenScope",
    "ApprovalRule",
    "AuditChain",
    "AuditLog",
    "Base",
    "Configuration",
    "ConfigurationVersion",
    "Deployment",
    "DeploymentApproval",
    "DeploymentApprovalRequirement",
    "DeploymentConfiguration",
    "DeploymentStatusHistory",
    "DeploymentStatusTransition",
    "Environment",
    "EnvironmentPromotion",
    "FreezeOverride",
    "FreezePeriod",
    "FreezeSchedule",
    "Metric",
    "MetricSample",
    "MetricSeries",
    "PartitionRetention",
    "Partitioning",
    "Permission",
    "PromotionOverride",
    "Release",
    "Role",
    "RoleGrant",
    "RolePermission",
    "Service",
    "ServiceDependency",
    "Team",
    "TeamMembership",
    "User",
    "metadata",
]
