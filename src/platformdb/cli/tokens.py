"""``platformdb tokens issue | list | revoke | rotate``: API tokens for people and service accounts.

A new token is printed once, on stdout, and never again: the database keeps only its selector and the SHA-256
of its secret. Errors never show a token. The commands connect as the configured URL's role (the schema
owner, or a login of platform_identity); the database's rules decide who may issue for whom.
"""

from __future__ import annotations

import click

from platformdb import tokens
from platformdb.actor import set_actor
from platformdb.cli.app import cli, console, database_url
from platformdb.db import connect


@cli.group("tokens")
def tokens_group() -> None:
    """API tokens (selector + SHA-256 verifier; scoped, expiring, revocable, rotatable)."""


_DAYS = click.option("--days", type=click.IntRange(1, tokens.MAX_LIFETIME.days), default=90, show_default=True,
                     help=f"Lifetime in days (at most {tokens.MAX_LIFETIME.days}).")  # fmt: skip
_BY = click.option("--issued-by", "issued_by", metavar="EMAIL",
                   help="Who issues it (audited); required unless connected as the schema owner.")  # fmt: skip


def _actor(conn: object, issued_by: str | None) -> None:
    if issued_by:
        row = conn.execute("SELECT id FROM platform.users WHERE lower(email) = lower(%s)", (issued_by,)).fetchone()  # type: ignore[attr-defined]
        set_actor(conn, row[0] if row else None, request_id="platformdb-tokens")
    else:
        set_actor(conn, None, actor_name="platformdb tokens", request_id="platformdb-tokens")


@tokens_group.command("issue")
@click.option("--owner", required=True, metavar="EMAIL", help="The user or service account the token acts as.")
@click.option("--name", required=True, help="What the token is for, e.g. ci-releases.")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="PERMISSION",
              help="A permission the token may use (repeat for more).")  # fmt: skip
@click.option("--service", metavar="NAME", help="Limit the token to this service.")
@click.option("--environment", metavar="NAME", help="Limit the token to this environment.")
@_DAYS
@_BY
@click.pass_context
def tokens_issue(ctx: click.Context, owner: str, name: str, scopes: tuple[str, ...], service: str | None,
                 environment: str | None, days: int, issued_by: str | None) -> None:  # fmt: skip
    """Issue a token and print it once."""
    with connect(database_url(ctx, at_head=True)) as conn, conn.transaction():
        _actor(conn, issued_by)
        new = tokens.issue(conn, owner=owner, name=name, scopes=list(scopes), issued_by=issued_by, days=days,
                           service=service, environment=environment)  # fmt: skip
    click.echo(new.token)
    click.echo(f"token {new.selector} issued; it is shown this once: store it now", err=True)


@tokens_group.command("rotate")
@click.argument("selector")
@_DAYS
@_BY
@click.pass_context
def tokens_rotate(ctx: click.Context, selector: str, days: int, issued_by: str | None) -> None:
    """Replace token SELECTOR by a new one (same owner, name and scopes), revoking it; print the new one once."""
    with connect(database_url(ctx, at_head=True)) as conn, conn.transaction():
        _actor(conn, issued_by)
        new = tokens.rotate(conn, selector, issued_by=issued_by, days=days)
    click.echo(new.token)
    click.echo(f"token {selector} revoked; its successor {new.selector} is shown this once: store it now", err=True)


@tokens_group.command("revoke")
@click.argument("selector")
@_BY
@click.pass_context
def tokens_revoke(ctx: click.Context, selector: str, issued_by: str | None) -> None:
    """Revoke token SELECTOR at once."""
    with connect(database_url(ctx, at_head=True)) as conn, conn.transaction():
        _actor(conn, issued_by)
        done = tokens.revoke(conn, selector)
    console.print(f"token {selector} {'revoked' if done else 'was already revoked'}")


@tokens_group.command("list")
@click.option("--owner", metavar="EMAIL", help="Only this user's or service account's tokens.")
@click.pass_context
def tokens_list(ctx: click.Context, owner: str | None) -> None:
    """The tokens, newest first (selectors only: a token is never shown again)."""
    with connect(database_url(ctx, at_head=True)) as conn:
        rows = tokens.list_tokens(conn, owner)
    # Tab-separated, one token a line: scripts read it, and no column is wrapped away on a narrow terminal.
    click.echo("\t".join(("selector", "owner", "kind", "name", "scopes", "expires_utc", "state", "last_used_utc")))
    for r in rows:
        state = "revoked" if r["revoked_at"] else "live"
        used = r["last_used_at"].strftime("%Y-%m-%dT%H:%M") if r["last_used_at"] else "never"
        click.echo("\t".join((r["selector"], r["owner"], r["kind"], r["name"], r["scopes"],
                              r["expires_at"].strftime("%Y-%m-%dT%H:%M"), state, used)))  # fmt: skip
