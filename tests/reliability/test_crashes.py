"""Crashes and restores, on clusters of their own with durability on.

- kill -9 of the postmaster during a bulk metric ingest: after crash recovery every batch whose COMMIT
  returned is there in full, and no batch is there in part;
- kill -9 during ``platformdb upgrade``: the database is at a whole revision, with exactly that revision's
  schema, and ``platformdb upgrade`` then takes it to head;
- pg_dump -Fc / pg_restore of a database with the demo data: every table has the same rows (count and
  checksum), every sequence the same state, the schema the same catalog snapshot.

Each runs on every test server (PostgreSQL 18 embedded, 15 Debian), in a cluster started for this module in a
temporary directory and destroyed after it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from platformdb import migrate
from platformdb.review.snapshot import snapshot
from platformdb.workbench import demo
from platformdb.workbench.server import Cluster
from tests.pg import server_bins
from tests.reliability.durability import (
    DURABLE_SETTINGS,
    CrashableCluster,
    assert_audit_chain_verifies,
    audit_row_count,
    sequence_states,
    set_child_subreaper,
    table_checksums,
    wait_until,
)
from tests.reliability.report import Record

REVISIONS = [rev for rev, _, _ in migrate.history()]


def built_concurrently(rev: str) -> set[str]:
    """Indexes revision ``rev`` builds with CREATE INDEX CONCURRENTLY and constraints it validates, both outside a
    transaction: a crash after that step but before the revision's transactional rest leaves the index (valid or
    INVALID) or the validated constraint at the revision before. That is the one exception to "wholly applied or
    wholly absent"; re-running the revision rebuilds the index or finds the constraint valid (checked below by
    resuming to head)."""
    down = REVISIONS[REVISIONS.index(rev) - 1] if REVISIONS.index(rev) else "base"
    sql = migrate.offline_sql(down, rev)
    return set(re.findall(r"CREATE (?:UNIQUE )?INDEX CONCURRENTLY (?:IF NOT EXISTS )?(\w+)", sql)) | set(
        re.findall(r"VALIDATE CONSTRAINT (\w+)", sql)
    )


def without_lines_naming(schema: str, names: set[str]) -> str:
    return "\n".join(line for line in schema.splitlines() if not any(re.search(rf"\b{n}\b", line) for n in names))


PLATFORMDB = Path(sys.executable).with_name("platformdb")


def _server_params() -> list[Any]:
    params = []
    for name, bin_dir in server_bins().items():
        marks = (
            []
            if (bin_dir / "postgres").exists()
            else [pytest.mark.skip(reason=f"{name}: no PostgreSQL binaries at {bin_dir}")]
        )
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.fixture(scope="module", params=_server_params())
def durable(request: pytest.FixtureRequest) -> Iterator[CrashableCluster]:
    """A durable cluster of its own for this module's tests on one server version."""
    name = request.param
    root = Path(tempfile.mkdtemp(prefix=f"platformdb-crash-{name}-"))
    set_child_subreaper(True)
    crashable = CrashableCluster(name, Cluster(root / "pgdata", server_bins()[name], dict(DURABLE_SETTINGS)))
    try:
        crashable.cluster.start()
        with crashable.admin() as conn:
            for setting, value in DURABLE_SETTINGS.items():
                row = conn.execute(f"SHOW {setting}").fetchone()
                assert row is not None
                assert row[0] == value, f"{setting} must be {value} on a crash cluster"
        yield crashable
    finally:
        crashable.stop()
        shutil.rmtree(root, ignore_errors=True)
        set_child_subreaper(False)


@pytest.fixture(scope="module")
def demo_template(durable: CrashableCluster) -> str:
    """A database at head with the demo data, cloned by the tests that need representative data."""
    name = durable.create_database("demo")
    migrate.upgrade(durable.url(name), "head")
    demo.load(durable.url(name))  # leaves no session behind (see test_connection_hygiene), as a template needs
    return name


def platformdb_cli(*args: str) -> list[str]:
    return [str(PLATFORMDB), *args] if PLATFORMDB.exists() else [sys.executable, "-m", "platformdb.cli", *args]


