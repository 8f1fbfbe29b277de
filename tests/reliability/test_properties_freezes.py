"""Property tests of deploy freezes and the promotion path (revision 0050).

Freeze boundaries are checked to the microsecond against the rule written out by hand: a freeze [start, end)
holds a rollout at instant t iff start <= t < end, it matches the scope, and (for a rollback) it freezes
rollbacks. Promotion graphs are built from generated edge sequences, cycles and self-edges included: the
database must store exactly the edges that keep the graph acyclic, and must ask of a release exactly the
environments before the target (every ancestor) in which it has not succeeded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from hypothesis import example, given
from hypothesis import strategies as st

from tests.factories import Make
from tests.reliability.report import Record
from tests.reliability.support import ACCEPTED, Outcome, PropertyLog, attempt, example_scope, prop_settings

US = dt.timedelta(microseconds=1)
INSTANTS = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC))


def freeze_holds(start: dt.datetime, end: dt.datetime, at: dt.datetime) -> bool:
    return start <= at and at < end


@st.composite
def freeze_cases(draw: st.DrawFn) -> tuple[dt.datetime, int, int, bool, bool, str]:
    """(start, length in µs, offset of the instant from start in µs, rollback?, freezes rollbacks?, scope)."""
    start = draw(INSTANTS)
    length = draw(st.integers(1, 10**12))  # up to ~11.5 days
    offset = draw(
        st.one_of(
            st.integers(-3, 3),  # around the start
            st.integers(length - 3, length + 3),  # around the end
            st.integers(-(10**12), 2 * 10**12),
        )
    )
    scope = draw(st.sampled_from(["environment", "service", "everything", "other environment", "other service"]))
    return start, length, offset, draw(st.booleans()), draw(st.booleans()), scope


def test_freeze_boundaries_to_the_microsecond(conn: psycopg.Connection[Any], reliability: Record) -> None:
    make = Make(conn)
    service, env, other_env, other_service = make.service(), make.environment(), make.environment(), make.service()
    deployment = make.deployment(service, env)
    log = PropertyLog(reliability)
    scopes = {
        "environment": {"environment_id": env},
        "service": {"service_id": service},
        "everything": {},
        "other environment": {"environment_id": other_env},
        "other service": {"service_id": other_service, "environment_id": env},
    }

    @prop_settings(300)
    @given(case=freeze_cases())
    @example(case=(dt.datetime(2026, 12, 24, tzinfo=dt.UTC), 1, 0, False, False, "environment"))
    @example(case=(dt.datetime(2026, 12, 24, tzinfo=dt.UTC), 1, 1, False, False, "environment"))
    @example(case=(dt.datetime(2026, 12, 24, tzinfo=dt.UTC), 5, -1, False, False, "everything"))
    def run(case: tuple[dt.datetime, int, int, bool, bool, str]) -> None:
        start, length, offset, rollback, freezes_rollbacks, scope = case
        end, at = start + length * US, start + offset * US
        in_scope = not scope.startswith("other")
        expected = freeze_holds(start, end, at) and in_scope and (freezes_rollbacks or not rollback)
        log.case("frozen" if expected else "free")
        with example_scope(conn):
            make.freeze(during=(f"[{start.isoformat()},{end.isoformat()})"), freezes_rollbacks=freezes_rollbacks,
                        **scopes[scope])  # fmt: skip
            row = conn.execute(
                "SELECT count(*) FROM platform.freezes_in_force(%s, %s, %s, %s, %s)",
                (service, env, at, rollback, deployment),
            ).fetchone()
            log.check(row == (int(expected),), f"{case!r}: in force {row}, expected {expected}")

    run()
    log.finish(require=("frozen", "free"))


EDGES = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=20)


def reaches(edges: set[tuple[int, int]], source: int, target: int) -> bool:
    seen, todo = {source}, [source]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                todo.append(b)
    return False


def test_promotion_graph_stays_acyclic(conn: psycopg.Connection[Any], reliability: Record) -> None:
    """Edges are inserted in the order generated: a self-edge is refused by its CHECK, a repeated edge by the
    key, an edge whose target already reaches its source by trg_environment_promotions_acyclic; all others are
    stored."""
    make = Make(conn)
    envs = [make.environment() for _ in range(6)]
    log = PropertyLog(reliability)

    @prop_settings(150)
    @given(edges=EDGES)
    @example(edges=[(0, 1), (1, 2), (2, 0)])
    @example(edges=[(3, 3)])
    def run(edges: list[tuple[int, int]]) -> None:
        kept: set[tuple[int, int]] = set()
        with example_scope(conn):
            for a, b in edges:
                if a == b:
                    want = Outcome("23514", "ck_environment_promotions_not_self")
                elif (a, b) in kept:
                    want = Outcome("23505", "pk_environment_promotions")
                elif reaches(kept, b, a):
                    want = Outcome("23514", "trg_environment_promotions_acyclic")
                else:
                    want = ACCEPTED
                log.case("accepted" if want == ACCEPTED else "cycle" if want.constraint.startswith("trg") else "other")  # type: ignore[union-attr]
                got, _ = attempt(
                    conn,
                    "INSERT INTO platform.environment_promotions (from_environment_id, to_environment_id)"
                    " VALUES (%s, %s)",
                    (envs[a], envs[b]),
                )
                log.expect((edges, (a, b)), want, got)
                if got == ACCEPTED:
                    kept.add((a, b))
            stored = conn.execute(
                "SELECT from_environment_id, to_environment_id FROM platform.environment_promotions"
            ).fetchall()
            log.check({(envs.index(f), envs.index(t)) for f, t in stored} == kept, f"{edges!r}: stored {stored}")

    run()
    log.finish(require=("accepted", "cycle"))


@st.composite
def promotion_cases(draw: st.DrawFn) -> tuple[set[tuple[int, int]], set[int], int]:
    """A DAG on 6 environments (edges from lower to higher index), where the release succeeded, the target."""
    pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)]
    edges = set(draw(st.lists(st.sampled_from(pairs), max_size=10)))
    return edges, set(draw(st.lists(st.integers(0, 5), max_size=6))), draw(st.integers(0, 5))


def test_promotion_needs_every_ancestor(conn: psycopg.Connection[Any], reliability: Record) -> None:
    """platform.promotion_missing (what trg_deployments_promoted refuses on) names exactly the ancestors of the
    target in which the release has no succeeded deployment."""
    make = Make(conn)
    envs = [make.environment() for _ in range(6)]
    log = PropertyLog(reliability)

    @prop_settings(100)
    @given(case=promotion_cases())
    def run(case: tuple[set[tuple[int, int]], set[int], int]) -> None:
        edges, succeeded, target = case
        ancestors = {a for a in range(6) if a != target and reaches(edges, a, target)}
        expected = ancestors - succeeded
        log.case("blocked" if expected else "clear")
        with example_scope(conn):
            service = make.service()
            for e in succeeded:  # before the edges exist, so each start is unconstrained
                make.set_status(make.deployment(service, envs[e]), "in_progress", "succeeded")
            make.deployment(service, envs[(target + 1) % 6], "2.0.0")  # another release's success does not count
            for a, b in edges:
                make.insert("environment_promotions", "from_environment_id", from_environment_id=envs[a],
                            to_environment_id=envs[b])  # fmt: skip
            rows = conn.execute(
                "SELECT * FROM platform.promotion_missing(%s, '1.0.0', %s)", (service, envs[target])
            ).fetchall()
            got = {envs.index(uuid.UUID(str(r[0]))) for r in rows}
            log.check(got == expected, f"{case!r}: missing {got}, expected {expected}")

    run()
    log.finish(require=("blocked", "clear"))
