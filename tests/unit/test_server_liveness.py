"""``Cluster.is_running()`` and ``start()`` with a zombie postmaster.

In a container whose PID 1 never reaps orphans (this machine's does not), a SIGKILLed postmaster stays a
zombie: kill(pid, 0) still succeeds, so ``pg_ctl status`` says it runs and PostgreSQL refuses to start over its
lock file. The real test makes a real zombie: this process becomes a child subreaper, so it adopts the
postmaster that pg_ctl leaves behind and, by not reaping it after the kill, keeps it a zombie (reaped at the end).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from platformdb.errors import UserError
from platformdb.workbench import server
from platformdb.workbench.server import Cluster, embedded_bin_dir, process_gone, stat_state
from tests.pg import FAST_SETTINGS
from tests.reliability.durability import _children, _proc_state, _reap, set_child_subreaper, wait_until


# --- /proc parsing, on fake files ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stat", "state"),
    [
        pytest.param("4242 (postgres) Z 1 4242 4242 0 -1 4194560", "Z", id="zombie"),
        pytest.param("4242 (postgres) S 1 4242 4242 0 -1 4194560", "S", id="sleeping"),
        # The command name may hold spaces and parentheses; the state follows the LAST one.
        pytest.param("4242 (a) Z (b) R 1 4242", "R", id="parens-in-name"),
        pytest.param("", "", id="empty"),
    ],
)
def test_stat_state(stat: str, state: str) -> None:
    assert stat_state(stat) == state


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    for pid, state in ((100, "Z"), (101, "S"), (102, "R"), (103, "X")):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(f"{pid} (post master) {state} 1 {pid} {pid} 0 -1\n")
    return proc


@pytest.mark.parametrize(
    ("pid", "gone"),
    [
        pytest.param(100, True, id="zombie"),
        pytest.param(101, False, id="sleeping"),
        pytest.param(102, False, id="running"),
        pytest.param(103, True, id="dead"),
        pytest.param(999, True, id="no-such-process"),
    ],
)
def test_process_gone(fake_proc: Path, pid: int, gone: bool) -> None:
    assert process_gone(pid, fake_proc) is gone


def test_without_procfs_nothing_counts_as_gone(fake_proc: Path) -> None:
    (fake_proc / "self").rmdir()  # a /proc directory with nothing mounted on it
    assert not process_gone(100, fake_proc)
    assert not process_gone(999, fake_proc)


SHM_HEADER = "       key      shmid perms      size  cpid  lpid nattch   uid   gid  cuid  cgid\n"


def shm_row(key: int, shmid: int, nattch: int) -> str:
    return f"{key:>10} {shmid:>10}   600        56  1895  1895 {nattch:>6}   101     0   101     0\n"


@pytest.mark.parametrize(
    ("shm", "in_use"),
    [
        pytest.param(SHM_HEADER + shm_row(2244697, 1015858, 3), True, id="backends-attached"),
        pytest.param(SHM_HEADER + shm_row(2244697, 1015858, 0), False, id="nobody-attached"),
        # Another cluster's segment, in use, is not ours.
        pytest.param(SHM_HEADER + shm_row(2157813, 1015853, 9), False, id="segment-gone"),
        pytest.param(None, True, id="cannot-tell"),
        pytest.param("", True, id="empty-table"),
    ],
)
def test_shared_memory_in_use(tmp_path: Path, shm: str | None, in_use: bool) -> None:
    pid_file = tmp_path / "postmaster.pid"
    pid_file.write_text("1895\n/data\n1795556330\n5432\n/data\n\n  2244697   1015858\nready   \n")
    proc = tmp_path / "proc"
    (proc / "sysvipc").mkdir(parents=True)
    if shm is not None:
        (proc / "sysvipc" / "shm").write_text(shm)
    assert server._shared_memory_in_use(pid_file, proc) is in_use


# --- a real zombie postmaster --------------------------------------------------------------------------
@pytest.fixture
def subreaper() -> Iterator[list[int]]:
    """This process adopts orphans while the test runs; the PIDs the test appends are reaped at the end."""
    assert set_child_subreaper(True), "PR_SET_CHILD_SUBREAPER is not available (Linux 3.4+)"
    adopted: list[int] = []
    try:
        yield adopted
    finally:
        for pid in adopted:
            if not process_gone(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # a backend left stopped by a failed test
        for pid in adopted:
            _reap(pid)
        set_child_subreaper(False)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="platformdb-zombie-"))
    cluster = Cluster(data_dir=root / "pgdata", bin_dir=embedded_bin_dir(), settings=dict(FAST_SETTINGS))
    try:
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


def _state(pid: int) -> str:
    found = _proc_state(pid)
    return found[0] if found else "gone"


def test_zombie_postmaster_is_not_running_and_start_replaces_it(
    subreaper: list[int], cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.start()
    pid = _postmaster_pid(cluster)
    subreaper.append(pid)
    assert (_proc_state(pid) or ("gone", 0))[1] == os.getpid(), "the postmaster was not adopted by this process"

    # One backend stopped in its tracks outlives the postmaster, still attached to its shared memory.
    conn = psycopg.connect(cluster.url(), autocommit=True)
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    backend = int(row[0])
    children = _children(pid)
    assert backend in children
    subreaper.extend(children)
    os.kill(backend, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _state(pid) == "Z", 10, f"postmaster {pid} to become a zombie")

        # What fooled us: pg_ctl takes the zombie for a live server.
        status = cluster._cmd("pg_ctl", "status", "-D", str(cluster.data_dir), check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        assert not cluster.is_running()
        # Where there is no procfs to look at, pg_ctl's answer stands.
        with monkeypatch.context() as m:
            m.setattr(server, "_PROC", tmp_path / "no-proc")
            assert cluster.is_running()

        # While the stopped backend holds the shared memory, the lock file stays and PostgreSQL refuses to start.
        others = [child for child in children if child != backend]
        wait_until(lambda: all(process_gone(child) for child in others), 30, "the other backends to exit")
        with pytest.raises(UserError, match="pg_ctl failed"):
            cluster.start()
        assert _postmaster_pid(cluster) == pid
        assert not cluster.is_running()
    finally:
        os.kill(backend, signal.SIGCONT)  # it notices its postmaster died and exits
        conn.close()
    wait_until(lambda: process_gone(backend), 30, f"backend {backend} to exit")

    cluster.start()
    new_pid = _postmaster_pid(cluster)
    subreaper.append(new_pid)
    assert new_pid != pid
    assert _state(pid) == "Z"  # start() coped with the zombie; only its parent (we) can reap it
    assert cluster.is_running()
    with psycopg.connect(cluster.url()) as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)


def test_pg_hba_is_never_written_through_a_symbolic_link(tmp_path: Path) -> None:
    """The data directory is the server user's: a pg_hba.conf it turned into a link to root's file is refused."""
    from platformdb.workbench.server import _write_in_place

    victim = tmp_path / "root-owned"
    victim.write_text("precious\n")
    link = tmp_path / "pg_hba.conf"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        _write_in_place(link, "host all all 0.0.0.0/0 trust\n")
    assert victim.read_text() == "precious\n"
