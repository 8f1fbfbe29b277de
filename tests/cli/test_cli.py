"""The real ``platformdb`` command, run in a subprocess the way users run it.

The promise under test: every user error (bad URL, server down, unknown revision, demo data on an
unmigrated database, a usage mistake) is ONE plain line on stderr starting with ``platformdb: error:`` and a
non-zero exit, never a traceback, and never a password. The happy paths run against the test servers
(PostgreSQL 18 and 15); the ``server`` subcommands run the embedded PostgreSQL 18 in a temporary
``PLATFORMDB_HOME``, so nothing here touches a developer's own embedded server.

Output is captured through a pipe, as in scripts and CI: no terminal, no ``COLUMNS``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.db import ENV_URL, libpq_dsn, parse_url
from platformdb.workbench.server import Cluster, embedded_bin_dir
from tests.pg import Server
from tests.reliability.report import Record

pytestmark = pytest.mark.cli

HEAD = migrate.head()
REVISIONS = [rev for rev, _, _ in migrate.history()]
PASSWORD = "sekret"
ERROR_PREFIX = "platformdb: error:"
# Variables of the developer's that would change what the command does or how it prints.
_NOT_INHERITED = (ENV_URL, "PLATFORMDB_DEBUG", "COLUMNS", "LINES")

_script = Path(sysconfig.get_path("scripts")) / "platformdb"
COMMAND = [str(_script)] if _script.exists() else [sys.executable, "-m", "platformdb.cli"]


@pytest.fixture(autouse=True)
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PLATFORMDB_HOME of this test's own, and no database URL from the developer's environment."""
    home = tmp_path / "home"
    home.mkdir()
    for name in _NOT_INHERITED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATFORMDB_HOME", str(home))
    return home


def run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``platformdb ARGS`` in a subprocess; ``env`` adds to (or overrides) the scrubbed environment."""
    base = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    assert "PLATFORMDB_HOME" in base, "run() needs the cli_home fixture"
    return subprocess.run(
        [*COMMAND, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=base["PLATFORMDB_HOME"],
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    """The command succeeded quietly on stderr; returns its stdout."""
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], contains: str | tuple[str, ...] = ()) -> str:
    """A non-zero exit, exactly one ``platformdb: error: ...`` line on stderr, no password; returns the line."""
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    line = lines[0]
    assert line.startswith(f"{ERROR_PREFIX} "), describe(result)
    assert line.removeprefix(ERROR_PREFIX).strip(), describe(result)
    for part in (contains,) if isinstance(contains, str) else contains:
        assert part in line, describe(result)
    assert PASSWORD not in result.stdout + result.stderr, describe(result)
    return line


def dsn_with_password(server: Server, database: str) -> str:
    """The test cluster's socket URL with a password added (its trust authentication ignores it)."""
    dsn = server.dsn(database)
    assert dsn.startswith("postgresql://postgres@"), dsn
    return dsn.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@", 1)


def count_rows(url: URL, table: str) -> int:
    with psycopg.connect(libpq_dsn(url)) as conn:
        row = conn.execute(f"SELECT count(*) FROM platform.{table}").fetchone()
    assert row is not None
    return int(row[0])


# --- errors that need no database ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "contains"),
    [
        pytest.param(["--database-url", "mysql://x/y", "current"], ("not a PostgreSQL URL", "mysql://x/y"), id="mysql"),
        pytest.param(["--database-url", "postgresql://", "current"], "names no database", id="no-database"),
        pytest.param(
            ["--database-url", "postgresql://u@localhost:99999/db", "current"],
            "port 99999 out of range",
            id="port-out-of-range",
        ),
        pytest.param(
            ["--database-url", "postgresql://u@/db?host=/nonexistent-dir", "current"],
            ("cannot connect", "/nonexistent-dir"),
            id="server-down",
        ),
        pytest.param(["sql", "nocolon"], ("FROM:TO", "nocolon"), id="sql-no-colon"),
        pytest.param(["sql", "base:nosuch"], ("unknown revision", "nosuch"), id="sql-unknown-revision"),
        pytest.param(["nosuchcommand"], "nosuchcommand", id="unknown-command"),
        pytest.param(["downgrade"], "REVISION", id="missing-argument"),
        pytest.param(["roles", "grant-login", "svc"], ("Missing option '--role'", "readonly"), id="missing-choice"),
        pytest.param(["server", "start", "--listen", "127.0.0.2"], "loopback address", id="listen-not-ours"),
        pytest.param(["server", "start", "--port", "6543"], "--port goes with --listen", id="port-without-listen"),
        pytest.param(["--database-url", "", "current"], "URL given is empty", id="empty-url"),
        # The scale is checked before any database is looked for (so none is started).
        pytest.param(["seed", "--scale", "-1"], ("--scale must be 1 or more", "-1"), id="seed-scale-minus-one"),
        pytest.param(["seed", "--scale=0"], ("--scale must be 1 or more", "0"), id="seed-scale-zero"),
        pytest.param(["seed", "--scale", "abc"], ("--scale", "not a valid integer"), id="seed-scale-not-a-number"),
    ],
)
def test_user_error_is_one_line(
    args: list[str], contains: str | tuple[str, ...], cli_home: Path, reliability: Record
) -> None:
    assert_one_line_error(run(*args), contains)
    reliability.cases = 1
    reliability.add("one line, exit 1, no traceback")
    # A bad --database-url is reported, never silently replaced by the embedded server.
    assert not (cli_home / "pgdata").exists()


