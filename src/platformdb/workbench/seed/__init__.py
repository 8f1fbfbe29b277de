"""``platformdb seed``: a deterministic, realistic data set of any scale, for benchmarks and plan checks.

The data is generated in Python from one seed, one module per bounded context (the same seed and scale give
the same rows, up to the time anchor: history ends "now", truncated to the minute), and loaded through the
schema's own rules by :mod:`.loader`. Timestamps a writer supplies carry the simulated history.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.db import connect
from platformdb.errors import UserError
from platformdb.review.introspect import count_rows
from platformdb.workbench.seed.base import check_scale, uuid7
from platformdb.workbench.seed.dataset import Dataset, generate
from platformdb.workbench.seed.loader import SAMPLE_CHUNK, Loader


@dataclass
class SeedReport:
    """What a seed wrote: rows per table and how long each phase took."""

    scale: int
    seed: int
    now: dt.datetime
    server_version: str
    counts: dict[str, int]
    phases: dict[str, float]
    """Seconds per phase; the samples phase runs alongside the history replay."""
    seconds: float
    """Wall-clock seconds of the whole seed."""


def seed(
    url: URL,
    *,
    scale: int = 1,
    seed: int = 1,
    now: dt.datetime | None = None,
    console: Console | None = None,
) -> SeedReport:
    """Generate the data set and load it into the (migrated, empty) database at ``url``; then ANALYZE."""
    check_scale(scale)
    migrate.require_head(url)
    anchor = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    with connect(url, autocommit=True) as conn:  # each `with conn.transaction()` is a transaction of its own
        _require_empty(conn)
        server_version = str(conn.info.parameter_status("server_version"))
        with _progress(console or Console(stderr=True)) as progress:
            began = time.perf_counter()
            task = progress.add_task(f"generating scale {scale} (seed {seed})", total=1)
            data = generate(scale, seed, anchor)
            progress.advance(task)
            loader = Loader(url, conn, data, progress)
            loader.phases["generate"] = time.perf_counter() - began
            loader.run()
            _freezes_and_promotions(conn, anchor)
            loader.analyze()
            seconds = time.perf_counter() - began
        counts = count_rows(conn)
    return SeedReport(scale, seed, anchor, server_version, counts, loader.phases, seconds)


def _freezes_and_promotions(conn: psycopg.Connection[Any], anchor: dt.datetime) -> None:
    """After the history: the promotion path development -> staging -> each production, a weekend freeze
    schedule per production environment, and the 26 weekend freezes each had before ``anchor`` (so the freeze
    calendar has data and no rollout of a bench or test on the seeded database is frozen now). Overrides stay
    empty: they need a second person holding freeze:override, which the seeded roles do not grant."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO platform.environment_promotions (from_environment_id, to_environment_id)
               SELECT f.id, t.id FROM platform.environments f, platform.environments t
                WHERE (f.name, t.name) IN (('development', 'staging'), ('staging', 'eu-production'),
                                           ('staging', 'us-production'))"""
        )
        conn.execute(
            """WITH s AS (
                 INSERT INTO platform.freeze_schedules (environment_id, cron, time_zone, duration, reason)
                 SELECT e.id, '0 18 * * 5', CASE e.name WHEN 'eu-production' THEN 'Europe/Berlin'
                                                        ELSE 'America/New_York' END,
                        interval '2 days 15 hours', 'Weekend freeze: no production changes'
                   FROM platform.environments e WHERE e.name IN ('eu-production', 'us-production')
                 RETURNING id, environment_id, time_zone, duration, reason)
               INSERT INTO platform.freeze_periods (environment_id, during, reason, schedule_id)
               SELECT s.environment_id,
                      tstzrange(f.starts, ((f.starts AT TIME ZONE s.time_zone) + s.duration) AT TIME ZONE s.time_zone),
                      s.reason, s.id
                 FROM s CROSS JOIN LATERAL (
                   SELECT ((date_trunc('week', %(anchor)s AT TIME ZONE s.time_zone) - w * interval '1 week'
                            + interval '4 days 18 hours') AT TIME ZONE s.time_zone) AS starts
                     FROM generate_series(2, 27) w) f""",
            {"anchor": anchor},
        )


def _require_empty(conn: psycopg.Connection[Any]) -> None:
    if conn.execute(
        "SELECT EXISTS (SELECT FROM platform.users) OR EXISTS (SELECT FROM platform.services)"
    ).fetchone() != (False,):
        raise UserError("the database already holds data: seed an empty database (migrated to head)")


def _progress(console: Console) -> Progress:
    columns = (TextColumn("{task.description:<48}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console)


def summary(report: SeedReport) -> Table:
    """Rows per table and phase timings, for the terminal."""
    table = Table("table", "rows", title=f"Seeded scale {report.scale} (seed {report.seed}) on PostgreSQL "
                  f"{report.server_version} in {report.seconds:.1f} s", title_justify="left")  # fmt: skip
    for name, n in report.counts.items():
        table.add_row(name, f"{n:,}")
    table.add_section()
    for phase, seconds in report.phases.items():
        table.add_row(f"[dim]{phase}[/dim]", f"[dim]{seconds:.1f} s[/dim]")
    return table


__all__ = ["SAMPLE_CHUNK", "Dataset", "SeedReport", "check_scale", "generate", "seed", "summary", "uuid7"]
