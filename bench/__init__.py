"""``python -m bench`` (``make bench``): latency, throughput and ingest figures of the schema, measured in one run.

The run starts a throwaway PostgreSQL 18 cluster of its own (the embedded server's binaries, durable settings,
Unix socket only; :mod:`bench.common`), and on it runs the workloads, one module each:

1. the floor: a prepared ``SELECT 1`` round trip (:func:`bench.common.floor`), measured at each scale just before
   its queries;
2. :mod:`bench.catalog`: every catalog query at each scale: a fresh database migrated to head, seeded with
   :func:`platformdb.workbench.seed.seed` (which ends with ANALYZE), then warm-up and timed iterations with
   prepared statements and parameters drawn from the data by the query's sampler;
3. :mod:`bench.baseline`: the original task's schema (``bench/baseline/original_task.sql``) loaded with the same
   facts it can hold, answering the equivalent questions, at the largest scale;
4. :mod:`bench.audited_writes`: audited writes with 1 and 8 writers, with the audit trigger on and off;
5. :mod:`bench.ingest`: COPY, batched INSERT and the unlogged unindexed physical limit;
6. :mod:`bench.mixed`: every microservice at once (pgbench scripts from the catalog, ingest and maintenance
   beside them) at 1, 4, 8 and 16 clients, at the largest scale;
7. :func:`bench.baseline.baseline_mixed`: the questions both schemas answer, as pgbench scripts on each, at the
   same client counts.

:mod:`bench.report` writes the figures as JSON, the generated part of docs/PERFORMANCE.md and a latency chart.
Nothing in the schema is tuned here.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import report
from bench.audited_writes import audited_writes
from bench.baseline import baseline, baseline_mixed
from bench.catalog import catalog_at_scale
from bench.common import SETTINGS, Bench, sampled_load, throwaway_bench
from bench.ingest import ingest
from bench.mixed import mixed
from platformdb import __version__


def run(
    scales: Sequence[int],
    *,
    warmup: int = 2000,
    iterations: int = 2000,
    ingest_rows: int = 1_000_000,
    write_seconds: float = 10.0,
    results_dir: Path = Path("bench/results"),
    docs_dir: Path = Path("docs"),
    console: Console | None = None,
) -> dict[str, Any]:
    """The whole benchmark; returns the figures and writes the JSON, the report and the chart."""
    if len(scales) < 2:
        raise ValueError("give at least two scales, e.g. 1,10")
    scales = sorted(set(scales))
    console = console or Console(stderr=True, soft_wrap=True)
    began = time.perf_counter()
    with throwaway_bench(console, warmup, iterations) as b, sampled_load(b.timing) as loads:
        version = b.server_version()
        results = _workloads(b, scales, ingest_rows, write_seconds)
    results["meta"] = _meta(scales, warmup, iterations, time.perf_counter() - began, version, loads)
    report.write_results(results, results_dir)
    report.write_docs(results, docs_dir)
    return results


def _workloads(b: Bench, scales: Sequence[int], ingest_rows: int, write_seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"scales": {}}
    databases = {}
    for scale in scales:
        databases[scale], results["scales"][str(scale)] = catalog_at_scale(b, scale)
    # The floor the targets use: the one measured beside the largest scale's queries.
    results["floor"] = results["scales"][str(scales[-1])]["floor"]
    results["baseline"], results["baseline_resolution"] = baseline(b, databases[scales[-1]])
    results["writes"] = audited_writes(b, databases[scales[0]], write_seconds)
    results["ingest"] = ingest(b, databases[scales[0]], ingest_rows)
    largest = scales[-1]
    results["mixed"] = mixed(b, databases[largest], results["scales"][str(largest)]["queries"])
    results["baseline_mixed"] = baseline_mixed(b, databases[largest])
    return results


def _meta(
    scales: Sequence[int], warmup: int, iterations: int, seconds: float, version: str, loads: list[float]
) -> dict[str, Any]:
    """The run's conditions: when, where, with which settings, and the machine's load while queries were timed."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "server_version": version,
        "platformdb": __version__,
        "commit": _commit(),
        "cpus": len(os.sched_getaffinity(0)),
        "machine": f"{platform.system()} {platform.machine()}",
        "warmup": warmup,
        "iterations": iterations,
        "seconds": seconds,
        "result_file": f"bench-scales-{'-'.join(map(str, scales))}.json",
        "settings": SETTINGS,
        "load_average_mean": sum(loads) / len(loads) if loads else os.getloadavg()[0],
        "load_average_max": max(loads, default=os.getloadavg()[0]),
    }


def _commit() -> str | None:
    """The measured code's git commit, ``+dirty`` when the work tree differs from it (outside what a run writes);
    None outside a checkout."""
    root = Path(__file__).parents[1]
    outputs = [f":(exclude){p}" for p in ("bench/results", "docs/PERFORMANCE.md", "docs/performance-*.png")]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *outputs],
                               cwd=root, capture_output=True, text=True)  # fmt: skip
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


__all__ = ["run"]
