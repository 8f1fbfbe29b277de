"""Pieces the property tests share: trying a write without leaving anything behind, comparing the database's
verdict with an oracle's, and hypothesis settings sized for ``make test``.

Each property test runs its examples on one database (the ``conn`` fixture). Every example runs inside a
transaction that is rolled back at its end (:func:`example_scope`), and every write inside a savepoint
(:func:`attempt`), so a rejected write leaves nothing and examples never see each other's rows.

The database's verdict is compared with an oracle, not asserted example by example: disagreements are
collected in a :class:`PropertyLog` and the test fails at the end, listing the shortest ones. So a property
that finds a bug still runs all its examples and the report counts them.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.reliability.report import Record

SCALE = float(os.environ.get("PLATFORMDB_RELIABILITY_SCALE", "1"))
"""Multiplies every property's example count (``make reliability`` may run more than ``make test``)."""

# What "no whitespace" means in a rule about text: the characters Python's str.isspace() accepts, i.e. Unicode's
# White_Space property (PropList.txt) plus the four information separators U+001C-U+001F. The schema's rules
# use the same set (models/identity.py WHITESPACE); PostgreSQL's own \s is locale-dependent and narrower.
WHITESPACE = (
    "".join(chr(c) for c in (*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
assert all(c.isspace() for c in WHITESPACE)
LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
DIGITS = "0123456789"
HEX = DIGITS + "abcdef"


def prop_settings(max_examples: int) -> settings:
    """Hypothesis settings for one property: ``max_examples`` (scaled), no deadline (a database round trip
    on a loaded 2-core machine is not a performance bug), and the health checks that only measure speed off."""
    return settings(
        max_examples=max(1, int(max_examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class Outcome(NamedTuple):
    """What the database did with a write: accepted (both None) or the SQLSTATE and constraint it named."""

    sqlstate: str | None
    constraint: str | None

    @property
    def accepted(self) -> bool:
        return self.sqlstate is None

    def __str__(self) -> str:
        return "accepted" if self.accepted else f"rejected {self.sqlstate} {self.constraint}"


ACCEPTED = Outcome(None, None)


def check_violation(violated: set[str]) -> Outcome:
    """The outcome of a write that violates the CHECK constraints ``violated``: PostgreSQL evaluates a table's
    CHECK constraints in name order and reports the first that fails (relcache sorts them by name)."""
    return Outcome("23514", min(violated)) if violated else ACCEPTED


@contextmanager
def example_scope(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """One example's transaction, always rolled back: the next example starts from the same database."""
    with conn.transaction(force_rollback=True):
        yield


def attempt(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> tuple[Outcome, list[Any]]:
    """Run one write in a savepoint; (ACCEPTED, returned rows) or (the rejection, [])."""
    try:
        with conn.transaction():
            cur = conn.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
    except psycopg.Error as exc:
        return Outcome(exc.sqlstate or f"client:{type(exc).__name__}", exc.diag.constraint_name), []
    return ACCEPTED, rows


def insert_sql(table: str, values: dict[str, Any], returning: str | None = None) -> str:
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return f"INSERT INTO platform.{table} ({cols}) VALUES ({marks})" + (f" RETURNING {returning}" if returning else "")


def counts(conn: psycopg.Connection[Any], *tables: str) -> dict[str, int]:
    """Row counts of platform tables, in one round trip."""
    if not tables:
        return {}
    row = conn.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM platform.{t})" for t in tables)).fetchone()
    assert row is not None
    return dict(zip(tables, (int(n) for n in row), strict=True))


class PropertyLog:
    """Counts a property's cases and collects where the database disagreed with the rule."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.classes: Counter[str] = Counter()
        self.mismatches: list[str] = []

    def case(self, label: str) -> None:
        """One generated example, of class ``label`` (e.g. valid / invalid)."""
        self.record.cases += 1
        self.classes[label] += 1

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.mismatches.append(what)
        return ok

    def expect(self, case: Any, expected: Outcome, got: Outcome) -> bool:
        return self.check(got == expected, f"{case!r}: expected {expected}, got {got}")

    def expect_counts(self, case: Any, before: dict[str, int], after: dict[str, int], delta: dict[str, int]) -> bool:
        """Row counts moved by exactly ``delta`` (0 for tables not named): nothing partial landed."""
        wanted = {t: before[t] + delta.get(t, 0) for t in before}
        return self.check(after == wanted, f"{case!r}: row counts {after}, expected {wanted} (before {before})")

    def finish(self, *, require: tuple[str, ...] = ()) -> None:
        """Record the figures; fail listing the shortest disagreements, if any. ``require`` names case classes
        that must have been generated at least once (a generator that never makes invalid values tests
        nothing)."""
        self.record.figures.update(self.classes)
        self.record.figures["mismatches"] = len(self.mismatches)
        shortest = [m if len(m) <= 240 else m[:240] + "..." for m in sorted(set(self.mismatches), key=len)[:8]]
        self.record.counterexamples = shortest
        missing = [label for label in require if not self.classes[label]]
        assert not missing, f"the generators produced no {missing} cases in {self.record.cases}"
        assert not self.mismatches, (
            f"{len(self.mismatches)} of {self.record.cases} cases disagree with the rule; shortest:\n  "
            + "\n  ".join(shortest)
        )


# --- generators -----------------------------------------------------------------------------------------
Mutation = Callable[[st.DrawFn, str], str]

TEXT_CHAR = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
"""Any character PostgreSQL text can hold (no NUL, no lone surrogates)."""


def insert_at(draw: st.DrawFn, s: str, piece: str) -> str:
    """``s`` with ``piece`` inserted at a drawn position."""
    i = draw(st.integers(0, len(s)))
    return s[:i] + piece + s[i:]


def valid_or_not(valid: st.SearchStrategy[str], mutations: list[Mutation]) -> st.SearchStrategy[str]:
    """Half values from ``valid``, half mutants of them (one_of would flatten ``valid``'s own branches and
    make mutants rare)."""
    return st.one_of(valid.map(lambda v: v), mutants(valid, mutations))


def mutants(base: st.SearchStrategy[str], mutations: list[Mutation]) -> st.SearchStrategy[str]:
    """Values from ``base`` damaged by one of ``mutations``; mostly invalid, and the oracle decides."""

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        value = draw(base)
        mutation = draw(st.sampled_from(mutations))
        return mutation(draw, value)

    return mutated()


# --- the deployment state machine -------------------------------------------------------------------------
STATUSES = ("pending", "in_progress", "succeeded", "failed", "cancelled", "rolled_back")
ACTIVE = ("pending", "in_progress")
LEGAL = {
    ("pending", "in_progress"),
    ("pending", "cancelled"),
    ("in_progress", "succeeded"),
    ("in_progress", "failed"),
    ("in_progress", "cancelled"),
    ("succeeded", "rolled_back"),
    ("failed", "rolled_back"),
}
"""The state machine of docs/DESIGN.md; the property test first checks the database's table says the same."""


def deployment_state(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT status, started_at, deployed_at FROM platform.deployments WHERE id = %s", (deployment,)
    ).fetchone()
    assert row is not None
    return tuple(row)


def history(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> list[tuple[str | None, str]]:
    rows = conn.execute(
        "SELECT from_status, to_status FROM platform.deployment_status_history WHERE deployment_id = %s ORDER BY id",
        (deployment,),
    ).fetchall()
    return [(a, b) for a, b in rows]


def stamps_consistent(status: str, started_at: Any, deployed_at: Any) -> bool:
    """What the status implies about the timestamps (the three CHECKs, restated)."""
    return (
        (status in ACTIVE) == (deployed_at is None)
        and (status in ("pending", "cancelled") or started_at is not None)
        and (started_at is None or deployed_at is None or deployed_at >= started_at)
    )