@pytest.mark.parametrize(
    ("url", "contains"),
    [
        pytest.param(f"postgresql://u:{PASSWORD}@/db?host=/nonexistent-dir", "cannot connect", id="server-down"),
        pytest.param(f"postgresql://u:{PASSWORD}@127.0.0.1:1/db", "cannot connect", id="connection-refused"),
        pytest.param(f"postgresql://u:{PASSWORD}@localhost:abc/db", "port", id="port-not-a-number"),
        # A password with a space, percent-encoded as URLs require, to a server that is down.
        pytest.param(f"postgresql://u:{PASSWORD}%20x@/db?host=/nonexistent-dir", "cannot connect", id="space"),
    ],
)
def test_error_line_never_shows_the_password(url: str, contains: str, reliability: Record) -> None:
    line = assert_one_line_error(run("--database-url", url, "current"), contains)
    assert "***" in line or "://" not in line, line  # where the URL is quoted, its password is masked
    reliability.cases = 1
    reliability.add("one line, password masked")


def test_url_from_the_environment_gets_the_same_treatment(cli_home: Path) -> None:
    result = run("current", env={ENV_URL: f"postgresql://u:{PASSWORD}@/db?host=/nonexistent-dir"})
    assert_one_line_error(result, ("cannot connect", "/nonexistent-dir"))
    assert not (cli_home / "pgdata").exists()


# --- errors against a real server ----------------------------------------------------------------------
def test_missing_database_on_a_running_server(server: Server, reliability: Record) -> None:
    result = run("--database-url", dsn_with_password(server, "no_such_database"), "current")
    assert_one_line_error(result, ("cannot connect", "no_such_database", "does not exist"))
    reliability.cases = 1
    reliability.add("one line, exit 1, no traceback")


APP_ROLE = "app"
WRONG_PASSWORD = "n0t-the-Right-one"


def app_dsn(server: Server, password: str | None) -> str:
    """``server``'s socket URL for the role ``app``, with ``password`` (or none)."""
    auth = APP_ROLE if password is None else f"{APP_ROLE}:{password}"
    return server.dsn("postgres").replace("postgresql://postgres@", f"postgresql://{auth}@", 1)


