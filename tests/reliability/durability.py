"""Durable throwaway clusters that can be crashed, and what is checked after a crash or a restore.

:class:`CrashableCluster` wraps :class:`platformdb.workbench.server.Cluster` with durability on (fsync,
synchronous_commit, full_page_writes: PostgreSQL's defaults, spelled out) and can kill its postmaster with
SIGKILL, the way the OOM killer or a power cut would, then restart it through crash recovery.

A SIGKILLed postmaster stays a zombie until its parent reaps it, and PostgreSQL refuses to start while the
PID in ``postmaster.pid`` still exists. pg_ctl double-forks, so that parent is PID 1, and in a container whose
PID 1 is not an init (this test machine's is not) nobody reaps it. So, while crash clusters run, the test
process makes itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): it adopts the orphaned postmaster
and reaps it after the kill, as a real init would.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from platformdb.db import parse_url
from platformdb.workbench.server import Cluster

DURABLE_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
_PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper(on: bool) -> bool:
    """Make this process adopt orphaned descendants (Linux); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None when it no longer exists."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _proc_state(int(entry.name))
            if state is not None and state[1] == pid:
                kids.append(int(entry.name))
    return kids


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child; otherwise wait until it is gone or a zombie."""
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    wait_until(lambda: (_proc_state(pid) or ("X", 0))[0] in ("X", "Z"), 30, f"process {pid} to exit")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class CrashableCluster:
    name: str
    cluster: Cluster
    crashes: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def dsn(self, database: str = "postgres") -> str:
        return self.cluster.url(database)

    def url(self, database: str) -> URL:
        return parse_url(self.cluster.url(database))

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(), autocommit=True)

    def create_database(self, prefix: str, template: str = "template0") -> str:
        name = f"{prefix}_{next(self._ids)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def postmaster_pid(self) -> int:
        return int((self.cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def crash(self) -> dict[str, int]:
        """SIGKILL the postmaster (the PID on the first line of postmaster.pid); wait until it and the processes
        it had started are gone, reaping what we adopted."""
        pid = self.postmaster_pid()
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
        # Backends notice their postmaster died and exit on their own; then they are reparented to us.
        for child in children:
            _reap(child)
        self.crashes += 1
        return {"postmaster": pid, "children": len(children)}

    def restart(self) -> str:
        """Start again after a crash (crash recovery replays the WAL); the server log of the recovery."""
        self.cluster.start()
        return self.cluster.log_file.read_text() if self.cluster.log_file.exists() else ""

    def stop(self) -> None:
        pid = self.postmaster_pid() if (self.cluster.data_dir / "postmaster.pid").exists() else None
        self.cluster.destroy()
        if pid is not None:
            _reap(pid)


# --- what a restored or recovered database must still hold ----------------------------------------------
def user_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str, list[str]]]:
    """(schema, table, primary-key columns) of every table outside the system schemas, partitions and
    partitioned parents included."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname,
                  coalesce((SELECT array_agg(a.attname ORDER BY k.ord)
                              FROM pg_index i
                              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                             WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
            ORDER BY 1, 2"""
    ).fetchall()
    return [(schema, table, list(pk)) for schema, table, pk in rows]


def table_checksums(dsn: str) -> dict[str, tuple[int, str]]:
    """Per table: (row count, md5 of every row's text in primary-key order, or in text order without a key)."""
    out: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")  # timestamptz text depends on it; both sides read the same way
        for schema, table, pk in user_tables(conn):
            order = ", ".join(f't."{col}"' for col in pk) if pk else "t::text"
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {order}), ''))"
                f' FROM ONLY "{schema}"."{table}" t'
            ).fetchone()
            assert row is not None
            out[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
    return out


def sequence_states(dsn: str) -> dict[str, tuple[Any, ...]]:
    """last_value and is_called of every sequence (identity columns included): a restore that lost them would
    hand out ids that already exist."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = conn.execute("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1").fetchall()
        states = {}
        for (name,) in names:
            row = conn.execute(f"SELECT last_value, is_called FROM {name}").fetchone()
            assert row is not None
            states[name] = tuple(row)
    return states


def audit_row_count(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM platform.audit_logs").fetchone()
    assert row is not None
    return int(row[0])


def assert_audit_chain_verifies(dsn: str, expected_rows: int) -> None:
    """The audit trail of the database at ``dsn`` survived a crash or a restore intact: exactly
    ``expected_rows`` rows (none lost, none invented) and the hash chain verifies end to end."""
    assert audit_row_count(dsn) == expected_rows, f"audit_logs of {dsn} lost or gained rows"
    from platformdb.ops.audit_chain import verify

    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('platform.audit_chain')").fetchone() == (None,):
            return  # a database stopped before revision 0010 has no chain yet
        verdict = verify(conn)
    assert verdict.ok, str(verdict)
    assert verdict.rows == expected_rows
