"""``platformdb server | demo | seed``: the local workbench (embedded PostgreSQL 18 and its data sets)."""

from __future__ import annotations

import sys

import click
from psycopg import sql

from platformdb import migrate
from platformdb.cli.app import cli, console, database_url
from platformdb.db import DEFAULT_DATABASE, connect, given_url, parse_url
from platformdb.errors import UserError
from platformdb.workbench import demo, seed
from platformdb.workbench.server import PORT, configure_listen, embedded_cluster, embedded_url, tcp_password


@cli.command("demo")
@click.option("--reset", is_flag=True, help="Drop the embedded server's database first and load afresh (at head). "
              "Only the embedded server's: a database given by URL is never dropped.")  # fmt: skip
@click.pass_context
def demo_command(ctx: click.Context, reset: bool) -> None:
    """Load the small demo data set (idempotent) and summarize the database."""
    if reset:
        if given_url(ctx.ensure_object(dict).get("raw_url")) is not None:
            raise UserError("--reset drops the embedded server's database only; drop a database you named yourself")
        cluster = embedded_cluster()
        cluster.start()
        with connect(parse_url(cluster.url("postgres")), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DEFAULT_DATABASE)))
        url = database_url(ctx)
        migrate.upgrade(url)
    url = database_url(ctx)
    loaded = demo.load(url)
    console.print(demo.summary(url, freshly_loaded=loaded), soft_wrap=False)  # wrap inside the panel


@cli.command("seed")
@click.option("--scale", type=int, default=1, show_default=True, help="Size: 60 services, 150 users... per unit.")
@click.option("--seed", "seed_value", type=int, default=1, show_default=True, help="Same seed, same data.")
@click.pass_context
def seed_command(ctx: click.Context, scale: int, seed_value: int) -> None:
    """Load a deterministic, realistic data set into an empty database, through its rules, then ANALYZE."""
    seed.check_scale(scale)
    url = database_url(ctx)
    report = seed.seed(url, scale=scale, seed=seed_value)
    console.print(seed.summary(report))


@cli.group()
def server() -> None:
    """Manage the embedded PostgreSQL 18 server (data in $PLATFORMDB_HOME/pgdata)."""


@server.command("start")
@click.option("--listen", metavar="ADDRESS",
              help="Also listen on this loopback address (127.0.0.1 or ::1), for JDBC and other clients that cannot "
                   "use a Unix socket; they log in with the password in $PLATFORMDB_HOME/tcp-password. Kept for "
                   "later starts; --listen none goes back to the socket only.")  # fmt: skip
@click.option("--port", type=click.IntRange(1024, 65535), default=PORT, show_default=True,
              help="The port (of the socket too), with --listen.")  # fmt: skip
def server_start(listen: str | None, port: int) -> None:
    """Start the embedded server (initializing it on first use)."""
    if listen is not None:
        configure_listen(None if listen == "none" else listen, port)
    elif port != PORT:
        raise UserError("--port goes with --listen (the socket-only server keeps its port)")
    url = embedded_url()
    cluster = embedded_cluster()
    console.print(f"running: data in {cluster.data_dir}\nurl: {cluster.url(str(url.database))}")
    if cluster.listen:
        console.print(f"tcp: {cluster.listen}:{cluster.port} (`platformdb server url --tcp` prints its URL)")


@server.command("stop")
def server_stop() -> None:
    """Stop the embedded server."""
    cluster = embedded_cluster()
    was_running = cluster.is_running()
    cluster.stop()
    console.print("stopped" if was_running else "not running")


@server.command("status")
def server_status() -> None:
    """Say whether the embedded server runs; exit 3 when it does not (like pg_ctl status)."""
    cluster = embedded_cluster()
    if cluster.is_running():
        tcp = cluster.listening_on()
        where = f", tcp {tcp}:{cluster.port}" if tcp else ""
        console.print(f"running (PostgreSQL {cluster.version()}, data in {cluster.data_dir}{where})")
    else:
        state = "stopped" if cluster.is_initialized() else "not initialized"
        console.print(f"{state} (data in {cluster.data_dir})")
        sys.exit(3)


@server.command("url")
@click.option("--tcp", is_flag=True, help="The URL over TCP, with its password (after `server start --listen`).")
def server_url(tcp: bool) -> None:
    """Print the embedded server's connection URL."""
    cluster = embedded_cluster()
    click.echo(cluster.tcp_url(DEFAULT_DATABASE, tcp_password()) if tcp else cluster.url(DEFAULT_DATABASE))