def _login_error(dsn: str) -> str | None:
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def scram_server() -> Iterator[Server]:
    """An embedded PostgreSQL 18 cluster where the role ``app`` (password PASSWORD) must prove its password
    (scram-sha-256); only the superuser ``postgres``, which sets it up, keeps trust. It listens on its socket
    only; the host lines say the same for TCP. The shared test servers trust everyone, so a wrong password
    would never be refused there."""
    srv = Server.start("pg18-scram", embedded_bin_dir())
    try:
        with srv.admin() as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{PASSWORD}'")
            hba_file = conn.execute("SHOW hba_file").fetchone()
        assert hba_file is not None
        # Rewritten in place, so the file keeps its owner (the server's own user when we are root).
        Path(hba_file[0]).write_text(
            "local all postgres trust\n"
            f"local all {APP_ROLE} scram-sha-256\n"
            f"host all {APP_ROLE} 127.0.0.1/32 scram-sha-256\n"
            f"host all {APP_ROLE} ::1/128 scram-sha-256\n"
        )
        with srv.admin() as conn:
            errors = conn.execute("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
            assert errors.fetchall() == []
            conn.execute("SELECT pg_reload_conf()")
        # The reload is asynchronous: wait until the old trust rule no longer lets a wrong password in.
        deadline = time.monotonic() + 10
        while (error := _login_error(app_dsn(srv, WRONG_PASSWORD))) is None:
            assert time.monotonic() < deadline, "pg_hba.conf was not reloaded within 10 s"
            time.sleep(0.05)
        assert "password authentication failed" in error, error
        yield srv
    finally:
        srv.stop()


def test_right_password_gets_in(scram_server: Server) -> None:
    """The other half of the wrong-password test: the role and URL work, so only the password is wrong there."""
    assert assert_ok(run("--database-url", app_dsn(scram_server, PASSWORD), "current")).strip() == "base (not migrated)"


def test_wrong_password_is_one_line(scram_server: Server, reliability: Record) -> None:
    result = run("--database-url", app_dsn(scram_server, WRONG_PASSWORD), "current")
    # assert_one_line_error also checks that the right password (PASSWORD) shows nowhere.
    line = assert_one_line_error(result, ("cannot connect", f'password authentication failed for user "{APP_ROLE}"'))
    assert WRONG_PASSWORD not in result.stdout + result.stderr, describe(result)
    assert f"postgresql://{APP_ROLE}:***@" in line, line
    reliability.cases = 1
    reliability.add("one line, password masked")


def test_missing_password_is_one_line(scram_server: Server, cli_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing of the developer's may supply one: no PGPASSWORD, and a password file that does not exist.
    monkeypatch.delenv("PGPASSWORD", raising=False)
    result = run("--database-url", app_dsn(scram_server, None), "current", env={"PGPASSFILE": str(cli_home / "none")})
    assert_one_line_error(result, ("cannot connect", "no password supplied"))


@pytest.mark.parametrize("command", ["upgrade", "downgrade"])
def test_unknown_revision(command: str, db: URL, reliability: Record) -> None:
    result = run("--database-url", libpq_dsn(db), command, "nosuchrev")
    assert_one_line_error(result, ("unknown revision", "nosuchrev", "platformdb history"))
    reliability.cases = 1
    reliability.add("one line, exit 1, no traceback")


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "verify"],
        ["partitions", "ensure"],
        ["partitions", "prune", "--retain", "30"],
        ["freezes", "ensure"],
        ["watchdog"],
        ["indexes", "rebuild"],
        ["roles", "grant-login", "svc_x", "--role", "readonly"],
    ],
    ids=[
        "audit-verify",
        "partitions-ensure",
        "partitions-prune",
        "freezes-ensure",
        "watchdog",
        "indexes-rebuild",
        "grant-login",
    ],
)
@pytest.mark.parametrize("at", ["base", "0012"])
def test_maintenance_on_an_unmigrated_database_says_to_upgrade(
    command: list[str], at: str, empty_db: URL, reliability: Record
) -> None:
    """Every operation reuses migrate.require_head: a database short of head, empty or not, is one line."""
    if at != "base":
        migrate.upgrade(empty_db, at)
    result = run("--database-url", libpq_dsn(empty_db), *command)
    assert_one_line_error(result, (f"is not migrated to head (it is at {at})", "platformdb upgrade"))
    reliability.cases = 1
    reliability.add("one line, exit 1, no traceback")


def test_indexes_rebuild_that_cannot_lock_in_time_is_one_line_and_exit_1(db: URL) -> None:
    with psycopg.connect(libpq_dsn(db)) as holder:
        holder.execute("LOCK TABLE platform.deployments IN SHARE MODE")
        result = run("--database-url", libpq_dsn(db), "indexes", "rebuild", "--force", "--lock-timeout", "0.2")
    assert_one_line_error(result, ("not rebuilt", "lock_timeout"))
    assert "uq_deployments_active_service_id_environment_id" in result.stdout


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_indexes_rebuild_refuses_a_lock_timeout_that_is_not_positive(value: str, db: URL) -> None:
    result = run("--database-url", libpq_dsn(db), "indexes", "rebuild", "--lock-timeout", value)
    assert_one_line_error(result, "--lock-timeout")


def test_demo_on_an_unmigrated_database_says_to_upgrade(empty_db: URL) -> None:
    result = run("--database-url", libpq_dsn(empty_db), "demo")
    assert_one_line_error(result, ("not migrated", "platformdb upgrade"))


