"""``platformdb audit | freezes | indexes | partitions | roles``: operations a DBA or cron runs against production."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click
from rich.table import Table

from platformdb.cli.app import cli, console, database_url
from platformdb.db import connect
from platformdb.errors import UserError
from platformdb.ops import audit_chain, freezes, indexes, partitions, roles, sessions
from platformdb.ops import checkpoints as checkpoints_ops


# --- audit ---------------------------------------------------------------------------------------------
@cli.group()
def audit() -> None:
    """The tamper-evident audit log."""


_FILE = click.Path(dir_okay=False, path_type=Path)


@audit.command("verify")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              help="Start at the first row created at or after this UTC time (default: the oldest row).")  # fmt: skip
@click.option("--checkpoints", type=_FILE, help="Also prove every signed checkpoint in this file still holds.")
@click.option("--public-key", type=_FILE, help="The Ed25519 public key the checkpoints are signed with.")
@click.pass_context
def audit_verify(
    ctx: click.Context, since: dt.datetime | None, checkpoints: Path | None, public_key: Path | None
) -> None:
    """Walk the audit hash chain; report the first broken link and exit 1, or the digest of the lane heads."""
    if (checkpoints is None) != (public_key is None):
        raise UserError("--checkpoints and --public-key go together")
    url = database_url(ctx, at_head=True)
    with connect(url) as conn:
        verdict = audit_chain.verify(conn, since.replace(tzinfo=dt.UTC) if since else None)
        checked = checkpoints_ops.check(conn, checkpoints, public_key) if checkpoints and public_key else None
    if not verdict.ok:
        raise UserError(str(verdict))
    if checked is not None and not checked.ok:
        raise UserError(str(checked))
    console.print(str(verdict))
    if checked is not None:
        console.print(str(checked))
    for note in verdict.notes if checked is None else verdict.notes[1:]:
        click.echo(f"note: {note}", err=True)


@audit.command("checkpoint")
@click.option("--key", "key", type=_FILE, required=True, help="The Ed25519 private key to sign with (PEM).")
@click.option("--out", "out", type=_FILE, help="Append the checkpoint to this file (default: print it).")
@click.pass_context
def audit_checkpoint(ctx: click.Context, key: Path, out: Path | None) -> None:
    """Sign each lane's newest row with a key held outside the database (cron; keep the file elsewhere too)."""
    url = database_url(ctx, at_head=True)
    with connect(url) as conn:
        line = checkpoints_ops.take(conn, key)
    if out is None:
        click.echo(line)
        return
    with out.open("a") as f:
        f.write(line + "\n")
    console.print(f"appended a signed checkpoint to {out}")


@audit.command("keygen")
@click.option("--out", "out", type=_FILE, required=True, help="Where to write the private key (PEM, mode 0600).")
def audit_keygen(out: Path) -> None:
    """Make an Ed25519 key pair for signed checkpoints: the private key at --out, the public key at --out.pub."""
    public = checkpoints_ops.keygen(out)
    console.print(f"wrote {out} (keep it outside the database's reach) and {public}")


# --- partitions ----------------------------------------------------------------------------------------
_MANAGED = ", ".join(f"{name} (one partition a {p.granularity})" for name, p in partitions.MANAGED.items())


@cli.group("partitions", help=f"Partition maintenance for {_MANAGED}; safe to run from cron.")
def partitions_group() -> None:
    pass


_TABLE_OPTION = click.option("--table", type=click.Choice(list(partitions.MANAGED)), help="Only this table.")


def _partition_report(reports: list[partitions.Report], *, action: str) -> None:
    now = dt.datetime.now(dt.UTC)
    table = Table("table", action, "partitions", "covered until (UTC)", "days ahead", "rows in DEFAULT", box=None)
    for report in reports:
        if action == "ensure":
            did = f"{report.created} created, {report.moved} rows moved, {report.quarantined} quarantined"
        else:
            did = ", ".join(report.dropped) or "nothing to drop"
        until = report.covered_until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if report.covered_until else "-"
        table.add_row(report.table, did, str(report.partitions), until, f"{report.days_ahead(now):.1f}",
                      str(report.default_rows))  # fmt: skip
    console.print(table)
    for report in reports:
        if report.quarantined:
            click.echo(f"warning: {report.table}: {report.quarantined} rows outside the kept window moved to "
                       f"platform.{report.table}_quarantine", err=True)  # fmt: skip
        if report.outside_window:
            click.echo(f"warning: {report.table}: {report.outside_window} rows in the DEFAULT partition lie outside "
                       "the kept window and get no partition", err=True)  # fmt: skip
        if report.pending:
            click.echo(f"note: {report.table}: {report.pending} partitions still to make; run ensure again", err=True)
        if report.recreated:
            again = ", ".join(report.recreated)
            click.echo(f"note: {report.table}: made again partitions that had been detached: {again} (the detached "
                       f"tables are in {partitions.ARCHIVE})", err=True)  # fmt: skip
    blocked = [r for r in reports if r.blocked]
    if blocked:
        raise UserError("; ".join(f"{r.table}: {r.blocked}" for r in blocked))


