"""The ``platformdb`` command: migrations, demo data and the embedded server.

Every user mistake ends as one plain line on stderr and a non-zero exit; set PLATFORMDB_DEBUG=1 to see the
traceback of an unexpected error instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import URL

from platformdb.db import ENV_URL, check, resolve_url
from platformdb.errors import UserError

# Piped output keeps 120 columns (or $COLUMNS) rather than rich's 80, so tables stay on one line per row.
out = out_console = Console(highlight=False, soft_wrap=True, width=shutil.get_terminal_size((120, 24)).columns)


class _Group(click.Group):
    """Turns every error into one line on stderr, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `platformdb`: help, not an error
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(2)
        except click.Abort:
            _fail("aborted")
        except click.ClickException as exc:
            _fail(exc.format_message(), code=exc.exit_code)
        except UserError as exc:
            _fail(str(exc))
        except Exception as exc:
            if os.environ.get("PLATFORMDB_DEBUG"):
                raise
            _fail(_describe(exc))


def _describe(exc: BaseException) -> str:
    """One line for an unexpected error: the database's own message where there is one."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    text = getattr(diag, "message_primary", None) or str(orig).strip() or type(orig).__name__
    return text.splitlines()[0]


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"platformdb: error: {message}", err=True)
    sys.exit(code)


def _url(ctx: click.Context) -> URL:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "url" not in obj:
        obj["url"] = resolve_url(obj.get("raw_url"))
        check(obj["url"])
    url: URL = obj["url"]
    return url


def _where(url: URL) -> str:
    """``database "x" at host:port`` (or at the socket directory), for progress lines."""
    host = url.host or url.query.get("host") or "localhost"
    return f'database "{url.database}" at {host}' + (f":{url.port}" if url.port and url.host else "")


def _require(conn: Any, url: URL, relation: str, what: str) -> None:
    """One plain line, not a "relation does not exist" error, when the database lacks what a command needs."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    if not row or not row[0]:
        raise UserError(f"{_where(url)} has no {what}: run `platformdb upgrade` first")


@click.group(cls=_Group)
@click.option(
    "--database-url",
    "raw_url",
    envvar=ENV_URL,
    metavar="URL",
    help=f"PostgreSQL >= 15 to use (also ${ENV_URL}); default: the embedded server.",
)
@click.version_option(package_name="platformdb")
@click.pass_context
def main(ctx: click.Context, raw_url: str | None) -> None:
    """platformdb: the control-plane schema of a microservices platform, on PostgreSQL."""
    ctx.ensure_object(dict)["raw_url"] = raw_url


# --- migrations ----------------------------------------------------------------------------------------
@main.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from platformdb import migrate

    url = _url(ctx)
    before = migrate.current(url)
    migrate.upgrade(url, revision)
    out.print(f"{_where(url)}: {before or 'base'} -> {migrate.current(url) or 'base'}")


@main.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION (a revision id, -1, or base)."""
    from platformdb import migrate

    url = _url(ctx)
    before = migrate.current(url)
    migrate.downgrade(url, revision)
    out.print(f"{_where(url)}: {before or 'base'} -> {migrate.current(url) or 'base'}")


@main.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Show the revision the database is at."""
    from platformdb import migrate

    url = _url(ctx)
    rev = migrate.current(url)
    state = "not migrated" if rev is None else ("head" if rev == migrate.head() else f"head is {migrate.head()}")
    out.print(f"{rev or 'base'} ({state})")


@main.command()
def history() -> None:
    """List the migrations from base to head."""
    from platformdb import migrate

    table = Table("revision", "revises", "what it does", box=None)
    for rev, down, doc in migrate.history():
        table.add_row(rev, down, doc)
    out.print(table)


@main.command()
@click.argument("span", metavar="FROM:TO")
def sql(span: str) -> None:
    """Print the SQL that migrates FROM to TO (e.g. base:head, 0003:0005, head:0006) without connecting."""
    from platformdb import migrate

    if span.count(":") != 1 or not all(span.split(":")):
        raise UserError(f"expected FROM:TO (e.g. base:head), not {span!r}")
    from_rev, to_rev = span.split(":")
    click.echo(migrate.offline_sql(from_rev, to_rev), nl=False)


