"""The query catalog: every query the platform's microservices run against platformdb, by name.

One module per bounded context. Each :class:`Query` names its caller, says whether it is a point lookup or
a range read, and knows how to draw realistic parameters from a loaded database (``platformdb seed``); the
plan checks (``tests/perf``) EXPLAIN every one of them, and every index's COMMENT names the query it serves.
"""

from __future__ import annotations

from platformdb.queries import audit, catalog, configuration, delivery, identity, monitoring
from platformdb.queries.base import Query, Sampler, Window

CONTEXTS = (identity, catalog, delivery, configuration, audit, monitoring)

CATALOG: dict[str, Query] = {query.name: query for context in CONTEXTS for query in context.QUERIES}
"""Every catalog query by name, e.g. ``CATALOG["identity.login_by_email"]``."""

if len(CATALOG) != sum(len(context.QUERIES) for context in CONTEXTS):
    raise RuntimeError("two catalog queries have the same name")

__all__ = ["CATALOG", "Query", "Sampler", "Window"]
