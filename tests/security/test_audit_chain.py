"""The audit log is tamper-evident: `platformdb audit verify` finds every kind of quiet rewrite.

Tampering is done the way an attacker with superuser would: with session_replication_role = replica, which
switches the append-only triggers off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from platformdb.actor import set_actor
from platformdb.audit import verify
from platformdb.db import libpq_dsn
from tests.factories import Make


@pytest.fixture
def audited(conn: psycopg.Connection[Any], make: Make) -> Iterator[psycopg.Connection[Any]]:
    """Ten audit rows from ordinary writes, chain intact."""
    for _ in range(5):
        team = make.team()
        conn.execute("UPDATE platform.teams SET display_name = 'Renamed' WHERE id = %s", (team,))
    assert verify(conn).ok
    assert verify(conn).rows == 10
    conn.execute("SET session_replication_role = replica")  # the attacker's switch: triggers off
    yield conn
    conn.execute("RESET session_replication_role")


def test_an_intact_chain_verifies(audited: psycopg.Connection[Any]) -> None:
    verdict = verify(audited)
    assert (verdict.ok, verdict.rows, verdict.first_id, verdict.last_id) == (True, 10, 1, 10)


def test_a_changed_field_is_detected(audited: psycopg.Connection[Any]) -> None:
    audited.execute("UPDATE platform.audit_logs SET actor_name = 'someone else' WHERE id = 4")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (4, "row content does not match its row_hash")
    assert verdict.expected != verdict.found


def test_a_deleted_row_is_detected(audited: psycopg.Connection[Any]) -> None:
    audited.execute("DELETE FROM platform.audit_logs WHERE id = 6")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (7, "prev_hash does not link to row 5")


def test_a_deleted_tail_is_detected(audited: psycopg.Connection[Any]) -> None:
    audited.execute("DELETE FROM platform.audit_logs WHERE id = 10")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (9, "the newest row is not the chain head")


def test_an_inserted_forged_row_is_detected(audited: psycopg.Connection[Any]) -> None:
    """A forger who even hashes the forged row correctly cannot make the next row link to it."""
    audited.execute(
        """INSERT INTO platform.audit_logs
             (id, created_at, transaction_id, actor_name, db_role, action, entity_type, entity_id, before,
              prev_hash, row_hash) OVERRIDING SYSTEM VALUE
           SELECT 55, created_at, transaction_id, 'forger', db_role, 'delete', entity_type, entity_id, after,
                  row_hash, decode(repeat('00', 32), 'hex')
             FROM platform.audit_logs WHERE id = 5"""
    )
    audited.execute("UPDATE platform.audit_logs l SET row_hash = platform.audit_row_hash(l) WHERE id = 55")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (55, "prev_hash does not link to row 10")


def test_a_reordered_pair_is_detected(audited: psycopg.Connection[Any]) -> None:
    """Rows 3 and 4 trade places: each keeps its position's id and hashes but carries the other's event."""
    audited.execute(
        """UPDATE platform.audit_logs l
              SET created_at = o.created_at, transaction_id = o.transaction_id, action = o.action,
                  entity_id = o.entity_id, before = o.before, after = o.after
             FROM platform.audit_logs o
            WHERE (l.id, o.id) IN ((3, 4), (4, 3))"""
    )
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (3, "row content does not match its row_hash")


def test_verify_cli_reports_the_broken_link_and_fails(audited: psycopg.Connection[Any], db: URL) -> None:
    import subprocess
    import sys

    audited.execute("UPDATE platform.audit_logs SET after = '{}' WHERE id = 2")
    result = subprocess.run(
        [sys.executable, "-m", "platformdb.cli", "--database-url", libpq_dsn(db), "audit", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("platformdb: error: audit chain broken at row 2: row content does not match")
    assert len(result.stderr.strip().splitlines()) == 1


WRITERS, WRITES = 8, 1000


def test_concurrent_writers_extend_one_chain(db: URL, make: Make) -> None:
    """8 writers x 1,000 audited writes at once: nothing lost, the chain unbroken."""
    teams = [make.team() for _ in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with psycopg.connect(libpq_dsn(db), autocommit=True) as conn:
                start.wait()
                for i in range(WRITES):
                    with conn.transaction():
                        set_actor(conn, None, actor_name=f"writer-{n}", request_id=f"{n}-{i}")
                        conn.execute(
                            "UPDATE platform.teams SET display_name = %s WHERE id = %s", (f"T{n} {i}", teams[n])
                        )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(libpq_dsn(db), autocommit=True) as conn:
        verdict = verify(conn)
        per_writer = dict(conn.execute(
            "SELECT actor_name, count(*) FROM platform.audit_logs WHERE actor_name LIKE 'writer-%' GROUP BY 1"
        ).fetchall())  # fmt: skip
    assert verdict.ok, str(verdict)
    assert per_writer == {f"writer-{n}": WRITES for n in range(WRITERS)}
    assert verdict.rows == WRITERS + WRITERS * WRITES  # the team inserts, then every update
