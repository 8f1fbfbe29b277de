"""Monitoring rules: metric definitions, unique series, and samples in daily partitions."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from tests.factories import (
    Make,
    assert_created_at_trigger,
    assert_keys_trigger,
    assert_updated_at_trigger,
    rejected,
    restrict_sqlstate,
    triggers_disabled,
)

FAR_FUTURE = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def today(conn: psycopg.Connection[Any], days: int = 0) -> str:
    """The UTC date, ``days`` from today by the database clock, as partition suffix YYYY_MM_DD."""
    row = conn.execute("SELECT to_char(now() AT TIME ZONE 'UTC' + %s * interval '1 day', 'YYYY_MM_DD')", (days,))
    result = row.fetchone()
    assert result is not None
    return str(result[0])


def sample(
    conn: psycopg.Connection[Any], series_id: int, sampled_at: dt.datetime | str = "now", value: float = 1.0
) -> str:
    """Inserts a sample; returns the partition it landed in."""
    row = conn.execute(
        "INSERT INTO platform.metric_samples (series_id, sampled_at, value) VALUES (%s, %s::timestamptz, %s)"
        " RETURNING tableoid::regclass::text",
        (series_id, sampled_at, value),
    ).fetchone()
    assert row is not None
    return str(row[0])


def partitions(conn: psycopg.Connection[Any], parent: str) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (parent,),
    ).fetchall()
    return {r[0] for r in rows}


# metrics -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["1_total", "http-requests", "http requests", "", "métrique", "a" * 201])
def test_metrics_name_format(make: Make, name: str) -> None:
    with rejected("23514", "ck_metrics_name_format"):
        make.metric(name=name)
    make.metric(name="http_requests_total")
    make.metric(name="job:latency_seconds:p99")
    make.metric(name="_" + "a" * 199)
    assert make.count("metrics") == 3


@pytest.mark.parametrize("unit", ["Seconds", "1s", "per-second", "", "bytes per second", "s" * 33])
def test_metrics_unit_format(make: Make, unit: str) -> None:
    with rejected("23514", "ck_metrics_unit_format"):
        make.metric(unit=unit)
    make.metric(unit="seconds")
    make.metric(unit="bytes/s")
    make.metric(unit="s" * 32)
    assert make.count("metrics") == 3


@pytest.mark.parametrize("kind", ["histogram", "summary", "Counter", ""])
def test_metrics_kind_allowed(make: Make, kind: str) -> None:
    with rejected("23514", "ck_metrics_kind_allowed"):
        make.metric(kind=kind)
    make.metric(kind="counter")
    make.metric(kind="gauge")
    assert make.count("metrics") == 2


def test_metrics_name_is_unique(make: Make) -> None:
    make.metric(name="http_requests_total")
    with rejected("23505", "uq_metrics_name"):
        make.metric(name="http_requests_total", unit="bytes", kind="gauge")
    make.metric(name="HTTP_requests_total")  # case matters, as in Prometheus
    assert make.count("metrics") == 2


def test_metrics_description_length(make: Make) -> None:
    with rejected("23514", "ck_metrics_description_length"):
        make.metric(description="x" * 1001)
    make.metric(description="x" * 1000)
    make.metric(description="")
    assert make.count("metrics") == 2


def test_metrics_updated_at_trigger(conn: psycopg.Connection[Any], make: Make) -> None:
    """An UPDATE stamps updated_at with its transaction's time, whatever the writer set; created_at is refused."""
    old = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    metric = make.metric(created_at=old, updated_at=old)
    assert_updated_at_trigger(
        conn, "metrics", "id = %s", (metric,), "description = 'Changed'", guard="trg_metrics_updated_at"
    )


