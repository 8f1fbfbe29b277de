"""Every catalog query at one scale: a fresh database migrated to head and seeded, then each query timed with
parameters drawn from the data by its sampler; and the growth of each query's p99 from the smallest scale to the
largest."""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

import psycopg

from bench.common import Bench, buffers, draw_params, floor, fmt_ms, settle, summarize, timed, timing
from platformdb import migrate
from platformdb.db import parse_url
from platformdb.ops import indexes
from platformdb.queries import CATALOG, Query
from platformdb.workbench import seed as seeding


def catalog_at_scale(b: Bench, scale: int) -> tuple[str, dict[str, Any]]:
    """Seed a fresh database at ``scale`` and time every catalog query there; returns its name and the figures."""
    name = f"bench_scale_{scale}"
    load_s, counts, size = _load(b, name, scale)
    with timing(b):
        beside = floor(b)  # the floor of this scale's queries: measured beside them, not at the start of the run
        figures = {query.name: _time_query(b, name, scale, query) for query in CATALOG.values()}
    return name, {"load_seconds": load_s, "database_bytes": size, "counts": counts, "floor": beside, "queries": figures}


def _load(b: Bench, name: str, scale: int) -> tuple[float, dict[str, int], int]:
    """Create, migrate and seed ``name``; vacuum and settle it. Returns the load's seconds, the row counts and the
    database's size in bytes."""
    b.create_database(name)
    url = parse_url(b.dsn(name))
    b.log(f"scale {scale}: migrating and seeding {name}")
    began = time.perf_counter()
    migrate.upgrade(url)
    report = seeding.seed(url, scale=scale, seed=1, console=b.console)
    load_s = time.perf_counter() - began
    with psycopg.connect(b.dsn(name), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")  # as autovacuum would have by now in a live database
        # As the daily `platformdb indexes rebuild` would have: the seed replays years of rollouts at once.
        for rebuilt in indexes.rebuild(conn, lock_timeout=dt.timedelta(seconds=30)):
            b.log(f"scale {scale}: {rebuilt}")
        conn.execute("ANALYZE")
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
    settle(b)
    return load_s, report.counts, size


def _time_query(b: Bench, database: str, scale: int, query: Query) -> dict[str, Any]:
    rng = random.Random(f"bench:{query.name}")  # noqa: S311 - not cryptography
    params = draw_params(b.dsn(database), query, b.iterations, rng)
    run = timed(b.dsn(database), query.sql, params, b.warmup)
    figures: dict[str, Any] = {"kind": query.kind, "rows_mean": run.mean_rows, **summarize(run.times)}
    figures.update(buffers(b.dsn(database), query.sql, params).summary())
    b.log(
        f"scale {scale} {query.name:<45} p99 {fmt_ms(figures['p99_ms'])} ms,"
        f" {figures['buffers_per_call']:,.1f} buffers per call"
    )
    return figures


def smallest_and_largest(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The per-query figures at the smallest and at the largest scale of ``results``."""
    scales = sorted(results["scales"], key=int)
    return results["scales"][scales[0]]["queries"], results["scales"][scales[-1]]["queries"]


def growth(results: dict[str, Any]) -> dict[str, float]:
    """Each query's p99 at the largest scale over its p99 at the smallest."""
    small, large = smallest_and_largest(results)
    return {name: large[name]["p99_ms"] / small[name]["p99_ms"] for name in small}


GROWING_ANSWER = 1.5
"""A query whose mean rows returned grow more than this from one scale to the next answers a question that grows
with the platform (a blast radius): its cost is judged per returned row, not per call."""


def buffer_growth(results: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """Each query's buffers from the second-largest scale to the largest: ("per call" or "per row", the ratio).
    Empty for a run from before buffers were counted."""
    scales = sorted(results["scales"], key=int)
    below, top = (results["scales"][s]["queries"] for s in scales[-2:])
    out: dict[str, tuple[str, float]] = {}
    for name, q in top.items():
        if "buffers_per_call" not in q or "buffers_per_call" not in below.get(name, {}):
            continue
        grows = q["rows_mean"] > GROWING_ANSWER * below[name]["rows_mean"] and below[name]["rows_mean"] > 0
        key, label = ("buffers_per_row", "per row") if grows else ("buffers_per_call", "per call")
        out[name] = (label, q[key] / below[name][key])
    return out