# --- migrations ----------------------------------------------------------------------------------------
def test_upgrade_current_downgrade_current(empty_db: URL) -> None:
    url = libpq_dsn(empty_db)
    where = f'database "{empty_db.database}" at {empty_db.query["host"]}'
    lines = assert_ok(run("--database-url", url, "upgrade")).splitlines()
    assert lines[1:] == [f"{where}: base -> {HEAD}"], lines
    assert assert_ok(run("--database-url", url, "current")).strip() == f"{HEAD} (head)"

    lines = assert_ok(run("--database-url", url, "downgrade", "base")).splitlines()
    assert len(lines) == 2, lines
    assert lines[1].endswith(f": {HEAD} -> base"), lines
    assert assert_ok(run("--database-url", url, "current")).strip() == "base (not migrated)"


def test_migrating_commands_name_their_target_before_they_act(empty_db: URL) -> None:
    """The first line names the database and its host or socket, so a wrong target shows before anything runs."""
    url = libpq_dsn(empty_db)
    for args in (["upgrade", "0002"], ["downgrade", "base"]):
        first = assert_ok(run("--database-url", url, *args)).splitlines()[0]
        assert first.startswith(f"{args[0]}: "), first
        assert f'database "{empty_db.database}"' in first, first
        assert str(empty_db.query["host"]) in first, first


def test_downgrade_minus_one_steps_back_one_revision(empty_db: URL) -> None:
    url = libpq_dsn(empty_db)
    assert_ok(run("--database-url", url, "upgrade", "0003"))
    assert_ok(run("--database-url", url, "downgrade", "-1"))
    assert migrate.current(empty_db) == "0002"


def test_current_check_exits_1_unless_at_head(empty_db: URL) -> None:
    url = libpq_dsn(empty_db)
    for rev in ("base", "0005"):
        if rev != "base":
            assert_ok(run("--database-url", url, "upgrade", rev))
        result = run("--database-url", url, "current", "--check")
        assert result.returncode == 1, describe(result)
    assert_ok(run("--database-url", url, "upgrade"))
    assert_ok(run("--database-url", url, "current", "--check"))


def test_a_failed_upgrade_says_at_which_revision_it_stopped(empty_db: URL) -> None:
    """Each revision commits alone: a lock wait in 0017 leaves the database at 0016, and the line says so."""
    migrate.upgrade(empty_db, "0013")
    with psycopg.connect(libpq_dsn(empty_db)) as blocker:
        blocker.execute("LOCK TABLE platform.audit_logs IN ACCESS SHARE MODE")
        result = run("--database-url", libpq_dsn(empty_db), "upgrade", "--lock-timeout", "1s")
    line = assert_one_line_error(result, ("upgrade to head stopped at 0016", "lock timeout"))
    assert migrate.current(empty_db) == "0016", line


@pytest.mark.parametrize("value", ["soon", "0", "0s", "-1"])
def test_a_bad_lock_timeout_is_one_line(db: URL, value: str) -> None:
    """Zero would mean: wait for ever, the stall the option exists to prevent."""
    assert_one_line_error(run("--database-url", libpq_dsn(db), "upgrade", "--lock-timeout", value), "lock timeout")


def test_a_migrator_without_privileges_is_told_why(server: Server) -> None:
    """A non-superuser migrator is refused with PostgreSQL's own explanation where it has one (DETAIL/HINT)."""
    with server.admin() as conn:
        conn.execute("DROP ROLE IF EXISTS weak_migrator")
        conn.execute("CREATE ROLE weak_migrator LOGIN CREATEDB")
        conn.execute("CREATE DATABASE weak_target OWNER weak_migrator")
    try:
        dsn = server.dsn("weak_target").replace("postgresql://postgres@", "postgresql://weak_migrator@", 1)
        # PostgreSQL 15 says "must have CREATEROLE privilege"; 16 and later say "permission denied" and explain
        # CREATEROLE in a DETAIL, which the line keeps.
        assert_one_line_error(run("--database-url", dsn, "upgrade"), ("stopped at 0008", "CREATEROLE"))
    finally:
        server.drop_database("weak_target")
        with server.admin() as conn:
            conn.execute("DROP ROLE weak_migrator")


def test_history_lists_every_revision() -> None:
    stdout = assert_ok(run("history"))
    listed = re.findall(r"^ *(\S+) +(?:base|\d{4}) ", stdout, flags=re.MULTILINE)
    assert listed == REVISIONS, stdout
    assert REVISIONS[-1] == HEAD


