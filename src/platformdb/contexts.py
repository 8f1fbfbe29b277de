"""The bounded contexts of the schema, in one ordered registry.

The order is the order their database-side SQL runs in (``models/<context>.sql``): audit first, because every
audited table of the other contexts carries a trigger that calls its capture function. The same order drives
``metadata.create_all``, the query catalog and the generated docs, so a new context is added here once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """One bounded context: its name (the module name under ``models/`` and ``queries/``), what it holds, and
    its colour in the generated ERDs."""

    name: str
    holds: str
    color: str


CONTEXTS: tuple[Context, ...] = (
    Context("audit", "the hash-chained, append-only log of every change to an audited table", "#fee2e2"),
    Context("identity", "users, teams, roles, permissions and scoped role grants", "#dbeafe"),
    Context("catalog", "environments, services and the dependencies between them", "#dcfce7"),
    Context("delivery", "releases, deployments, their state machine and status history", "#fef3c7"),
    Context("configuration", "versioned configuration per service and environment", "#fae8ff"),
    Context("monitoring", "metrics, series and time-partitioned samples", "#e0f2fe"),
)

NAMES: tuple[str, ...] = tuple(c.name for c in CONTEXTS)

__all__ = ["CONTEXTS", "NAMES", "Context"]
