"""Test servers: the embedded PostgreSQL 18 and the machine's PostgreSQL 15, each a throwaway cluster.

Every test database is cloned from one migrated template per server, which is much faster than migrating
per test and still gives each test a database of its own.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from platformdb.db import parse_url
from platformdb.server import Cluster, embedded_bin_dir

SYSTEM_PG15_BIN = Path(os.environ.get("PLATFORMDB_TEST_PG15_BIN", "/usr/lib/postgresql/15/bin"))
TEMPLATE = "platformdb_template"
# Durability off: these clusters are thrown away; crash tests start clusters of their own with it on.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def server_bins() -> dict[str, Path]:
    return {"pg18": embedded_bin_dir(), "pg15": SYSTEM_PG15_BIN}


@dataclass
class Server:
    """A running test cluster and the databases made on it."""

    name: str
    cluster: Cluster
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, name: str, bin_dir: Path, settings: dict[str, str] | None = None) -> Server:
        root = Path(tempfile.mkdtemp(prefix=f"platformdb-{name}-"))
        cluster = Cluster(data_dir=root / "pgdata", bin_dir=bin_dir, settings=settings or dict(FAST_SETTINGS))
        cluster.start()
        return cls(name, cluster)

    def stop(self) -> None:
        self.cluster.destroy()
        shutil.rmtree(self.cluster.data_dir.parent, ignore_errors=True)

    def url(self, database: str = "postgres") -> URL:
        return parse_url(self.cluster.url(database))

    def dsn(self, database: str = "postgres") -> str:
        return self.cluster.url(database)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(), autocommit=True)

    @property
    def version(self) -> str:
        with self.admin() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def create_database(self, template: str = "template0", prefix: str = "t") -> str:
        name = f"{prefix}_{next(self._ids)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
