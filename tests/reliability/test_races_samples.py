"""Races between sample ingest and series deletion (revision 0060): never an orphan sample.

The foreign key on metric_samples.series_id became a statement-level check (trg_metric_samples_series_exists,
FOR KEY SHARE on the batch's series) and a RESTRICT trigger on metric_series (trg_metric_series_samples_restrict).
A batch committing while its series is deleted must end with the delete refused or the batch refused. The two
orders are forced (one side is seen waiting on the other's lock in pg_locks before the other commits), then
workers race from a barrier for several rounds. Nothing asserts on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from tests.factories import Make, restrict_sqlstate
from tests.reliability.report import Record
from tests.reliability.test_races import BARRIER_TIMEOUT, close_all, in_parallel, worker_connections

SERIES_EXISTS = "trg_metric_samples_series_exists"
SERIES_RESTRICT = "trg_metric_series_samples_restrict"
ORPHANS = (
    "SELECT count(*) FROM platform.metric_samples m"
    " WHERE NOT EXISTS (SELECT FROM platform.metric_series s WHERE s.id = m.series_id)"
)


def copy_batch(c: psycopg.Connection[Any], series: list[int], offset: int = 0) -> None:
    """One COPY statement of a sample per series (``offset`` seconds into 2030-01-01), left uncommitted."""
    with c.cursor().copy("COPY platform.metric_samples (series_id, sampled_at, value) FROM STDIN") as cp:
        for s in series:
            cp.write_row((s, f"2030-01-01 00:00:{offset % 60:02d}+00", 1.0))


def outcome(work: Any) -> tuple[str, str | None]:
    """("ok", None) when ``work`` commits, else (SQLSTATE, constraint name) of its error."""
    c, action = work
    try:
        action(c)
        c.commit()
    except psycopg.Error as exc:
        c.rollback()
        return (exc.sqlstate or "", exc.diag.constraint_name)
    return ("ok", None)


def wait_until_blocked(conn: psycopg.Connection[Any], pid: int) -> None:
    """Return once backend ``pid`` waits for a lock (polls pg_locks; no sleep-based timing)."""
    for _ in range(100_000):
        row = conn.execute("SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted)", (pid,)).fetchone()
        if row and row[0]:
            return
    raise AssertionError(f"backend {pid} never waited")


def delete_series(series: int) -> Any:
    return lambda c: c.execute("DELETE FROM platform.metric_series WHERE id = %s", (series,))


def test_a_batch_holding_its_series_makes_the_delete_wait_and_fail(db: URL, conn: psycopg.Connection[Any]) -> None:
    """Batch first: its check locked the series, so the DELETE waits; once the batch commits the delete (READ
    COMMITTED) sees its samples and is refused with the foreign key's SQLSTATE, naming the trigger."""
    make = Make(conn)
    series, other = make.series(), make.series()
    ingest, deleter = worker_connections(db, 2)
    try:
        copy_batch(ingest, [other, series])
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(outcome((deleter, delete_series(series)))))
        thread.start()
        wait_until_blocked(conn, deleter.info.backend_pid)
        ingest.commit()
        thread.join(BARRIER_TIMEOUT)
        assert result == [(restrict_sqlstate(conn), SERIES_RESTRICT)]
    finally:
        close_all([ingest, deleter])
    kept = conn.execute("SELECT count(*) FROM platform.metric_samples WHERE series_id = %s", (series,)).fetchone()
    assert kept == (1,)
    assert conn.execute(ORPHANS).fetchone() == (0,)


def test_a_delete_in_flight_makes_the_batch_wait_and_fail(db: URL, conn: psycopg.Connection[Any]) -> None:
    """Delete first: it holds the series row; the batch's check waits on it, and once the delete commits the
    batch is refused with 23503 naming the trigger (READ COMMITTED), or 40001 under REPEATABLE READ."""
    make = Make(conn)
    for isolation, expected in (("READ COMMITTED", ("23503", SERIES_EXISTS)), ("REPEATABLE READ", ("40001", None))):
        series, other = make.series(), make.series()
        ingest, deleter = worker_connections(db, 2)
        try:
            ingest.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
            ingest.execute("SELECT 1 FROM platform.metric_series LIMIT 1")  # the ingest's snapshot predates the delete
            deleter.execute("DELETE FROM platform.metric_series WHERE id = %s", (series,))
            result: list[Any] = []
            batch = (ingest, lambda c, rows=[other, series]: copy_batch(c, rows))
            thread = threading.Thread(target=lambda out=result, work=batch: out.append(outcome(work)))
            thread.start()
            wait_until_blocked(conn, ingest.info.backend_pid)
            deleter.commit()
            thread.join(BARRIER_TIMEOUT)
            assert result == [expected], isolation
        finally:
            close_all([ingest, deleter])
        assert conn.execute("SELECT count(*) FROM platform.metric_samples").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM platform.metric_series WHERE id = %s", (series,)).fetchone() == (0,)


def test_racing_batches_and_deletes_leave_no_orphan(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Each round one worker deletes a series while three COPY batches naming it (and a series that stays) start
    from the same barrier: either the delete is refused and every batch commits, or the delete commits and
    every batch naming it is refused; no sample is ever left without its series."""
    make = Make(conn)
    rounds, workers = 12, 4
    keep = make.series()
    conns = worker_connections(db, workers)
    outcomes: dict[str, int] = {"delete refused": 0, "batches refused": 0}
    try:
        for r in range(rounds):
            doomed = make.series()
            barrier = threading.Barrier(workers, timeout=BARRIER_TIMEOUT)

            def delete(c: psycopg.Connection[Any], s: int = doomed, b: threading.Barrier = barrier) -> None:
                b.wait()
                c.execute("DELETE FROM platform.metric_series WHERE id = %s", (s,))

            def batch(
                c: psycopg.Connection[Any], i: int, s: int = doomed, b: threading.Barrier = barrier, base: int = r
            ) -> None:
                b.wait()
                copy_batch(c, [keep, s], offset=base * workers + i)

            work: list[Callable[[], tuple[str, str | None]]] = [partial(outcome, (conns[0], delete))]
            work += [partial(outcome, (c, partial(batch, i=i))) for i, c in enumerate(conns[1:])]
            results = in_parallel(work)
            deleted, batches = results[0], results[1:]
            if deleted == ("ok", None):
                assert set(batches) <= {("23503", SERIES_EXISTS)}, results
                outcomes["batches refused"] += 1
            else:
                assert deleted == (restrict_sqlstate(conn), SERIES_RESTRICT), results
                assert batches.count(("ok", None)) >= 1, results
                assert set(batches) <= {("ok", None)}, results
                outcomes["delete refused"] += 1
            assert conn.execute(ORPHANS).fetchone() == (0,)
            reliability.cases += 1
    finally:
        close_all(conns)
    reliability.figures.update(outcomes)
    reliability.figures["workers"] = workers
