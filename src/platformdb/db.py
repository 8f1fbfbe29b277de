"""Which database: URL parsing, the embedded default, and engines.

A URL comes from ``--database-url`` or ``PLATFORMDB_DATABASE_URL`` in any form users paste
(``postgresql://user:pw@host:5432/db``, ``postgresql://user@/db?host=/socket/dir``,
``postgres://...``, ``postgresql+psycopg://...``); without one, the embedded server is started on demand
and the database ``platformdb`` is created on it.
"""

from __future__ import annotations

import os

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from platformdb.errors import UserError

ENV_URL = "PLATFORMDB_DATABASE_URL"
DEFAULT_DATABASE = "platformdb"
MIN_SERVER_VERSION = 150000
_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "postgres+psycopg"}


def parse_url(raw: str) -> URL:
    """Normalize a pasted URL to SQLAlchemy's psycopg 3 form, or raise UserError saying what is wrong."""
    raw = raw.strip()
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in _SCHEMES:
        raise UserError(
            f"not a PostgreSQL URL: {redact(raw)!r} (expected postgresql://user:password@host:port/database)"
        )
    try:
        url = make_url(raw.replace(f"{scheme}://", "postgresql+psycopg://", 1))
    except (ArgumentError, ValueError) as exc:
        raise UserError(f"malformed database URL {redact(raw)!r}: {exc}") from exc
    if not url.database:
        raise UserError(f"the database URL {redact(raw)!r} names no database (…/DATABASE at its end)")
    try:
        port = url.port
    except ValueError as exc:
        raise UserError(f"malformed port in database URL {redact(raw)!r}") from exc
    if port is not None and not 0 < port < 65536:
        raise UserError(f"port {port} out of range in database URL {redact(raw)!r}")
    return url


def check(url: URL) -> None:
    """Connect once, so an unreachable or too old server is reported as one clear line up front."""
    connect(url).close()


def redact(raw: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL has no password we could find either
        return raw


def libpq_dsn(url: URL) -> str:
    """The URL as libpq understands it (for psycopg.connect and the PostgreSQL client tools)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def resolve_url(explicit: str | None = None, *, start_embedded: bool = True) -> URL:
    """The URL to use: explicit, else the environment, else the embedded server (started if needed)."""
    raw = explicit or os.environ.get(ENV_URL)
    if raw:
        return parse_url(raw)
    if not start_embedded:
        raise UserError(f"no database given: pass --database-url or set {ENV_URL}")
    from platformdb.server import embedded_cluster

    cluster = embedded_cluster()
    cluster.start()
    ensure_database(parse_url(cluster.url("postgres")), DEFAULT_DATABASE)
    return parse_url(cluster.url(DEFAULT_DATABASE))


def ensure_database(admin_url: URL, name: str) -> None:
    """CREATE DATABASE ``name`` through ``admin_url`` unless it exists."""
    with connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def connect(url: URL, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection, with connection failures turned into one-line UserErrors."""
    try:
        conn = psycopg.connect(libpq_dsn(url), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise UserError(f"cannot connect to {url.render_as_string(hide_password=True)}: {_first_line(exc)}") from exc
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        conn.close()
        raise UserError(f"PostgreSQL {version // 10000} is not supported: platformdb needs 15 or later")
    return conn


def engine(url: URL, **kwargs: object) -> Engine:
    """A SQLAlchemy engine (psycopg 3) for ``url``."""
    return create_engine(url, **kwargs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
