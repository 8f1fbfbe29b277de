"""API tokens: issue, rotate, revoke, list, and verify a presented token in one round trip.

A token reads ``pdb_<selector>_<secret>``: the selector (16 characters of ``[a-z0-9]``) is public and finds the
row; the secret (32 random bytes, base64url) is shown once, when the token is made, and stored only as its
SHA-256 (``api_tokens.verifier``). :func:`verify` sends the selector and the SHA-256 of the secret, never the
token, to ``platform.verify_api_token()``, which compares the digests without a timing signal (each side is
hashed again with a fresh random salt before the equality), checks revocation, expiry, the owner's state and
the token's scope, intersects the token's scopes with its owner's permissions at that moment, and records the
use. No service reads a verifier: the function is SECURITY DEFINER and the column is granted to no role.

Nothing here puts a token, a secret or a verifier in an exception message or a ``repr``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

from platformdb.errors import UserError

PREFIX = "pdb"
SELECTOR_ALPHABET = string.ascii_lowercase + string.digits
SELECTOR_LENGTH = 16
SECRET_BYTES = 32
MAX_LIFETIME = dt.timedelta(days=366)
"""The longest a token may live (ck_api_tokens_expiry_within_a_year)."""


class InvalidTokenError(UserError):
    """A presented string is not a platformdb token (the message never shows it)."""


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``token`` is what its holder presents, shown once; the row stores the rest."""

    selector: str
    token: str = field(repr=False)
    verifier: bytes = field(repr=False)


@dataclass(frozen=True)
class Principal:
    """Whom a verified token acts as."""

    user_id: uuid.UUID
    kind: str


@dataclass(frozen=True)
class Refusal:
    """Why a presented token was refused: malformed_token, unknown_token, revoked, expired, owner_deactivated,
    out_of_token_scope, not_in_token_scopes or owner_not_permitted."""

    reason: str


def generate() -> NewToken:
    """A fresh token (selector, secret) and the verifier to store."""
    selector = "".join(secrets.choice(SELECTOR_ALPHABET) for _ in range(SELECTOR_LENGTH))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")
    return NewToken(selector=selector, token=f"{PREFIX}_{selector}_{secret}", verifier=verifier_of(secret))


def verifier_of(secret: str) -> bytes:
    """SHA-256 of a token's secret: what the database stores and compares. The secret is 256 random bits, so a
    fast hash is enough (no password stretching needed)."""
    return hashlib.sha256(secret.encode("ascii")).digest()


def parse(token: str) -> tuple[str, bytes]:
    """The selector and verifier of a presented token; :class:`InvalidTokenError` if it is not one."""
    prefix, _, rest = token.strip().partition("_")
    selector, _, secret = rest.partition("_")
    if (
        prefix != PREFIX
        or len(selector) != SELECTOR_LENGTH
        or any(c not in SELECTOR_ALPHABET for c in selector)
        or not 16 <= len(secret) <= 128
        or not secret.isascii()
    ):
        raise InvalidTokenError("not a platformdb API token (expected pdb_<selector>_<secret>)")
    return selector, verifier_of(secret)


_VERIFY = (
    "SELECT principal_id, principal_kind, refusal"
    " FROM platform.verify_api_token(%(selector)s, %(verifier)s, %(permission)s, %(service_id)s, %(environment_id)s)"
)


def verify(
    target: Any,
    token: str,
    permission: str,
    service_id: uuid.UUID | None = None,
    environment_id: uuid.UUID | None = None,
) -> Principal | Refusal:
    """May the presented ``token`` use ``permission`` on this service and environment? One round trip.

    ``target`` is a psycopg connection or cursor, or a SQLAlchemy ``Session`` or ``Connection``. Returns the
    :class:`Principal` the token acts as (set it as the actor with :func:`platformdb.actor.set_actor`), or a
    :class:`Refusal` naming why not; a malformed token is refused without asking the database.
    """
    try:
        selector, verifier = parse(token)
    except InvalidTokenError:
        return Refusal("malformed_token")
    params = {
        "selector": selector,
        "verifier": verifier,
        "permission": permission,
        "service_id": service_id,
        "environment_id": environment_id,
    }
    if hasattr(target, "get_bind") or hasattr(target, "dialect"):  # SQLAlchemy Session / Connection
        from sqlalchemy import text

        row = target.execute(text(_VERIFY.replace("%(", ":").replace(")s", "")), params).one()
    else:
        row = target.execute(_VERIFY, params).fetchone()
    principal_id, kind, refusal = row[0], row[1], row[2]
    if refusal is not None:
        return Refusal(str(refusal))
    return Principal(user_id=principal_id, kind=str(kind))


# --- operations (the `platformdb tokens` CLI) ---------------------------------------------------------------


