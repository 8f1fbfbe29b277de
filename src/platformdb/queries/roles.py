"""The group roles catalog queries name as their callers: :data:`platformdb.ops.roles.GROUP_ROLES`, by service."""

from __future__ import annotations

from platformdb.ops.roles import GROUP_ROLES

IDENTITY = GROUP_ROLES["identity"]
CATALOG = GROUP_ROLES["catalog"]
DELIVERY = GROUP_ROLES["delivery"]
CONFIGURATION = GROUP_ROLES["configuration"]
AUDIT_READER = GROUP_ROLES["audit-reader"]
METRICS_WRITER = GROUP_ROLES["metrics-writer"]
READONLY = GROUP_ROLES["readonly"]
EVERY_ROLE = tuple(GROUP_ROLES.values())
