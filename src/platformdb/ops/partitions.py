"""Partition maintenance for the time-partitioned tables: safe to run from cron, idempotent.

``ensure`` creates partitions from the oldest row waiting in the DEFAULT partition (or now) to ``ahead`` days
from now, moving any such rows into them; ``prune`` drops (or detaches) whole partitions older than the
retention. Both report what they did and how far ahead writes are covered. A write whose timestamp has no
partition never fails: it lands in the DEFAULT partition, which the next ``ensure`` drains.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from platformdb.errors import UserError
from platformdb.models import Partitioning, metadata

MANAGED: dict[str, Partitioning] = {
    str(table.name): table.info["partitioning"] for table in metadata.sorted_tables if "partitioning" in table.info
}
"""Partitioned table -> its partitioning, as the models declare it (``__partitioning__``)."""


@dataclass
class Report:
    table: str
    created: int = 0
    moved: int = 0
    dropped: list[str] = field(default_factory=list)
    partitions: int = 0
    covered_until: dt.datetime | None = None
    default_rows: int = 0

    def days_ahead(self, now: dt.datetime) -> float:
        return 0.0 if self.covered_until is None else (self.covered_until - now).total_seconds() / 86400


def _tables(table: str | None) -> list[str]:
    if table is None:
        return list(MANAGED)
    if table not in MANAGED:
        raise UserError(f"not a partitioned table of ours: {table} (one of {', '.join(MANAGED)})")
    return [table]


def _default_rows(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("platform", f"{table}_default")))
    found = row.fetchone()
    return int(found[0]) if found else 0


def _coverage(conn: psycopg.Connection[Any], report: Report) -> None:
    """Fill in the partition count, the end of the last partition, and the rows left in DEFAULT."""
    row = conn.execute(
        """SELECT count(*), max(substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'""",
        (f"platform.{report.table}",),
    ).fetchone()
    assert row is not None
    report.partitions, report.covered_until = int(row[0]), row[1]
    report.default_rows = _default_rows(conn, report.table)


def ensure(conn: psycopg.Connection[Any], ahead_days: int, table: str | None = None) -> list[Report]:
    """Create partitions up to ``ahead_days`` from now, draining the DEFAULT partitions; one transaction a table."""
    reports = []
    for name in _tables(table):
        granularity, key = MANAGED[name].granularity, MANAGED[name].key
        report = Report(name)
        with conn.transaction():
            before = _default_rows(conn, name)
            oldest = conn.execute(
                sql.SQL("SELECT least(min({}), now()) FROM {}").format(
                    sql.Identifier(key), sql.Identifier("platform", f"{name}_default")
                )
            ).fetchone()
            start = oldest[0] if oldest and oldest[0] else None
            created = conn.execute(
                "SELECT platform.ensure_partitions(%s::regclass, %s, coalesce(%s, now()),"
                " now() + make_interval(days => %s))",
                (f"platform.{name}", granularity, start, ahead_days),
            ).fetchone()
            report.created = int(created[0]) if created else 0
            _coverage(conn, report)
            report.moved = before - report.default_rows
        reports.append(report)
    return reports


def prune(
    conn: psycopg.Connection[Any], retain_days: int, table: str | None = None, *, detach: bool = False
) -> list[Report]:
    """Drop (or detach) the partitions that end more than ``retain_days`` ago."""
    reports = []
    for name in _tables(table):
        report = Report(name)
        with conn.transaction():
            rows = conn.execute(
                "SELECT platform.prune_partitions(%s::regclass, now() - make_interval(days => %s), %s)",
                (f"platform.{name}", retain_days, detach),
            ).fetchall()
            report.dropped = [str(r[0]) for r in rows]
            _coverage(conn, report)
        reports.append(report)
    return reports
