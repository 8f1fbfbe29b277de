"""The query catalog: every query the platform's microservices run against platformdb, by name.

One module per bounded context, in the registry's order (:mod:`platformdb.contexts`). Each :class:`Query`
names its caller and the group roles that run it, and says whether it is a point lookup or a range read; the
plan checks (``tests/perf``) EXPLAIN every one of them, and every index's COMMENT names the query it serves.
:meth:`Query.execute` runs one on a SQLAlchemy Session or Connection or a psycopg connection.
"""

from __future__ import annotations

from importlib import import_module

from platformdb.contexts import NAMES
from platformdb.ops.roles import GROUP_ROLES
from platformdb.queries.base import Query, Row, Window

CATALOG: dict[str, Query] = {}
"""Every catalog query by name, e.g. ``CATALOG["identity.login_by_email"]``."""

for _context in NAMES:
    for _query in import_module(f"{__name__}.{_context}").QUERIES:
        if _query.name in CATALOG or _query.context != _context:
            raise RuntimeError(f"catalog query {_query.name!r}: duplicate, or not in context {_context!r}")
        if not _query.roles or set(_query.roles) - set(GROUP_ROLES.values()):
            raise RuntimeError(f"catalog query {_query.name!r}: roles must be group roles, {_query.roles!r}")
        CATALOG[_query.name] = _query

__all__ = ["CATALOG", "Query", "Row", "Window"]