@partitions_group.command("ensure")
@click.option("--ahead", "ahead", type=click.IntRange(min=0), default=14, show_default=True,
              help="Cover writes up to this many days from now.")  # fmt: skip
@_TABLE_OPTION
@click.pass_context
def partitions_ensure(ctx: click.Context, ahead: int, table: str | None) -> None:
    """Create the partitions up to --ahead days from now, moving in rows that waited in DEFAULT."""
    url = database_url(ctx, at_head=True)
    with connect(url, autocommit=True) as conn:
        _partition_report(partitions.ensure(conn, ahead, table), action="ensure")


@partitions_group.command("prune")
@click.option("--retain", "retain", type=click.IntRange(min=1),
              help="With --table: keep this many days this run, instead of the table's stored retention.")  # fmt: skip
@click.option("--detach", is_flag=True,
              help=f"Detach into schema {partitions.ARCHIVE} (kept as tables) instead of dropping.")  # fmt: skip
@_TABLE_OPTION
@click.pass_context
def partitions_prune(ctx: click.Context, retain: int | None, detach: bool, table: str | None) -> None:
    """Drop (or detach) whole partitions older than each table's retention (see `partitions retention`); never a
    bulk DELETE. The audit log is pruned only when named: --table audit_logs."""
    url = database_url(ctx, at_head=True)
    with connect(url, autocommit=True) as conn:
        _partition_report(partitions.prune(conn, retain, table, detach=detach), action="prune")


@partitions_group.command("retention")
@click.argument("table", required=False, type=click.Choice(list(partitions.MANAGED)))
@click.argument("days", required=False, type=click.IntRange(min=1, max=36500))
@click.pass_context
def partitions_retention(ctx: click.Context, table: str | None, days: int | None) -> None:
    """Show each table's retention (days kept), or set TABLE's to DAYS (as the schema owner)."""
    if table is not None and days is None:
        raise UserError(f"give the days to keep of {table}: platformdb partitions retention {table} DAYS")
    url = database_url(ctx, at_head=True)
    with connect(url, autocommit=True) as conn:
        if table is not None and days is not None:
            partitions.set_retention(conn, table, days)
        kept = partitions.retention(conn)
    shown = Table("table", "days kept", "pruned", box=None)
    for name, keep in kept.items():
        shown.add_row(name, str(keep), "only with --table" if name in partitions.EXPLICIT else "by prune")
    console.print(shown)


# --- roles ---------------------------------------------------------------------------------------------
@cli.group("roles")
def roles_group() -> None:
    """Logins for microservices (members of the per-service group roles)."""


@roles_group.command("grant-login")
@click.argument("name")
@click.option("--role", "role", required=True, type=click.Choice(list(roles.GROUP_ROLES)),
              help="The service's group role.")  # fmt: skip
@click.option("--password-env", metavar="VAR", help="Read the login's password from this environment variable.")
@click.option("--print-sql", is_flag=True, help="Print the SQL instead of running it (for DBAs).")
@click.pass_context
def grant_login(ctx: click.Context, name: str, role: str, password_env: str | None, print_sql: bool) -> None:
    """Create login NAME as a member of a service's group role (or grant the role to an existing one)."""
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise UserError(f"environment variable {password_env} is empty or unset")
    if print_sql:  # the password, if any, only as its SCRAM verifier
        click.echo(roles.grant_login_sql(name, role, password=password, exists=False).as_string(None))
        return
    console.print(roles.grant_login(database_url(ctx, at_head=True), name, role, password=password))


