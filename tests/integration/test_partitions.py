"""Partition maintenance: nothing is lost when a partition is missing, and retention drops whole partitions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from platformdb.ops import partitions
from tests.factories import Make


def partitions_of(conn: psycopg.Connection[Any], parent: str) -> list[str]:
    rows = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass ORDER BY 1", (parent,)
    ).fetchall()
    return [r[0] for r in rows]


def where(conn: psycopg.Connection[Any], series: int) -> list[tuple[str, int]]:
    rows = conn.execute(
        "SELECT tableoid::regclass::text, count(*) FROM platform.metric_samples"
        " WHERE series_id = %s GROUP BY 1 ORDER BY 1",
        (series,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_a_sample_without_a_partition_lands_in_default_and_ensure_moves_it(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    series = make.series()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    conn.execute("INSERT INTO platform.metric_samples VALUES (%s, %s, 1), (%s, %s, 2)",
                 (series, later, series, later + dt.timedelta(seconds=1)))  # fmt: skip
    assert where(conn, series) == [("platform.metric_samples_default", 2)]
    [audit, samples] = partitions.ensure(conn, ahead_days=25)
    assert (samples.moved, samples.default_rows) == (2, 0)
    assert samples.created >= 13
    assert where(conn, series) == [(f"platform.metric_samples_p{later:%Y_%m_%d}", 2)]
    assert (audit.moved, audit.default_rows) == (0, 0)


def test_ensure_is_idempotent_and_reports_coverage(conn: psycopg.Connection[Any]) -> None:
    partitions.ensure(conn, ahead_days=10)
    again = {r.table: r for r in partitions.ensure(conn, ahead_days=10)}
    assert (again["metric_samples"].created, again["audit_logs"].created) == (0, 0)
    now = dt.datetime.now(dt.UTC)
    assert again["metric_samples"].days_ahead(now) >= 10
    assert again["audit_logs"].days_ahead(now) >= 10


def test_audit_rows_waiting_in_default_are_moved_with_their_hashes(conn: psycopg.Connection[Any]) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=100)
    conn.execute(
        """INSERT INTO platform.audit_logs (created_at, actor_name, action, entity_type, entity_id, after, prev_hash,
                                            row_hash, chain_lane)
           VALUES (%s, 'x', 'insert', 'teams', 'late', '{}', decode(repeat('00', 32), 'hex'),
                   decode(repeat('ab', 32), 'hex'), 0)""",
        (later,),
    )
    [audit] = partitions.ensure(conn, ahead_days=101, table="audit_logs")
    assert (audit.moved, audit.default_rows) == (1, 0)
    row = conn.execute("SELECT tableoid::regclass::text, encode(row_hash, 'hex') FROM platform.audit_logs").fetchone()
    assert row == (f"platform.audit_logs_p{later:%Y_%m}", "ab" * 32)


def test_new_partitions_copy_the_default_partitions_settings_and_truncate_guard(conn: psycopg.Connection[Any]) -> None:
    partitions.ensure(conn, ahead_days=40)
    for parent in ("platform.audit_logs", "platform.metric_samples"):
        options = conn.execute(
            """SELECT DISTINCT c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = %s::regclass""",
            (parent,),
        ).fetchall()
        assert len(options) == 1
        assert "autovacuum_vacuum_insert_scale_factor=0" in options[0][0]
    guarded = conn.execute(
        """SELECT count(*) = count(t.tgname) FROM pg_inherits i
             LEFT JOIN pg_trigger t ON t.tgrelid = i.inhrelid AND t.tgname = 'trg_audit_logs_no_truncate'
            WHERE i.inhparent = 'platform.audit_logs'::regclass"""
    ).fetchone()
    assert guarded == (True,)


@pytest.mark.parametrize("detach", [False, True], ids=["drop", "detach"])
def test_prune_removes_whole_partitions_older_than_the_retention(
    conn: psycopg.Connection[Any], make: Make, detach: bool
) -> None:
    series = make.series()
    now = dt.datetime.now(dt.UTC)
    conn.execute("SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)",
                 (now - dt.timedelta(days=40), now))  # fmt: skip
    for days_ago in (40, 35, 20, 1):
        conn.execute("INSERT INTO platform.metric_samples VALUES (%s, %s, %s)",
                     (series, now - dt.timedelta(days=days_ago), days_ago))  # fmt: skip
    [report] = partitions.prune(conn, retain_days=30, table="metric_samples", detach=detach)
    assert len(report.dropped) == 10  # days 40..31 ago
    kept = conn.execute("SELECT value FROM platform.metric_samples ORDER BY value DESC").fetchall()
    assert kept == [(20.0,), (1.0,)]
    gone = f"platform.metric_samples_p{now - dt.timedelta(days=40):%Y_%m_%d}"
    assert gone not in partitions_of(conn, "platform.metric_samples")
    still_a_table = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (gone,)).fetchone()
    assert still_a_table == (detach,)
    [again] = partitions.prune(conn, retain_days=30, table="metric_samples")
    assert again.dropped == []
