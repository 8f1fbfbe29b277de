"""Which database: URL parsing, the embedded default, and engines.

A URL comes from ``--database-url`` or ``PLATFORMDB_DATABASE_URL`` in any form users paste
(``postgresql://user:pw@host:5432/db``, ``postgresql://user@/db?host=/socket/dir``,
``postgres://...``, ``postgresql+psycopg://...``). Nothing here starts a server.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote, unquote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
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
        port = url.port
    except (ArgumentError, ValueError) as exc:
        what = "port" if "int()" in str(exc) else "syntax"
        raise UserError(f"malformed database URL {redact(raw)!r}: bad {what}") from None
    if not url.database:
        raise UserError(f"the database URL {redact(raw)!r} names no database (…/DATABASE at its end)")
    if port is not None and not 0 < port < 65536:
        raise UserError(f"port {port} out of range in database URL {redact(raw)!r}")
    return url


def check(url: URL) -> None:
    """Connect once, so an unreachable or too old server is reported as one clear line up front."""
    connect(url).close()


_PASSWORD = re.compile(r"(://[^:/@?#]*:)([^@]*)(@)")
# libpq also takes a password as a parameter (?password=, ?sslpassword=).
_SECRET_PARAMS = ("password", "sslpassword")
_PASSWORD_PARAM = re.compile(r"([?&](?:ssl)?password=)([^&#]*)", re.IGNORECASE)


def redact(raw: str) -> str:
    """The URL with its passwords hidden, for messages; works on URLs too broken to parse."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD.sub(r"\1***\3", raw))


def display(url: URL) -> str:
    """The URL for people: postgresql:// scheme, passwords hidden, the socket directory unescaped."""
    hidden = {k: "***" for k in url.query if k.lower() in _SECRET_PARAMS}
    shown = url.set(drivername="postgresql").update_query_dict(hidden) if hidden else url.set(drivername="postgresql")
    return unquote(shown.render_as_string(hide_password=True))


def libpq_dsn(url: URL) -> str:
    """The URL as libpq parses it: every part percent-encoded (a space as %20, which libpq decodes; SQLAlchemy
    writes '+', which libpq keeps as a plus)."""
    auth = ""
    if url.username:
        auth = quote(url.username, safe="")
        if url.password is not None:
            auth += ":" + quote(str(url.password), safe="")
        auth += "@"
    host = url.host or ""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    hostport = host + (f":{url.port}" if url.port else "")
    query = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='/')}"
        for k, values in sorted(url.query.items())
        for v in ((values,) if isinstance(values, str) else values)
    )
    return f"postgresql://{auth}{hostport}/{quote(url.database or '', safe='')}" + (f"?{query}" if query else "")


def conninfo(url: URL) -> str:
    """The URL as a libpq key=value string (quoting done by psycopg), for psycopg.connect."""
    params: dict[str, Any] = {"dbname": url.database, "user": url.username, "password": url.password,
                                 "host": url.host, "port": url.port}  # fmt: skip
    for key, values in url.query.items():
        params[key] = values if isinstance(values, str) else values[-1]
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def given_url(explicit: str | None = None) -> URL | None:
    """The URL named by ``explicit``, else by ``$PLATFORMDB_DATABASE_URL``, parsed; None when neither names one.

    The library never starts a server: falling back to the embedded one is the CLI's choice
    (:func:`platformdb.workbench.server.embedded_url`).
    """
    if explicit is not None:
        if not explicit.strip():
            raise UserError("the database URL given is empty")
        return parse_url(explicit)
    raw = os.environ.get(ENV_URL)
    if raw is not None and not raw.strip():  # a deploy script's variable that expanded to nothing
        raise UserError(f"${ENV_URL} is set but empty: give the database's URL, or unset it")
    return parse_url(raw) if raw else None


def ensure_database(admin_url: URL, name: str) -> None:
    """CREATE DATABASE ``name`` through ``admin_url`` unless it exists."""
    with connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def connect(url: URL, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection, with connection failures turned into one-line UserErrors."""
    try:
        conn = psycopg.connect(conninfo(url), autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        message = _first_line(exc)
        if url.password:
            message = message.replace(str(url.password), "***")
        raise UserError(f"cannot connect to {display(url)}: {message}") from None
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
