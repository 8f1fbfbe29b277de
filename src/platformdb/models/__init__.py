"""platformdb's typed SQLAlchemy models, one module per bounded context.

Importing this package registers every table on :data:`metadata` together with the context's
database-side SQL, so ``metadata.create_all()`` builds the same schema as the migrations (a test proves it).
Contexts are imported in the order their SQL must run: audit's capture function exists before the
triggers of the other contexts refer to it.
"""

from platformdb.models.base import SCHEMA, Base, metadata, register_base_sql

register_base_sql()

# ruff: noqa: E402, I001  (import order is the order the contexts' SQL runs)
from platformdb.models.audit import AuditChain, AuditLog
from platformdb.models.identity import (
    Permission,
    Role,
    RoleGrant,
    RolePermission,
    Team,
    TeamMembership,
    User,
)
from platformdb.models.catalog import Environment, Service, ServiceDependency
from platformdb.models.delivery import (
    Deployment,
    DeploymentStatusHistory,
    DeploymentStatusTransition,
    Release,
)
from platformdb.models.configuration import Configuration, ConfigurationVersion, DeploymentConfiguration
from platformdb.models.monitoring import Metric, MetricSample, MetricSeries
from platformdb.models.base import register_privileges_sql

register_privileges_sql()  # grants come last: they name every table

__all__ = [
    "SCHEMA",
    "AuditChain",
    "AuditLog",
    "Base",
    "Configuration",
    "ConfigurationVersion",
    "Deployment",
    "DeploymentConfiguration",
    "DeploymentStatusHistory",
    "DeploymentStatusTransition",
    "Environment",
    "Metric",
    "MetricSample",
    "MetricSeries",
    "Permission",
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
