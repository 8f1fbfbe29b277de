"""The benchmark's buffers per call (bench.common.buffers): the executor's count of the shared buffers one
execution of a prepared query touches, the figure growth is judged on. Counts, not times: they are asserted."""

from __future__ import annotations

import random
from typing import Any

import psycopg
from bench.common import buffers, draw_params
from sqlalchemy import URL

from platformdb.db import libpq_dsn
from platformdb.queries import CATALOG
from tests.conftest import Seeded

LOOKUP = "SELECT v FROM bench_t WHERE id = %(id)s"


def _table(conn: psycopg.Connection[Any], rows: int) -> None:
    conn.execute("CREATE TABLE bench_t (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO bench_t SELECT i, repeat('x', 100) FROM generate_series(1, %s) i", (rows,))
    conn.execute("VACUUM (ANALYZE) bench_t")


def test_a_primary_key_lookup_touches_the_index_path_and_one_heap_page(conn: psycopg.Connection[Any], db: URL) -> None:
    """10,000 rows: a two-level B-tree (root, leaf) and the row's heap page, three buffers, whichever row."""
    _table(conn, 10_000)
    dsn = libpq_dsn(db)
    counted = buffers(dsn, LOOKUP, [{"id": i} for i in range(1, 10_001, 97)])
    assert set(counted.blocks) == {3}
    assert set(counted.rows) == {1.0}
    assert counted.summary()["buffers_per_row"] == 3.0


def test_a_function_call_counts_what_the_function_reads(conn: psycopg.Connection[Any], db: URL) -> None:
    """The read API is functions: a call counts the buffers its body touches, not just the call's own node."""
    _table(conn, 10_000)
    conn.execute("CREATE FUNCTION bench_v_opaque(int) RETURNS text LANGUAGE plpgsql STABLE AS "
                 "'BEGIN RETURN (SELECT v FROM bench_t WHERE id = $1); END'")  # fmt: skip
    dsn = libpq_dsn(db)
    counted = buffers(dsn, "SELECT bench_v_opaque(%(id)s)", [{"id": i} for i in range(1, 1000, 7)])
    assert set(counted.blocks) == {3}  # the same three buffers as the lookup itself


def test_a_miss_returns_no_rows_and_is_left_out_of_the_per_row_mean(conn: psycopg.Connection[Any], db: URL) -> None:
    _table(conn, 10_000)
    dsn = libpq_dsn(db)
    counted = buffers(dsn, LOOKUP, [{"id": 5}, {"id": -1}])
    assert counted.rows == [1.0, 0.0]
    assert counted.summary()["buffers_per_row"] == 3.0


def test_every_catalog_query_is_counted_with_the_parameters_its_sampler_draws(seeded: Seeded) -> None:
    """Each catalog query goes through EXPLAIN (ANALYZE, BUFFERS) EXECUTE with drawn parameters, and touches
    at least one buffer (a count of zero would mean the plan was never run)."""
    dsn = libpq_dsn(seeded.url)
    for query in CATALOG.values():
        counted = buffers(dsn, query.sql, draw_params(dsn, query, 8, random.Random(3)))  # noqa: S311
        assert len(counted.blocks) == 8, query.name
        assert min(counted.blocks) > 0, query.name
