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
from platformdb.db import libpq_dsn
from platformdb.models.audit import AUDIT_LANES
from platformdb.ops.audit_chain import Verdict, verify
from tests.factories import Make
from tests.reliability.report import Record


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


def tampering_detected(reliability: Record, verdict: Verdict) -> None:
    """Count this tamper case for docs/RELIABILITY.md: it reached here, so verify caught it."""
    reliability.cases = 1
    reliability.add("tampering detected", int(not verdict.ok))


def lane_of(conn: psycopg.Connection[Any]) -> int:
    """The one lane the fixture's rows went to (one connection, one writer at a time)."""
    lanes = conn.execute("SELECT DISTINCT chain_lane FROM platform.audit_logs").fetchall()
    assert len(lanes) == 1, lanes
    return int(lanes[0][0])


def test_an_intact_chain_verifies(audited: psycopg.Connection[Any]) -> None:
    verdict = verify(audited)
    assert (verdict.ok, verdict.rows, verdict.first_id, verdict.last_id) == (True, 10, 1, 10)


def test_a_changed_field_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    audited.execute("UPDATE platform.audit_logs SET actor_name = 'someone else' WHERE id = 4")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (4, "row content does not match its row_hash")
    assert verdict.expected != verdict.found
    tampering_detected(reliability, verdict)


def test_a_deleted_row_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    audited.execute("DELETE FROM platform.audit_logs WHERE id = 6")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (
        7,
        f"prev_hash does not link to row 5, the previous row of lane {lane_of(audited)}",
    )
    tampering_detected(reliability, verdict)


def test_a_deleted_tail_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    audited.execute("DELETE FROM platform.audit_logs WHERE id = 10")
    verdict = verify(audited)
    lane = lane_of(audited)
    assert (verdict.broken_id, verdict.problem) == (9, f"the newest row of lane {lane} is not the lane's head")
    tampering_detected(reliability, verdict)


def test_an_inserted_forged_row_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    """A forger who even hashes the forged row correctly cannot make the next row link to it."""
    audited.execute(
        """INSERT INTO platform.audit_logs
             (id, created_at, transaction_id, actor_name, db_role, action, entity_type, entity_id, before,
              prev_hash, row_hash, chain_lane, hash_version) OVERRIDING SYSTEM VALUE
           SELECT 55, created_at, transaction_id, 'forger', db_role, 'delete', entity_type, entity_id, after,
                  row_hash, decode(repeat('00', 32), 'hex'), chain_lane, hash_version
             FROM platform.audit_logs WHERE id = 5"""
    )
    audited.execute("UPDATE platform.audit_logs l SET row_hash = platform.audit_row_hash(l) WHERE id = 55")
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (
        55,
        f"prev_hash does not link to row 10, the previous row of lane {lane_of(audited)}",
    )
    tampering_detected(reliability, verdict)


def test_a_reordered_pair_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
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
    tampering_detected(reliability, verdict)


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


def test_concurrent_writers_extend_one_chain(db: URL, make: Make, reliability: Record) -> None:
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
        lanes = conn.execute("SELECT count(DISTINCT chain_lane) FROM platform.audit_logs").fetchone()
    assert verdict.ok, str(verdict)
    assert per_writer == {f"writer-{n}": WRITES for n in range(WRITERS)}
    assert verdict.rows == WRITERS + WRITERS * WRITES  # the team inserts, then every update
    assert lanes is not None
    assert lanes[0] > 1, "concurrent writers should have appended to several lanes"
    reliability.cases = WRITERS * WRITES
    reliability.figures |= {"writers": WRITERS, "rows verified": verdict.rows, "lanes used": lanes[0],
                            "rows missing": WRITERS * WRITES - sum(per_writer.values())}  # fmt: skip


def test_concurrent_transactions_append_to_different_lanes(db: URL, make: Make) -> None:
    """A transaction holds its lane to commit; another one takes a free lane instead of waiting, and keeps it."""
    teams = [make.team() for _ in range(3)]
    with psycopg.connect(libpq_dsn(db)) as first, psycopg.connect(libpq_dsn(db)) as second:
        first.execute("UPDATE platform.teams SET display_name = 'First' WHERE id = %s", (teams[0],))
        second.execute("SET LOCAL lock_timeout = '1s'")  # waiting on the first's lane would fail the test
        second.execute("UPDATE platform.teams SET display_name = 'Second' WHERE id = %s", (teams[1],))
        second.execute("UPDATE platform.teams SET display_name = 'Again' WHERE id = %s", (teams[2],))
        lanes = {
            name: {r[0] for r in conn.execute("SELECT chain_lane FROM platform.audit_logs WHERE transaction_id ="
                                              " txid_current()").fetchall()}
            for name, conn in (("first", first), ("second", second))
        }  # fmt: skip
        first.commit()
        second.commit()
        assert len(lanes["first"]) == 1, lanes
        assert len(lanes["second"]) == 1, lanes
        assert lanes["first"] != lanes["second"]
        assert verify(first).ok


