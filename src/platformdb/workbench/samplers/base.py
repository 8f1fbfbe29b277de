"""How catalog query parameters are drawn from a loaded database, reproducibly."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

CANDIDATES = 5000
"""Candidate rows fetched per parameter source: a deterministic pseudo-random sample (ORDER BY md5) of the
table, so drawing stays cheap at any scale."""


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


Draw = Callable[[Sampler], dict[str, Any]]
"""Draws one set of parameters for a catalog query."""
