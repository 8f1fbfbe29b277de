"""``platformdb upgrade | downgrade | current | history | sql``: the packaged Alembic migrations."""

from __future__ import annotations

from collections.abc import Callable

import click
from rich.table import Table
from sqlalchemy import URL

from platformdb import migrate
from platformdb.cli.app import cli, console, database_url, where
from platformdb.errors import UserError


def _migrate(ctx: click.Context, step: Callable[[URL, str], None], revision: str) -> None:
    url = database_url(ctx)
    before = migrate.current(url)
    step(url, revision)
    console.print(f"{where(url)}: {before or 'base'} -> {migrate.current(url) or 'base'}")


@cli.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    _migrate(ctx, migrate.upgrade, revision)


@cli.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION (a revision id, -1, or base)."""
    _migrate(ctx, migrate.downgrade, revision)


@cli.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Show the revision the database is at."""
    url = database_url(ctx)
    rev = migrate.current(url)
    state = "not migrated" if rev is None else ("head" if rev == migrate.head() else f"head is {migrate.head()}")
    others = [h for h in migrate.current_heads(url) if h != rev]  # extensions' revisions
    console.print(f"{rev or 'base'} ({state})" + (f"; extensions at {', '.join(others)}" if others else ""))


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
