"""Logins for microservices: each is a LOGIN role that is a member of exactly one platformdb group role.

Group roles are created by migration 0009 (NOLOGIN, cluster-wide). A service never logs in as the schema
owner; it gets a login of its own here (or with the SQL that :func:`grant_login_sql` prints, for DBAs). Because
the groups are cluster-wide, what keeps two platformdb databases of one cluster apart is CONNECT: PUBLIC has none
on a platformdb database (revision 0025) and each login gets CONNECT on the database it is made for only, so a
delivery login of database A cannot even connect to database B. Every
login carries the limits of :class:`LoginLimits`, so that one buggy or hostile service cannot hold locks, an
audit lane or a connection slot for long; a login can still SET its own timeouts in a session, which is why
``platformdb watchdog`` (:func:`platform.end_stalled_sessions`) exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

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


SCRAM_ITERATIONS = 4096
"""PostgreSQL's default (scram_iterations)."""


def scram_verifier(password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802 / 7677), computed here, so the
    password itself never reaches the server, its statement log or a printed script. The password is NFKC
    normalized first, as SASLprep does for the usual passwords."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", unicodedata.normalize("NFKC", password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def _check_login(login: str) -> None:
    if not _LOGIN_NAME.match(login):
        raise UserError(f"login name {login!r}: lower-case letters, digits and _, at most 63")
    if login.startswith("platform_") or login in ("postgres",):
        raise UserError(f"login name {login!r} is reserved")


@dataclass(frozen=True)
class Existing:
    """What an existing login carries that ``grant_login`` must take away: role memberships (groups of ours, or
    predefined roles such as pg_write_all_data) and the databases where it has role settings of its own (e.g. a
    session_replication_role = replica that would switch every trigger, audit included, off)."""

    memberships: tuple[str, ...] = ()
    settings_in: tuple[str | None, ...] = ()
    """Databases with settings for the role (None: settings for every database)."""


def grant_login_sql(
    login: str,
    role: str,
    *,
    password: str | None = None,
    exists: bool | Existing = False,
    limits: LoginLimits = LoginLimits(),
    server_version: int = 180000,
) -> sql.Composed:
    """The statements that make ``login`` a login member of group ``role`` and of no other role, with no elevated
    attribute, no settings but the limits, and (given a password) its SCRAM verifier: never the password."""
    _check_login(login)
    group = group_role(role)
    existing = exists if isinstance(exists, Existing) else Existing()
    ident = sql.Identifier(login)
    attributes = sql.SQL(" ").join(sql.SQL(a) for a in ELEVATED)
    limit = sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(limits.connection_limit))
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    statements = [sql.SQL("{} {} {} {}").format(verb, ident, attributes, limit)]
    for database in existing.settings_in:
        where = sql.SQL(" IN DATABASE {}").format(sql.Identifier(database)) if database else sql.SQL("")
        statements.append(sql.SQL("ALTER ROLE {}{} RESET ALL").format(ident, where))
    if password is not None:
        verifier = sql.Literal(scram_verifier(password))
        statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, verifier))
    for name, value in limits.settings(server_version).items():
        statements.append(sql.SQL("ALTER ROLE {} SET {} = {}").format(ident, sql.Identifier(name), sql.Literal(value)))
    others = [g for g in existing.memberships if g != group]
    statements.extend(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(g), ident) for g in others)
    statements.append(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), ident))
    statements.append(sql.SQL(CONNECT_HERE).format(sql.Literal(login)))
    return sql.SQL(";\n").join(statements) + sql.SQL(";")