# metric_series -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "table", "constraint"),
    [
        ("metric_id", "metrics", "fk_metric_series_metric_id_metrics"),
        ("service_id", "services", "fk_metric_series_service_id_services"),
        ("environment_id", "environments", "fk_metric_series_environment_id_environments"),
    ],
)
def test_metric_series_references_must_exist_and_stay(
    conn: psycopg.Connection[Any], make: Make, column: str, table: str, constraint: str
) -> None:
    """A series names an existing metric, service and environment; none is deleted from under it (RESTRICT)."""
    factory = {"metrics": make.metric, "services": make.service, "environments": make.environment}[table]
    dangling = 10**9 if table == "metrics" else uuid.uuid4()
    with rejected("23503", constraint):
        make.series(**{column: dangling})
    assert make.count("metric_series") == 0
    referenced, idle = factory(), factory()
    make.series(**{column: referenced})
    with rejected(restrict_sqlstate(conn), constraint):
        conn.execute(f"DELETE FROM platform.{table} WHERE id = %s", (referenced,))
    conn.execute(f"DELETE FROM platform.{table} WHERE id = %s", (idle,))
    row = conn.execute(f"SELECT {column} FROM platform.metric_series").fetchall()
    assert row == [(referenced,)]


@pytest.mark.parametrize("labels", ["[]", '["a"]', '"x"', "1", "true", "null", '{"k": "' + "v" * 1020 + '"}'])
def test_metric_series_labels_object(conn: psycopg.Connection[Any], make: Make, labels: str) -> None:
    series = (
        "INSERT INTO platform.metric_series (metric_id, service_id, environment_id, labels)"
        " VALUES (%s, %s, %s, %s::jsonb)"
    )
    metric, service, env = make.metric(), make.service(), make.environment()
    with rejected("23514", "ck_metric_series_labels_object"):
        conn.execute(series, (metric, service, env, labels))
    assert make.count("metric_series") == 0
    conn.execute(series, (metric, service, env, "{}"))
    conn.execute(series, (metric, service, env, '{"route": "/login", "code": 200}'))
    assert make.count("metric_series") == 2


def test_metric_series_are_unique_per_service_environment_metric_and_labels(make: Make) -> None:
    metric, service, env = make.metric(), make.service(), make.environment()
    make.series(metric_id=metric, service_id=service, environment_id=env, labels={"a": 1, "b": 2})
    with rejected("23505", "uq_metric_series_service_id_environment_id_metric_id_labels"):
        # jsonb compares objects regardless of key order
        make.series(metric_id=metric, service_id=service, environment_id=env, labels={"b": 2, "a": 1})
    make.series(metric_id=metric, service_id=service, environment_id=env, labels={"a": 1, "b": 3})
    make.series(metric_id=metric, service_id=service, environment_id=make.environment(), labels={"a": 1, "b": 2})
    make.series(metric_id=metric, service_id=make.service(), environment_id=env, labels={"a": 1, "b": 2})
    make.series(metric_id=make.metric(), service_id=service, environment_id=env, labels={"a": 1, "b": 2})
    assert make.count("metric_series") == 5


# metric_samples ----------------------------------------------------------------------------------------
def test_metric_samples_key_is_series_and_sampled_at(conn: psycopg.Connection[Any], make: Make) -> None:
    series, other = make.series(), make.series()
    at = dt.datetime.now(dt.UTC)
    partition = sample(conn, series, at, 1.0)
    # The table's primary key is pk_metric_samples, but a partitioned table enforces it through each
    # partition's own index, and PostgreSQL reports that index: named <rule>_p<day> by ensure_partition (revision
    # 0025; PostgreSQL would say <partition>_pkey), so clients match the rule's name as a prefix.
    with rejected("23505", f"pk_metric_samples_p{at:%Y_%m_%d}"):
        sample(conn, series, at, 2.0)
    assert partition == f"platform.metric_samples_p{at:%Y_%m_%d}"
    sample(conn, series, FAR_FUTURE)
    with rejected("23505", "pk_metric_samples_default"):  # the same holds in the default partition
        sample(conn, series, FAR_FUTURE)
    sample(conn, other, at)
    sample(conn, series, at + dt.timedelta(microseconds=1))
    assert make.count("metric_samples") == 4


SERIES_EXISTS = "trg_metric_samples_series_exists"
SERIES_RESTRICT = "trg_metric_series_samples_restrict"


