"""Partition maintenance for the time-partitioned tables: safe to run from cron, idempotent, never stalling.

``ensure`` creates the partitions from the oldest row waiting in the DEFAULT partition (or now) to ``ahead`` days
from now, moving such rows into them (and makes again a day whose partition was detached); ``prune`` drops (or
detaches into schema ``platform_archive``) whole partitions older than the table's retention, which is data
(``platform.partition_retention``, one row per table): one table's retention is never applied to another, and the
audit log is pruned only when named (:data:`EXPLICIT`).
Both report what they did and how far ahead writes are covered. A write whose timestamp has no partition never
fails: it lands in the DEFAULT partition, which the next ``ensure`` drains.

What a service writes cannot break or stall it:

- only a bounded window gets partitions (``keep_days`` back, ``ahead`` days on, at most ``max_new`` a run); rows
  the DEFAULT partition holds outside the window move to ``<table>_quarantine`` where the table has one, and are
  counted in the report either way;
- every step is its own short transaction under ``lock_timeout``, retried with back-off: a reader idle in a
  transaction delays maintenance a bounded time and then makes it give up with the blocker named, and while
  maintenance waits for a lock nobody queues behind it for longer than ``lock_timeout``. Partitions are built
  apart and attached (SHARE UPDATE EXCLUSIVE on the parent), so readers and writers of the parent go on.

Detaching uses plain DETACH PARTITION under the same bounded wait: DETACH ... CONCURRENTLY is refused by
PostgreSQL while the table has a DEFAULT partition, which ours always have.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from platformdb.errors import UserError
from platformdb.models import Partitioning, metadata

MANAGED: dict[str, Partitioning] = {
    str(table.name): table.info["partitioning"] for table in metadata.sorted_tables if "partitioning" in table.info
}
"""Partitioned table -> its partitioning, as the models declare it (``__partitioning__``)."""

EXPLICIT = frozenset({"audit_logs"})
"""Tables ``prune`` touches only when named: the audit log is evidence, removed on purpose or not at all."""
ARCHIVE = "platform_archive"

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How long maintenance may wait for a lock, how often it tries, and how much it does in one run."""

    lock_timeout: dt.timedelta = dt.timedelta(milliseconds=200)
    attempts: int = 10
    """With the back-off between tries (50 ms doubling, at most 1 s), a step gives up after about 9 s."""
    max_new: int = 60
    """Partitions created per table per run; the next run goes on where this one stopped."""


@dataclass
class Report:
    table: str
    created: int = 0
    moved: int = 0
    quarantined: int = 0
    dropped: list[str] = field(default_factory=list)
    partitions: int = 0
    covered_until: dt.datetime | None = None
    default_rows: int = 0
    outside_window: int = 0
    """Rows left in DEFAULT outside the window (tables without a quarantine): they never get a partition."""
    pending: int = 0
    """Partitions the window still needs after this run (``max_new`` reached)."""
    blocked: str | None = None
    """Why a step gave up: the lock it could not get within the retries, and who held it."""
    recreated: list[str] = field(default_factory=list)
    """Partitions made again for periods whose partition had been detached (the old table is in the archive)."""
    retain_days: int | None = None
    """The retention ``prune`` applied."""

    def days_ahead(self, now: dt.datetime) -> float:
        return 0.0 if self.covered_until is None else (self.covered_until - now).total_seconds() / 86400


def _tables(table: str | None) -> list[str]:
    if table is None:
        return list(MANAGED)
    if table not in MANAGED:
        raise UserError(f"not a partitioned table of ours: {table} (one of {', '.join(MANAGED)})")
    return [table]


def retention(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Partitioned table -> the days of it that are kept (``platform.partition_retention``)."""
    rows = conn.execute("SELECT table_name, keep_days FROM platform.partition_retention ORDER BY 1").fetchall()
    return {str(name): int(days) for name, days in rows}


def set_retention(conn: psycopg.Connection[Any], table: str, keep_days: int) -> None:
    """Keep ``keep_days`` days of ``table`` (the owner's to change; services cannot write the table)."""
    _tables(table)
    conn.execute(
        """INSERT INTO platform.partition_retention (table_name, keep_days) VALUES (%s, %s)
           ON CONFLICT (table_name) DO UPDATE SET keep_days = EXCLUDED.keep_days
           WHERE partition_retention.keep_days IS DISTINCT FROM EXCLUDED.keep_days""",
        (table, keep_days),
    )


def _scalar(conn: psycopg.Connection[Any], query: sql.Composed | str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _default(name: str) -> sql.Identifier:
    return sql.Identifier("platform", f"{name}_default")


def _holders(conn: psycopg.Connection[Any], relation: str) -> str:
    """Who holds a lock on ``relation``, for the report of a step that gave up."""
    rows = conn.execute(
        """SELECT a.pid, a.usename, a.state, date_trunc('second', now() - a.state_change)
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.granted AND l.relation IN (SELECT %s::regclass UNION ALL
                  SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass) AND a.pid <> pg_backend_pid()
            GROUP BY 1, 2, 3, 4 ORDER BY 1""",
        (relation, relation),
    ).fetchall()
    return "; ".join(f"pid {pid} ({user}, {state} for {age})" for pid, user, state, age in rows) or "nobody now"


def _with_lock_retries(
    conn: psycopg.Connection[Any], relation: str, limits: Limits, step: Callable[[], T]
) -> tuple[T | None, str | None]:
    """Run ``step`` in a transaction under ``lock_timeout``, retrying with back-off; (result, None) or (None, why)."""
    for attempt in range(limits.attempts):
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)",
                    (f"{limits.lock_timeout / dt.timedelta(milliseconds=1):.0f}ms",),
                )
                return step(), None
        except psycopg.errors.LockNotAvailable:
            time.sleep(min(1.0, 0.05 * 2**attempt))
    tries = f"{limits.attempts} tries of {limits.lock_timeout.total_seconds():g} s"
    return None, f"could not lock {relation} within {tries}; held by {_holders(conn, relation)}"


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
    report.default_rows = int(_scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(_default(report.table))))


