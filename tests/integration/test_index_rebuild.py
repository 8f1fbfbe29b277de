"""``platformdb indexes rebuild`` (platformdb.ops.indexes): the indexes of passing states are rebuilt
concurrently once bloated, keep their names and rules, and a rebuild that cannot get its locks in time gives
up, leaves no invalid copy behind, and says so."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.ops import indexes
from tests.factories import Make, rejected

ACTIVE_KEY = "uq_deployments_active_service_id_environment_id"
SECOND = dt.timedelta(seconds=1)


def pages(conn: psycopg.Connection[Any], index: str) -> int:
    row = conn.execute("SELECT pg_relation_size(to_regclass(%s)) / 8192", (f"platform.{index}",)).fetchone()
    assert row is not None
    return int(row[0])


def invalid_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relnamespace = 'platform'::regnamespace AND NOT i.indisvalid")]  # fmt: skip


def churn(conn: psycopg.Connection[Any], make: Make, services: int = 100, environments: int = 40) -> None:
    """services x environments rollouts started at once, then all but one per service cancelled, vacuumed."""
    for _ in range(environments):
        make.environment()
    for _ in range(services):
        make.release(make.service(), "1.0.0")
    conn.execute(
        "INSERT INTO platform.deployments (service_id, version, environment_id)"
        " SELECT r.service_id, r.version, e.id FROM platform.releases r CROSS JOIN platform.environments e"
    )
    conn.execute(
        "UPDATE platform.deployments SET status = 'cancelled' WHERE environment_id <>"
        " (SELECT min(id::text)::uuid FROM platform.environments)"
    )
    conn.execute("VACUUM platform.deployments")


def test_the_churned_indexes_are_the_partial_indexes_of_the_active_rollouts(conn: psycopg.Connection[Any]) -> None:
    names = indexes.churned()
    assert set(names) == {ACTIVE_KEY, "ix_deployments_created_at_active"}
    for name in names:
        row = conn.execute("SELECT indpred IS NOT NULL FROM pg_index WHERE indexrelid = to_regclass(%s)",
                           (f"platform.{name}",)).fetchone()  # fmt: skip
        assert row == (True,), f"{name} is not a partial index"


def test_a_bloated_churned_index_is_rebuilt_and_keeps_its_name_and_rule(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    churn(conn, make)
    before = pages(conn, ACTIVE_KEY)
    assert before > indexes.MIN_PAGES
    done = {r.index: r for r in indexes.rebuild(conn, lock_timeout=SECOND)}
    assert done[ACTIVE_KEY].skipped is None
    assert done[ACTIVE_KEY].pages_after == pages(conn, ACTIVE_KEY) < before / 4
    assert invalid_indexes(conn) == []
    active = conn.execute(
        "SELECT service_id, environment_id FROM platform.deployments WHERE status = 'pending' LIMIT 1"
    ).fetchone()
    assert active is not None
    with rejected("23505", ACTIVE_KEY):
        conn.execute("INSERT INTO platform.deployments (service_id, version, environment_id) VALUES (%s, '1.0.0', %s)",
                     active)  # fmt: skip
    again = {r.index: r for r in indexes.rebuild(conn, lock_timeout=SECOND)}
    assert str(again[ACTIVE_KEY].skipped).startswith("kept")


def test_a_rebuild_that_cannot_lock_the_table_in_time_gives_up_and_leaves_nothing_behind(
    conn: psycopg.Connection[Any], db: URL
) -> None:
    with psycopg.connect(libpq_dsn(db)) as holder:
        holder.execute("LOCK TABLE platform.deployments IN SHARE MODE")
        done = indexes.rebuild(conn, lock_timeout=dt.timedelta(milliseconds=200), force=True)
    assert [r.skipped for r in done] == ["not rebuilt: a lock not granted within lock_timeout"] * len(done)
    assert all(r.blocked for r in done)
    assert invalid_indexes(conn) == []


def test_a_rebuild_stalled_by_an_old_snapshot_drops_its_invalid_copy(conn: psycopg.Connection[Any], db: URL) -> None:
    """REINDEX CONCURRENTLY builds its copy, then waits for every transaction that could still see the old index;
    an old snapshot held past lock_timeout fails it there, with the copy built but invalid: the rebuild drops it."""
    with psycopg.connect(libpq_dsn(db)) as reader:
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM platform.services")
        done = indexes.rebuild(conn, lock_timeout=dt.timedelta(milliseconds=300), force=True)
    assert all(r.blocked and r.skipped == "not rebuilt: a lock not granted within lock_timeout" for r in done), done
    assert invalid_indexes(conn) == []
    rebuilt = indexes.rebuild(conn, lock_timeout=SECOND, force=True)
    assert all(r.skipped is None for r in rebuilt)


def test_a_service_role_cannot_rebuild_an_index(conn: psycopg.Connection[Any]) -> None:
    """A rebuild locks the table and waits for every transaction: only the schema owner may start one."""
    conn.execute("SET ROLE platform_delivery")
    with rejected("42501", None):
        indexes.rebuild(conn, lock_timeout=SECOND, force=True)
