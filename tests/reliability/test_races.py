"""Races: the rules that concurrent writers meet, under real concurrency.

Each worker is a thread with its own connection; a ``threading.Barrier`` releases them together, so their
statements really overlap in the server (each waits on the others' row and index locks). Every race is run
for several rounds and the figures (rounds, conflicts observed) go to the reliability report. Nothing here
asserts on timing: only on what the database holds afterwards and what each worker was told.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from tests.factories import Make
from tests.reliability.report import Record
from tests.reliability.support import LEGAL, history, stamps_consistent

T = TypeVar("T")
WORKERS = 8
BARRIER_TIMEOUT = 60  # a worker that never arrives breaks the barrier instead of hanging the suite


def in_parallel(work: list[Callable[[], T]]) -> list[T]:
    """Run each callable in its own thread; their results in order, or the first exception raised."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work[i]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"race-worker-{i}") for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BARRIER_TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "a race worker hung"
    if errors:
        raise errors[0]
    return results


def worker_connections(url: URL, n: int = WORKERS) -> list[psycopg.Connection[Any]]:
    """``n`` connections in explicit-transaction mode: each worker decides when to commit."""
    return [psycopg.connect(libpq_dsn(url)) for _ in range(n)]


def close_all(conns: list[psycopg.Connection[Any]]) -> None:
    for c in conns:
        c.close()


# --- (a) starting the same rollout ------------------------------------------------------------------------
ACTIVE_INDEX = "uq_deployments_active_service_id_environment_id"


def test_racing_rollouts_leave_exactly_one_active(db: URL, conn: psycopg.Connection[Any], reliability: Record) -> None:
    """8 workers each check that no rollout of the service is active in the environment, then all start one at
    once: in every round exactly one commits; the others get 23505 naming the partial unique index, and leave
    no deployment, history row, configuration snapshot or audit row behind."""
    make = Make(conn)
    service, environment = make.service(), make.environment()
    make.config_version(make.configuration(service, "TIMEOUT"), 30)
    rounds = 10
    conns = worker_connections(db)
    try:
        for r in range(rounds):
            version = f"1.{r}.0"
            make.release(service, version)
            barrier = threading.Barrier(WORKERS, timeout=BARRIER_TIMEOUT)

            def start(c: psycopg.Connection[Any], version: str = version, barrier: threading.Barrier = barrier) -> Any:
                row = c.execute(
                    "SELECT count(*) FROM platform.deployments WHERE service_id = %s AND environment_id = %s"
                    " AND status IN ('pending', 'in_progress')",
                    (service, environment),
                ).fetchone()
                assert row is not None
                seen_active = row[0]
                barrier.wait()
                try:
                    inserted = c.execute(
                        "INSERT INTO platform.deployments (service_id, version, environment_id)"
                        " VALUES (%s, %s, %s) RETURNING id",
                        (service, version, environment),
                    ).fetchone()
                    c.commit()
                except psycopg.Error as exc:
                    c.rollback()
                    return ("lost", exc.sqlstate, exc.diag.constraint_name, seen_active)
                assert inserted is not None
                return ("won", inserted[0], None, seen_active)

            results = in_parallel([lambda c=c: start(c) for c in conns])
            winners = [res[1] for res in results if res[0] == "won"]
            losers = [(res[1], res[2]) for res in results if res[0] == "lost"]
            assert [res[3] for res in results] == [0] * WORKERS, "every worker saw no active rollout first"
            assert len(winners) == 1, results
            assert losers == [("23505", ACTIVE_INDEX)] * (WORKERS - 1), losers
            active = conn.execute(
                "SELECT id FROM platform.deployments WHERE service_id = %s AND environment_id = %s"
                " AND status IN ('pending', 'in_progress')",
                (service, environment),
            ).fetchall()
            assert [a for (a,) in active] == winners
            reliability.cases += 1
            reliability.add("conflicts", len(losers))
            reliability.add("attempts", WORKERS)
            make.set_status(winners[0], "in_progress", "succeeded" if r % 2 else "cancelled")
    finally:
        close_all(conns)

    row = conn.execute(
        """SELECT (SELECT count(*) FROM platform.deployments),
                  (SELECT count(*) FROM platform.deployment_status_history),
                  (SELECT count(*) FROM platform.deployment_configurations),
                  (SELECT count(*) FROM platform.audit_logs WHERE entity_type = 'deployments' AND action = 'insert')"""
    ).fetchone()
    # One deployment per round, each with pending, in_progress and a final status in its history.
    assert tuple(row or ()) == (rounds, 3 * rounds, rounds, rounds)
    reliability.figures["workers"] = WORKERS


