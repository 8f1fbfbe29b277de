"""Partition maintenance: nothing is lost when a partition is missing, and retention drops whole partitions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from platformdb.errors import UserError
from platformdb.ops import partitions
from platformdb.review.introspect import read_schema
from platformdb.review.lint import lint, load_exceptions
from tests.factories import Make, rejected


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
    gone = f"metric_samples_p{now - dt.timedelta(days=40):%Y_%m_%d}"
    assert f"platform.{gone}" not in partitions_of(conn, "platform.metric_samples")
    assert conn.execute("SELECT to_regclass(%s)", (f"platform.{gone}",)).fetchone() == (None,)
    archived = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"platform_archive.{gone}",)).fetchone()
    assert archived == (detach,)
    assert (f"platform_archive.{gone}" in report.dropped) == detach
    [again] = partitions.prune(conn, retain_days=30, table="metric_samples")
    assert again.dropped == []


# --- issue #11 point 6: retention per table, the archive, partition index names ------------------------------
def make_old_partitions(conn: psycopg.Connection[Any], days: int) -> dt.datetime:
    """Partitions of both tables from ``days`` ago to now; returns now."""
    now = dt.datetime.now(dt.UTC)
    conn.execute("SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)",
                 (now - dt.timedelta(days=days), now))  # fmt: skip
    conn.execute("SELECT platform.ensure_partitions('platform.audit_logs', 'month', %s, %s)",
                 (now - dt.timedelta(days=days), now))  # fmt: skip
    return now


def test_retention_is_per_table_data_and_the_audit_log_is_pruned_only_when_named(
    conn: psycopg.Connection[Any],
) -> None:
    """Without --table, prune used one --retain for every table: the metrics' 30 days cut the audit log too.
    Each table's retention is now a row of platform.partition_retention (seeded from the models' keep_days);
    prune without a table applies each table's own and leaves the audit log alone; --retain needs --table."""
    assert partitions.retention(conn) == {name: p.keep_days for name, p in partitions.MANAGED.items()}
    now = make_old_partitions(conn, 500)
    audit_before = partitions_of(conn, "platform.audit_logs")
    with pytest.raises(UserError, match="retention is per table"):
        partitions.prune(conn, retain_days=30)
    [samples] = partitions.prune(conn)
    assert (samples.table, samples.retain_days) == ("metric_samples", 35)
    assert len(samples.dropped) == 500 - 35
    assert partitions_of(conn, "platform.audit_logs") == audit_before  # never without --table audit_logs
    oldest = min(p for p in partitions_of(conn, "platform.metric_samples") if not p.endswith("_default"))
    assert oldest == f"platform.metric_samples_p{now - dt.timedelta(days=35):%Y_%m_%d}"

    partitions.set_retention(conn, "metric_samples", 20)
    [samples] = partitions.prune(conn)
    assert (samples.retain_days, len(samples.dropped)) == (20, 15)
    [audit] = partitions.prune(conn, table="audit_logs")
    assert audit.retain_days == 400
    assert audit.dropped
    assert max(audit.dropped) < f"platform.audit_logs_p{now - dt.timedelta(days=400):%Y_%m}"


def test_retention_rules(conn: psycopg.Connection[Any]) -> None:
    """The retention table's rules, as the owner (no service may write it: it has no grant but readonly's SELECT)."""
    with rejected("23514", "ck_partition_retention_keep_days_range"):
        conn.execute("UPDATE platform.partition_retention SET keep_days = 0 WHERE table_name = 'metric_samples'")
    with rejected("23514", "ck_partition_retention_table_name_format"):
        conn.execute("INSERT INTO platform.partition_retention (table_name, keep_days) VALUES ('Bad Name', 1)")
    with rejected("23000", "trg_partition_retention_keys_immutable"):
        conn.execute("UPDATE platform.partition_retention SET table_name = 'other' WHERE table_name = 'audit_logs'")
    with rejected("23000", "trg_partition_retention_updated_at"):
        conn.execute("UPDATE platform.partition_retention SET created_at = now() - interval '1 day'")
    conn.execute("UPDATE platform.partition_retention SET keep_days = 36500 WHERE table_name = 'audit_logs'")
    changes = conn.execute(
        "SELECT count(*) FROM platform.audit_logs WHERE entity_type = 'partition_retention'"
    ).fetchone()  # trg_partition_retention_audit records the change
    assert changes == (1,)


def test_detach_archives_and_ensure_makes_the_day_again(conn: psycopg.Connection[Any], make: Make) -> None:
    """--detach left the tables in schema platform, where lint failed on them, and ensure then took the
    detached table for the day's partition. Detached partitions now go to platform_archive; ensure makes the day
    again, says so, and archives a table a DETACH before revision 0025 left in platform."""
    now = make_old_partitions(conn, 3)
    day = f"metric_samples_p{now - dt.timedelta(days=3):%Y_%m_%d}"
    [pruned] = partitions.prune(conn, retain_days=2, table="metric_samples", detach=True)
    assert pruned.dropped == [f"platform_archive.{day}"]
    stale = f"metric_samples_p{now - dt.timedelta(days=2):%Y_%m_%d}"  # as detached before 0025: left in platform
    conn.execute(f"ALTER TABLE platform.metric_samples DETACH PARTITION platform.{stale}")
    series = make.series()
    for days_ago in (3, 2):  # late samples of those days wait in DEFAULT
        conn.execute("INSERT INTO platform.metric_samples VALUES (%s, %s, 1)",
                     (series, now - dt.timedelta(days=days_ago)))  # fmt: skip
    [report] = partitions.ensure(conn, ahead_days=1, table="metric_samples")
    assert (report.moved, report.default_rows) == (2, 0)
    assert sorted(report.recreated) == sorted([day, stale])
    assert f"platform.{day}" in partitions_of(conn, "platform.metric_samples")
    archived = conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'platform_archive'::regnamespace AND relkind = 'r'"
        " ORDER BY 1"
    ).fetchall()
    assert archived == sorted([(day,), (stale,)])
    schema = read_schema(conn)
    assert schema is not None
    assert lint(schema, load_exceptions())[0] == []  # nothing detached is left where lint looks
    assert where(conn, series) == [(f"platform.{day}", 1), (f"platform.{stale}", 1)]


def test_partition_indexes_are_named_after_the_rule(conn: psycopg.Connection[Any]) -> None:
    """A duplicate sample or audit row named PostgreSQL's index of the partition (metric_samples_p2026_12_01_pkey).
    Every index of every partition is now <parent's index>_p<period> or <parent's index>_default."""
    make_old_partitions(conn, 40)
    rows = conn.execute(
        """SELECT pc.relname, ci.relname, pi.relname
             FROM pg_inherits ih JOIN pg_class pc ON pc.oid = ih.inhrelid
             JOIN pg_index x ON x.indrelid = pc.oid JOIN pg_class ci ON ci.oid = x.indexrelid
             JOIN pg_inherits ii ON ii.inhrelid = ci.oid JOIN pg_class pi ON pi.oid = ii.inhparent
            WHERE ih.inhparent IN ('platform.metric_samples'::regclass, 'platform.audit_logs'::regclass)"""
    ).fetchall()
    assert {parent for _, _, parent in rows} == {
        "pk_metric_samples", "pk_audit_logs", "ix_audit_logs_actor_id_created_at", "ix_audit_logs_created_at",
        "ix_audit_logs_entity_type_entity_id_created_at",
    }  # fmt: skip
    wrong = [(part, index) for part, index, parent in rows
             if index != parent + part.removeprefix("metric_samples").removeprefix("audit_logs")]  # fmt: skip
    assert wrong == []