def at_revision(dsn: str) -> str | None:
    """The revision in alembic_version, None when the table is missing or empty (base)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        versions = conn.execute("SELECT version_num FROM public.alembic_version").fetchall()
    assert len(versions) <= 1, f"more than one head: {versions}"
    return str(versions[0][0]) if versions else None


def schema_of(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return snapshot(conn, dated_partitions=False)


# --- (a) kill -9 during a bulk ingest -------------------------------------------------------------------------
BATCH = 500


class Ingest(threading.Thread):
    """Writes batches of metric samples to one series, one transaction per batch, until the server dies.
    Every sample of batch b has value b; ``committed`` lists the batches whose COMMIT returned."""

    def __init__(self, dsn: str, series_id: int, first_batch: int, start: dt.datetime) -> None:
        super().__init__(name=f"ingest-{series_id}", daemon=True)
        self.dsn, self.series_id, self.first_batch, self.start_at = dsn, series_id, first_batch, start
        self.committed: list[int] = []
        self.in_flight: int | None = None
        self.ended_by: str = "running"
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                for n in range(100_000):
                    if self.stop.is_set():
                        self.ended_by = "stopped"
                        return
                    batch = self.first_batch + n
                    self.in_flight = batch
                    with conn.cursor().copy(
                        "COPY platform.metric_samples (series_id, sampled_at, value) FROM STDIN"
                    ) as copy:
                        for i in range(BATCH):
                            at = self.start_at + dt.timedelta(milliseconds=n * BATCH + i)
                            copy.write_row((self.series_id, at, float(batch)))
                    conn.commit()
                    self.committed.append(batch)
                    self.in_flight = None
        except psycopg.Error as exc:  # the server went away: OperationalError, or InterfaceError on close
            self.ended_by = type(exc).__name__


def test_kill_during_metric_ingest_keeps_every_committed_batch_whole(
    durable: CrashableCluster, demo_template: str, reliability: Record
) -> None:
    name = durable.create_database("ingest", template=demo_template)
    dsn = durable.dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        series = [
            int(row[0]) for row in conn.execute("SELECT id FROM platform.metric_series ORDER BY id LIMIT 2").fetchall()
        ]
        before = conn.execute("SELECT count(*) FROM platform.metric_samples").fetchone()
    assert len(series) == 2
    assert before is not None
    audit_rows = audit_row_count(dsn)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=1)  # after the demo's samples
    workers = [Ingest(dsn, s, first_batch=10_000 * (i + 1), start=start) for i, s in enumerate(series)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: all(len(w.committed) >= 5 for w in workers), 60, "five committed batches per worker")
        time.sleep(random.uniform(0, 0.2))  # noqa: S311 - a random moment, not cryptography
        crash = durable.crash()
    finally:
        for worker in workers:
            worker.stop.set()
            worker.join(timeout=60)
    assert all(w.ended_by != "running" for w in workers)
    log = durable.restart()

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT series_id, value::bigint, count(*) FROM platform.metric_samples"
            " WHERE series_id = ANY(%s) AND sampled_at >= %s GROUP BY 1, 2",
            (series, start),
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM platform.metric_samples").fetchone()
    landed = {(int(s), int(b)): int(n) for s, b, n in rows}
    partial = {key: n for key, n in landed.items() if n != BATCH}
    assert partial == {}, f"batches landed in part: {partial}"
    for worker in workers:
        present = {b for (s, b) in landed if s == worker.series_id}
        missing = set(worker.committed) - present
        assert missing == set(), f"committed batches lost in the crash: {sorted(missing)}"
        unexplained = present - set(worker.committed) - {worker.in_flight}
        assert unexplained == set(), f"batches present that were never written: {sorted(unexplained)}"
        in_flight_landed = worker.in_flight in present
        reliability.add("in-flight batches that landed whole" if in_flight_landed else "in-flight batches absent")
    assert total is not None
    assert total[0] == before[0] + BATCH * len(landed)
    assert_audit_chain_verifies(dsn, audit_rows)
    reliability.cases = 1
    reliability.figures.update(
        crashes=1,
        batches_committed=sum(len(w.committed) for w in workers),
        samples_committed=BATCH * sum(len(w.committed) for w in workers),
        postmaster_children=crash["children"],
        recovery_replayed_wal=int("redo starts" in log or "redo done" in log),
    )


# --- (b) kill -9 during a migration -------------------------------------------------------------------------
def upgrade_in_background(durable: CrashableCluster, name: str) -> subprocess.Popen[str]:
    # The held upgrades wait on their version row until every one of them waits, which on a loaded 2-core
    # machine took longer than the default 10 s lock timeout (seen once in a full run): a generous one here.
    return subprocess.Popen(
        platformdb_cli("--database-url", durable.dsn(name), "upgrade", "--lock-timeout", "10min"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_died_with_one_line(name: str, proc: subprocess.Popen[str]) -> None:
    """The CLI lost its server: a non-zero exit and one plain line on stderr, never a traceback."""
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, f"{name}: the upgrade survived the crash?"
    assert err.startswith("platformdb: error:"), f"{name}: {err!r}"
    assert err.count("\n") == 1, f"{name}: not one line: {err!r}"


def test_kill_during_upgrade_leaves_a_whole_revision_and_resumes(
    durable: CrashableCluster, reliability: Record
) -> None:
    """Two crashes, each with `platformdb upgrade` running:

    1. at the end of a revision: one database per revision R below head is at R, and its upgrade is held, by
       a lock on the alembic_version row, at the very end of revision R+1's transaction (all of R+1's DDL done,
       the version not yet written); the postmaster is killed while every one of them waits;
    2. in the middle of a revision: an upgrade from base is watched and the postmaster killed as soon as its
       backend holds a transaction id, i.e. has written part of a revision.

    After each recovery every database is at a whole revision with exactly that revision's schema (compared
    with a database migrated cleanly to it), and `platformdb upgrade` then takes each to head."""
    schemas: dict[str | None, str] = {}
    at: dict[str, str] = {}  # a clean clone of each revision below head
    reference = durable.create_database("reference")
    schemas[None] = schema_of(durable.dsn(reference))
    for rev in REVISIONS:
        migrate.upgrade(durable.url(reference), rev)
        schemas[rev] = schema_of(durable.dsn(reference))
        if rev != REVISIONS[-1]:
            at[rev] = durable.create_database(f"at_{rev}", template=reference)

    # 1. Killed at the end of a revision, every revision.
    held = {name: rev for rev, name in at.items()}
    holders = []
    for name in held:
        holder = psycopg.connect(durable.dsn(name))
        holder.execute("SELECT version_num FROM alembic_version FOR UPDATE")
        holders.append(holder)
    upgrades = {name: upgrade_in_background(durable, name) for name in held}
    try:

        def all_held() -> bool:
            exited = {name: (p.returncode, p.communicate()[1].strip()) for name, p in upgrades.items()
                      if p.poll() is not None}  # fmt: skip
            assert not exited, f"upgrades ended before the crash: {exited}"
            with durable.admin() as conn:
                waiting = conn.execute(
                    "SELECT datname FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE alembic_version%'"
                ).fetchall()
            return {d for (d,) in waiting} == set(held)

        wait_until(all_held, 120, "every held upgrade to wait on its alembic_version row")
        durable.crash()
    finally:
        for holder in holders:
            holder.close()
    for name, proc in upgrades.items():
        assert_died_with_one_line(name, proc)
    durable.restart()
    leftovers = 0
    for name, rev in held.items():
        assert at_revision(durable.dsn(name)) == rev, f"{name} should be at {rev}"
        schema = schema_of(durable.dsn(name))
        concurrent = built_concurrently(REVISIONS[REVISIONS.index(rev) + 1])
        if concurrent and schema != schemas[rev]:
            leftovers += 1
            assert without_lines_naming(schema, concurrent) == without_lines_naming(schemas[rev], concurrent), (
                f"{name}: beyond the index built concurrently, not exactly the schema of {rev}"
            )
        else:
            assert schema == schemas[rev], f"{name}: not exactly the schema of {rev}"

    # 2. Killed in the middle of a revision's DDL.
    midway = durable.create_database("from_base")
    upgrade = upgrade_in_background(durable, midway)

    def writing() -> bool:
        assert upgrade.poll() is None, "the upgrade finished before it was seen writing"
        with durable.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_xid IS NOT NULL", (midway,)
            ).fetchone()
        return bool(row and row[0])

    wait_until(writing, 120, "the upgrade from base to write")
    durable.crash()
    assert_died_with_one_line(midway, upgrade)
    durable.restart()
    landed = at_revision(durable.dsn(midway))
    assert landed is None or landed in REVISIONS
    schema = schema_of(durable.dsn(midway))
    following = REVISIONS[REVISIONS.index(landed) + 1 if landed else 0] if landed != REVISIONS[-1] else None
    concurrent = built_concurrently(following) if following else set()
    assert without_lines_naming(schema, concurrent) == without_lines_naming(schemas[landed], concurrent), (
        f"{midway}: not exactly the schema of {landed}"
    )

    resumed = {name: upgrade_in_background(durable, name) for name in [*held, midway]}
    for name, proc in resumed.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err}"
        assert at_revision(durable.dsn(name)) == REVISIONS[-1]
        assert schema_of(durable.dsn(name)) == schemas[REVISIONS[-1]], f"{name}: resumed to a different head schema"
    reliability.cases = 2
    reliability.figures.update(
        crashes=2,
        upgrades_killed_at_end_of_revision=len(held),
        revisions_interrupted=" ".join(f"{r}->{REVISIONS[REVISIONS.index(r) + 1]}" for r in held.values()),
        upgrade_killed_mid_revision_left_database_at=landed or "base",
        concurrently_built_indexes_left_and_rebuilt=leftovers,
        resumed_to_head=len(resumed),
    )


# --- (c) pg_dump / pg_restore --------------------------------------------------------------------------------
def without_parentheses(schema: str) -> list[str]:
    return [
        line.replace("(", "").replace(")", "") if " CHECK (" in line or " WHEN (" in line else line
        for line in schema.splitlines()
    ]


def test_dump_and_restore_reproduce_every_table(
    durable: CrashableCluster, demo_template: str, reliability: Record, tmp_path: Path
) -> None:
    source = durable.create_database("source", template=demo_template)
    target = durable.create_database("restored")
    bin_dir = durable.cluster.bin_dir
    dump = tmp_path / "platform.dump"
    subprocess.run([str(bin_dir / "pg_dump"), "-Fc", "-f", str(dump), "-d", durable.dsn(source)], check=True)
    restored = subprocess.run(
        [str(bin_dir / "pg_restore"), "--exit-on-error", "-d", durable.dsn(target), str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr

    before, after = table_checksums(durable.dsn(source)), table_checksums(durable.dsn(target))
    assert sorted(after) == sorted(before), "the same tables"
    differing = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    assert differing == {}, f"tables whose rows differ after restore: {differing}"
    assert sequence_states(durable.dsn(target)) == sequence_states(durable.dsn(source))
    with psycopg.connect(durable.dsn(source)) as a, psycopg.connect(durable.dsn(target)) as b:
        original, restored_schema = snapshot(a), snapshot(b)
    # pg_dump prints a CHECK or a trigger's WHEN as PostgreSQL deparses it; re-parsing that flattens nested
    # ANDs and ORs (a BETWEEN inside an AND), so the same expression can come back with fewer parentheses. Only
    # that may differ: the schemas are the same once those lines' parentheses are ignored.
    gone = set(original.splitlines()) - set(restored_schema.splitlines())
    came = set(restored_schema.splitlines()) - set(original.splitlines())
    reparenthesized = gone | came

    assert all(" CHECK (" in line or " WHEN (" in line for line in reparenthesized), (
        f"the restored schema differs: {reparenthesized}"
    )
    assert without_parentheses(restored_schema) == without_parentheses(original)
    assert_audit_chain_verifies(durable.dsn(target), audit_row_count(durable.dsn(source)))

    # The restored database works: rules fire, ids continue after the restored ones.
    with psycopg.connect(durable.dsn(target), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO platform.metrics (name, unit, kind) VALUES ('restored_checks_total', 'checks', 'counter')"
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE platform.deployments SET status = 'pending' WHERE status = 'succeeded'")
    assert audit_row_count(durable.dsn(target)) == audit_row_count(durable.dsn(source)) + 1
    reliability.cases = 1
    reliability.figures.update(
        tables_compared=len(before),
        rows_compared=sum(n for n, _ in before.values()),
        sequences_compared=len(sequence_states(durable.dsn(source))),
        check_definitions_reparenthesized=len(reparenthesized) // 2,
        dump_bytes=dump.stat().st_size,
    )
