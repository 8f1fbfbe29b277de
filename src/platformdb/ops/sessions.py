"""The watchdog: end the sessions that stall others (``platformdb watchdog``, from cron every minute).

Logins made by ``platformdb roles grant-login`` carry lock, statement and idle-in-transaction timeouts, but a
login can SET its own timeouts in a session. :func:`end_stalled` calls ``platform.end_stalled_sessions``, which
runs as the schema owner and ends the sessions of this database that hold an audit lane or a lock on a platform
table while idle in transaction longer than ``max_idle``, or in one transaction longer than ``max_transaction``.
The owner must be a superuser or a member of ``pg_signal_backend``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Ended:
    pid: int
    login: str
    lane: int | None
    state: str
    transaction_age: dt.timedelta

    def __str__(self) -> str:
        held = f", holding audit lane {self.lane}" if self.lane is not None else ""
        return f"ended pid {self.pid} ({self.login}, {self.state} for a transaction of {self.transaction_age}{held})"


def end_stalled(conn: psycopg.Connection[Any], max_idle: dt.timedelta, max_transaction: dt.timedelta) -> list[Ended]:
    rows = conn.execute(
        "SELECT pid, login, lane, state, transaction_age FROM platform.end_stalled_sessions(%s, %s)",
        (max_idle, max_transaction),
    ).fetchall()
    return [Ended(int(r[0]), str(r[1]), r[2], str(r[3]), r[4]) for r in rows]
