"""What a catalog query is, and how its parameters are drawn from the data."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

Kind = Literal["point", "range"]
CANDIDATES = 5000
"""Candidate rows fetched per parameter source: a deterministic pseudo-random sample (ORDER BY md5) of the
table, so drawing stays cheap at any scale."""


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
    time window or a graph); ``params`` draws realistic parameter values from a loaded database; ``window``
    names the time range a time-windowed query reads.
    """

    name: str
    sql: str
    caller: str
    kind: Kind
    params: Callable[[Sampler], dict[str, Any]] | None = None
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

    def draw(self, sampler: Sampler) -> dict[str, Any]:
        return self.params(sampler) if self.params else {}


class Sampler:
    """Draws parameter values from the data, reproducibly: each candidate query runs once (its rows are cached,
    in ``cache`` when given, so samplers may share them), and choices among the rows come from ``rng``."""

    def __init__(
        self, conn: psycopg.Connection[Any], rng: random.Random, cache: dict[str, list[dict[str, Any]]] | None = None
    ) -> None:
        self.conn = conn
        self.rng = rng
        self._cache = {} if cache is None else cache

    def row(self, sql: str) -> dict[str, Any]:
        """One row, chosen at random, of the candidates ``sql`` returns (cached)."""
        rows = self._cache.get(sql)
        if rows is None:
            with self.conn.cursor(row_factory=dict_row) as cur:
                rows = self._cache[sql] = cur.execute(sql).fetchall()
        if not rows:
            raise LookupError(f"no candidate rows for parameters: {' '.join(sql.split())}")
        return dict(self.rng.choice(rows))

    def one(self, sql: str, params: dict[str, Any]) -> dict[str, Any]:
        """The first row of ``sql`` with ``params`` (not cached): for values that depend on an earlier draw."""
        with self.conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(sql, params).fetchone()
        if row is None:
            raise LookupError(f"no row for parameters: {' '.join(sql.split())}")
        return dict(row)


def sample(select: str, table: str, key: str = "id", where: str = "true") -> str:
    """Candidate SQL: ``SELECT <select> FROM <table>`` for a deterministic sample of up to CANDIDATES rows."""
    return f"SELECT {select} FROM {table} WHERE {where} ORDER BY md5({key}::text) LIMIT {CANDIDATES}"