def test_sql_base_to_head_needs_no_database(cli_home: Path) -> None:
    # A bogus URL in the environment is not even parsed: `sql` never connects.
    stdout = assert_ok(run("sql", "base:head", env={ENV_URL: "not a database url"}))
    assert "CREATE TABLE platform.users (" in stdout
    assert f"'{HEAD}'" in stdout  # it ends by recording the head revision
    assert not (cli_home / "pgdata").exists()


def test_sql_head_to_base_drops() -> None:
    stdout = assert_ok(run("sql", "head:base"))
    assert "DROP TABLE platform.users" in stdout
    assert "CREATE TABLE platform.users" not in stdout


# --- demo data -----------------------------------------------------------------------------------------
def test_demo_loads_once_and_summarizes(db: URL) -> None:
    url = libpq_dsn(db)
    first = assert_ok(run("--database-url", url, "demo"))
    assert "What runs where" in first
    assert "demo data loaded" in first
    assert "approvals_missing" in first  # protected production: payments 2.0.0 awaits its approval
    deployments = count_rows(db, "deployments")
    assert deployments > 0
    assert count_rows(db, "services") > 0

    second = assert_ok(run("--database-url", url, "demo"))
    assert "already loaded" in second
    assert "What runs where" in second
    assert count_rows(db, "deployments") == deployments


def test_demo_reset_never_drops_a_database_given_by_url(db: URL) -> None:
    url = libpq_dsn(db)
    assert_ok(run("--database-url", url, "demo"))
    deployments = count_rows(db, "deployments")
    assert_one_line_error(run("--database-url", url, "demo", "--reset"), "embedded server's database only")
    assert_one_line_error(run("demo", "--reset", env={ENV_URL: url}), "embedded server's database only")
    assert count_rows(db, "deployments") == deployments


# --- the URL forms users paste -------------------------------------------------------------------------
URL_FORMS: dict[str, Callable[[str], str]] = {
    # What the test cluster gives: postgresql://postgres@/DB?host=/socket/dir&port=5432
    "postgresql-socket": lambda dsn: dsn,
    "postgresql+psycopg": lambda dsn: dsn.replace("postgresql://", "postgresql+psycopg://", 1),
    "postgres": lambda dsn: dsn.replace("postgresql://", "postgres://", 1),
    # A password with a space, percent-encoded as URLs require (trust authentication ignores it).
    "password-with-space": lambda dsn: dsn.replace("postgres@", "postgres:pass%20word@", 1),
}


@pytest.mark.parametrize("form", list(URL_FORMS))
def test_url_forms_work(form: str, server: Server, db: URL) -> None:
    assert db.database is not None
    raw = URL_FORMS[form](server.dsn(db.database))
    assert assert_ok(run("--database-url", raw, "current")).strip() == f"{HEAD} (head)"


# --- the embedded server -------------------------------------------------------------------------------
@pytest.fixture
def embedded_home(cli_home: Path) -> Iterator[Path]:
    """``cli_home``, with the embedded server in it stopped at the end whatever happened."""
    try:
        yield cli_home
    finally:
        Cluster(data_dir=cli_home / "pgdata").stop("immediate")  # a no-op when the test stopped it


