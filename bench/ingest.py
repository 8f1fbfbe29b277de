"""Ingest into ``platform.metric_samples`` against the physical limit (COPY into an unlogged heap with no index).

Since revision 0060 a sample's series is checked once per statement (trg_metric_samples_series_exists, on the
parent and on each partition) instead of once per row by a foreign key. Measured side by side, interleaved
(A/B/A/B, the order reversed every other round, each path into an empty table), so machine noise hits every path
alike: COPY through the parent (what services do), COPY straight into the day's partition (a transition-table
trigger on a partitioned parent makes COPY through it insert row by row, copyfrom.c; into a partition it keeps
its multi-row inserts), the same COPY into a replica carrying the foreign key as before 0060, and into a replica
with neither (the ceiling with integrity off). Each path's WAL records per row show whether COPY batched (a
multi-insert logs one record per page, a row-by-row insert one per row, plus one per index entry). Batched
multi-row INSERTs (executemany, which psycopg pipelines) follow, through the parent and into the foreign-keyed
replica, interleaved as well."""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from typing import Any

import psycopg

from bench.common import Bench, fmt_rate
from platformdb.workbench import seed as seeding

Row = tuple[int, dt.datetime, float]
INSERT_BATCH = 500
"""Rows per INSERT statement."""
BATCHES_PER_TRANSACTION = 20
ROUNDS = 3
"""Interleaved rounds; each COPY path takes ``rows // ROUNDS`` rows per round."""
RAW_TABLE = "bench_raw_samples"
FK_TABLE = "bench_samples_fk"
UNCHECKED_TABLE = "bench_samples_unchecked"
PATHS = ("limit", "parent", "partition", "foreign_key", "unchecked")


