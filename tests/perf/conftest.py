"""One seeded database per server (scale 1), shared by the performance tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from rich.console import Console
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.workbench.seed import SeedReport, seed
from tests.pg import Server

SCALE = 1
SEED = 1


@dataclass(frozen=True)
class Seeded:
    url: URL
    report: SeedReport


@pytest.fixture(scope="session")
def seeded(server: Server, template: str) -> Iterator[Seeded]:
    """A clone of the migrated template loaded by ``platformdb seed --scale 1`` (and so ANALYZEd)."""
    name = server.create_database(template, prefix="seeded")
    url = server.url(name)
    report = seed(url, scale=SCALE, seed=SEED, console=Console(quiet=True))
    yield Seeded(url, report)
    server.drop_database(name)


@pytest.fixture(scope="module")
def seeded_conn(seeded: Seeded) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the seeded database (read-only use)."""
    with psycopg.connect(libpq_dsn(seeded.url), autocommit=True) as conn:
        yield conn
