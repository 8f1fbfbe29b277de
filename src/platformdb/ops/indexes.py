"""Rebuild the indexes that churn (``platformdb indexes rebuild``, from cron daily, as the schema owner).

Some indexes hold only the rows of a passing state: the partial indexes of the active rollouts
(``status IN ('pending', 'in_progress')``) take every deployment in and let it go again. B-tree pages are given
back only when every entry on them is gone, so after enough churn a few hundred live entries sit on hundreds
of nearly empty leaves: measured at scale 100 (issue #13), uq_deployments_active_service_id_environment_id held
483 entries on 259 leaves (1.4% full) and ix_deployments_created_at_active 1,405 deleted pages, which the planner
still counts. delivery.active_deployments then read 276 buffers in 1.19 ms; after REINDEX 150 buffers in
0.20 ms, ahead of the original schema (0.40 ms). Which indexes churn is said once, in the models
(``info={"rebuild": True}``); this module rebuilds each one that has grown past :data:`BLOAT` times what its
entries need, with ``REINDEX INDEX CONCURRENTLY`` (reads and writes go on; it waits for the transactions that
could still see the old index) under ``lock_timeout``, dropping an invalid copy a failed rebuild left behind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from platformdb.models import metadata

BLOAT = 4.0
"""Rebuild when the index has this many times the pages its entries need (and more than MIN_PAGES)."""
MIN_PAGES = 8
ENTRY_BYTES = 48
"""A generous estimate of one entry of a two-uuid or timestamp key, with its tuple header and line pointer."""


def churned() -> list[str]:
    """The indexes the models mark ``rebuild``, by name, in table order."""
    return [
        str(index.name)
        for table in metadata.sorted_tables
        for index in sorted(table.indexes, key=lambda i: str(i.name))
        if index.info.get("rebuild")
    ]


@dataclass(frozen=True)
class Rebuilt:
    index: str
    pages_before: int
    pages_after: int | None
    skipped: str | None = None
    blocked: bool = False
    """Not rebuilt because a lock or an old reader was not waited out within lock_timeout (a run that failed)."""

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.index}: {self.pages_before} pages, {self.skipped}"
        return f"{self.index}: rebuilt, {self.pages_before} -> {self.pages_after} pages"


def _pages(conn: psycopg.Connection[Any], index: str) -> tuple[int, float]:
    row = conn.execute(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int, greatest(c.reltuples, 0)"
        "  FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (f"platform.{index}",),
    ).fetchone()
    if row is None or row[0] is None:
        raise LookupError(index)
    return int(row[0]), float(row[1])


def _needed_pages(entries: float, block_size: int = 8192) -> int:
    return max(1, int(entries * ENTRY_BYTES / block_size) + 1)


def _drop_leftovers(conn: psycopg.Connection[Any], index: str) -> None:
    """Drop the invalid copies (``<index>_ccnew``, ``_ccold``, numbered) a rebuild that failed part-way left."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE c.relnamespace = 'platform'::regnamespace AND NOT i.indisvalid
              AND c.relname ~ ('^' || %(index)s || '_cc(new|old)[0-9]*$')""",
        {"index": index},
    ).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier("platform", name)))


def rebuild(conn: psycopg.Connection[Any], *, lock_timeout: dt.timedelta, force: bool = False) -> list[Rebuilt]:
    """Rebuild every churned index that has bloated (all of them with ``force``); ``conn`` is in autocommit."""
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false)", (f"{lock_timeout / dt.timedelta(milliseconds=1):.0f}ms",)
    )
    done = []
    for index in churned():
        _drop_leftovers(conn, index)
        before, entries = _pages(conn, index)
        if not force and (before <= MIN_PAGES or before <= BLOAT * _needed_pages(entries)):
            done.append(Rebuilt(index, before, None, f"kept (needs about {_needed_pages(entries)})"))
            continue
        try:
            conn.execute(sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier("platform", index)))
        except psycopg.errors.LockNotAvailable:
            _drop_leftovers(conn, index)
            done.append(
                Rebuilt(index, before, None, "not rebuilt: a lock not granted within lock_timeout", blocked=True)
            )
            continue
        done.append(Rebuilt(index, before, _pages(conn, index)[0]))
    return done