def copy_samples(conn: psycopg.Connection[Any], table: str, rows: list[tuple[int, Any, float]]) -> None:
    """COPY ``rows`` into ``table`` (the parent or one partition) in one statement."""
    with conn.cursor().copy(f"COPY {table} (series_id, sampled_at, value) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def test_metric_samples_need_an_existing_series(conn: psycopg.Connection[Any], make: Make) -> None:
    """No sample commits for a series that does not exist (revision 0060: one check per statement, 23503 naming
    the trigger), whichever way it is written: INSERT or COPY through the parent, COPY straight into a day's
    partition or the DEFAULT one, one missing series among existing ones, as the owner or the metrics writer."""
    series = make.series()
    missing = series + 1000
    day = f"platform.metric_samples_p{today(conn)}"
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    later = now + dt.timedelta(microseconds=1)
    for at in ("now", FAR_FUTURE):  # enforced in a daily partition and in the default one
        with rejected("23503", SERIES_EXISTS):
            sample(conn, missing, at)
    writes: list[tuple[str, list[tuple[int, Any, float]]]] = [
        ("platform.metric_samples", [(series, now, 1.0), (missing, now, 2.0)]),
        (day, [(missing, now, 1.0)]),
        (day, [(series, now, 1.0), (missing, now, 2.0), (series, later, 3.0)]),
        ("platform.metric_samples_default", [(missing, FAR_FUTURE, 1.0)]),
    ]
    for role in ("platform_metrics_writer", None):
        for table, rows in writes:
            if role is not None and table != "platform.metric_samples":
                continue  # a service writes through the parent (partitions carry no grants)
            with conn.transaction():
                if role is not None:
                    conn.execute(f"SET LOCAL ROLE {role}")
                with rejected("23503", SERIES_EXISTS):
                    copy_samples(conn, table, rows)
                    conn.execute("SELECT 1")  # the statement trigger runs at the COPY's end
    assert make.count("metric_samples") == 0
    with conn.transaction():
        conn.execute("SET LOCAL ROLE platform_metrics_writer")
        copy_samples(conn, "platform.metric_samples", [(series, now, 1.0), (series, FAR_FUTURE, 1.0)])
        sample(conn, series, "2000-01-01")  # routed to the DEFAULT partition, checked by the parent's trigger
    copy_samples(conn, day, [(series, later, 1.0)])
    copy_samples(conn, "platform.metric_samples_default", [(series, "2001-01-01", 1.0)])
    assert make.count("metric_samples") == 5


def test_every_metric_samples_partition_checks_its_series(conn: psycopg.Connection[Any], make: Make) -> None:
    """A statement trigger is not inherited: the DEFAULT partition, every day's partition and one made later by
    ensure_partitions carry the parent's, so COPY straight into any of them is checked."""
    conn.execute("SELECT platform.ensure_partitions('platform.metric_samples', 'day', '2099-07-01', '2099-07-01')")
    without = conn.execute(
        "SELECT i.inhrelid::regclass::text FROM pg_inherits i WHERE i.inhparent = 'platform.metric_samples'::regclass"
        " AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = i.inhrelid AND t.tgname = %s)",
        (SERIES_EXISTS,),
    ).fetchall()
    assert without == []
    series = make.series()
    with rejected("23503", SERIES_EXISTS):
        copy_samples(conn, "platform.metric_samples_p2099_07_01", [(series + 1000, "2099-07-01 12:00+00", 1.0)])
    copy_samples(conn, "platform.metric_samples_p2099_07_01", [(series, "2099-07-01 12:00+00", 1.0)])
    assert make.count("metric_samples") == 1


def test_metric_series_with_samples_cannot_be_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """RESTRICT, as the foreign key it replaces (same SQLSTATE: 23001 since PostgreSQL 18, 23503 before): a series
    with samples in a day's partition or in the DEFAULT one stays; its id cannot change either (behind the
    immutability guard: an identity id changes only to DEFAULT); a series without samples is deleted."""
    used, in_default, unused = make.series(), make.series(), make.series()
    sample(conn, used)
    copy_samples(conn, "platform.metric_samples_default", [(in_default, FAR_FUTURE, 1.0)])
    for series in (used, in_default):
        with rejected(restrict_sqlstate(conn), SERIES_RESTRICT):
            conn.execute("DELETE FROM platform.metric_series WHERE id = %s", (series,))
    with (
        triggers_disabled(conn, "metric_series", "trg_metric_series_immutable"),
        rejected(restrict_sqlstate(conn), SERIES_RESTRICT),
    ):
        conn.execute("UPDATE platform.metric_series SET id = DEFAULT WHERE id = %s", (used,))  # identity: DEFAULT only
    conn.execute("DELETE FROM platform.metric_series WHERE id = %s", (unused,))
    assert (make.count("metric_series"), make.count("metric_samples")) == (2, 2)


def test_metric_series_delete_under_repeatable_read(db: URL, conn: psycopg.Connection[Any], make: Make) -> None:
    """A REPEATABLE READ snapshot cannot see samples committed after it: the delete fails with 40001 when any
    transaction it does not see has committed (also one that began after this transaction took its id), and goes
    on when none has."""
    unused, other = make.series(), make.series()
    with psycopg.connect(libpq_dsn(db)) as deleter:
        for takes_id_first in (False, True):
            deleter.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            deleter.execute("SELECT count(*) FROM platform.metric_samples")  # the snapshot is taken
            if takes_id_first:
                deleter.execute("SELECT pg_current_xact_id()")  # an id older than the concurrent transaction's
            sample(conn, other, FAR_FUTURE if takes_id_first else "now")  # commits after the snapshot: a sample
            with rejected("40001", None):  # of this very series would be as invisible to it
                deleter.execute("DELETE FROM platform.metric_series WHERE id = %s", (unused,))
            deleter.rollback()
        deleter.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        deleter.execute("SELECT count(*) FROM platform.metric_samples")
        deleter.execute("DELETE FROM platform.metric_series WHERE id = %s", (unused,))
        deleter.commit()
    assert make.count("metric_series") == 1


def test_metric_samples_route_to_their_days_partition(conn: psycopg.Connection[Any], make: Make) -> None:
    series = make.series()
    assert sample(conn, series) == f"platform.metric_samples_p{today(conn)}"
    row = conn.execute("SELECT now() + interval '7 days'").fetchone()
    assert row is not None
    assert sample(conn, series, row[0]) == f"platform.metric_samples_p{today(conn, 7)}"
    assert sample(conn, series, FAR_FUTURE) == "platform.metric_samples_default"


def test_metric_samples_have_partitions_for_today_and_the_next_7_days(conn: psycopg.Connection[Any]) -> None:
    expected = {f"metric_samples_p{today(conn, n)}" for n in range(8)}
    existing = partitions(conn, "platform.metric_samples")
    assert expected <= existing
    assert "metric_samples_default" in existing


def test_ensure_partitions_creates_missing_partitions_idempotently(conn: psycopg.Connection[Any], make: Make) -> None:
    ensure = "SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)"
    first, last = dt.datetime(2099, 6, 1, 12, tzinfo=dt.UTC), dt.datetime(2099, 6, 3, 1, tzinfo=dt.UTC)
    before = partitions(conn, "platform.metric_samples")
    assert conn.execute(ensure, (first, last)).fetchone() == (3,)
    assert partitions(conn, "platform.metric_samples") - before == {
        "metric_samples_p2099_06_01",
        "metric_samples_p2099_06_02",
        "metric_samples_p2099_06_03",
    }
    assert conn.execute(ensure, (first, last)).fetchone() == (0,)
    assert conn.execute(ensure, (last, last + dt.timedelta(days=1))).fetchone() == (1,)  # only the missing one
    assert len(partitions(conn, "platform.metric_samples") - before) == 4
    assert sample(conn, make.series(), first) == "platform.metric_samples_p2099_06_01"


def test_metric_series_are_never_updated(conn: psycopg.Connection[Any], make: Make) -> None:
    series = make.series(labels={"route": "/a"})
    with rejected("23000", "trg_metric_series_immutable"):
        conn.execute("UPDATE platform.metric_series SET labels = '{}' WHERE id = %s", (series,))
    assert make.count("metric_series") == 1


@pytest.mark.parametrize("at", ["infinity", "-infinity"])
def test_metric_samples_sampled_at_finite(conn: psycopg.Connection[Any], make: Make, at: str) -> None:
    series = make.series()
    with rejected("23514", "ck_metric_samples_sampled_at_finite"):
        sample(conn, series, at)
    sample(conn, series, "2000-01-01")  # implausible but finite: maintenance sets it aside, ingest keeps it
    assert make.count("metric_samples") == 1


def quarantine(conn: psycopg.Connection[Any], series: int, at: str = "2000-01-01") -> None:
    conn.execute("INSERT INTO platform.metric_samples_quarantine (series_id, sampled_at, value) VALUES (%s, %s, 1)",
                 (series, at))  # fmt: skip


def test_metric_samples_quarantine_references_must_exist_and_stay(conn: psycopg.Connection[Any], make: Make) -> None:
    series = make.series()
    with rejected("23503", "fk_metric_samples_quarantine_series_id_metric_series"):
        quarantine(conn, series + 1000)
    quarantine(conn, series)
    with rejected(restrict_sqlstate(conn), "fk_metric_samples_quarantine_series_id_metric_series"):
        conn.execute("DELETE FROM platform.metric_series WHERE id = %s", (series,))
    assert make.count("metric_samples_quarantine") == 1


def test_metric_samples_quarantine_is_never_updated(conn: psycopg.Connection[Any], make: Make) -> None:
    series = make.series()
    quarantine(conn, series)
    with rejected("23000", "trg_metric_samples_quarantine_immutable"):
        conn.execute("UPDATE platform.metric_samples_quarantine SET value = 2")
    conn.execute("DELETE FROM platform.metric_samples_quarantine")  # the owner may clear it
    assert make.count("metric_samples_quarantine") == 0


def test_ensure_partitions_refuses_an_unbounded_range(conn: psycopg.Connection[Any]) -> None:
    ensure = "SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, now())"
    for start in ("-infinity", "2000-01-01"):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 1000 days"):
            conn.execute(ensure, (start,))


# ids and creation times are the database's ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "trigger"),
    [("metrics", "trg_metrics_created_at"), ("metric_series", "trg_metric_series_created_at")],
)
def test_monitoring_created_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """The metrics writer cannot backdate a definition or a series: its stamps become now(); the owner's are
    kept."""
    values: dict[str, Any] = (
        {"name": "new_total", "unit": "requests", "kind": "counter"}
        if table == "metrics"
        else {"metric_id": make.metric(), "service_id": make.service(), "environment_id": make.environment()}
    )
    assert_created_at_trigger(conn, table, "platform_metrics_writer", values, trigger)


def test_metrics_keys_immutable(conn: psycopg.Connection[Any], make: Make) -> None:
    """A metric's id never changes (an always-identity column still takes SET id = DEFAULT)."""
    metric = make.metric()
    assert_keys_trigger(
        conn, "metrics", "id = %s", (metric,), "id = DEFAULT", "trg_metrics_keys_immutable", keep="name = name"
    )


def test_metric_samples_keys_immutable(conn: psycopg.Connection[Any], make: Make) -> None:
    """A sample stays the observation of its series at its time: neither moves; its value may be corrected."""
    series = make.series()
    make.insert("metric_samples", "series_id", series_id=series, sampled_at=dt.datetime.now(dt.UTC), value=1.0)
    for change in ("sampled_at = sampled_at - interval '1 second'", f"series_id = {make.series()}"):
        assert_keys_trigger(
            conn, "metric_samples", "series_id = %s", (series,), change, "trg_metric_samples_keys_immutable"
        )
    conn.execute("UPDATE platform.metric_samples SET value = 2 WHERE series_id = %s", (series,))
