"""Alembic environment for platformdb (used by both `platformdb` and the plain `alembic` command).

Each revision runs in its own transaction, so an interrupted upgrade leaves the database at the last
whole revision and PostgreSQL's transactional DDL rolls the rest back. Every migration session sets
lock_timeout and statement_timeout, so a migration waiting on a busy table fails fast instead of
queueing every query behind its lock.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import pool

from platformdb.db import engine as make_engine
from platformdb.db import given_url
from platformdb.migrate import include_name
from platformdb.models import metadata

config = context.config
x_args = context.get_x_argument(as_dictionary=True)
LOCK_TIMEOUT = x_args.get("lock_timeout", "10s")
STATEMENT_TIMEOUT = x_args.get("statement_timeout", "30min")


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or x_args.get("database_url") or "postgresql+psycopg://"
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        context.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_online(connection)
        return
    url = config.attributes.get("url") or given_url(x_args.get("database_url"))
    if url is None:  # the plain `alembic` command without a URL: the embedded server, as before
        from platformdb.workbench.server import embedded_url

        url = embedded_url()
    connectable = make_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as conn:
        _run_online(conn)


def _run_online(connection: Any) -> None:
    connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    connection.exec_driver_sql(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    connection.commit()
    _configure(connection=connection)
    context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
