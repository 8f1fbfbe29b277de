"""Freeze schedules expanded into concrete freeze periods ahead of time: safe to run from cron, idempotent, bounded.

The database checks a rollout against concrete ``freeze_periods`` (a GiST lookup), never against cron: this
module turns each ``freeze_schedules`` row into the periods that start up to ``ahead`` days from now (and the
one in force now, if any). Each firing of the cron expression is read in the schedule's IANA time zone and the
freeze lasts ``duration`` of wall-clock time there, so "Friday 18:00 for 2 days 15 hours" in Europe/Berlin stays
Friday 18:00 to Monday 09:00 local across daylight-saving changes. Cron is parsed by cronsim (the ``ops``
extra; maintained, unlike croniter since 2024), whose DST handling is cron's: a firing in a skipped hour runs
when the clock resumes, one in a repeated hour runs once.

Idempotent under concurrency: a period is keyed by (schedule_id, lower(during)) (unique index
uq_freeze_periods_schedule_id_lower_during) and inserted ON CONFLICT DO NOTHING, so two runs at once make each
period once. Bounded: at most ``max_new`` periods per schedule per run (the next run goes on), each schedule one
short transaction under ``lock_timeout``. Nothing is deleted: periods made before a schedule changed stay until
someone deletes those not yet begun.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.types.range import Range

from platformdb.errors import UserError

MAX_AHEAD_DAYS = 366


@dataclass(frozen=True)
class Limits:
    lock_timeout: dt.timedelta = dt.timedelta(seconds=2)
    max_new: int = 500
    """Periods made per schedule per run (a schedule firing every minute would otherwise make 40,000 a month)."""


@dataclass
class Report:
    schedule_id: uuid.UUID
    created: int = 0
    existing: int = 0
    """Firings in the window that already had their period (made by an earlier or concurrent run)."""
    pending: bool = False
    """``max_new`` was reached: more firings in the window than one run makes."""
    covered_until: dt.datetime | None = None
    """The start of the last firing expanded (UTC)."""
    error: str | None = None


def _cronsim() -> Any:
    try:
        from cronsim import CronSim, CronSimError
    except ImportError:
        raise UserError("freezes ensure needs the ops extra: pip install 'platformdb[ops]'") from None
    return CronSim, CronSimError


def firings(
    cron: str, zone: ZoneInfo, duration: dt.timedelta, now: dt.datetime, ahead: dt.timedelta, limit: int
) -> tuple[list[tuple[dt.datetime, dt.datetime]], bool]:
    """The [start, end) periods (UTC) of the firings of ``cron`` in ``zone`` that are in force at ``now`` or
    start within ``ahead`` of it, at most ``limit`` (and whether more remained). The end is ``duration`` of
    wall-clock time after the start, in the zone."""
    cron_sim, _ = _cronsim()
    horizon = now + ahead
    # A freeze in force now began at most `duration` (plus a DST hour) ago: start the search there.
    local_from = (now - duration - dt.timedelta(hours=1)).astimezone(zone).replace(second=0, microsecond=0)
    periods: list[tuple[dt.datetime, dt.datetime]] = []
    for start in cron_sim(cron, local_from):
        start_utc = start.astimezone(dt.UTC)
        if start_utc > horizon:
            return periods, False
        # Adding to an aware datetime is wall-clock arithmetic in its zone; an end in a DST gap or fold resolves
        # the way zoneinfo does (fold=0), then becomes an instant.
        end_utc = (start + duration).astimezone(dt.UTC)
        if end_utc <= start_utc:  # a duration shorter than a DST shift back: keep the freeze non-empty
            end_utc = start_utc + duration
        if end_utc <= now:
            continue
        if len(periods) == limit:
            return periods, True
        periods.append((start_utc, end_utc))
    return periods, False  # pragma: no cover - cron expressions fire forever


INSERT = """
INSERT INTO platform.freeze_periods (environment_id, service_id, during, reason, freezes_rollbacks, schedule_id)
SELECT s.environment_id, s.service_id, p.during, s.reason, s.freezes_rollbacks, s.id
  FROM platform.freeze_schedules s, unnest(%s::tstzrange[]) AS p(during)
 WHERE s.id = %s
ON CONFLICT (schedule_id, lower(during)) WHERE schedule_id IS NOT NULL DO NOTHING
"""


def ensure(
    conn: psycopg.Connection[Any], ahead_days: int, *, now: dt.datetime | None = None, limits: Limits = Limits()
) -> list[Report]:
    """Expand every freeze schedule into the periods in force now or starting within ``ahead_days``.

    ``conn`` must be in autocommit mode: each schedule is a transaction of its own."""
    if not 0 <= ahead_days <= MAX_AHEAD_DAYS:
        raise UserError(f"--ahead is a number of days from 0 to {MAX_AHEAD_DAYS}")
    _, cron_error = _cronsim()
    at = now or dt.datetime.now(dt.UTC)
    schedules = conn.execute(
        "SELECT id, cron, time_zone, duration FROM platform.freeze_schedules ORDER BY id"
    ).fetchall()
    reports = []
    for schedule_id, cron, time_zone, duration in schedules:
        report = Report(schedule_id)
        reports.append(report)
        try:
            zone = ZoneInfo(time_zone)
            periods, report.pending = firings(cron, zone, duration, at, dt.timedelta(days=ahead_days), limits.max_new)
        except ZoneInfoNotFoundError:
            report.error = "cannot expand: Python's time-zone database does not know its zone (install tzdata)"
            continue
        except (ValueError, cron_error) as exc:  # syntax passed the CHECK; e.g. 31 February never comes
            report.error = f"cannot expand its cron expression: {exc}"
            continue
        if not periods:
            continue
        report.covered_until = periods[-1][0]
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, true)",
                    (f"{limits.lock_timeout / dt.timedelta(milliseconds=1):.0f}ms",),
                )
                ranges = [Range(start, end, "[)") for start, end in periods]
                report.created = conn.execute(INSERT, (ranges, schedule_id)).rowcount
        except psycopg.errors.LockNotAvailable:
            report.error = f"could not lock within {limits.lock_timeout.total_seconds():g} s; run again"
            continue
        except psycopg.Error as exc:
            report.error = f"refused: {exc.sqlstate} {exc.diag.constraint_name or ''}".rstrip()
            continue
        report.existing = len(periods) - report.created
    return reports
