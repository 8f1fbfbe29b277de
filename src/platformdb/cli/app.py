"""The root ``platformdb`` command group, its one console, and what every command shares.

Every user mistake ends as one plain line on stderr and a non-zero exit; set PLATFORMDB_DEBUG=1 to see the
traceback of an unexpected error instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click
from rich.console import Console
from sqlalchemy import URL

from platformdb.db import ENV_URL, check, given_url
from platformdb.errors import UserError, describe

# Piped output keeps 120 columns (or $COLUMNS) rather than rich's 80, so tables stay on one line per row.
console = Console(highlight=False, soft_wrap=True, width=shutil.get_terminal_size((120, 24)).columns)


class OneLineErrors(click.Command):
    """Turns every error into one line on stderr, never a traceback (for the group and any stand-alone command,
    such as ``python -m bench``)."""

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
            fail("aborted")
        except click.ClickException as exc:
            fail(exc.format_message(), code=exc.exit_code)
        except UserError as exc:
            fail(str(exc))
        except Exception as exc:
            if os.environ.get("PLATFORMDB_DEBUG"):
                raise
            fail(describe(exc))


class _Group(OneLineErrors, click.Group):
    pass


def fail(message: str, code: int = 1) -> None:
    click.echo(f"platformdb: error: {' '.join(message.split())}", err=True)  # one line, whatever click wrapped
    sys.exit(code)


def database_url(ctx: click.Context, *, at_head: bool = False) -> URL:
    """The database this invocation works on: ``--database-url``, ``$PLATFORMDB_DATABASE_URL``, else the
    embedded server (the CLI's own fallback; the library never starts a server). Checked by connecting once;
    with ``at_head``, also that it is migrated to head (:func:`platformdb.migrate.require_head`)."""
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "url" not in obj:
        url = given_url(obj.get("raw_url"))
        if url is None:
            from platformdb.workbench.server import embedded_url

            url = embedded_url()
        check(url)
        obj["url"] = url
    found: URL = obj["url"]
    if at_head:
        from platformdb import migrate

        migrate.require_head(found)
    return found


def where(url: URL) -> str:
    """``database "x" at host:port`` (or at the socket directory), for progress lines."""
    host = url.host or url.query.get("host") or "localhost"
    return f'database "{url.database}" at {host}' + (f":{url.port}" if url.port and url.host else "")


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
def cli(ctx: click.Context, raw_url: str | None) -> None:
    """platformdb: the control-plane schema of a microservices platform, on PostgreSQL."""
    ctx.ensure_object(dict)["raw_url"] = raw_url