# --- demo ----------------------------------------------------------------------------------------------
@main.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Load the small demo data set (idempotent) and summarize the database."""
    from platformdb import demo as demo_data

    url = _url(ctx)
    loaded = demo_data.load(url)
    out.print(demo_data.summary(url, freshly_loaded=loaded))


@main.command()
@click.option("--scale", type=int, default=1, show_default=True, help="Size: 60 services, 150 users... per unit.")
@click.option("--seed", "seed_value", type=int, default=1, show_default=True, help="Same seed, same data.")
@click.pass_context
def seed(ctx: click.Context, scale: int, seed_value: int) -> None:
    """Load a deterministic, realistic data set into an empty database, through its rules, then ANALYZE."""
    from platformdb import seed as seeding

    seeding.check_scale(scale)
    url = _url(ctx)
    report = seeding.seed(url, scale=scale, seed=seed_value)
    out.print(seeding.summary(report))


@main.command()
@click.option("--scales", default="1,10", show_default=True, help="Comma-separated seed scales, at least two.")
@click.option("--iterations", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Timed runs per query, each with its own drawn parameters.")  # fmt: skip
@click.option("--warmup", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Untimed runs first, cycling through the same parameters (warms the cache they read).")  # fmt: skip
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/results"),
              show_default=True, help="Where the JSON figures go.")  # fmt: skip
@click.option("--docs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("docs"),
              show_default=True, help="Where PERFORMANCE.md and performance-latency.png go.")  # fmt: skip
def bench(scales: str, iterations: int, warmup: int, results_dir: Path, docs_dir: Path) -> None:
    """Measure the catalog queries, ingest and audited writes on a throwaway embedded PostgreSQL 18 cluster."""
    from platformdb import bench as benchmark

    try:
        values = sorted({int(v) for v in scales.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"--scales must be comma-separated integers, not {scales!r}") from None
    if len(values) < 2 or values[0] < 1:
        raise UserError("--scales needs at least two scales of 1 or more, e.g. 1,10")
    results = benchmark.run(values, warmup=warmup, iterations=iterations, results_dir=results_dir, docs_dir=docs_dir)
    for target, met, measured in benchmark.targets(results):
        out.print(f"{'met   ' if met else 'MISSED'}  {target}: {measured}")
    out.print(f"wrote {docs_dir / 'PERFORMANCE.md'}, {docs_dir / 'performance-latency.png'} and {results_dir}/")


# --- docs ----------------------------------------------------------------------------------------------
@main.command()
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
def docs(ctx: click.Context, out: Path, check: bool) -> None:
    """Generate the ERD and data dictionary from the live database's catalogs."""
    from platformdb import docs as schema_docs
    from platformdb.db import connect
    from platformdb.introspect import read_schema

    url = _url(ctx)
    with connect(url) as conn:
        schema = read_schema(conn)
    if schema is None:
        raise UserError(f"{_where(url)} has no platform schema: run `platformdb upgrade` first")
    if check:
        diff = schema_docs.check(schema, out)
        if diff:
            click.echo(diff, nl=False)
            raise UserError(f"{out} is stale: regenerate with `make docs` (or `platformdb docs --out {out}`)")
        out_console.print(f"{out} is up to date")
        return
    written = schema_docs.generate(schema, out)
    out_console.print(f"wrote {len(written)} files to {out}")


@main.command()
@click.option("--schema", default="platform", show_default=True, help="Schema to check.")
@click.pass_context
def lint(ctx: click.Context, schema: str) -> None:
    """Check the live schema against the design rules; exit 1 on any finding not excepted."""
    from platformdb import lint as schema_lint
    from platformdb.db import connect
    from platformdb.introspect import read_schema

    url = _url(ctx)
    with connect(url) as conn:
        found = read_schema(conn, schema)
    if found is None:
        raise UserError(f"{_where(url)} has no schema {schema!r}")
    findings, excepted = schema_lint.lint(found, schema_lint.load_exceptions())
    for finding in findings:
        click.echo(str(finding))
    summary = f"{len(findings)} finding(s), {len(excepted)} allowed by reasoned exceptions, {len(found.tables)} tables"
    click.echo(summary, err=True)
    if findings:
        sys.exit(1)


# --- audit ---------------------------------------------------------------------------------------------
@main.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              help="Start at the first row created at or after this UTC time (default: the oldest row).")  # fmt: skip
@click.pass_context
def audit_verify(ctx: click.Context, since: dt.datetime | None) -> None:
    """Walk the audit hash chain; report the first broken link and exit 1, or the digest of the lane heads."""
    from platformdb.audit import verify
    from platformdb.db import connect

    url = _url(ctx)
    with connect(url) as conn:
        _require(conn, url, "platform.audit_chain", "audit hash chain")
        verdict = verify(conn, since.replace(tzinfo=dt.UTC) if since else None)
    if not verdict.ok:
        raise UserError(str(verdict))
    out_console.print(str(verdict))


# --- partitions ----------------------------------------------------------------------------------------
@main.group()
def partitions() -> None:
    """Partition maintenance for audit_logs (monthly) and metric_samples (daily); safe to run from cron."""


_TABLE_OPTION = click.option("--table", type=click.Choice(["audit_logs", "metric_samples"]), help="Only this table.")


def _partition_report(reports: list[Any], *, action: str) -> None:
    from platformdb.partitions import Report

    now = dt.datetime.now(dt.UTC)
    table = Table("table", action, "partitions", "covered until (UTC)", "days ahead", "rows in DEFAULT", box=None)
    for report in reports:
        assert isinstance(report, Report)
        did = (f"{report.created} created, {report.moved} rows moved" if action == "ensure"
               else (", ".join(report.dropped) or "nothing to drop"))  # fmt: skip
        until = report.covered_until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if report.covered_until else "-"
        table.add_row(report.table, did, str(report.partitions), until, f"{report.days_ahead(now):.1f}",
                      str(report.default_rows))  # fmt: skip
    out_console.print(table)
    for report in reports:
        if report.default_rows:
            click.echo(f"warning: {report.table}: {report.default_rows} rows wait in the DEFAULT partition beyond the "
                       "covered range; run ensure with a larger --ahead", err=True)  # fmt: skip