def test_embedded_server_lifecycle(embedded_home: Path) -> None:
    status = run("server", "status")
    assert status.returncode == 3, describe(status)
    assert "not initialized" in status.stdout

    started = run("server", "start")
    assert_ok(started)
    url = assert_ok(run("server", "url")).strip()
    assert url.startswith("postgresql://"), url
    host = parse_url(url).query["host"]
    assert isinstance(host, str), url
    assert Path(host).is_relative_to(embedded_home), url
    assert url in "".join(started.stdout.split()), describe(started)

    status = run("server", "status")
    assert status.returncode == 0, describe(status)
    assert status.stdout.startswith("running"), describe(status)
    assert "PostgreSQL 18" in status.stdout

    # Without --database-url, commands use the embedded server's `platformdb` database.
    assert assert_ok(run("current")).strip() == "base (not migrated)"

    assert assert_ok(run("server", "stop")).strip() == "stopped"
    status = run("server", "status")
    assert status.returncode == 3, describe(status)
    assert "stopped" in status.stdout

    # What `start` prints can be copied (or grepped from a log) as it is: the URL is not broken over lines.
    assert f"url: {url}" in started.stdout.splitlines(), describe(started)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_embedded_server_listens_on_loopback_for_tcp_clients(embedded_home: Path) -> None:
    """JDBC and other clients that cannot use a Unix socket: --listen 127.0.0.1, with a password over TCP."""
    everywhere = "0.0.0.0"  # noqa: S104 (the address the command must refuse)
    assert_one_line_error(run("server", "start", "--listen", everywhere), ("loopback address", everywhere))
    assert not (embedded_home / "pgdata").exists(), "a refused --listen started a server"

    port = _free_port()
    started = assert_ok(run("server", "start", "--listen", "127.0.0.1", "--port", str(port)))
    assert f"tcp: 127.0.0.1:{port}" in started, started
    assert f"tcp 127.0.0.1:{port}" in assert_ok(run("server", "status")), "status does not say it listens"
    tcp_url = assert_ok(run("server", "url", "--tcp")).strip()
    assert tcp_url.startswith("postgresql://postgres:"), tcp_url
    assert f"@127.0.0.1:{port}/platformdb" in tcp_url, tcp_url
    with psycopg.connect(tcp_url, connect_timeout=10) as conn:
        assert conn.execute("SELECT inet_client_addr()::text").fetchone() == ("127.0.0.1/32",)
    # Over TCP the password is required (initdb's host lines trusted every local user).
    wrong = tcp_url.replace(tcp_url.split("@")[0], "postgresql://postgres:wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10).close()
    assert (embedded_home / "tcp-password").stat().st_mode & 0o077 == 0

    # It is kept for the next start; a different one is refused while running; `none` goes back to the socket.
    assert_ok(run("server", "stop"))
    assert f"tcp: 127.0.0.1:{port}" in assert_ok(run("server", "start"))
    assert_one_line_error(run("server", "start", "--listen", "::1", "--port", str(port)), "server stop")
    assert_ok(run("server", "stop"))
    assert "tcp:" not in assert_ok(run("server", "start", "--listen", "none"))
    assert_one_line_error(run("server", "url", "--tcp"), "socket only")


def test_make_and_the_cli_share_one_home() -> None:
    """`make demo` and a bare `platformdb server status` look at the same embedded server: the Makefile does not
    put it elsewhere."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert not re.search(r"^\s*(export\s+)?PLATFORMDB_HOME\s*[:?+]?=", makefile, re.MULTILINE)


# --- version and help ----------------------------------------------------------------------------------
def test_version() -> None:
    assert version("platformdb") in assert_ok(run("--version"))


def test_help_lists_the_commands() -> None:
    stdout = assert_ok(run("--help"))
    for command in ("upgrade", "downgrade", "current", "history", "sql", "demo", "server"):
        assert re.search(rf"^\s+{command}\s", stdout, flags=re.MULTILINE), stdout
    assert "--database-url" in stdout


def test_no_command_shows_help_not_an_error() -> None:
    result = run()
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert "Commands:" in result.stdout + result.stderr, describe(result)
    # Help is not dressed up as an error message.
    assert ERROR_PREFIX not in result.stderr, describe(result)


# --- operations: issue #11 point 6 ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "contains"),
    [
        (["partitions", "prune", "--retain", "5"], ("retention is per table", "--table")),
        (["partitions", "retention", "metric_samples"], ("give the days to keep",)),
        (["roles", "revoke", "nobody_here"], ("no service login nobody_here",)),
        (["roles", "revoke", "Bad-Name"], ("login name",)),
    ],
    ids=["prune-retain-without-table", "retention-without-days", "revoke-unknown", "revoke-bad-name"],
)
def test_operations_mistakes_are_one_line(command: list[str], contains: tuple[str, ...], db: URL) -> None:
    assert_one_line_error(run("--database-url", libpq_dsn(db), *command), contains)


def test_partitions_retention_and_roles_list(db: URL) -> None:
    url = libpq_dsn(db)
    shown = run("--database-url", url, "partitions", "retention", "metric_samples", "20")
    assert shown.returncode == 0, describe(shown)
    assert re.search(r"metric_samples\s+20\s+by prune", shown.stdout), shown.stdout
    assert re.search(r"audit_logs\s+400\s+only with --table", shown.stdout), shown.stdout
    pruned = run("--database-url", url, "partitions", "prune")
    assert pruned.returncode == 0, describe(pruned)
    assert "audit_logs" not in pruned.stdout
    listed = run("--database-url", url, "roles", "list")
    assert listed.returncode == 0, describe(listed)
    assert "login(s)" in listed.stdout
