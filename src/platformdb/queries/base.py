"""What a catalog query is: its SQL and its contract (caller, kind, time window)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["point", "range"]


def positional(sql: str) -> tuple[str, list[str]]:
    """``sql`` (psycopg's ``%(name)s`` parameters) with ``$1, $2...`` instead, and the names in that order."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    return re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql).replace("%%", "%"), names


@dataclass(frozen=True)
class Window:
    """The query reads one time range of a partitioned table, ``since <= key < until`` (``until`` None: open
    ended), comparing the partition key itself to the parameters so that partitions outside are pruned."""

    table: str
    since: str = "since"
    until: str | None = "until"


@dataclass(frozen=True)
class Query:
    """One query a microservice runs against platformdb.

    ``sql`` uses psycopg named parameters (``%(name)s``); ``caller`` says which service runs it and why;
    ``kind`` is ``point`` (a lookup by key returning a row or a handful) or ``range`` (a scan of a range, a
    time window or a graph); ``window`` names the time range a time-windowed query reads. Realistic
    parameters for benchmarks and plan checks are drawn by :mod:`platformdb.workbench.samplers`.
    """

    name: str
    sql: str
    caller: str
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
