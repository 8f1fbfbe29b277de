"""``platformdb docs | lint | queries export``: schema review tools that read the live catalogs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from platformdb.cli.app import cli, console, database_url, where
from platformdb.db import connect
from platformdb.errors import NotMigratedError, UserError
from platformdb.migrate import require_head
from platformdb.models import SCHEMA
from platformdb.review import docs, export, lint
from platformdb.review.introspect import read_schema


@cli.command("docs")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/schema"),
    show_default=True,
    help="Directory to write (or, with --check, to compare against).",
)
@click.option(
    "--check", is_flag=True, help="Regenerate into a temporary directory and fail with a diff if OUT differs."
)
@click.pass_context
def docs_command(ctx: click.Context, out: Path, check: bool) -> None:
    """Generate the ERD and data dictionary from the live database's catalogs."""
    url = database_url(ctx)
    with connect(url) as conn:
        schema = read_schema(conn)
    if schema is None:
        raise NotMigratedError(where(url), lacks=f"{SCHEMA} schema")
    if check:
        diff = docs.check(schema, out)
        if diff:
            click.echo(diff, nl=False)
            raise UserError(f"{out} is stale: regenerate with `make docs` (or `platformdb docs --out {out}`)")
        console.print(f"{out} is up to date")
        return
    written = docs.generate(schema, out)
    console.print(f"wrote {len(written)} files to {out}")


@cli.command("lint")
@click.option(
    "--schema", default=SCHEMA, show_default=True, help="Schema to check (an extension's, e.g. acme, on request)."
)
@click.pass_context
def lint_command(ctx: click.Context, schema: str) -> None:
    """Check the live schema against the design rules; exit 1 on any finding not excepted."""
    url = database_url(ctx)
    with connect(url) as conn:
        found = read_schema(conn, schema)
    if found is None:
        raise UserError(f"{where(url)} has no schema {schema!r}")
    # The reasoned exceptions are platformdb's, about its own tables: an extension's schema gets none.
    findings, excepted = lint.lint(found, lint.load_exceptions() if schema == SCHEMA else [])
    for name in lint.not_platformdbs(found):
        click.echo(f"{name}: not platformdb's (no platformdb model); move it to the extension's own schema")
    for finding in findings:
        click.echo(str(finding))
    summary = f"{len(findings)} finding(s), {len(excepted)} allowed by reasoned exceptions, {len(found.tables)} tables"
    click.echo(summary, err=True)
    if findings:
        sys.exit(1)


@cli.group("queries")
def queries_group() -> None:
    """The query catalog, for services in other languages."""


@queries_group.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(export.FORMATS),
    default="sql",
    show_default=True,
    help="sql: one <context>/<name>.sql per query (sqlc header, $1 parameters) and manifest.json; "
    "json: manifest.json alone, the SQL inside.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory to write.")
@click.pass_context
def queries_export_command(ctx: click.Context, fmt: export.Format, out: Path) -> None:
    """Write the query catalog with parameter and column types, as a database at head describes them."""
    url = database_url(ctx)
    require_head(url)
    with connect(url, autocommit=True) as conn:
        written = export.write(export.catalog(conn), out, fmt)
    console.print(f"wrote {len(written)} files to {out}")
