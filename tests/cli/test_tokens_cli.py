"""``platformdb tokens issue | list | revoke | rotate`` end to end, in a subprocess like the other CLI tests: a
new token is printed once and verifies; mistakes are one line and never show a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from platformdb import tokens
from platformdb.db import libpq_dsn
from tests.cli.test_cli import assert_ok, assert_one_line_error, cli_home, run
from tests.factories import Make

__all__ = ["cli_home"]  # the autouse fixture, for this module too


def _setup(conn: psycopg.Connection[Any]) -> tuple[Make, Any]:
    make = Make(conn)
    bot = make.user(email="ci@example.com", kind="service_account", owner_team_id=make.team(), password_hash=None)
    make.grant(bot, make.role_with("deployment:create"))
    issuer = make.user(email="admin@example.com")
    make.grant(issuer, make.role_with("token:issue"))
    return make, bot


def test_issue_verify_rotate_revoke(db: URL, conn: psycopg.Connection[Any], cli_home: Path) -> None:
    _, bot = _setup(conn)
    dsn = ("--database-url", libpq_dsn(db))
    issued = run(*dsn, "tokens", "issue", "--owner", "ci@example.com", "--name", "ci-releases",
                 "--scope", "deployment:create", "--days", "30", "--issued-by", "admin@example.com")  # fmt: skip
    token = assert_ok(issued).strip()
    selector, _ = tokens.parse(token)
    assert "shown this once" in issued.stderr
    assert token not in issued.stderr
    assert tokens.verify(conn, token, "deployment:create") == tokens.Principal(bot, "service_account")

    listed = assert_ok(run(*dsn, "tokens", "list", "--owner", "ci@example.com"))
    assert selector in listed
    assert token.rsplit("_", 1)[1] not in listed  # the secret is never shown again

    rotated = assert_ok(run(*dsn, "tokens", "rotate", selector, "--issued-by", "admin@example.com")).strip()
    assert tokens.verify(conn, token, "deployment:create") == tokens.Refusal("revoked")
    assert tokens.verify(conn, rotated, "deployment:create") == tokens.Principal(bot, "service_account")
    again = run(*dsn, "tokens", "rotate", selector, "--issued-by", "admin@example.com")
    assert_one_line_error(again, "only a live token is rotated")  # refused by the database: no token shown
    assert "pdb_" not in again.stdout + again.stderr

    new_selector, _ = tokens.parse(rotated)
    assert "revoked" in assert_ok(run(*dsn, "tokens", "revoke", new_selector))
    assert tokens.verify(conn, rotated, "deployment:create") == tokens.Refusal("revoked")


def test_mistakes_are_one_line_and_show_no_token(db: URL, conn: psycopg.Connection[Any], cli_home: Path) -> None:
    _setup(conn)
    dsn = ("--database-url", libpq_dsn(db))
    assert_one_line_error(run(*dsn, "tokens", "issue", "--owner", "nobody@example.com", "--name", "x",
                              "--scope", "deployment:create"), "no user with that address")  # fmt: skip
    assert_one_line_error(run(*dsn, "tokens", "issue", "--owner", "ci@example.com", "--name", "x",
                              "--scope", "no:such"), "no permission named")  # fmt: skip
    assert_one_line_error(run(*dsn, "tokens", "issue", "--owner", "ci@example.com", "--name", "x",
                              "--scope", "deployment:create", "--days", "400"), "--days")  # fmt: skip
    assert_one_line_error(run(*dsn, "tokens", "revoke", "zzzzzzzzzzzzzzzz"), "no token with that selector")
    assert conn.execute("SELECT count(*) FROM platform.api_tokens").fetchone() == (0,)
