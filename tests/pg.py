"""Test servers: the embedded PostgreSQL 18 and the machine's PostgreSQL 15, each a throwaway cluster.

Every test database is cloned from one migrated template per server, which is much faster than migrating
per test and still gives each test a database of its own.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from platformdb.db import parse_url
from platformdb.workbench.server import Cluster, embedded_bin_dir

SYSTEM_PG15_BIN = Path(os.environ.get("PLATFORMDB_TEST_PG15_BIN", "/usr/lib/postgresql/15/bin"))
TEMPLATE = "platformdb_template"
# Durability off: these clusters are thrown away; crash tests start clusters of their own with it on.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def copy_database_privileges(conn: psycopg.Connection[Any], source: str, target: str) -> None:
    """Give database ``target`` the database-level privileges of ``source``. CREATE DATABASE ... TEMPLATE copies
    the template's catalogs (function ACLs included) but not its own ACL, which starts at the default (PUBLIC
    may CONNECT and create TEMPORARY tables): without this, a clone would not have what the migrations revoked
    on the template (revision 0020: TEMPORARY)."""
    if conn.execute("SELECT datacl IS NULL FROM pg_database WHERE datname = %s", (source,)).fetchone() != (False,):
        return  # the default ACL: nothing was revoked or granted
    rows = conn.execute(
        """SELECT a.grantee, a.privilege_type, a.is_grantable FROM pg_database d, aclexplode(d.datacl) a
            WHERE d.datname = %s AND a.grantee <> d.datdba""",
        (source,),
    ).fetchall()
    db = sql.Identifier(target)
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
    for grantee, privilege, grantable in rows:
        conn.execute(
            sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege),
                db,
                sql.SQL("PUBLIC") if grantee == 0 else sql.Identifier(str(grantee_name(conn, grantee))),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
        )


def grantee_name(conn: psycopg.Connection[Any], oid: int) -> str:
    row = conn.execute("SELECT rolname FROM pg_roles WHERE oid = %s", (oid,)).fetchone()
    assert row is not None
    return str(row[0])


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
            if template not in ("template0", "template1"):  # their own ACL (PUBLIC: CONNECT only) is theirs
                copy_database_privileges(conn, template, name)
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class DatabasePool:
    """Clones of a template made ahead of need by a background thread, and dropped after use the same way,
    so a test does not wait for CREATE DATABASE (about 0.1 s) or DROP DATABASE."""

    def __init__(self, server: Server, template: str, ahead: int = 2) -> None:
        self.server = server
        self.template = template
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._make, daemon=True, name=f"{server.name}-make-db"),
            threading.Thread(target=self._drop, daemon=True, name=f"{server.name}-drop-db"),
        ]
        for thread in self._threads:
            thread.start()

    def _make(self) -> None:
        while not self._stop.is_set():
            try:
                name: str | BaseException = self.server.create_database(self.template)
            except BaseException as exc:
                name = exc
            while not self._stop.is_set():
                try:
                    self._ready.put(name, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _drop(self) -> None:
        while (name := self._used.get()) is not None:
            self.server.drop_database(name)

    def take(self) -> str:
        item = self._ready.get(timeout=60)
        if isinstance(item, BaseException):
            raise item
        return item

    def give_back(self, name: str) -> None:
        self._used.put(name)

    def close(self) -> None:
        self._stop.set()
        self._used.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
