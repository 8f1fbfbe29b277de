"""``platformdb upgrade | downgrade | current | history | sql``: the packaged Alembic migrations."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from platformdb import migrate
from platformdb.cli.app import cli, console, database_url, where
from platformdb.db import display
from platformdb.errors import NotMigratedError, UserError

_LOCK_TIMEOUT = click.option(
    "--lock-timeout",
    metavar="DURATION",
    help="Give up a revision whose lock waits longer than this (default 10s; e.g. 2s, 500ms); it rolls back.",
)
# "-1" is a revision here, not an option.
_REVISION_ARGS: dict[str, Any] = {"context_settings": {"ignore_unknown_options": True}}


def _migrate(ctx: click.Context, direction: str, revision: str, lock_timeout: str | None) -> None:
    migrate.check_revision(revision)
    url = database_url(ctx)
    before = migrate.current(url)
    console.print(f"{direction}: {where(url)} ({display(url)}), {before or 'base'} -> {revision}")
    step = migrate.upgrade if direction == "upgrade" else migrate.downgrade
    step(url, revision, lock_timeout=lock_timeout)
    console.print(f"{where(url)}: {before or 'base'} -> {migrate.current(url) or 'base'}")


@cli.command(**_REVISION_ARGS)
@click.argument("revision", default="head")
@_LOCK_TIMEOUT
@click.pass_context
def upgrade(ctx: click.Context, revision: str, lock_timeout: str | None) -> None:
    """Migrate the database up to REVISION (default: head; or +N)."""
    _migrate(ctx, "upgrade", revision, lock_timeout)


@cli.command(**_REVISION_ARGS)
@click.argument("revision")
@_LOCK_TIMEOUT
@click.pass_context
def downgrade(ctx: click.Context, revision: str, lock_timeout: str | None) -> None:
    """Migrate the database down to REVISION (a revision id, -1, or base)."""
    _migrate(ctx, "downgrade", revision, lock_timeout)


@cli.command()
@click.option("--check", is_flag=True, help="Exit 1 unless the database is at head (for deploy scripts).")
@click.pass_context
def current(ctx: click.Context, check: bool) -> None:
    """Show the revision the database is at."""
    url = database_url(ctx)
    rev, head = migrate.current(url), migrate.head()
    state = "not migrated" if rev is None else ("head" if rev == head else f"head is {head}")
    others = [h for h in migrate.current_heads(url) if h != rev]  # extensions' revisions
    console.print(f"{rev or 'base'} ({state})" + (f"; extensions at {', '.join(others)}" if others else ""))
    if check:
        try:
            migrate.require_head(url)
        except NotMigratedError:
            sys.exit(1)


@cli.command()
def history() -> None:
    """List the migrations from base to head."""
    table = Table("revision", "revises", "what it does", box=None)
    for rev, down, doc in migrate.history():
        table.add_row(rev, down, doc)
    console.print(table)


@cli.command()
@click.argument("span", metavar="FROM:TO")
def sql(span: str) -> None:
    """Print the SQL that migrates FROM to TO (e.g. base:head, 0003:0005, head:0006) without connecting."""
    if span.count(":") != 1 or not all(span.split(":")):
        raise UserError(f"expected FROM:TO (e.g. base:head), not {span!r}")
    from_rev, to_rev = span.split(":")
    click.echo(migrate.offline_sql(from_rev, to_rev), nl=False)