def _starts(granularity: str, first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """The start of every day or month from the one holding ``first`` to the one holding ``last`` (UTC)."""
    first = first.astimezone(dt.UTC)
    at = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "month":
        at = at.replace(day=1)
    starts = []
    while at <= last:
        starts.append(at)
        at = (at + dt.timedelta(days=32)).replace(day=1) if granularity == "month" else at + dt.timedelta(days=1)
    return starts


def ensure(
    conn: psycopg.Connection[Any], ahead_days: int, table: str | None = None, *, limits: Limits = Limits()
) -> list[Report]:
    """Create the partitions of the window up to ``ahead_days`` from now, draining the DEFAULT partitions.

    ``conn`` must be in autocommit mode: each step is a transaction of its own."""
    reports = []
    for name in _tables(table):
        reports.append(_ensure_table(conn, name, ahead_days, limits))
    return reports


def _ensure_table(conn: psycopg.Connection[Any], name: str, ahead_days: int, limits: Limits) -> Report:
    part, report, parent = MANAGED[name], Report(name), f"platform.{name}"
    now = dt.datetime.now(dt.UTC)
    keep_days = retention(conn).get(name, part.keep_days)
    keep_from, keep_until = now - dt.timedelta(days=keep_days), now + dt.timedelta(days=ahead_days + 1)
    key, default = sql.Identifier(part.key), _default(name)
    before = int(_scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(default)))

    def quarantine() -> int:
        moved = "SELECT platform.quarantine_default_rows(%s::regclass, %s, %s)"
        return int(_scalar(conn, moved, (parent, keep_from, keep_until)))

    def make(start: dt.datetime) -> Callable[[], bool]:
        return lambda: bool(_scalar(conn, "SELECT platform.ensure_partition(%s::regclass, %s, %s)",
                                    (parent, part.granularity, start)))  # fmt: skip

    report.quarantined = _with_lock_retries(conn, f"{parent}_default", limits, quarantine)[0] or 0
    window = sql.SQL("{key} >= %s AND {key} < %s").format(key=key)
    oldest = _scalar(
        conn, sql.SQL("SELECT min({}) FROM {} WHERE {}").format(key, default, window), (keep_from, keep_until)
    )
    starts = _starts(part.granularity, min(oldest or now, now), now + dt.timedelta(days=ahead_days))
    missing = [s for s in starts if s not in _existing_starts(conn, parent)]
    report.pending = max(0, len(missing) - limits.max_new)
    for start in missing[: limits.max_new]:
        if report.blocked:
            report.pending += 1
            continue
        created, report.blocked = _with_lock_retries(conn, f"{parent}_default", limits, make(start))
        report.created += int(bool(created))
        if created and _scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"{ARCHIVE}.{_name(name, part, start)}",)):
            report.recreated.append(_name(name, part, start))
    _coverage(conn, report)
    report.moved = max(0, before - report.quarantined - report.default_rows)
    outside = sql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(default, window)
    report.outside_window = int(_scalar(conn, outside, (keep_from, keep_until)))
    return report


def _name(table: str, part: Partitioning, start: dt.datetime) -> str:
    """The partition of ``table`` for the period starting at ``start`` (as ``platform.ensure_partition`` names it)."""
    return f"{table}_p{start:%Y_%m}" if part.granularity == "month" else f"{table}_p{start:%Y_%m_%d}"


def _existing_starts(conn: psycopg.Connection[Any], parent: str) -> set[dt.datetime]:
    rows = conn.execute(
        """SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)')::timestamptz
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'""",
        (parent,),
    ).fetchall()
    return {r[0].astimezone(dt.UTC) for r in rows}


def prune(
    conn: psycopg.Connection[Any],
    retain_days: int | None = None,
    table: str | None = None,
    *,
    detach: bool = False,
    limits: Limits = Limits(),
) -> list[Report]:
    """Drop (or detach into the archive) the partitions that end more than the table's retention ago, one short
    transaction each. Without ``table``: every table but :data:`EXPLICIT` ones, each by its own stored retention;
    ``retain_days`` (which overrides the stored retention for this run) needs ``table``."""
    if retain_days is not None and table is None:
        raise UserError("retention is per table: name it with --table (or leave out --retain to use each "
                        "table's stored retention)")  # fmt: skip
    kept = retention(conn)
    reports = []
    for name in [t for t in _tables(table) if table is not None or t not in EXPLICIT]:
        report, parent = Report(name), f"platform.{name}"
        report.retain_days = retain_days if retain_days is not None else kept.get(name)
        if report.retain_days is None:
            raise UserError(f"{name} has no retention in platform.partition_retention; give --retain")

        def drop(parent: str = parent, days: int = report.retain_days) -> list[str]:
            pruned = "SELECT platform.prune_partitions(%s::regclass, now() - make_interval(days => %s), %s)"
            return [str(r[0]) for r in conn.execute(pruned, (parent, days, detach)).fetchall()]

        dropped, report.blocked = _with_lock_retries(conn, parent, limits, drop)
        report.dropped = dropped or []
        _coverage(conn, report)
        reports.append(report)
    return reports
