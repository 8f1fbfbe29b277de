"""What every workload shares: the throwaway cluster (:class:`Bench`), timing (:class:`Run`, :func:`time_runs`),
statistics (:func:`percentile`, :func:`summarize`), number formatting, and the floor and settle steps."""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq
from rich.console import Console

from platformdb.queries import Query
from platformdb.queries.base import positional
from platformdb.workbench.samplers import Sampler, draw
from platformdb.workbench.server import Cluster, embedded_bin_dir

# Durable: fsync, full page writes and synchronous commit stay at their defaults; only memory is sized.
SETTINGS = {"shared_buffers": "512MB", "max_connections": "40"}
PERCENTILES = (50, 95, 99)
SETTLE_SECONDS = 5.0
LOAD_SAMPLE_SECONDS = 5.0
ROUNDS = 20
"""Each measurement is split over this many rounds, each on fresh connections (see :func:`time_runs`)."""
ROUND_WARMUP = 20
"""Untimed executions per run at the start of each later round: prepares the statement, fills the new backend's
catalog caches."""


# --- statistics and formatting (pure; unit tested) ------------------------------------------------------
def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of ``values`` by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds, and single-connection throughput (queries per second of busy time)."""
    ms = [s * 1000 for s in seconds]
    result = {f"p{p}_ms": percentile(ms, p) for p in PERCENTILES}
    result["qps"] = len(seconds) / sum(seconds) if sum(seconds) > 0 else math.inf
    result["n"] = len(seconds)
    return result


def fmt_ms(value: float) -> str:
    """Milliseconds, about three significant figures: 0.0421, 0.421, 4.213, 42.1, 421."""
    if value < 0.1:
        return f"{value:.4f}"
    if value < 10:
        return f"{value:.3f}".rstrip("0").rstrip(".") if value >= 1 else f"{value:.3f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:.0f}"


def fmt_rate(value: float) -> str:
    """A rate with thousands separators, no decimals: 123,456."""
    return f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"


# --- the cluster -----------------------------------------------------------------------------------------
@dataclass
class Bench:
    cluster: Cluster
    console: Console
    warmup: int
    iterations: int
    results: dict[str, Any] = field(default_factory=dict)
    timing: threading.Event = field(default_factory=threading.Event)
    """Set while queries are timed (the load average is sampled then)."""

    def dsn(self, database: str) -> str:
        return self.cluster.url(database)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn("postgres"), autocommit=True)

    def create_database(self, name: str, template: str = "template0") -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def server_version(self) -> str:
        with self.admin() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def log(self, message: str) -> None:
        self.console.print(f"[bold]bench[/bold] {message}")


@contextmanager
def throwaway_bench(console: Console, warmup: int, iterations: int) -> Iterator[Bench]:
    """A started cluster of its own in a temporary directory, destroyed (and the directory removed) on exit."""
    root = Path(tempfile.mkdtemp(prefix="platformdb-bench-"))
    cluster = Cluster(data_dir=root / "pgdata", bin_dir=embedded_bin_dir(), settings=dict(SETTINGS))
    try:
        cluster.start()
        yield Bench(cluster, console, warmup, iterations)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def sampled_load(timing: threading.Event) -> Iterator[list[float]]:
    """The machine's 1-minute load average, sampled every :data:`LOAD_SAMPLE_SECONDS` while ``timing`` is set."""
    loads: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(LOAD_SAMPLE_SECONDS):
            if timing.is_set():
                loads.append(os.getloadavg()[0])

    threading.Thread(target=watch, daemon=True).start()
    try:
        yield loads
    finally:
        done.set()


