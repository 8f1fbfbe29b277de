"""Shared fixtures: every database test runs once on PostgreSQL 18 (embedded) and once on 15 (system)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from rich.console import Console
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.workbench.seed import SeedReport, seed
from tests.factories import Make
from tests.pg import TEMPLATE, DatabasePool, Server, server_bins
from tests.reliability.plugin import pytest_runtest_makereport, reliability, reliability_summary

__all__ = ["pytest_runtest_makereport", "reliability"]  # a hook and a fixture for every layer's tests

_ran_on: dict[str, str] = {}


def _server_params() -> list[Any]:
    params = []
    for name, bin_dir in server_bins().items():
        marks = []
        if not (bin_dir / "postgres").exists():
            marks.append(pytest.mark.skip(reason=f"{name}: no PostgreSQL binaries at {bin_dir}"))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.fixture(scope="session", params=_server_params())
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server.start(request.param, server_bins()[request.param])
    _ran_on[srv.name] = srv.version
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def template(server: Server) -> str:
    """A database migrated to head, cloned by every test that needs the schema."""
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    migrate.upgrade(server.url(TEMPLATE), "platformdb@head")  # never an extension a test registers
    return TEMPLATE


@pytest.fixture(scope="session")
def databases(server: Server, template: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(server, template)
    yield pool
    pool.close()


SCALE = 1
SEED = 1


@dataclass(frozen=True)
class Seeded:
    url: URL
    report: SeedReport


@pytest.fixture(scope="session")
def seeded(server: Server, template: str) -> Iterator[Seeded]:
    """A clone of the migrated template loaded by ``platformdb seed --scale 1`` (and so ANALYZEd), shared by the
    tests that run catalog queries on realistic data (perf, query grants, export); read-only use."""
    name = server.create_database(template, prefix="seeded")
    url = server.url(name)
    report = seed(url, scale=SCALE, seed=SEED, console=Console(quiet=True))
    yield Seeded(url, report)
    server.drop_database(name)


@pytest.fixture
def db(server: Server, databases: DatabasePool) -> Iterator[URL]:
    """A fresh database at head, just for this test."""
    name = databases.take()
    yield server.url(name)
    databases.give_back(name)


@pytest.fixture
def empty_db(server: Server) -> Iterator[URL]:
    """A fresh database with no schema at all (for migration tests)."""
    name = server.create_database(prefix="empty")
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def conn(db: URL) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to ``db``: each statement commits or fails on its own."""
    from platformdb.db import libpq_dsn

    with psycopg.connect(libpq_dsn(db), autocommit=True) as c:
        yield c


@pytest.fixture
def make(conn: psycopg.Connection[Any]) -> Make:
    return Make(conn)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reliability_summary(terminalreporter)
    missing = sorted(name for name, bin_dir in server_bins().items() if not (bin_dir / "postgres").exists())
    ran = ", ".join(f"{name} ({version})" for name, version in sorted(_ran_on.items())) or "none"
    if _ran_on:
        terminalreporter.write_line(f"platformdb: database tests ran on: {ran}")
    if missing:
        terminalreporter.write_line(
            f"platformdb: WARNING: not run on {', '.join(missing)} (binaries missing)", yellow=True, bold=True
        )