# --- (b) concurrent configuration edits --------------------------------------------------------------------
def test_concurrent_configuration_edits_keep_versions_contiguous(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """N workers x M edits of one key, released together for every edit: versions are exactly 1..N*M, none
    lost, each worker got back the version it is stored with, and versions follow commit order, so the
    highest version is the last committed. Commit order is taken from a sequence drawn after the INSERT, while
    the key's row lock (taken by the numbering trigger) is held until COMMIT."""
    make = Make(conn)
    configuration = make.configuration(make.service(), "POOL_SIZE")
    conn.execute("CREATE SEQUENCE public.reliability_commit_order")
    edits = 12
    conns = worker_connections(db)
    barrier = threading.Barrier(WORKERS, timeout=BARRIER_TIMEOUT)

    def edit(worker: int, c: psycopg.Connection[Any]) -> list[tuple[int, int, int, int]]:
        done = []
        for i in range(edits):
            barrier.wait()
            inserted = c.execute(
                "INSERT INTO platform.configuration_versions (configuration_id, kind, value)"
                " VALUES (%s, 'plain', %s) RETURNING version",
                (configuration, Jsonb({"worker": worker, "edit": i})),
            ).fetchone()
            order = c.execute("SELECT nextval('public.reliability_commit_order')").fetchone()
            c.commit()
            assert inserted is not None
            assert order is not None
            done.append((worker, i, inserted[0], order[0]))
        return done

    try:
        results = [
            x
            for per_worker in in_parallel([lambda w=w, c=c: edit(w, c) for w, c in enumerate(conns)])
            for x in per_worker
        ]
    finally:
        close_all(conns)
    total = WORKERS * edits
    stored = {
        (value["worker"], value["edit"]): version
        for version, value in conn.execute(
            "SELECT version, value FROM platform.configuration_versions WHERE configuration_id = %s", (configuration,)
        ).fetchall()
    }
    assert sorted(stored.values()) == list(range(1, total + 1)), "versions are contiguous from 1"
    assert stored == {(w, i): v for w, i, v, _ in results}, "every edit is stored, with the version it was told"
    by_commit = [v for _, _, v, _ in sorted(results, key=lambda r: r[3])]
    assert by_commit == list(range(1, total + 1)), "versions follow commit order"
    last = max(results, key=lambda r: r[3])
    effective = conn.execute(
        "SELECT version, value FROM platform.configurations c"
        " CROSS JOIN LATERAL platform.effective_configuration(c.service_id, NULL) e WHERE c.id = %s",
        (configuration,),
    ).fetchone()
    assert effective is not None
    assert (effective[0], effective[1]) == (total, {"worker": last[0], "edit": last[1]}), "the last commit is in force"
    audited = conn.execute(
        "SELECT count(*) FROM platform.audit_logs WHERE entity_type = 'configuration_versions'"
    ).fetchone()
    assert audited is not None
    assert audited[0] == total
    reliability.cases = edits
    reliability.figures.update(workers=WORKERS, edits_per_worker=edits, versions=total)
    # Edits that committed in another order than their workers' release: evidence the workers overlapped.
    reliability.figures["interleavings"] = sum(
        1 for a, b in zip(results, sorted(results, key=lambda r: r[3]), strict=True) if a != b
    )


def test_concurrent_edits_expecting_the_same_version_let_exactly_one_win(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Optimistic concurrency: 8 workers read the current version v and all write v+1 at once: one wins, the
    others are refused with 23514 trg_configuration_versions_number; no version is skipped or doubled."""
    make = Make(conn)
    configuration = make.configuration(make.service(), "FEATURE_FLAG")
    rounds = 10
    conns = worker_connections(db)
    try:
        for _ in range(rounds):
            barrier = threading.Barrier(WORKERS, timeout=BARRIER_TIMEOUT)

            def write(worker: int, c: psycopg.Connection[Any], barrier: threading.Barrier = barrier) -> Any:
                row = c.execute(
                    "SELECT coalesce(max(version), 0) FROM platform.configuration_versions WHERE configuration_id = %s",
                    (configuration,),
                ).fetchone()
                assert row is not None
                barrier.wait()
                try:
                    c.execute(
                        "INSERT INTO platform.configuration_versions (configuration_id, version, kind, value)"
                        " VALUES (%s, %s, 'plain', %s)",
                        (configuration, row[0] + 1, Jsonb(worker)),
                    )
                    c.commit()
                except psycopg.Error as exc:
                    c.rollback()
                    return (exc.sqlstate, exc.diag.constraint_name)
                return "won"

            results = in_parallel([lambda w=w, c=c: write(w, c) for w, c in enumerate(conns)])
            assert results.count("won") == 1, results
            losers = [res for res in results if res != "won"]
            assert losers == [("23514", "trg_configuration_versions_number")] * (WORKERS - 1), losers
            reliability.cases += 1
            reliability.add("conflicts", len(losers))
    finally:
        close_all(conns)
    versions = conn.execute(
        "SELECT version FROM platform.configuration_versions WHERE configuration_id = %s ORDER BY version",
        (configuration,),
    ).fetchall()
    assert [v for (v,) in versions] == list(range(1, rounds + 1))
    reliability.figures["workers"] = WORKERS


# --- (c) concurrent status transitions ---------------------------------------------------------------------
ILLEGAL_MOVE = re.compile(r"illegal deployment status transition (\w+) -> (\w+)")


def test_concurrent_status_transitions_form_a_legal_path(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Workers that each read a deployment's status and then, all at once, move it to a status of their choice
    (in_progress, succeeded, failed, cancelled, rolled_back): the history is a legal path from pending to the
    final status, every accepted move is in it, every refusal names the state machine and a move that was
    illegal from the status the worker found when its update ran; no legal move is refused."""
    make = Make(conn)
    service, environment = make.service(), make.environment()
    make.release(service, "1.0.0")
    rng = random.Random(20261124)  # noqa: S311 - which worker tries which move, not cryptography
    rounds, steps = 12, 3
    # Weighted towards starting rollouts, so that most rounds get past pending and finishing moves meet them.
    targets = ["in_progress"] * 3 + ["succeeded", "failed"] * 2 + ["cancelled", "rolled_back"]
    conns = worker_connections(db)
    outcomes: Counter[str] = Counter()
    legal_refused: list[str] = []
    try:
        for _ in range(rounds):
            deployment = make.deployment(service, environment, "1.0.0")
            moved: list[str] = []
            for _ in range(steps):
                barrier = threading.Barrier(WORKERS, timeout=BARRIER_TIMEOUT)
                chosen = [rng.choice(targets) for _ in conns]

                def move(
                    c: psycopg.Connection[Any],
                    target: str,
                    barrier: threading.Barrier = barrier,
                    deployment: uuid.UUID = deployment,
                ) -> Any:
                    c.execute("SELECT status FROM platform.deployments WHERE id = %s", (deployment,))
                    barrier.wait()
                    try:
                        cur = c.execute(
                            "UPDATE platform.deployments SET status = %s WHERE id = %s AND status IS DISTINCT FROM %s",
                            (target, deployment, target),
                        )
                        c.commit()
                    except psycopg.Error as exc:
                        c.rollback()
                        return ("refused", target, exc.sqlstate, exc.diag.constraint_name, exc.diag.message_primary)
                    return ("moved" if cur.rowcount == 1 else "no-op", target)

                results = in_parallel([partial(move, c, t) for c, t in zip(conns, chosen, strict=True)])
                for res in results:
                    outcomes[res[0]] += 1
                    if res[0] == "moved":
                        moved.append(res[1])
                    elif res[0] == "refused":
                        _, target, sqlstate, constraint, message = res
                        illegal = ILLEGAL_MOVE.fullmatch(message or "")
                        if (sqlstate, constraint) != ("23514", "trg_deployments_status_transition") or not illegal:
                            legal_refused.append(f"-> {target}: {sqlstate} {constraint}: {message}")
                        else:
                            assert (illegal[1], illegal[2]) not in LEGAL, message
                            assert illegal[2] == target, message
            path = history(conn, deployment)
            assert path[0] == (None, "pending")
            assert all(a == prev_to for (a, _), (_, prev_to) in zip(path[1:], path, strict=False)), path
            assert all(move in LEGAL for move in path[1:]), f"an illegal move was recorded: {path}"
            assert Counter(moved) == Counter(to for _, to in path[1:]), (moved, path)
            row = conn.execute(
                "SELECT status, started_at, deployed_at FROM platform.deployments WHERE id = %s", (deployment,)
            ).fetchone()
            assert row is not None
            assert row[0] == path[-1][1], (row, path)
            assert stamps_consistent(*row), (row, path)
            audited = conn.execute(
                "SELECT before ->> 'status', after ->> 'status' FROM platform.audit_logs"
                " WHERE entity_type = 'deployments' AND entity_id = %s AND action = 'update' ORDER BY id",
                (str(deployment),),
            ).fetchall()
            assert [tuple(a) for a in audited] == path[1:], "every committed state is audited, and legal"
            reliability.cases += 1
            outcomes[f"ended {path[-1][1]}"] += 1
    finally:
        close_all(conns)
    reliability.figures.update(outcomes)
    reliability.figures.update(workers=WORKERS, steps_per_round=steps, legal_moves_refused=len(legal_refused))
    reliability.counterexamples = legal_refused[:5]
    assert not legal_refused, f"{len(legal_refused)} legal moves refused, e.g. {legal_refused[:3]}"


def test_a_transaction_older_than_the_rollout_start_can_still_finish_it(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """An orchestrator opens a transaction, then another starts the rollout (started_at stamped by the trigger), then
    the first moves it on to succeeded: a legal move, so it must be accepted, with deployed_at >= started_at.
    (A trigger that stamps now() gives deployed_at the start of the *older* transaction, before started_at,
    and its own CHECK then refuses the move with 23514 ck_deployments_deployed_after_started.)"""
    reliability.cases = 1
    make = Make(conn)
    service, environment = make.service(), make.environment()
    deployment = make.deployment(service, environment, "1.0.0")
    with psycopg.connect(libpq_dsn(db)) as orchestrator:
        orchestrator.execute("SELECT status FROM platform.deployments WHERE id = %s", (deployment,))
        time.sleep(0.01)  # the clocks of the two transactions must differ by more than a microsecond
        make.set_status(deployment, "in_progress")
        try:
            orchestrator.execute("UPDATE platform.deployments SET status = 'succeeded' WHERE id = %s", (deployment,))
            orchestrator.commit()
        except psycopg.Error as exc:
            reliability.counterexamples = [f"{exc.sqlstate} {exc.diag.constraint_name}: {exc.diag.message_primary}"]
            raise
    row = conn.execute("SELECT status, started_at, deployed_at FROM platform.deployments WHERE id = %s", (deployment,))
    status, started_at, deployed_at = row.fetchone() or (None, None, None)
    assert status == "succeeded"
    assert deployed_at >= started_at


# --- closing a cycle of the promotion graph from several sessions at once ------------------------------------
def test_concurrent_edges_closing_a_cycle_let_at_most_all_but_one_in(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Each round, n workers (2 to 4) insert at once the n edges of a cycle e0 -> e1 -> ... -> e0 and commit:
    no edge alone closes it, so each would pass a check that cannot see the others. Exactly n - 1 commit; the
    last to take the table's advisory lock sees the rest and gets 23514 naming trg_environment_promotions_acyclic;
    the graph stays acyclic."""
    make = Make(conn)
    rounds = 6
    for r in range(rounds):
        n = 2 + r % 3
        envs = [make.environment() for _ in range(n)]
        conns = worker_connections(db, n)
        barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT)

        def insert(c: psycopg.Connection[Any], i: int, envs: list[Any] = envs, barrier: threading.Barrier = barrier,
                   n: int = n) -> tuple[str | None, str | None]:  # fmt: skip
            barrier.wait()
            try:
                c.execute(
                    "INSERT INTO platform.environment_promotions (from_environment_id, to_environment_id)"
                    " VALUES (%s, %s)",
                    (envs[i], envs[(i + 1) % n]),
                )
                c.commit()
            except psycopg.Error as exc:
                c.rollback()
                return exc.sqlstate, exc.diag.constraint_name
            return None, None

        try:
            results = in_parallel([lambda c=c, i=i: insert(c, i) for i, c in enumerate(conns)])
        finally:
            close_all(conns)
        assert sorted(results, key=str) == sorted(
            [(None, None)] * (n - 1) + [("23514", "trg_environment_promotions_acyclic")], key=str
        ), results
        stored = conn.execute(
            "SELECT count(*) FROM platform.environment_promotions WHERE from_environment_id = ANY(%s)", (envs,)
        ).fetchone()
        assert stored == (n - 1,)
        reliability.cases += 1
        reliability.add("attempts", n)
        reliability.add("refused", 1)


# --- approvals racing the start of the rollout (revision 0042) ----------------------------------------------
def test_two_approvals_racing_the_start_are_counted_or_refused(
    db: URL, conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Two approvers and the rollout controller, all as platform_delivery, released together: each approval
    is either counted (it committed while the rollout was pending, and the start saw it) or refused by
    trg_deployment_approvals_open (the start committed first); never lost. The start succeeds exactly when both
    approvals committed before it, and is otherwise refused by trg_deployments_approved."""
    make = Make(conn)
    service, env = make.service(), make.environment(tier="production")
    make.release(service, "1.0.0")
    rule = make.approval_rule(env, required_approvals=2)
    scope = {"service_id": service, "environment_id": env}
    deployer = make.holder("deployment:create", **scope)
    approvers = [make.holder("deployment:approve", **scope) for _ in range(2)]
    rounds, started = 12, 0
    conns = worker_connections(db, 3)
    for c in conns:
        c.execute("SET ROLE platform_delivery")
        c.commit()
    try:
        for _ in range(rounds):
            deployment = make.insert("deployments", service_id=service, version="1.0.0", environment_id=env,
                                     deployed_by=deployer)  # fmt: skip
            barrier = threading.Barrier(3, timeout=BARRIER_TIMEOUT)

            def act(
                c: psycopg.Connection[Any], sql: str, params: tuple[Any, ...], barrier: threading.Barrier = barrier
            ) -> Any:
                barrier.wait()
                try:
                    c.execute(sql, params)
                    c.commit()
                except psycopg.Error as exc:
                    c.rollback()
                    return (exc.sqlstate, exc.diag.constraint_name)
                return "ok"

            approve = ("INSERT INTO platform.deployment_approvals (deployment_id, approver_id, approval_rule_id,"
                       " decision) VALUES (%s, %s, %s, 'approved')")  # fmt: skip
            work = [partial(act, conns[i], approve, (deployment, approvers[i], rule)) for i in range(2)]
            work.append(partial(act, conns[2], "UPDATE platform.deployments SET status = 'in_progress' WHERE id = %s",
                                (deployment,)))  # fmt: skip
            *approvals, start = in_parallel(work)
            stored = conn.execute(
                "SELECT approver_id FROM platform.deployment_approvals WHERE deployment_id = %s", (deployment,)
            ).fetchall()
            told_ok = {approvers[i] for i, outcome in enumerate(approvals) if outcome == "ok"}
            assert {a for (a,) in stored} == told_ok, "an approval was lost or kept against what its writer was told"
            assert all(o in ("ok", ("23514", "trg_deployment_approvals_open")) for o in approvals), approvals
            status = conn.execute("SELECT status FROM platform.deployments WHERE id = %s", (deployment,)).fetchone()
            if start == "ok":
                assert status == ("in_progress",)
                assert told_ok == set(approvers)
                started += 1
            else:
                assert start == ("23514", "trg_deployments_approved"), start
                assert status == ("pending",)
                reliability.add("refused approvals", sum(o != "ok" for o in approvals))
            reliability.cases += 1
            make.set_status(deployment, "cancelled")
    finally:
        close_all(conns)
    reliability.figures["starts"] = started