# --- timing ----------------------------------------------------------------------------------------------
def _as_text(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat().encode()
    if isinstance(value, bytes | bytearray | memoryview):  # bytea's text form (str() would give "b'...'")
        return b"\\x" + bytes(value).hex().encode()
    return str(value).encode()


@dataclass
class Run:
    """One query to time: a database, its SQL and one parameter set (a dict) per timed execution.

    Executions go through libpq itself (a prepared statement, parameters and rows in text form), so that a
    figure is the database's time plus the round trip, not the client turning rows into Python objects (which
    would charge a query for the width of its rows: measured here, tens of microseconds for 50 rows of UUIDs).
    """

    dsn: str
    sql: str
    params: Sequence[dict[str, Any]]
    times: list[float] = field(default_factory=list)
    rows: int = 0
    _names: list[str] = field(default_factory=list, repr=False)

    def prepare(self, conn: psycopg.Connection[Any]) -> None:
        text, self._names = positional(self.sql)
        _check(conn.pgconn.prepare(b"bench", text.encode()), conn)

    def once(self, i: int, conn: psycopg.Connection[Any], timed: bool) -> None:
        p = self.params[i % len(self.params)]
        values: list[Any] = [_as_text(p[name]) for name in self._names]  # None is SQL NULL
        began = time.perf_counter()
        result = conn.pgconn.exec_prepared(b"bench", values)
        elapsed = time.perf_counter() - began
        _check(result, conn)
        if timed:
            self.times.append(elapsed)
            self.rows += result.ntuples

    @property
    def mean_rows(self) -> float:
        return self.rows / len(self.times) if self.times else 0.0


def _check(result: Any, conn: psycopg.Connection[Any]) -> None:
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        message = (result.error_message or b"").decode(errors="replace").strip()
        raise RuntimeError(f"bench query failed on {conn.info.dbname}: {message}")


def time_runs(runs: Sequence[Run], warmup: int, rounds: int = ROUNDS) -> None:
    """Execute each run's parameter sets as prepared statements and time them.

    First ``warmup`` untimed executions (cycling through the parameter sets, so with warmup >= iterations every
    timed execution reads pages already cached, as on a server whose working set is in memory). Then each
    parameter set once, timed, spread over ``rounds`` rounds, each on a fresh connection per run (opened in
    alternating order): on a small machine one connection's server process may be luckier than another's in
    where the scheduler puts it (measured here: a steady 30-40 us apart on `SELECT 1`), and fresh connections
    per round average that out. With several runs, executions alternate between them, each side first in turn,
    so that noise from the machine falls on all of them alike.
    """
    total = max(len(run.params) for run in runs)
    per_round = -(-total // rounds)
    for k in range(rounds):
        order = list(range(len(runs))) if k % 2 == 0 else list(range(len(runs)))[::-1]
        conns: dict[int, psycopg.Connection[Any]] = {}
        try:
            for j in order:
                conns[j] = psycopg.connect(runs[j].dsn, autocommit=True)
            pairs = [(run, conns[j]) for j, run in enumerate(runs)]
            _time_round(
                pairs, warmup if k == 0 else ROUND_WARMUP, range(k * per_round, min(total, (k + 1) * per_round))
            )
        finally:
            for conn in conns.values():
                conn.close()


def _time_round(pairs: Sequence[tuple[Run, psycopg.Connection[Any]]], warmup: int, timed: range) -> None:
    """One round on its connections: prepare, ``warmup`` untimed executions, then the ``timed`` executions."""
    for run, conn in pairs:
        run.prepare(conn)
    for i in range(warmup):
        for run, conn in pairs:
            run.once(i, conn, timed=False)
    for i in timed:
        for run, conn in pairs if i % 2 == 0 else pairs[::-1]:  # neither side always goes first
            if i < len(run.params):
                run.once(i, conn, timed=True)


def timed(dsn: str, sql: str, params: Sequence[dict[str, Any]], warmup: int) -> Run:
    """One run of ``sql`` on its own, timed by :func:`time_runs`."""
    run = Run(dsn, sql, params)
    time_runs([run], warmup)
    return run


BUFFER_SAMPLES = 200
"""Parameter sets per query whose executions are EXPLAINed for their buffers (the count is deterministic for a
given plan and data, so a few hundred describe the distribution)."""


@dataclass
class Buffers:
    """Shared buffers (hit + read) and rows of each EXPLAINed execution of one prepared query."""

    blocks: list[int]
    rows: list[float]

    def summary(self) -> dict[str, float]:
        """Mean buffers per call, their p99, and mean buffers per returned row (of the calls that returned rows)."""
        per_row = [b / r for b, r in zip(self.blocks, self.rows, strict=True) if r > 0]
        return {
            "buffers_per_call": sum(self.blocks) / len(self.blocks),
            "buffers_p99": percentile([float(b) for b in self.blocks], 99),
            "buffers_per_row": sum(per_row) / len(per_row) if per_row else math.nan,
        }


def buffers(dsn: str, sql: str, params: Sequence[dict[str, Any]], samples: int = BUFFER_SAMPLES) -> Buffers:
    """Shared blocks hit + read by each execution of ``sql`` as a prepared statement (the plan the timed runs get:
    six executions first, so that the plan cache has chosen between a custom and the generic plan), from
    ``EXPLAIN (ANALYZE, BUFFERS)`` of ``EXECUTE``: the executor's count, planning excluded, everything a called
    function reads included. A count, not a time: it does not move with the machine's load."""
    text, names = positional(sql)
    out = Buffers([], [])
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        conn.execute(f"PREPARE bench_buffers AS {text}")
        args = ", ".join(["%s"] * len(names))
        call = "EXECUTE bench_buffers" + (f"({args})" if names else "")
        chosen = list(params[:samples])
        for i in range(6):
            cur.execute(call, [chosen[i % len(chosen)][n] for n in names])
        for p in chosen:
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) {call}", [p[n] for n in names])
            plan = cur.fetchone()[0][0]["Plan"]  # type: ignore[index]
            out.blocks.append(int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0)))
            out.rows.append(float(plan.get("Actual Rows", 0)))
    return out


def draw_params(dsn: str, query: Query, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` parameter sets for ``query``, drawn from the data in ``dsn`` by its sampler."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        sampler = Sampler(conn, rng)
        return [draw(query, sampler) for _ in range(count)]


# --- steps shared by the workloads -----------------------------------------------------------------------
def floor(b: Bench) -> dict[str, float]:
    """The floor: a prepared ``SELECT 1`` round trip, ten times the iterations of a query."""
    result = summarize(timed(b.dsn("postgres"), "SELECT 1", [{}] * (b.iterations * 10), b.warmup * 10).times)
    b.log(f"floor: prepared SELECT 1 p50 {fmt_ms(result['p50_ms'])} ms, p99 {fmt_ms(result['p99_ms'])} ms")
    return result


def settle(b: Bench) -> None:
    """Write the seed's dirty pages out before timing (a checkpoint, then the kernel's write-back), so that the
    queries are not timed against the tail of a bulk load's I/O."""
    with b.admin() as conn:
        conn.execute("CHECKPOINT")
    os.sync()
    time.sleep(SETTLE_SECONDS)


@contextmanager
def timing(b: Bench) -> Iterator[None]:
    """Mark the block as timed (the load average is sampled only then)."""
    b.timing.set()
    try:
        yield
    finally:
        b.timing.clear()