def ingest(b: Bench, database: str, rows: int) -> dict[str, Any]:
    """Rows per second of each ingest path (``rows`` rows per COPY path over :data:`ROUNDS` rounds, half as many
    for INSERT, through the parent and into the foreign-keyed replica, interleaved too), each COPY path's share of
    the physical limit of the same round, and WAL records per row."""
    per_round = rows // ROUNDS
    with psycopg.connect(b.dsn(database), autocommit=True) as conn:
        series = [int(r[0]) for r in conn.execute("SELECT id FROM platform.metric_series ORDER BY id")]
        first = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=2)
        days = [first + dt.timedelta(days=n) for n in range(3 * ROUNDS)]  # parent, partition, INSERT per round
        conn.execute("SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)", (days[0], days[-1]))
        _replicas(conn, days[0])
        replica_rows = _sample_rows(series, days[0], per_round)
        rates: dict[str, list[float]] = {p: [] for p in PATHS}
        wal: dict[str, list[float]] = {p: [] for p in PATHS}
        for r in range(ROUNDS):
            for path in PATHS if r % 2 == 0 else tuple(reversed(PATHS)):
                if path == "parent":
                    table, batch = "platform.metric_samples", _sample_rows(series, days[2 * r], per_round)
                elif path == "partition":
                    day = days[2 * r + 1]
                    table, batch = f"platform.metric_samples_p{day:%Y_%m_%d}", _sample_rows(series, day, per_round)
                else:
                    table = {"limit": RAW_TABLE, "foreign_key": FK_TABLE, "unchecked": UNCHECKED_TABLE}[path]
                    conn.execute(f"TRUNCATE {table}")
                    batch = replica_rows
                conn.execute("CHECKPOINT")
                before = _wal_records(conn)
                rates[path].append(_copy(conn, table, batch, seeding.SAMPLE_CHUNK))
                wal[path].append((_wal_records(conn) - before) / len(batch))
        inserts: dict[str, list[float]] = {"parent": [], "foreign_key": []}
        insert_rows = 0
        for r in range(ROUNDS):
            for path in ("parent", "foreign_key") if r % 2 == 0 else ("foreign_key", "parent"):
                if path == "parent":
                    table, batch = "platform.metric_samples", _sample_rows(series, days[2 * ROUNDS + r], per_round // 2)
                else:
                    conn.execute(f"TRUNCATE {FK_TABLE}")
                    table, batch = FK_TABLE, replica_rows[: per_round // 2]
                rate, n = _batched_insert(conn, table, batch)
                inserts[path].append(rate)
                insert_rows += n if path == "parent" else 0
        inserted = statistics.median(inserts["parent"])
        for table in (RAW_TABLE, FK_TABLE, UNCHECKED_TABLE):
            conn.execute(f"DROP TABLE {table}")
    result: dict[str, Any] = {"rows": per_round * ROUNDS, "rounds": ROUNDS}
    result.update(_figures(rates))
    result["wal_records_per_row"] = {p: statistics.median(wal[p]) for p in PATHS}
    result.update({"insert_rows": insert_rows, "insert_batch": INSERT_BATCH, "insert_rows_s": inserted})
    result["insert_fk_rows_s"] = statistics.median(inserts["foreign_key"])
    result["insert_fk_ratio"] = statistics.median(
        [ours / fk for ours, fk in zip(inserts["parent"], inserts["foreign_key"], strict=True)]
    )
    b.log(
        f"ingest: COPY {fmt_rate(result['copy_rows_s'])} rows/s through the parent ({result['copy_share']:.0%} of the "
        f"limit, {result['copy_share_min']:.0%}-{result['copy_share_max']:.0%}), into the day's partition "
        f"{result['copy_partition_share']:.0%}, with the pre-0060 foreign key {result['copy_fk_share']:.0%}, "
        f"unchecked {result['copy_no_fk_share']:.0%}; batched INSERT {fmt_rate(inserted)} rows/s "
        f"({result['insert_fk_ratio']:.2f}x the pre-0060 foreign key's)"
    )
    return result


def _figures(rates: dict[str, list[float]]) -> dict[str, float]:
    """Median rate per path; per path, the median, least and greatest of its per-round share of that round's limit.
    Keys: limit_rows_s, copy_* (parent), copy_partition_*, copy_fk_*, copy_no_fk_* (unchecked)."""
    prefixes = {"parent": "copy", "partition": "copy_partition", "foreign_key": "copy_fk", "unchecked": "copy_no_fk"}
    out = {"limit_rows_s": statistics.median(rates["limit"])}
    for path, prefix in prefixes.items():
        shares = [rate / limit for rate, limit in zip(rates[path], rates["limit"], strict=True)]
        out[f"{prefix}_rows_s"] = statistics.median(rates[path])
        out[f"{prefix}_share"] = statistics.median(shares)
        out[f"{prefix}_share_min"], out[f"{prefix}_share_max"] = min(shares), max(shares)
    return out


def _replicas(conn: psycopg.Connection[Any], day: dt.datetime) -> None:
    """The physical limit's table, and two copies of metric_samples (one partition covering ``day``): one with the
    foreign key the table had before revision 0060, one with no check at all."""
    conn.execute(
        f"CREATE UNLOGGED TABLE {RAW_TABLE} (series_id bigint, sampled_at timestamptz, value double precision)"
    )
    since, until = (f"'{t.isoformat()}'" for t in (day, day + dt.timedelta(days=1)))
    for table in (FK_TABLE, UNCHECKED_TABLE):
        conn.execute(
            f"CREATE TABLE {table} (LIKE platform.metric_samples INCLUDING ALL) PARTITION BY RANGE (sampled_at)"
        )
        conn.execute(f"CREATE TABLE {table}_day PARTITION OF {table} FOR VALUES FROM ({since}) TO ({until})")
    conn.execute(
        f"ALTER TABLE {FK_TABLE} ADD FOREIGN KEY (series_id) REFERENCES platform.metric_series (id) ON DELETE RESTRICT"
    )


def _wal_records(conn: psycopg.Connection[Any]) -> int:
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute("SELECT wal_records FROM pg_stat_wal").fetchone()
    assert row is not None
    return int(row[0])


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


def _batched_insert(conn: psycopg.Connection[Any], table: str, rows: list[Row]) -> tuple[float, int]:
    """Rows per second of multi-row INSERTs into ``table`` (:data:`INSERT_BATCH` rows each, whole batches only),
    and the rows."""
    values = ", ".join(["(%s, %s, %s)"] * INSERT_BATCH)
    sql = f"INSERT INTO {table} (series_id, sampled_at, value) VALUES {values}"
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
