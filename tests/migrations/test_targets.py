"""Migrations go only where they are told: the plain ``alembic`` command's target, in its documented order.

Order (first match wins): an explicit connection or engine in ``config.attributes``, ``-x database_url``,
``sqlalchemy.url`` in alembic.ini, ``$PLATFORMDB_DATABASE_URL``. With none of them the command fails and starts
no server: only the ``platformdb`` CLI falls back to the embedded one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.db import ENV_URL, libpq_dsn
from tests.pg import Server

pytestmark = pytest.mark.migration

HEAD = migrate.head()
_script = Path(sysconfig.get_path("scripts")) / "alembic"
ALEMBIC = [str(_script)] if _script.exists() else [sys.executable, "-m", "alembic"]


def alembic(
    tmp_path: Path, *args: str, ini_url: str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``alembic -c INI ARGS`` as a user runs it, with an alembic.ini naming ``ini_url`` (if any), an empty
    PLATFORMDB_HOME (so a server started by mistake would show) and no URL in the environment unless given."""
    ini = tmp_path / "alembic.ini"
    lines = ["[alembic]", "script_location = platformdb:migrations"]
    if ini_url is not None:
        lines.append("sqlalchemy.url = " + ini_url.replace("%", "%%"))
    ini.write_text("\n".join(lines) + "\n")
    base = {k: v for k, v in os.environ.items() if k != ENV_URL}
    base["PLATFORMDB_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [*ALEMBIC, "-c", str(ini), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"


@pytest.fixture
def other_db(server: Server) -> Iterator[URL]:
    name = server.create_database(prefix="other")
    yield server.url(name)
    server.drop_database(name)


def test_plain_alembic_migrates_the_database_in_alembic_ini(tmp_path: Path, empty_db: URL) -> None:
    result = alembic(tmp_path, "upgrade", "head", ini_url=libpq_dsn(empty_db))
    assert result.returncode == 0, describe(result)
    assert migrate.current(empty_db) == HEAD
    assert not (tmp_path / "home").exists(), "alembic started an embedded server"


def test_plain_alembic_prints_its_target_before_it_acts(tmp_path: Path, empty_db: URL) -> None:
    result = alembic(tmp_path, "upgrade", "0001", ini_url=libpq_dsn(empty_db))
    assert result.returncode == 0, describe(result)
    first = result.stderr.splitlines()[0]
    assert f'database "{empty_db.database}"' in first, describe(result)
    assert str(empty_db.query["host"]) in first, describe(result)


def test_alembic_ini_beats_the_environment_variable(tmp_path: Path, empty_db: URL, other_db: URL) -> None:
    result = alembic(tmp_path, "upgrade", "head", ini_url=libpq_dsn(empty_db), env={ENV_URL: libpq_dsn(other_db)})
    assert result.returncode == 0, describe(result)
    assert migrate.current(empty_db) == HEAD
    assert migrate.current(other_db) is None


def test_x_database_url_beats_alembic_ini(tmp_path: Path, empty_db: URL, other_db: URL) -> None:
    result = alembic(
        tmp_path, "-x", f"database_url={libpq_dsn(other_db)}", "upgrade", "0003", ini_url=libpq_dsn(empty_db)
    )
    assert result.returncode == 0, describe(result)
    assert migrate.current(other_db) == "0003"
    assert migrate.current(empty_db) is None


def test_environment_variable_is_used_when_nothing_else_names_a_database(tmp_path: Path, empty_db: URL) -> None:
    result = alembic(tmp_path, "upgrade", "0002", env={ENV_URL: libpq_dsn(empty_db)})
    assert result.returncode == 0, describe(result)
    assert migrate.current(empty_db) == "0002"


@pytest.mark.parametrize("command", [["upgrade", "head"], ["current"], ["downgrade", "base"]])
def test_alembic_without_a_database_fails_and_starts_no_server(tmp_path: Path, command: list[str]) -> None:
    result = alembic(tmp_path, *command)
    assert result.returncode != 0, describe(result)
    assert "no database named" in result.stdout + result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert not (tmp_path / "home").exists(), "alembic started an embedded server"


def test_an_engine_in_the_config_attributes_is_used(empty_db: URL) -> None:
    """pytest-alembic and Alembic's cookbook hand env.py an Engine, not a Connection."""
    from alembic import command

    cfg = migrate.alembic_config()
    eng = create_engine(empty_db, poolclass=pool.NullPool)
    try:
        cfg.attributes["connection"] = eng
        command.upgrade(cfg, "0002")
    finally:
        eng.dispose()
    assert migrate.current(empty_db) == "0002"


def test_a_connection_in_the_config_attributes_is_used(empty_db: URL) -> None:
    from alembic import command

    cfg = migrate.alembic_config()
    eng = create_engine(empty_db, poolclass=pool.NullPool)
    try:
        with eng.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
    finally:
        eng.dispose()
    assert migrate.current(empty_db) == "0002"


@pytest.mark.parametrize("setting", ["lock_timeout=0", "statement_timeout=0", "lock_timeout=1s; DROP SCHEMA x"])
def test_a_timeout_of_zero_or_not_a_duration_is_refused(tmp_path: Path, empty_db: URL, setting: str) -> None:
    result = alembic(tmp_path, "-x", setting, "upgrade", "0001", ini_url=libpq_dsn(empty_db))
    assert result.returncode != 0, describe(result)
    assert "not a duration above zero" in result.stdout + result.stderr, describe(result)
    assert migrate.current(empty_db) is None
