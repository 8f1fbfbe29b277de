"""Ingest into ``platform.metric_samples``: COPY into the partitioned, indexed, foreign-keyed table against the
physical limit (COPY into an unlogged heap with no index), the same COPY without the foreign key, and batched
multi-row INSERTs (executemany, which psycopg pipelines)."""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

import psycopg

from bench.common import Bench, fmt_rate
from platformdb.workbench import seed as seeding

Row = tuple[int, dt.datetime, float]
INSERT_BATCH = 500
"""Rows per INSERT statement."""
BATCHES_PER_TRANSACTION = 20
RAW_TABLE = "bench_raw_samples"
NO_FK_TABLE = "bench_samples_no_fk"


def ingest(b: Bench, database: str, rows: int) -> dict[str, Any]:
    """Rows per second of each ingest path, ``rows`` rows per COPY path and half as many for INSERT."""
    with psycopg.connect(b.dsn(database), autocommit=True) as conn:
        series = [int(r[0]) for r in conn.execute("SELECT id FROM platform.metric_series ORDER BY id")]
        day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
        conn.execute(
            "SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)",
            (day, day + dt.timedelta(days=2)),
        )
        conn.execute("CHECKPOINT")
        copy_rows = _sample_rows(series, day, rows)
        limit = _physical_limit(conn, copy_rows)
        conn.execute("CHECKPOINT")
        ours = _copy(conn, "platform.metric_samples", copy_rows, seeding.SAMPLE_CHUNK)
        no_fk = _copy_without_fk(conn, copy_rows, day)
        inserted, insert_rows = _batched_insert(conn, _sample_rows(series, day + dt.timedelta(days=1), rows // 2))
        conn.execute(f"DROP TABLE {RAW_TABLE}")
    result = {"rows": rows, "copy_rows_s": ours, "limit_rows_s": limit, "copy_share": ours / limit,
              "copy_no_fk_rows_s": no_fk}  # fmt: skip
    result.update({"insert_rows": insert_rows, "insert_batch": INSERT_BATCH, "insert_rows_s": inserted})
    b.log(
        f"ingest: COPY {fmt_rate(ours)} rows/s vs unlogged unindexed {fmt_rate(limit)} rows/s "
        f"({ours / limit:.0%}); batched INSERT {fmt_rate(inserted)} rows/s"
    )
    return result


def _sample_rows(series: list[int], start: dt.datetime, count: int) -> list[Row]:
    rng = random.Random(f"bench:samples:{start.isoformat()}")  # noqa: S311 - not cryptography
    n = len(series)
    return [(series[i % n], start + dt.timedelta(seconds=i // n), rng.random() * 100) for i in range(count)]


def _copy(conn: psycopg.Connection[Any], table: str, rows: list[Row], chunk: int) -> float:
    """Rows per second of COPY into ``table``, one transaction per ``chunk`` rows."""
    began = time.perf_counter()
    for low in range(0, len(rows), chunk):
        with conn.transaction(), conn.cursor().copy(f"COPY {table} (series_id, sampled_at, value) FROM STDIN") as cp:
            for row in rows[low : low + chunk]:
                cp.write_row(row)
    return len(rows) / (time.perf_counter() - began)


def _physical_limit(conn: psycopg.Connection[Any], rows: list[Row]) -> float:
    """COPY into an UNLOGGED table with no index (dropped by the caller once the INSERTs are done)."""
    conn.execute(
        f"CREATE UNLOGGED TABLE {RAW_TABLE} (series_id bigint, sampled_at timestamptz, value double precision)"
    )
    return _copy(conn, RAW_TABLE, rows, seeding.SAMPLE_CHUNK)


def _copy_without_fk(conn: psycopg.Connection[Any], rows: list[Row], day: dt.datetime) -> float:
    """The same COPY into a copy of the table without the foreign key (one partition covering the two days)."""
    conn.execute(
        f"CREATE TABLE {NO_FK_TABLE} (LIKE platform.metric_samples INCLUDING ALL) PARTITION BY RANGE (sampled_at)"
    )
    since, until = (f"'{t.isoformat()}'" for t in (day, day + dt.timedelta(days=2)))
    conn.execute(f"CREATE TABLE {NO_FK_TABLE}_day PARTITION OF {NO_FK_TABLE} FOR VALUES FROM ({since}) TO ({until})")
    conn.execute("CHECKPOINT")
    rate = _copy(conn, NO_FK_TABLE, rows, seeding.SAMPLE_CHUNK)
    conn.execute(f"DROP TABLE {NO_FK_TABLE}")
    return rate


def _batched_insert(conn: psycopg.Connection[Any], rows: list[Row]) -> tuple[float, int]:
    """Rows per second of multi-row INSERTs (:data:`INSERT_BATCH` rows each, whole batches only), and the rows."""
    values = ", ".join(["(%s, %s, %s)"] * INSERT_BATCH)
    sql = f"INSERT INTO platform.metric_samples (series_id, sampled_at, value) VALUES {values}"
    batches = [
        [v for row in rows[low : low + INSERT_BATCH] for v in row]
        for low in range(0, len(rows) - INSERT_BATCH + 1, INSERT_BATCH)
    ]
    conn.execute("CHECKPOINT")
    began = time.perf_counter()
    for low in range(0, len(batches), BATCHES_PER_TRANSACTION):
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, batches[low : low + BATCHES_PER_TRANSACTION])
    inserted = len(batches) * INSERT_BATCH
    return inserted / (time.perf_counter() - began), inserted