@roles_group.command("list")
@click.pass_context
def roles_list(ctx: click.Context) -> None:
    """The service logins of this database: group, connection limit and timeouts."""
    logins = roles.list_logins(database_url(ctx, at_head=True))
    shown = Table("login", "group", "connection limit", *roles.LoginLimits().settings(170000), box=None)
    for login in logins:
        limit = "none" if login.connection_limit < 0 else str(login.connection_limit)
        timeouts = [login.settings.get(name, "-") for name in roles.LoginLimits().settings(170000)]
        shown.add_row(login.name, ", ".join(login.groups), limit, *timeouts)
    console.print(shown)
    console.print(f"{len(logins)} login(s)")


@roles_group.command("revoke")
@click.argument("name")
@click.pass_context
def roles_revoke(ctx: click.Context, name: str) -> None:
    """Revoke login NAME from this database: its CONNECT here, and its group when no other database has it."""
    console.print(roles.revoke_login(database_url(ctx, at_head=True), name))


# --- indexes -------------------------------------------------------------------------------------------
@cli.group("indexes")
def indexes_group() -> None:
    """Index maintenance: rebuild the indexes whose rows come and go; safe to run from cron."""


@indexes_group.command("rebuild")
@click.option("--lock-timeout", "lock_timeout", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True,
              help="Seconds to wait for a table's lock before leaving its index to the next run.")  # fmt: skip
@click.option("--force", is_flag=True, help="Rebuild every churned index, bloated or not.")
@click.pass_context
def indexes_rebuild(ctx: click.Context, lock_timeout: float, force: bool) -> None:
    """REINDEX CONCURRENTLY the churned indexes that have bloated (cron, daily, as the schema owner)."""
    url = database_url(ctx, at_head=True)
    with connect(url, autocommit=True) as conn:
        done = indexes.rebuild(conn, lock_timeout=dt.timedelta(seconds=lock_timeout), force=force)
    for item in done:
        console.print(str(item))
    blocked = [item for item in done if item.blocked]
    if blocked:
        raise UserError("; ".join(str(item) for item in blocked))


# --- watchdog ------------------------------------------------------------------------------------------
@cli.command("watchdog")
@click.option("--idle", "idle", type=click.IntRange(min=1), default=30, show_default=True,
              help="End a session idle in transaction this many seconds while it holds a lane or a lock.")  # fmt: skip
@click.option("--transaction", "transaction", type=click.IntRange(min=1), default=300, show_default=True,
              help="End a session in one transaction this many seconds while it holds a lane or a lock.")  # fmt: skip
@click.pass_context
def watchdog(ctx: click.Context, idle: int, transaction: int) -> None:
    """End the sessions that stall others (run from cron every minute, as the schema owner)."""
    url = database_url(ctx, at_head=True)
    with connect(url, autocommit=True) as conn:
        ended = sessions.end_stalled(conn, dt.timedelta(seconds=idle), dt.timedelta(seconds=transaction))
    for session in ended:
        console.print(str(session))
    console.print(f"{len(ended)} stalled session(s) ended")


# --- freezes --------------------------------------------------------------------------------------------
@cli.group("freezes")
def freezes_group() -> None:
    """Deploy freezes: expand freeze schedules into concrete periods; safe to run from cron."""


@freezes_group.command("ensure")
@click.option("--ahead", "ahead", type=click.IntRange(min=0, max=freezes.MAX_AHEAD_DAYS), default=30,
              show_default=True, help="Make the periods that start up to this many days from now.")  # fmt: skip
@click.pass_context
def freezes_ensure(ctx: click.Context, ahead: int) -> None:
    """Expand every freeze schedule (cron in its time zone) into the freeze periods of the next --ahead days."""
    url = database_url(ctx, at_head=True)
    with connect(url, autocommit=True) as conn:
        reports = freezes.ensure(conn, ahead)
    table = Table("schedule", "created", "already there", "last start (UTC)", box=None)
    for report in reports:
        until = report.covered_until.strftime("%Y-%m-%d %H:%M") if report.covered_until else "-"
        table.add_row(str(report.schedule_id), str(report.created), str(report.existing), until)
    console.print(table if reports else "no freeze schedules")
    for report in reports:
        if report.pending:
            click.echo(f"note: schedule {report.schedule_id}: more periods in the window; run ensure again", err=True)
    failed = [r for r in reports if r.error]
    if failed:
        raise UserError("; ".join(f"schedule {r.schedule_id}: {r.error}" for r in failed))
