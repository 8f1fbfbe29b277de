"""Alembic environment for platformdb (used by both `platformdb` and the plain `alembic` command).

Which database, first match wins (docs/DESIGN.md, "Which database"):

1. ``config.attributes["connection"]``: a SQLAlchemy Connection or Engine (pytest-alembic and Alembic's
   cookbook pass either), or ``config.attributes["url"]`` (what :mod:`platformdb.migrate` passes);
2. ``-x database_url=URL`` on the command line;
3. ``sqlalchemy.url`` in the Alembic configuration (alembic.ini), as Alembic documents;
4. ``$PLATFORMDB_DATABASE_URL``.

With none of them, the command fails: Alembic never starts a server (only the ``platformdb`` CLI falls back to
the embedded one). The plain ``alembic`` command prints the target before it acts.

Each revision runs in its own transaction, so an interrupted upgrade leaves the database at the last
whole revision and PostgreSQL's transactional DDL rolls the rest back. Every migration session sets
lock_timeout and statement_timeout, so a migration waiting on a busy table fails fast instead of
queueing every query behind its lock.
"""

from __future__ import annotations

import sys
from typing import Any

from alembic import context
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, pool

from platformdb.db import ENV_URL, display, given_url, parse_url
from platformdb.db import engine as make_engine
from platformdb.errors import UserError
from platformdb.migrate import TIMEOUT, include_name
from platformdb.models import metadata

config = context.config
x_args = context.get_x_argument(as_dictionary=True)


def _timeout(name: str, default: str) -> str:
    value = str(config.attributes.get(name) or x_args.get(name, default)).strip()
    if not TIMEOUT.fullmatch(value):
        raise CommandError(f"-x {name}={value!r} is not a duration above zero (e.g. 2s, 500ms, 30min)")
    return value


LOCK_TIMEOUT = _timeout("lock_timeout", "10s")
STATEMENT_TIMEOUT = _timeout("statement_timeout", "30min")


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
        process_revision_directives=config.attributes.get("process_revision_directives"),
        **kwargs,
    )


def target_url() -> URL:
    """The database named by rules 1-4 above (an explicit ``url`` attribute first), parsed; CommandError if
    nothing names one."""
    try:
        explicit = config.attributes.get("url")
        if explicit is not None:
            return explicit if isinstance(explicit, URL) else parse_url(str(explicit))
        raw = x_args.get("database_url") or config.get_main_option("sqlalchemy.url")
        url = given_url(raw)
    except UserError as exc:
        raise CommandError(str(exc)) from None
    if url is None:
        raise CommandError(
            "no database named: set sqlalchemy.url in alembic.ini, pass -x database_url=URL or set "
            f"${ENV_URL} (Alembic never starts a server; `platformdb upgrade` can use the embedded one)"
        )
    return url


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or x_args.get("database_url") or "postgresql+psycopg://"
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        context.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Engine):
        with given.connect() as conn:
            _run_online(conn)
        return
    if given is not None:
        _run_online(given)
        return
    url = target_url()
    if config.cmd_opts is not None:  # the `alembic` command line (the CLI and library say where themselves)
        print(f'alembic: database "{url.database}" at {display(url)}', file=sys.stderr)
    connectable = make_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as conn:
        _run_online(conn)


def _run_online(connection: Connection) -> None:
    connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    connection.exec_driver_sql(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    connection.commit()
    _configure(connection=connection)
    context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