CONNECT_HERE = (
    "DO $$BEGIN"
    " EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), {});"
    " IF has_database_privilege('public', current_database(), 'CONNECT') AND pg_has_role(current_user,"
    " (SELECT d.datdba FROM pg_catalog.pg_database d WHERE d.datname = current_database()), 'USAGE') THEN"
    " EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database()); END IF; END$$"
)
"""CONNECT on the database the statements run in (whatever its name, so printed SQL needs none), and none for
PUBLIC there (what revision 0025 did, again, for a database it did not reach, e.g. a copy)."""


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
        existing = Existing(
            tuple(str(r[0]) for r in conn.execute(
                """SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                    JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s ORDER BY 1""", (login,))),
            tuple(None if r[0] is None else str(r[0]) for r in conn.execute(
                """SELECT d.datname FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                     LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s ORDER BY 1""", (login,))),
        )  # fmt: skip
        statements = grant_login_sql(
            login, role, password=password, exists=existing if exists else False, limits=limits,
            server_version=conn.info.server_version,
        )  # fmt: skip
        with conn.transaction():
            conn.execute(statements)
    return f"{'updated' if exists else 'created'} login {login} as a member of {group} only"


@dataclass(frozen=True)
class Login:
    """A service login of this database: it has CONNECT here and is a member of a platformdb group."""

    name: str
    groups: tuple[str, ...]
    connection_limit: int
    settings: dict[str, str]


_CONNECTS_HERE = """EXISTS (SELECT FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database()
                       AND a.privilege_type = 'CONNECT' AND a.grantee = r.oid)"""
"""SQL: role ``r`` is granted CONNECT on this database by name (not through PUBLIC)."""


def list_logins(url: URL) -> list[Login]:
    """The service logins of this database (CONNECT granted here, member of a platformdb group), by name."""
    groups = list(GROUP_ROLES.values())
    with connect(url, autocommit=True) as conn:
        query = sql.SQL(
            """SELECT r.rolname, array_agg(g.rolname ORDER BY g.rolname), r.rolconnlimit,
                      (SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0)
                 FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid JOIN pg_roles g ON g.oid = m.roleid
                WHERE r.rolcanlogin AND g.rolname = ANY(%s) AND {}
                GROUP BY r.oid, r.rolname, r.rolconnlimit ORDER BY r.rolname"""
        ).format(sql.SQL(_CONNECTS_HERE))
        rows: list[tuple[Any, ...]] = conn.execute(query, (groups,)).fetchall()
    logins = []
    for name, member_of, limit, config in rows:
        settings = dict(str(c).split("=", 1) for c in config or ())
        logins.append(Login(str(name), tuple(str(g) for g in member_of), int(limit), settings))
    return logins


def revoke_login(url: URL, login: str) -> str:
    """Take ``login``'s CONNECT on this database; and its platformdb group memberships when no other database
    grants it CONNECT (memberships are cluster-wide). The role itself stays (a DBA drops it). One-line summary."""
    _check_login(login)
    groups = list(GROUP_ROLES.values())
    ident = sql.Identifier(login)
    with connect(url, autocommit=True) as conn:
        query = sql.SQL(
            """SELECT {}, current_database(),
                      array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                             WHERE m.member = r.oid AND g.rolname = ANY(%s) ORDER BY 1),
                      array(SELECT d.datname FROM pg_database d, aclexplode(d.datacl) a
                             WHERE a.grantee = r.oid AND a.privilege_type = 'CONNECT'
                               AND d.datname <> current_database() ORDER BY 1)
                 FROM pg_roles r WHERE r.rolname = %s AND r.rolcanlogin"""
        ).format(sql.SQL(_CONNECTS_HERE))
        row: tuple[Any, ...] | None = conn.execute(query, (groups, login)).fetchone()
        if row is None or not (row[0] or row[2]):
            raise UserError(f"no service login {login} in this database (see: platformdb roles list)")
        connects, database = bool(row[0]), str(row[1])
        member_of, elsewhere = [str(g) for g in row[2]], [str(d) for d in row[3]]
        with conn.transaction():
            if connects:
                conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(database), ident))
            if not elsewhere:
                for group in member_of:
                    conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), ident))
    if elsewhere:
        return f"revoked login {login} from database {database}; it keeps its groups for {', '.join(elsewhere)}"
    return f"revoked login {login} from database {database} and its group(s) {', '.join(member_of) or '-'}"
