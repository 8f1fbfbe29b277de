"""What a catalog query is: its SQL and its contract (caller, roles, kind, time window), and how to run it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import tuple_row
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

Kind = Literal["point", "range"]


def positional(sql: str) -> tuple[str, list[str]]:
    """``sql`` (psycopg's ``%(name)s`` parameters) with ``$1, $2...`` instead, and the names in that order."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    return re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql).replace("%%", "%"), names


def bind_style(sql: str) -> str:
    """``sql`` (psycopg's ``%(name)s`` parameters) for SQLAlchemy's :func:`~sqlalchemy.text`: ``:name``, and every
    other colon (casts, time literals) escaped so that text() never takes it for a parameter."""
    escaped = sql.replace(":", "\\:")
    return re.sub(r"%\((\w+)\)s", r":\1", escaped).replace("%%", "%")


class Row(tuple[Any, ...]):
    """A result row: a tuple whose columns are also attributes (``row.key``) and keys (``row["key"]``)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(self._fields.index(key) if isinstance(key, str) else key)

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))

    def _replace(self, **changes: Any) -> Row:
        """A copy with some columns changed (as a NamedTuple's ``_replace``)."""
        return type(self)(changes.get(name, value) for name, value in zip(self._fields, self, strict=True))


def _rows(names: tuple[str, ...], values: list[Any]) -> list[Row]:
    shape = type("Row", (Row,), {"__slots__": (), "_fields": names})
    return [shape(v) for v in values]


Runner = Session | Connection | psycopg.Connection[Any]
"""What :meth:`Query.execute` runs on: a SQLAlchemy Session or Connection, or a psycopg connection."""


@dataclass(frozen=True)
class Window:
    """The query reads one time range of a partitioned table, ``since <= key < until`` (``until`` None: open
    ended, or bounded at ``now() + horizon`` when ``horizon`` is set), comparing the partition key itself to the
    parameters so that partitions outside are pruned."""

    table: str
    since: str = "since"
    until: str | None = "until"
    horizon: dt.timedelta | None = None
    """With ``until`` None: the query also reads ``key < now() + horizon`` (nothing stamped later is current), so
    that the partitions made ahead of time are pruned instead of probed."""


@dataclass(frozen=True)
class Query:
    """One query a microservice runs against platformdb.

    ``sql`` uses psycopg named parameters (``%(name)s``); ``caller`` says which service runs it and why;
    ``roles`` are the group roles (:data:`platformdb.ops.roles.GROUP_ROLES`) that run it and are granted what
    it reads (tests/security/test_query_grants.py runs it as each); ``kind`` is ``point`` (a lookup by key
    returning a row or a handful) or ``range`` (a scan of a range, a time window or a graph); ``window`` names
    the time range a time-windowed query reads. Realistic parameters for benchmarks and plan checks are drawn by
    :mod:`platformdb.workbench.samplers`.
    """

    name: str
    sql: str
    caller: str
    roles: tuple[str, ...]
    kind: Kind
    window: Window | None = None

    @property
    def context(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def param_names(self) -> list[str]:
        """The named parameters in order of first appearance."""
        return positional(self.sql)[1]

    def positional_sql(self) -> str:
        """The SQL with ``$1, $2...`` for its parameters (for PREPARE), in :attr:`param_names` order."""
        return positional(self.sql)[0]

    def execute(self, conn: Runner, /, **params: Any) -> list[Row]:
        """Run the query on ``conn`` (in its transaction, if one is open) with ``params`` by name; the rows, whose
        columns are attributes and keys. A missing or unknown parameter raises TypeError before anything runs."""
        missing, unknown = set(self.param_names) - params.keys(), params.keys() - set(self.param_names)
        if missing or unknown:
            raise TypeError(f"{self.name}: missing {sorted(missing)}, unknown {sorted(unknown)} parameters")
        if isinstance(conn, psycopg.Connection):
            with conn.cursor(row_factory=tuple_row) as cur:  # whatever row factory the connection has
                cur.execute(self.sql, params)
                return _rows(tuple(c.name for c in cur.description or ()), cur.fetchall())
        result = conn.execute(text(bind_style(self.sql)), params)
        return _rows(tuple(result.keys()), list(result.all()))
