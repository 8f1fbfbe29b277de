"""Tell the audit trigger who is acting: one call per transaction (or connection).

The audit capture trigger reads four settings; services set them at the start of each unit of work::

    set_actor(session, user.id, request_id=request.headers["x-request-id"])

With ``local=True`` (the default) the settings are transaction-local (``set_config(..., true)``) and vanish
at COMMIT or ROLLBACK, so a pooled connection never leaks one request's actor into the next. Call it inside
the transaction; ``local=False`` keeps them for the whole connection (for workers acting as one identity).
A write made without any of them is still audited, with ``db:<role>`` as the actor. On a connection in
autocommit mode outside a transaction, transaction-local settings would vanish with their own statement:
``set_actor`` raises :class:`~platformdb.errors.NoTransactionError` there instead of doing nothing.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import psycopg

from platformdb.errors import NoTransactionError

SETTINGS = ("platformdb.actor_id", "platformdb.actor_name", "platformdb.request_id", "platformdb.client_addr")
_SQL = (
    "SELECT set_config('platformdb.actor_id', %(actor_id)s, %(local)s),"
    " set_config('platformdb.actor_name', %(actor_name)s, %(local)s),"
    " set_config('platformdb.request_id', %(request_id)s, %(local)s),"
    " set_config('platformdb.client_addr', %(client_addr)s, %(local)s)"
)


def set_actor(
    target: Any,
    actor_id: uuid.UUID | str | None,
    *,
    actor_name: str | None = None,
    request_id: str | None = None,
    client_addr: str | None = None,
    local: bool = True,
) -> None:
    """Set the acting user, request id and client address seen by the audit trigger.

    ``target`` is a SQLAlchemy ``Session`` or ``Connection`` or a psycopg connection or cursor. Values are
    validated here so a malformed id fails in the caller, not inside an audited write.
    """
    params = {
        "actor_id": str(uuid.UUID(str(actor_id))) if actor_id is not None else "",
        "actor_name": actor_name or "",
        "request_id": request_id or "",
        "client_addr": str(ipaddress.ip_address(client_addr)) if client_addr else "",
        "local": local,
    }
    if hasattr(target, "get_bind") or hasattr(target, "dialect"):  # SQLAlchemy Session / Connection
        from sqlalchemy import text

        if local:
            connection = target.connection() if hasattr(target, "get_bind") else target
            _require_transaction(connection.connection.dbapi_connection)
        target.execute(text(_SQL.replace("%(", ":").replace(")s", "")), params)
    else:  # psycopg connection or cursor
        if local:
            _require_transaction(getattr(target, "connection", target))
        target.execute(_SQL, params)


def _require_transaction(dbapi_connection: Any) -> None:
    """Refuse an autocommit psycopg connection that is not inside a transaction (``conn.transaction()``)."""
    if (
        isinstance(dbapi_connection, psycopg.Connection)
        and dbapi_connection.autocommit
        and dbapi_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    ):
        raise NoTransactionError(
            "set_actor: the connection is in autocommit mode outside a transaction, so transaction-local settings"
            " would vanish at once; call it inside a transaction, or pass local=False"
        )
