"""``platformdb freezes ensure``: freeze schedules expanded into periods, in the schedule's time zone, idempotent,
bounded, and safe to run twice at once."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.errors import UserError
from platformdb.ops import freezes
from tests.factories import Make

BERLIN = ZoneInfo("Europe/Berlin")
WEEKEND = dt.timedelta(days=2, hours=15)


def periods(conn: psycopg.Connection[Any], schedule: Any) -> list[tuple[dt.datetime, dt.datetime]]:
    rows = conn.execute(
        "SELECT lower(during), upper(during) FROM platform.freeze_periods WHERE schedule_id = %s ORDER BY 1",
        (schedule,),
    ).fetchall()
    return [(lo.astimezone(dt.UTC), hi.astimezone(dt.UTC)) for lo, hi in rows]


def test_weekend_freeze_follows_the_local_clock_across_dst() -> None:
    """Friday 18:00 for 2 days 15 hours in Berlin ends Monday 09:00 local: 63 h of wall clock, 64 h of time over
    the end of summer time (25 October 2026), 63 h otherwise."""
    now = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
    got, more = freezes.firings("0 18 * * 5", BERLIN, WEEKEND, now, dt.timedelta(days=14), 10)
    assert not more
    assert [(s.astimezone(BERLIN).isoformat(), e.astimezone(BERLIN).isoformat()) for s, e in got] == [
        ("2026-10-23T18:00:00+02:00", "2026-10-26T09:00:00+01:00"),
        ("2026-10-30T18:00:00+01:00", "2026-11-02T09:00:00+01:00"),
    ]
    assert [e - s for s, e in got] == [dt.timedelta(hours=64), dt.timedelta(hours=63)]


def test_a_firing_in_the_skipped_hour_runs_when_the_clock_resumes() -> None:
    now = dt.datetime(2026, 3, 28, tzinfo=dt.UTC)
    got, _ = freezes.firings("30 2 * * *", BERLIN, dt.timedelta(hours=1), now, dt.timedelta(days=2), 10)
    assert [s.astimezone(BERLIN).isoformat() for s, _ in got][:2] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]


def test_the_freeze_in_force_now_is_included_and_past_ones_are_not() -> None:
    now = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC)  # a Saturday, mid-freeze
    got, _ = freezes.firings("0 18 * * 5", BERLIN, WEEKEND, now, dt.timedelta(days=7), 10)
    assert got[0][0] == dt.datetime(2026, 12, 4, 17, tzinfo=dt.UTC)
    assert len(got) == 2


def test_ensure_expands_idempotently_and_copies_the_scope(conn: psycopg.Connection[Any], make: Make) -> None:
    env, service = make.environment(), make.service()
    schedule = make.freeze_schedule(environment_id=env, service_id=service, freezes_rollbacks=True)
    now = dt.datetime.now(dt.UTC)
    (report,) = freezes.ensure(conn, 30, now=now)
    assert (report.created, report.existing, report.error) == (len(periods(conn, schedule)), 0, None)
    assert 4 <= report.created <= 6
    (again,) = freezes.ensure(conn, 30, now=now)
    assert (again.created, again.existing) == (0, report.created)
    row = conn.execute(
        "SELECT DISTINCT environment_id, service_id, reason, freezes_rollbacks, created_by FROM platform.freeze_periods"
        " WHERE schedule_id = %s",
        (schedule,),
    ).fetchall()
    assert row == [(env, service, "Weekend freeze", True, None)]
    (longer,) = freezes.ensure(conn, 60, now=now)
    assert longer.created >= 4
    assert longer.existing == report.created


def test_ensure_is_bounded_per_run(conn: psycopg.Connection[Any], make: Make) -> None:
    schedule = make.freeze_schedule(cron="*/5 * * * *", duration=dt.timedelta(minutes=1))
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    limits = freezes.Limits(max_new=10)
    (first,) = freezes.ensure(conn, 1, now=now, limits=limits)
    assert (first.created, first.pending) == (10, True)
    (second,) = freezes.ensure(conn, 1, now=now, limits=limits)
    assert (second.created, second.existing, second.pending) == (0, 10, True)  # the same first ten: a fixed window
    assert len(periods(conn, schedule)) == 10


def test_ensure_refuses_a_window_out_of_range(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(UserError, match="from 0 to 366"):
        freezes.ensure(conn, 367)


def test_ensure_twice_at_once_makes_each_period_once(db: URL, conn: psycopg.Connection[Any], make: Make) -> None:
    """Two runs racing (cron overlapping a slow run) insert each period once: the unique key and ON CONFLICT."""
    schedules = [make.freeze_schedule(cron=f"{m} * * * *", duration=dt.timedelta(minutes=30)) for m in (0, 20, 40)]
    now = dt.datetime(2031, 6, 1, tzinfo=dt.UTC)
    barrier = threading.Barrier(2)
    results: list[list[freezes.Report]] = []

    def run() -> None:
        with psycopg.connect(libpq_dsn(db), autocommit=True) as c:
            barrier.wait()
            results.append(freezes.ensure(c, 2, now=now))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = sum(r.created for reports in results for r in reports)
    assert all(r.error is None for reports in results for r in reports)
    total = sum(len(periods(conn, s)) for s in schedules)
    # :00 fires 49 times in [now, now + 48 h]; :20 48 times; :40 48 times and once at 23:40 (in force now).
    assert created == total == 49 + 48 + 49


def test_periods_made_by_ensure_freeze_rollouts(conn: psycopg.Connection[Any], make: Make) -> None:
    env = make.environment()
    make.freeze_schedule(environment_id=env, cron="* * * * *", duration=dt.timedelta(minutes=5))
    freezes.ensure(conn, 0)
    deployment = make.deployment(make.service(), env)
    with pytest.raises(psycopg.errors.CheckViolation):
        make.set_status(deployment, "in_progress")


def test_cli_freezes_ensure_reports_each_schedule(db: URL, make: Make, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from platformdb.cli import main as cli

    schedule = make.freeze_schedule()
    runner = CliRunner(env={"PLATFORMDB_HOME": str(tmp_path)})
    result = runner.invoke(cli, ["--database-url", libpq_dsn(db), "freezes", "ensure", "--ahead", "14"])
    assert result.exit_code == 0, result.output
    assert str(schedule) in result.output
    again = runner.invoke(cli, ["--database-url", libpq_dsn(db), "freezes", "ensure", "--ahead", "14"])
    assert again.exit_code == 0, again.output
    assert " 0 " in again.output


def test_a_schedule_that_never_fires_is_reported_and_the_others_expanded(
    db: URL, conn: psycopg.Connection[Any], make: Make, tmp_path: Any
) -> None:
    """The cron CHECK is syntax only: 31 February passes it, and ensure reports that schedule in one line (exit
    1, no traceback) after expanding the rest."""
    from click.testing import CliRunner

    from platformdb.cli import main as cli

    never = make.freeze_schedule(cron="0 0 31 2 *")
    weekly = make.freeze_schedule()
    reports = {r.schedule_id: r for r in freezes.ensure(conn, 14)}
    assert reports[never].error == "cannot expand its cron expression: Bad day-of-month"
    assert reports[weekly].error is None
    assert reports[weekly].created >= 2
    result = CliRunner(env={"PLATFORMDB_HOME": str(tmp_path)}).invoke(
        cli, ["--database-url", libpq_dsn(db), "freezes", "ensure", "--ahead", "14"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"platformdb: error: schedule {never}: cannot expand its cron expression: Bad day-of-month"
    )
    assert "Traceback" not in result.output