@partitions.command("ensure")
@click.option("--ahead", "ahead", type=click.IntRange(min=0), default=14, show_default=True,
              help="Cover writes up to this many days from now.")  # fmt: skip
@_TABLE_OPTION
@click.pass_context
def partitions_ensure(ctx: click.Context, ahead: int, table: str | None) -> None:
    """Create the partitions up to --ahead days from now, moving in rows that waited in DEFAULT."""
    from platformdb import partitions as maintenance
    from platformdb.db import connect

    url = _url(ctx)
    with connect(url, autocommit=True) as conn:
        _require(conn, url, "platform.metric_samples", "partitioned tables")
        _partition_report(maintenance.ensure(conn, ahead, table), action="ensure")


@partitions.command("prune")
@click.option("--retain", "retain", type=click.IntRange(min=1), required=True,
              help="Keep this many days; drop whole partitions that end before.")  # fmt: skip
@click.option("--detach", is_flag=True, help="Detach (keep as tables, to archive) instead of dropping.")
@_TABLE_OPTION
@click.pass_context
def partitions_prune(ctx: click.Context, retain: int, detach: bool, table: str | None) -> None:
    """Drop (or detach) whole partitions older than --retain days; never a bulk DELETE."""
    from platformdb import partitions as maintenance
    from platformdb.db import connect

    url = _url(ctx)
    with connect(url, autocommit=True) as conn:
        _require(conn, url, "platform.metric_samples", "partitioned tables")
        _partition_report(maintenance.prune(conn, retain, table, detach=detach), action="prune")


# --- roles ---------------------------------------------------------------------------------------------
@main.group()
def roles() -> None:
    """Logins for microservices (members of the per-service group roles)."""


@roles.command("grant-login")
@click.argument("name")
@click.option("--role", "role", required=True, help="identity, catalog, delivery, configuration, audit-reader, "
              "metrics-writer or readonly.")  # fmt: skip
@click.option("--password-env", metavar="VAR", help="Read the login's password from this environment variable.")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it (for DBAs).")
@click.pass_context
def grant_login(ctx: click.Context, name: str, role: str, password_env: str | None, print_sql: bool) -> None:
    """Create login NAME as a member of a service's group role (or grant the role to an existing one)."""
    from platformdb import roles as service_roles

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise UserError(f"environment variable {password_env} is empty or unset")
    if print_sql:
        statements = service_roles.grant_login_sql(name, role, password=None, exists=False)
        click.echo(statements.as_string(None) + ("\n-- then: ALTER ROLE ... PASSWORD '...';" if password_env else ""))
        return
    out_console.print(service_roles.grant_login(_url(ctx), name, role, password=password))


# --- embedded server -----------------------------------------------------------------------------------
@main.group()
def server() -> None:
    """Manage the embedded PostgreSQL 18 server (data in $PLATFORMDB_HOME/pgdata)."""


def _cluster_command(fn: Callable[..., None]) -> Callable[..., None]:
    return server.command(name=fn.__name__.removeprefix("server_"))(fn)


@_cluster_command
def server_start() -> None:
    """Start the embedded server (initializing it on first use)."""
    from platformdb.db import DEFAULT_DATABASE, ensure_database, parse_url
    from platformdb.server import embedded_cluster

    cluster = embedded_cluster()
    cluster.start()
    ensure_database(parse_url(cluster.url()), DEFAULT_DATABASE)
    out.print(f"running: data in {cluster.data_dir}\nurl: {cluster.url(DEFAULT_DATABASE)}")


@_cluster_command
def server_stop() -> None:
    """Stop the embedded server."""
    from platformdb.server import embedded_cluster

    cluster = embedded_cluster()
    was_running = cluster.is_running()
    cluster.stop()
    out.print("stopped" if was_running else "not running")


@_cluster_command
def server_status() -> None:
    """Say whether the embedded server runs; exit 3 when it does not (like pg_ctl status)."""
    from platformdb.server import embedded_cluster

    cluster = embedded_cluster()
    if cluster.is_running():
        out.print(f"running (PostgreSQL {cluster.version()}, data in {cluster.data_dir})")
    else:
        state = "stopped" if cluster.is_initialized() else "not initialized"
        out.print(f"{state} (data in {cluster.data_dir})")
        sys.exit(3)


@_cluster_command
def server_url() -> None:
    """Print the embedded server's connection URL."""
    from platformdb.db import DEFAULT_DATABASE
    from platformdb.server import embedded_cluster

    click.echo(embedded_cluster().url(DEFAULT_DATABASE))


if __name__ == "__main__":
    main()
