"""Logins for microservices: each is a LOGIN role that is a member of exactly one platformdb group role.

Group roles are created by migration 0009 (NOLOGIN, cluster-wide). A service never logs in as the schema
owner; it gets a login of its own here (or with the SQL that :func:`grant_login_sql` prints, for DBAs). Every
login carries the limits of :class:`LoginLimits`, so that one buggy or hostile service cannot hold locks, an
audit lane or a connection slot for long; a login can still SET its own timeouts in a session, which is why
``platformdb watchdog`` (:func:`platform.end_stalled_sessions`) exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from psycopg import sql
from sqlalchemy.engine import URL

from platformdb.db import connect
from platformdb.errors import NotMigratedError, UserError

GROUP_ROLES = {
    "identity": "platform_identity",
    "catalog": "platform_catalog",
    "delivery": "platform_delivery",
    "configuration": "platform_configuration",
    "audit-reader": "platform_audit_reader",
    "metrics-writer": "platform_metrics_writer",
    "readonly": "platform_readonly",
}
_LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ELEVATED = ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS", "INHERIT", "LOGIN")
"""Attributes every service login ends up with, whatever it had before."""


@dataclass(frozen=True)
class LoginLimits:
    """Per-login settings (``ALTER ROLE ... SET``) and connection limit that bound what one session can stall."""

    lock_timeout: str = "5s"
    statement_timeout: str = "30s"
    idle_in_transaction_session_timeout: str = "15s"
    transaction_timeout: str = "60s"
    """PostgreSQL 17 and later; left out on older servers."""
    connection_limit: int = 20

    def settings(self, server_version: int) -> dict[str, str]:
        values = {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name != "connection_limit"}
        if server_version < 170000:
            values.pop("transaction_timeout")
        return values


def group_role(name: str) -> str:
    if name in GROUP_ROLES:
        return GROUP_ROLES[name]
    if name in GROUP_ROLES.values():
        return name
    raise UserError(f"unknown role {name!r}: one of {', '.join(GROUP_ROLES)}")


def _check_login(login: str) -> None:
    if not _LOGIN_NAME.match(login):
        raise UserError(f"login name {login!r}: lower-case letters, digits and _, at most 63")
    if login.startswith("platform_") or login in ("postgres",):
        raise UserError(f"login name {login!r} is reserved")


def grant_login_sql(
    login: str,
    role: str,
    *,
    password_verifier: str | None = None,
    exists: bool,
    limits: LoginLimits = LoginLimits(),
    server_version: int = 180000,
    other_groups: tuple[str, ...] = (),
) -> sql.Composed:
    """The statements that make ``login`` a login member of group ``role`` and of no other group of ours, with no
    elevated attribute and the limits set. A password is only ever sent as a SCRAM verifier, never in clear."""
    _check_login(login)
    group = group_role(role)
    ident = sql.Identifier(login)
    attributes = sql.SQL(" ").join(sql.SQL(a) for a in ELEVATED)
    limit = sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(limits.connection_limit))
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    statements = [sql.SQL("{} {} {} {}").format(verb, ident, attributes, limit)]
    if password_verifier is not None:
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password_verifier)))
    for name, value in limits.settings(server_version).items():
        statements.append(sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, sql.Identifier(name), sql.Literal(value)))
    statements.extend(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(g), ident) for g in other_groups if g != group)
    statements.append(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), ident))
    return sql.SQL(";\n").join(statements) + sql.SQL(";")


def grant_login(
    url: URL,
    login: str,
    role: str,
    *,
    password: str | None = None,
    limits: LoginLimits = LoginLimits(),
) -> str:
    """Create (or bring into line) ``login`` as a member of ``role`` only; returns a one-line summary."""
    _check_login(login)
    group = group_role(role)
    with connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone():
            raise NotMigratedError(f'database "{url.database}"', lacks=f"group role {group}")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() is not None
        memberships = conn.execute(
            """SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s AND g.rolname = ANY(%s)""",
            (login, list(GROUP_ROLES.values())),
        ).fetchall()
        verifier = None
        if password is not None:  # libpq computes the SCRAM verifier here: the password never reaches the server
            verifier = conn.pgconn.encrypt_password(password.encode(), login.encode(), b"scram-sha-256").decode()
        statements = grant_login_sql(
            login, role, password_verifier=verifier, exists=exists, limits=limits,
            server_version=conn.info.server_version, other_groups=tuple(str(r[0]) for r in memberships),
        )  # fmt: skip
        with conn.transaction():
            conn.execute(statements)
    return f"{'updated' if exists else 'created'} login {login} as a member of {group} only"
