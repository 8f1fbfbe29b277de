"""Races on the identity rules (issue #12): two re-parentings that together would make a cycle, and two
rotations of one token at once. Workers as in test_races: threads with their own connections, released together
by a barrier; only outcomes are asserted, never timing."""

from __future__ import annotations

import datetime as dt
import threading
from functools import partial
from typing import Any

import psycopg
from sqlalchemy.engine import URL

from platformdb import tokens
from tests.factories import Make
from tests.reliability.report import Record
from tests.reliability.test_races import BARRIER_TIMEOUT, close_all, in_parallel, worker_connections

ROUNDS = 10


def _outcome(conn: psycopg.Connection[Any], barrier: threading.Barrier, statement: str, params: Any) -> str:
    """Wait for the other worker, run ``statement`` and commit: "ok", or the name of the rule that refused it."""
    barrier.wait()
    try:
        conn.execute(statement, params)
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        return f"{exc.sqlstate} {exc.diag.constraint_name}"
    return "ok"


def test_concurrent_reparentings_never_make_a_cycle(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Team a goes under b while b goes under a, at once: in every round one commits and the other is refused
    by trg_teams_no_cycle (23514), and the teams form no cycle."""
    make = Make(conn)
    conns = worker_connections(db, 2)
    try:
        for _ in range(ROUNDS):
            a, b = make.team(), make.team()
            barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
            move = "UPDATE platform.teams SET parent_team_id = %s WHERE id = %s"
            got = in_parallel([partial(_outcome, conns[0], barrier, move, (b, a)),
                               partial(_outcome, conns[1], barrier, move, (a, b))])  # fmt: skip
            assert sorted(got) == ["23514 trg_teams_no_cycle", "ok"], got
            parents = dict(conn.execute("SELECT id, parent_team_id FROM platform.teams WHERE id IN (%s, %s)", (a, b)))
            assert sum(p is not None for p in parents.values()) == 1, parents
            reliability.cases += 1
            reliability.add("cycles refused", 1)
    finally:
        close_all(conns)


def test_concurrent_rotations_of_one_token_make_one_successor(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Two rotations of one live token at once: one successor commits and revokes the predecessor; the other
    waits on the predecessor's lock, then finds it revoked and is refused by trg_api_tokens_rotation (23514)."""
    make = Make(conn)
    owner = make.user()
    conns = worker_connections(db, 2)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    insert = (  # as the identity service (the schema owner is exempt: restores replay old chains)
        "INSERT INTO platform.api_tokens (user_id, name, selector, verifier, expires_at, rotated_from_id, created_by)"
        " VALUES (%s, 'ci', %s, %s, %s, %s, %s)"
    )
    for c in conns:
        c.execute("SET ROLE platform_identity")
        c.commit()
    try:
        for _ in range(ROUNDS):
            first = tokens.generate()
            old = make.insert("api_tokens", user_id=owner, name="ci", selector=first.selector, verifier=first.verifier,
                              expires_at=expires)  # fmt: skip
            barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
            news = [tokens.generate(), tokens.generate()]
            rows = [(owner, n.selector, n.verifier, expires, old, owner) for n in news]
            got = in_parallel([partial(_outcome, c, barrier, insert, row) for row, c in zip(rows, conns, strict=True)])
            assert sorted(got) == ["23514 trg_api_tokens_rotation", "ok"], got
            successors = conn.execute("SELECT count(*) FROM platform.api_tokens WHERE rotated_from_id = %s", (old,))
            assert successors.fetchone() == (1,)
            revoked = conn.execute("SELECT revoked_at IS NOT NULL FROM platform.api_tokens WHERE id = %s", (old,))
            assert revoked.fetchone() == (True,)
            reliability.cases += 1
            reliability.add("rotations refused", 1)
    finally:
        close_all(conns)
