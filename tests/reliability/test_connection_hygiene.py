"""Library calls give back the connections they open: a long-running service (or a test harness that clones a
database as a template) must not find sessions left behind by a call that has returned."""

from __future__ import annotations

import gc
from typing import Any

from sqlalchemy.engine import URL

from platformdb import migrate
from tests.pg import Server
from tests.reliability.report import Record


def sessions_on(server: Server, database: str) -> int:
    with server.admin() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    assert row is not None
    return int(row[0])


def test_migrate_current_leaves_no_session_behind(server: Server, db: URL, reliability: Record) -> None:
    """platformdb.migrate.current() (called by `platformdb upgrade`, `current` and demo.load) must close its
    connection before returning, not leave it in the pool of an engine that only the garbage collector ends.
    The collector is paused so that the outcome does not depend on when it happens to run."""
    assert db.database is not None
    reliability.cases = 1
    gc.disable()
    try:
        assert migrate.current(db) == migrate.head()
        left: Any = sessions_on(server, db.database)
    finally:
        gc.enable()
    reliability.figures["sessions_left_behind"] = left
    assert left == 0, f"{left} session(s) still open on {db.database} after migrate.current() returned"