def test_with_every_lane_held_a_transaction_waits_rather_than_forks(db: URL, make: Make) -> None:
    """16 open audited transactions hold the 16 lanes: a 17th waits for a lane (here: times out), then succeeds."""
    teams = [make.team() for _ in range(AUDIT_LANES + 1)]
    holders = [psycopg.connect(libpq_dsn(db)) for _ in range(AUDIT_LANES)]
    try:
        for conn, team in zip(holders, teams, strict=False):
            conn.execute("SET LOCAL lock_timeout = '5s'")
            conn.execute("UPDATE platform.teams SET display_name = 'Holder' WHERE id = %s", (team,))
        with psycopg.connect(libpq_dsn(db)) as late:
            late.execute("SET LOCAL lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                late.execute("UPDATE platform.teams SET display_name = 'Late' WHERE id = %s", (teams[-1],))
            late.rollback()
            for conn in holders:
                conn.commit()
            late.execute("UPDATE platform.teams SET display_name = 'Late' WHERE id = %s", (teams[-1],))
            late.commit()
            verdict = verify(late)
            lanes = late.execute("SELECT count(DISTINCT chain_lane) FROM platform.audit_logs").fetchone()
    finally:
        for conn in holders:
            conn.close()
    assert verdict.ok, str(verdict)
    assert lanes == (AUDIT_LANES,)


def test_a_row_moved_to_another_lane_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    """The lane is hashed (hash_version 2): the moved row no longer matches its hash."""
    lane = lane_of(audited)
    audited.execute("UPDATE platform.audit_logs SET chain_lane = %s WHERE id = 5", ((lane + 1) % AUDIT_LANES,))
    verdict = verify(audited)
    assert (verdict.broken_id, verdict.problem) == (5, "row content does not match its row_hash")
    tampering_detected(reliability, verdict)


# --- finding 4: the owner rewriting history ----------------------------------------------------------------
# Each case is what a schema owner (or superuser) could do; verify must catch it, or (a consistent rewrite of a
# lane's end) a signed checkpoint taken before must.


def test_a_deleted_lane_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    lane = lane_of(audited)
    audited.execute("DELETE FROM platform.audit_logs WHERE chain_lane = %s", (lane,))
    verdict = verify(audited)
    assert not verdict.ok, str(verdict)
    assert f"lane {lane}" in str(verdict)
    tampering_detected(reliability, verdict)


def test_deleted_oldest_rows_of_a_lane_are_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    audited.execute("DELETE FROM platform.audit_logs WHERE id <= 3")
    verdict = verify(audited)
    assert (verdict.ok, verdict.broken_id) == (False, 4), str(verdict)
    tampering_detected(reliability, verdict)


def test_a_dropped_partition_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    [partition] = audited.execute("SELECT DISTINCT tableoid::regclass::text FROM platform.audit_logs").fetchone() or [
        None
    ]
    audited.execute(f"DROP TABLE {partition}")
    verdict = verify(audited)
    assert not verdict.ok, str(verdict)
    tampering_detected(reliability, verdict)


def test_a_forged_row_in_a_lane_without_a_head_is_detected(
    audited: psycopg.Connection[Any], reliability: Record
) -> None:
    """A correctly hashed row in a lane number audit_chain has no head for."""
    audited.execute(
        """INSERT INTO platform.audit_logs
             (id, created_at, transaction_id, actor_name, db_role, action, entity_type, entity_id, after,
              prev_hash, row_hash, chain_lane) OVERRIDING SYSTEM VALUE
           SELECT 77, created_at, transaction_id, 'forger', db_role, action, entity_type, entity_id, after,
                  decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'), 99
             FROM platform.audit_logs WHERE id = 1"""
    )
    audited.execute("UPDATE platform.audit_logs l SET row_hash = platform.audit_row_hash(l) WHERE id = 77")
    verdict = verify(audited)
    assert not verdict.ok, str(verdict)
    assert "lane 99" in str(verdict)
    tampering_detected(reliability, verdict)


def test_a_lane_moved_to_another_number_is_detected(audited: psycopg.Connection[Any], reliability: Record) -> None:
    """The whole lane and its head move to a free lane number: every link still holds, but the lane is hashed."""
    lane = lane_of(audited)
    other = (lane + 1) % AUDIT_LANES
    audited.execute("UPDATE platform.audit_logs SET chain_lane = %s WHERE chain_lane = %s", (other, lane))
    audited.execute(
        """UPDATE platform.audit_chain c SET last_hash = CASE c.lane WHEN %(lane)s THEN o.last_hash ELSE n.last_hash END
             FROM platform.audit_chain n, platform.audit_chain o
            WHERE n.lane = %(lane)s AND o.lane = %(other)s AND c.lane IN (%(lane)s, %(other)s)""",
        {"lane": lane, "other": other},
    )
    verdict = verify(audited)
    assert not verdict.ok, str(verdict)
    tampering_detected(reliability, verdict)


def test_a_replaced_row_hash_function_is_not_trusted(audited: psycopg.Connection[Any], reliability: Record) -> None:
    """The verifier computes hashes itself: a row_hash function that vouches for anything does not help."""
    audited.execute(
        "CREATE OR REPLACE FUNCTION platform.audit_row_hash(r platform.audit_logs) RETURNS bytea"
        " LANGUAGE sql IMMUTABLE RETURN r.row_hash"
    )
    audited.execute("UPDATE platform.audit_logs SET actor_name = 'someone else' WHERE id = 4")
    verdict = verify(audited)
    assert not verdict.ok, str(verdict)
    tampering_detected(reliability, verdict)


@pytest.mark.parametrize(
    "tamper",
    [
        "ALTER TABLE platform.teams DISABLE TRIGGER trg_teams_audit",
        "DROP TRIGGER trg_teams_audit ON platform.teams",
        "ALTER TABLE platform.audit_logs DISABLE TRIGGER trg_audit_logs_append_only",
        "CREATE OR REPLACE FUNCTION platform.audit_capture() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN NULL; END $$",
    ],
    ids=["capture-disabled", "capture-dropped", "append-only-disabled", "capture-replaced"],
)
def test_switched_off_capture_or_guards_are_detected(
    audited: psycopg.Connection[Any], reliability: Record, tamper: str
) -> None:
    audited.execute(tamper)
    verdict = verify(audited)
    assert not verdict.ok, str(verdict)
    tampering_detected(reliability, verdict)


def test_retention_is_recorded_so_a_pruned_chain_still_verifies(audited: psycopg.Connection[Any]) -> None:
    """partitions prune records each lane's newest removed row; the lane's oldest remaining row links to it."""
    audited.execute("SELECT platform.ensure_partition('platform.audit_logs', 'month', '2001-01-15')")
    audited.execute("UPDATE platform.audit_logs SET created_at = '2001-01-15' WHERE id <= 3")  # the oldest rows
    prev = bytes(32)
    for (row_id,) in audited.execute("SELECT id FROM platform.audit_logs ORDER BY id").fetchall():  # rehash the lane
        audited.execute("UPDATE platform.audit_logs SET prev_hash = %s WHERE id = %s", (prev, row_id))
        audited.execute(
            "UPDATE platform.audit_logs l SET row_hash = platform.audit_row_hash(l) WHERE id = %s", (row_id,)
        )
        prev = audited.execute("SELECT row_hash FROM platform.audit_logs WHERE id = %s", (row_id,)).fetchone()[0]  # type: ignore[index]
    audited.execute("UPDATE platform.audit_chain SET last_hash = %s WHERE lane = %s", (prev, lane_of(audited)))
    assert verify(audited).ok, str(verify(audited))
    dropped = audited.execute("SELECT platform.prune_partitions('platform.audit_logs', '2002-01-01')").fetchall()
    assert dropped == [("platform.audit_logs_p2001_01",)]
    verdict = verify(audited)
    assert (verdict.ok, verdict.rows, verdict.first_id) == (True, 7, 4), str(verdict)
    anchor = audited.execute("SELECT pruned_through_id FROM platform.audit_chain WHERE lane = %s", (lane_of(audited),))
    assert anchor.fetchone() == (3,)


# --- signed checkpoints: what the chain alone cannot show ---------------------------------------------------
@pytest.fixture
def signing_key(tmp_path: Any) -> Any:
    from platformdb.ops.checkpoints import keygen

    private = tmp_path / "audit.pem"
    return private, keygen(private)


def test_a_cut_tail_with_its_head_reset_is_evident_only_against_a_checkpoint(
    audited: psycopg.Connection[Any], signing_key: Any, tmp_path: Any, reliability: Record
) -> None:
    from platformdb.ops.checkpoints import check, take

    private, public = signing_key
    file = tmp_path / "checkpoints.jsonl"
    file.write_text(take(audited, private) + "\n")
    assert check(audited, file, public).ok
    lane = lane_of(audited)
    audited.execute("DELETE FROM platform.audit_logs WHERE id >= 9")
    audited.execute(
        "UPDATE platform.audit_chain SET last_hash = (SELECT row_hash FROM platform.audit_logs WHERE id = 8)"
        " WHERE lane = %s",
        (lane,),
    )
    assert verify(audited).ok, "the chain alone cannot show a consistent cut: that is what checkpoints are for"
    checked = check(audited, file, public)
    assert not checked.ok
    assert f"row 10 of lane {lane}" in str(checked)
    assert str(checked).endswith("is gone")
    reliability.cases = 1
    reliability.add("tampering detected", int(not checked.ok))


def test_a_consistent_rewrite_from_some_row_on_is_evident_against_a_checkpoint(
    audited: psycopg.Connection[Any], signing_key: Any, tmp_path: Any, reliability: Record
) -> None:
    from platformdb.ops.checkpoints import check, take

    private, public = signing_key
    file = tmp_path / "checkpoints.jsonl"
    file.write_text(take(audited, private) + "\n")
    lane = lane_of(audited)
    audited.execute("UPDATE platform.audit_logs SET actor_name = 'rewritten' WHERE id >= 6")
    for row_id in range(6, 11):  # rehash the lane from row 6 on, and its head: a consistent forgery
        audited.execute(
            "UPDATE platform.audit_logs SET prev_hash = (SELECT row_hash FROM platform.audit_logs WHERE id = %s)"
            " WHERE id = %s",
            (row_id - 1, row_id),
        )
        audited.execute(
            "UPDATE platform.audit_logs l SET row_hash = platform.audit_row_hash(l) WHERE id = %s", (row_id,)
        )
    audited.execute(
        "UPDATE platform.audit_chain SET last_hash = (SELECT row_hash FROM platform.audit_logs WHERE id = 10)"
        " WHERE lane = %s",
        (lane,),
    )
    assert verify(audited).ok
    checked = check(audited, file, public)
    assert not checked.ok
    assert str(checked).endswith("has changed"), str(checked)
    reliability.cases = 1
    reliability.add("tampering detected", int(not checked.ok))


def test_a_checkpoint_signed_by_another_key_is_refused(
    audited: psycopg.Connection[Any], signing_key: Any, tmp_path: Any
) -> None:
    from platformdb.ops.checkpoints import check, keygen, take

    private, _ = signing_key
    other_public = keygen(tmp_path / "other.pem")
    file = tmp_path / "checkpoints.jsonl"
    file.write_text(take(audited, private) + "\n")
    assert "not a checkpoint signed by this key" in str(check(audited, file, other_public))
    forged = file.read_text().replace('"taken_at": "', '"taken_at": "1', 1)  # a signed field changed
    file.write_text(forged)
    assert "not a checkpoint signed by this key" in str(check(audited, file, signing_key[1]))


def test_verify_cli_proves_checkpoints_and_fails_on_a_lost_row(
    audited: psycopg.Connection[Any], db: URL, tmp_path: Any
) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "platformdb.cli", "--database-url", libpq_dsn(db), *args],
                              capture_output=True, text=True, check=False)  # fmt: skip

    key, file = tmp_path / "k.pem", tmp_path / "c.jsonl"
    assert cli("audit", "keygen", "--out", str(key)).returncode == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert cli("audit", "checkpoint", "--key", str(key), "--out", str(file)).returncode == 0
    ok = cli("audit", "verify", "--checkpoints", str(file), "--public-key", f"{key}.pub")
    assert ok.returncode == 0, ok.stderr
    assert "1 signed checkpoint(s) hold" in ok.stdout
    audited.execute("DELETE FROM platform.audit_logs WHERE id = 10")
    audited.execute("UPDATE platform.audit_chain SET last_hash = (SELECT row_hash FROM platform.audit_logs"
                    " WHERE id = 9) WHERE lane = %s", (lane_of(audited),))  # fmt: skip
    lost = cli("audit", "verify", "--checkpoints", str(file), "--public-key", f"{key}.pub")
    assert lost.returncode == 1
    assert lost.stderr.startswith("platformdb: error: checkpoint check failed: row 10 of lane")
    assert len(lost.stderr.strip().splitlines()) == 1