def _user_id(conn: Any, email: str) -> uuid.UUID:
    row = conn.execute("SELECT id FROM platform.users WHERE lower(email) = lower(%s)", (email,)).fetchone()
    if row is None:
        raise UserError("no user with that address")
    return uuid.UUID(str(row[0]))


def _named(conn: Any, table: str, name: str | None) -> uuid.UUID | None:
    if name is None:
        return None
    row = conn.execute(f"SELECT id FROM platform.{table} WHERE name = %s", (name,)).fetchone()  # noqa: S608 - a fixed table name
    if row is None:
        raise UserError(f"no {table[:-1]} named {name!r}")
    return uuid.UUID(str(row[0]))


def issue(
    conn: Any,
    *,
    owner: str,
    name: str,
    scopes: list[str],
    issued_by: str | None,
    days: int,
    service: str | None = None,
    environment: str | None = None,
    rotated_from: str | None = None,
) -> NewToken:
    """Insert a token for the user ``owner`` (an address) with ``scopes`` (permission names) in the caller's
    transaction; the database decides whether ``issued_by`` may (trg_api_tokens_issuer)."""
    if not 1 <= days <= MAX_LIFETIME.days:
        raise UserError(f"a token lives 1 to {MAX_LIFETIME.days} days")
    if not scopes:
        raise UserError("a token needs at least one scope (--scope PERMISSION)")
    owner_id = _user_id(conn, owner)
    issuer_id = _user_id(conn, issued_by) if issued_by else None
    permission_ids = []
    for scope in scopes:
        row = conn.execute("SELECT id FROM platform.permissions WHERE name = %s", (scope,)).fetchone()
        if row is None:
            raise UserError(f"no permission named {scope!r}")
        permission_ids.append(row[0])
    new = generate()
    row = conn.execute(
        """INSERT INTO platform.api_tokens (user_id, name, selector, verifier, service_id, environment_id,
                                            expires_at, rotated_from_id, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(days => %s), %s, %s) RETURNING id""",
        (owner_id, name, new.selector, new.verifier, _named(conn, "services", service),
         _named(conn, "environments", environment), days, rotated_from, issuer_id),
    ).fetchone()  # fmt: skip
    for permission_id in permission_ids:
        conn.execute(
            "INSERT INTO platform.api_token_scopes (token_id, permission_id) VALUES (%s, %s)", (row[0], permission_id)
        )
    return new


def _token(conn: Any, selector: str) -> tuple[Any, ...]:
    row = conn.execute(
        """SELECT t.id, u.email, t.name, s.name, e.name,
                  (SELECT array_agg(p.name ORDER BY p.name) FROM platform.api_token_scopes ts
                     JOIN platform.permissions p ON p.id = ts.permission_id WHERE ts.token_id = t.id)
             FROM platform.api_tokens t JOIN platform.users u ON u.id = t.user_id
             LEFT JOIN platform.services s ON s.id = t.service_id
             LEFT JOIN platform.environments e ON e.id = t.environment_id
            WHERE t.selector = %s""",
        (selector,),
    ).fetchone()
    if row is None:
        raise UserError("no token with that selector")
    return tuple(row)


def rotate(conn: Any, selector: str, *, issued_by: str | None, days: int) -> NewToken:
    """A successor of the token ``selector`` with its owner, name, scope and permissions; inserting it revokes
    the predecessor in the same statement (trg_api_tokens_rotation refuses a revoked or expired one)."""
    token_id, owner, name, service, environment, scopes = _token(conn, selector)
    return issue(conn, owner=owner, name=name, scopes=list(scopes or []), issued_by=issued_by, days=days,
                 service=service, environment=environment, rotated_from=token_id)  # fmt: skip


def revoke(conn: Any, selector: str) -> bool:
    """Revoke the token ``selector``; False if it already was."""
    _token(conn, selector)
    row = conn.execute("SELECT platform.revoke_api_token(%s)", (selector,)).fetchone()
    return bool(row[0])


def list_tokens(conn: Any, owner: str | None = None) -> list[dict[str, Any]]:
    """The tokens (of one owner, or all), newest first: never a secret or verifier."""
    rows = conn.execute(
        """SELECT t.selector, u.email, u.kind, t.name, t.expires_at, t.revoked_at, t.last_used_at,
                  coalesce((SELECT string_agg(p.name, ' ' ORDER BY p.name) FROM platform.api_token_scopes ts
                     JOIN platform.permissions p ON p.id = ts.permission_id WHERE ts.token_id = t.id), '')
             FROM platform.api_tokens t JOIN platform.users u ON u.id = t.user_id
            WHERE %(owner)s::text IS NULL OR lower(u.email) = lower(%(owner)s::text)
            ORDER BY t.created_at DESC, t.id DESC""",
        {"owner": owner},
    ).fetchall()
    keys = ("selector", "owner", "kind", "name", "expires_at", "revoked_at", "last_used_at", "scopes")
    return [dict(zip(keys, row, strict=True)) for row in rows]
