"""Logins for microservices: each is a LOGIN role that is a member of exactly one platformdb group role.

Group roles are created by migration 0009 (NOLOGIN, cluster-wide). A service never logs in as the schema
owner; it gets a login of its own here (or with the SQL that :func:`grant_login_sql` prints, for DBAs).
"""

from __future__ import annotations

import re

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


def group_role(name: str) -> str:
    if name in GROUP_ROLES:
        return GROUP_ROLES[name]
    if name in GROUP_ROLES.values():
        return name
    raise UserError(f"unknown role {name!r}: one of {', '.join(GROUP_ROLES)}")


def grant_login_sql(login: str, role: str, *, password: str | None, exists: bool) -> sql.Composed:
    """The statements that make ``login`` a login member of group ``role`` (and of nothing else of ours)."""
    if not _LOGIN_NAME.match(login):
        raise UserError(f"login name {login!r}: lower-case letters, digits and _, at most 63")
    if login.startswith("platform_") or login in ("postgres",):
        raise UserError(f"login name {login!r} is reserved")
    group = group_role(role)
    statements = []
    if exists:
        statements.append(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(login)))
    else:
        statements.append(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(sql.Identifier(login))
        )
    if password is not None:
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(login), sql.Literal(password)))
    statements.append(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
    return sql.SQL(";\n").join(statements) + sql.SQL(";")


def grant_login(url: URL, login: str, role: str, *, password: str | None = None) -> str:
    """Create (or update) ``login`` and grant it ``role``; returns a one-line summary."""
    group = group_role(role)
    with connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone():
            raise NotMigratedError(f'database "{url.database}"', lacks=f"group role {group}")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() is not None
        with conn.transaction():
            conn.execute(grant_login_sql(login, role, password=password, exists=exists))
    return f"{'updated' if exists else 'created'} login {login} as a member of {group}"
