"""platformdb: the reference PostgreSQL schema for the control plane of a microservices platform.

What a service imports (the library, installed by plain ``pip install platformdb``):

- :mod:`platformdb.models`: the typed SQLAlchemy models, one module per bounded context;
- :mod:`platformdb.queries`: the query catalog (each query's SQL, caller and contract);
- :func:`set_actor`: who is acting, for the audit trigger;
- :mod:`platformdb.migrate` and :mod:`platformdb.db`: run the migrations against a database URL;
- :class:`UserError` / :class:`NotMigratedError`: mistakes a caller can fix.

Beside it, not for services: :mod:`platformdb.ops` (run against production by DBAs and cron: audit chain,
partitions, roles), :mod:`platformdb.review` (read the live catalogs: introspection, snapshot, lint, docs),
:mod:`platformdb.workbench` (local: embedded server, demo, seed) and :mod:`platformdb.cli` (the command).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from platformdb.actor import set_actor
from platformdb.errors import NotMigratedError, UserError

try:
    __version__ = version("platformdb")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["NotMigratedError", "UserError", "__version__", "set_actor"]
