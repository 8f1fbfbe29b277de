"""Property tests of the delivery rules (release identifiers, the deployment state machine and its timestamps)
and of service dependencies.

Release identifiers follow their specifications: semver.org 2.0 for versions (written out by hand below, not
copied from the CHECK's regular expression), Git object names for commits, OCI digests for artifacts. The
state machine is checked against generated sequences of target statuses: the database must accept exactly
the moves of the legal-transition table, never store another status, and log exactly the accepted path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from hypothesis import example, given
from hypothesis import strategies as st

from tests.factories import COMMIT_SHA, DIGEST, Make
from tests.reliability.report import Record
from tests.reliability.support import (
    ACCEPTED,
    ACTIVE,
    DIGITS,
    HEX,
    LEGAL,
    LOWER,
    STATUSES,
    UPPER,
    WHITESPACE,
    Mutation,
    Outcome,
    PropertyLog,
    attempt,
    check_violation,
    counts,
    deployment_state,
    example_scope,
    history,
    insert_at,
    insert_sql,
    prop_settings,
    stamps_consistent,
    valid_or_not,
)

ALNUM = LOWER + UPPER + DIGITS


def assert_transition_table(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute("SELECT from_status, to_status FROM platform.deployment_status_transitions").fetchall()
    assert {(a, b) for a, b in rows} == LEGAL


def insert_release(conn: psycopg.Connection[Any], service_id: uuid.UUID, **values: Any) -> Outcome:
    row = {"service_id": service_id, "version": "1.0.0", "commit_sha": COMMIT_SHA, "artifact_digest": DIGEST} | values
    outcome, _ = attempt(conn, insert_sql("releases", row), list(row.values()))
    return outcome


# --- releases.version --------------------------------------------------------------------------------------
def semver_ok(version: str) -> bool:
    """semver.org 2.0, clause by clause, plus the schema's 128-character limit."""

    def number(s: str) -> bool:  # clause 2: non-negative integers, no leading zeroes
        return s != "" and all(c in DIGITS for c in s) and (s == "0" or s[0] != "0")

    def identifier(s: str) -> bool:  # clauses 9 and 10: [0-9A-Za-z-], non-empty
        return s != "" and all(c in ALNUM + "-" for c in s)

    def prerelease_identifier(s: str) -> bool:  # clause 9: numeric identifiers have no leading zeroes
        return identifier(s) and (not all(c in DIGITS for c in s) or number(s))

    if len(version) > 128:
        return False
    rest, plus, build = version.partition("+")
    core, dash, pre = rest.partition("-")
    parts = core.split(".")
    return (
        len(parts) == 3
        and all(number(p) for p in parts)
        and (not dash or all(prerelease_identifier(i) for i in pre.split(".")))
        and (not plus or all(identifier(i) for i in build.split(".")))
    )


NUMBER = st.one_of(st.integers(0, 20), st.integers(0, 10**20)).map(str)
PRERELEASE_ID = st.one_of(NUMBER, st.text(ALNUM + "-", min_size=1, max_size=8).filter(lambda s: not s.isdigit()))
BUILD_ID = st.text(ALNUM + "-", min_size=1, max_size=8)
VALID_VERSIONS = st.builds(
    lambda major, minor, patch, pre, build: (
        f"{major}.{minor}.{patch}" + ("-" + ".".join(pre) if pre else "") + ("+" + ".".join(build) if build else "")
    ),
    NUMBER,
    NUMBER,
    NUMBER,
    st.lists(PRERELEASE_ID, max_size=4),
    st.lists(BUILD_ID, max_size=3),
)


def _zero_padded_prerelease(draw: st.DrawFn, version: str) -> str:
    rest, plus, build = version.partition("+")
    core, _, pre = rest.partition("-")
    ids = pre.split(".") if pre else []
    numeric = [i for i, ident in enumerate(ids) if ident.isdigit()]
    if numeric:
        index = draw(st.sampled_from(numeric))
        ids[index] = "0" + ids[index]
    else:
        ids.append("0" + draw(NUMBER))
    return f"{core}-{'.'.join(ids)}" + (plus + build)


VERSION_MUTATIONS: list[Mutation] = [
    lambda d, s: "v" + s,
    lambda d, s: "0" + s,  # leading zero in the major version
    lambda d, s: s.replace(".", ".0", 1),  # leading zero in the minor version (or a valid 0 → 00)
    _zero_padded_prerelease,
    lambda d, s: s.split("-")[0].split("+")[0].rsplit(".", 1)[0],  # 1.2
    lambda d, s: s.split("-")[0].split("+")[0] + ".4",  # 1.2.3.4
    lambda d, s: s + d(st.sampled_from(["-", "+", "-a..b", ".", "-rc.", "+b..1"])),
    lambda d, s: insert_at(d, s, d(st.sampled_from(list("_!~é ") + list(WHITESPACE)))),
    lambda d, s: s + "+" + "b" * max(1, 129 - len(s) - 1),
    lambda d, s: s + "\n",
]


def test_releases_version_is_semver(conn: psycopg.Connection[Any], reliability: Record) -> None:
    service = Make(conn).service()
    log = PropertyLog(reliability)

    @prop_settings(200)
    @given(version=valid_or_not(VALID_VERSIONS, VERSION_MUTATIONS))
    @example(version="1.0.0-01")  # semver 2.0 clause 9: numeric identifiers MUST NOT include leading zeroes
    @example(version="1.2.3-rc.007+build.5")
    def run(version: str) -> None:
        valid = semver_ok(version)
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, "releases", "audit_logs")
            got = insert_release(conn, service, version=version)
            log.expect(version, ACCEPTED if valid else Outcome("23514", "ck_releases_version_semver"), got)
            delta = {"releases": 1, "audit_logs": 1} if got.accepted else {}
            log.expect_counts(version, before, counts(conn, *before), delta)

    run()
    log.finish(require=("valid", "invalid"))


# --- releases.commit_sha and artifact_digest ----------------------------------------------------------------
def commit_sha_ok(sha: str) -> bool:
    """A Git object name: SHA-1 (40) or SHA-256 (64) lower-case hex digits."""
    return len(sha) in (40, 64) and all(c in HEX for c in sha)


def digest_ok(digest: str) -> bool:
    """An OCI content digest as the schema allows it: sha256: and 64 lower-case hex digits."""
    algorithm, colon, encoded = digest.partition(":")
    return algorithm == "sha256" and colon == ":" and len(encoded) == 64 and all(c in HEX for c in encoded)


HEX_MUTATIONS: list[Mutation] = [
    lambda d, s: s.upper(),
    lambda d, s: s[:-1],
    lambda d, s: s + d(st.sampled_from(HEX)),
    lambda d, s: insert_at(d, s[:-1], d(st.sampled_from(list("gxzG:-") + list(WHITESPACE)))),
    lambda d, s: s + "\n",
    lambda d, s: "",
]
VALID_SHAS = st.sampled_from([40, 64]).flatmap(lambda n: st.text(HEX, min_size=n, max_size=n))
SHA_MUTATIONS: list[Mutation] = [
    *HEX_MUTATIONS,
    lambda d, s: "sha1:" + s,
    lambda d, s: s[: d(st.sampled_from([39, 41, 63, 65]))].ljust(41, "a"),
]
VALID_DIGESTS = st.text(HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h)
DIGEST_MUTATIONS: list[Mutation] = [
    *HEX_MUTATIONS,
    lambda d, s: s.removeprefix("sha256:"),
    lambda d, s: s.replace("sha256", d(st.sampled_from(["SHA256", "sha512", "sha256 ", "md5"])), 1),
    lambda d, s: s.replace(":", "@", 1),
]


def _release_column_property(
    conn: psycopg.Connection[Any], reliability: Record, column: str, strategy: st.SearchStrategy[str], oracle: Any
) -> None:
    service = Make(conn).service()
    log = PropertyLog(reliability)

    @prop_settings(100)
    @given(value=strategy)
    def run(value: str) -> None:
        valid = oracle(value)
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, "releases", "audit_logs")
            got = insert_release(conn, service, **{column: value})
            log.expect(value, ACCEPTED if valid else Outcome("23514", f"ck_releases_{column}_format"), got)
            delta = {"releases": 1, "audit_logs": 1} if got.accepted else {}
            log.expect_counts(value, before, counts(conn, *before), delta)

    run()
    log.finish(require=("valid", "invalid"))


def test_releases_commit_sha_format(conn: psycopg.Connection[Any], reliability: Record) -> None:
    _release_column_property(conn, reliability, "commit_sha", valid_or_not(VALID_SHAS, SHA_MUTATIONS), commit_sha_ok)


def test_releases_artifact_digest_format(conn: psycopg.Connection[Any], reliability: Record) -> None:
    strategy = valid_or_not(VALID_DIGESTS, DIGEST_MUTATIONS)
    _release_column_property(conn, reliability, "artifact_digest", strategy, digest_ok)


# --- service dependencies ------------------------------------------------------------------------------------
def test_service_dependencies_refuse_only_self_and_duplicates(
    conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Any graph of dependencies between distinct services is stored, cycles included; a self-dependency is
    refused by its CHECK and a repeated edge by the primary key."""
    make = Make(conn)
    team = make.team()
    services = [make.service(owner_team_id=team) for _ in range(4)]
    log = PropertyLog(reliability)

    @prop_settings(120)
    @given(edges=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=10))
    def run(edges: list[tuple[int, int]]) -> None:
        log.case("with self edge" if any(a == b for a, b in edges) else "distinct edges")
        stored: set[tuple[int, int]] = set()
        with example_scope(conn):
            for a, b in edges:
                if a == b:
                    expected = Outcome("23514", "ck_service_dependencies_no_self_dependency")
                elif (a, b) in stored:
                    expected = Outcome("23505", "pk_service_dependencies")
                else:
                    expected = ACCEPTED
                before = counts(conn, "service_dependencies", "audit_logs")
                got, _ = attempt(
                    conn,
                    "INSERT INTO platform.service_dependencies (service_id, depends_on_service_id) VALUES (%s, %s)",
                    (services[a], services[b]),
                )
                log.expect((edges, (a, b)), expected, got)
                delta = {"service_dependencies": 1, "audit_logs": 1} if got.accepted else {}
                log.expect_counts((edges, (a, b)), before, counts(conn, *before), delta)
                if got.accepted:
                    stored.add((a, b))
            if any((b, a) in stored for a, b in stored):
                log.classes["with a cycle"] += 1

    run()
    log.finish(require=("with self edge", "distinct edges", "with a cycle"))


# --- the deployment state machine --------------------------------------------------------------------------
def test_deployment_status_sequences_follow_the_state_machine(
    conn: psycopg.Connection[Any], reliability: Record
) -> None:
    """Any sequence of requested statuses: the legal moves are taken, the others refused by
    trg_deployments_status_transition; the row never holds an unreachable status and the history is exactly
    the path taken."""
    assert_transition_table(conn)
    make = Make(conn)
    service, environment = make.service(), make.environment()
    make.release(service, "1.0.0")
    log = PropertyLog(reliability)
    # Every status, twice the ones past pending (so that sequences get deep), and two that do not exist.
    targets = st.sampled_from([*STATUSES, *STATUSES[1:], "bogus", "PENDING"])

    @prop_settings(200)
    @given(sequence=st.lists(targets, max_size=8))
    @example(sequence=["in_progress", "succeeded", "rolled_back", "pending"])
    @example(sequence=["cancelled", "in_progress"])
    def run(sequence: list[str]) -> None:
        log.case(f"length {min(len(sequence), 4)}{'+' if len(sequence) >= 4 else ''}")
        with example_scope(conn):
            deployment = make.deployment(service, environment, "1.0.0")
            status, path = "pending", [(None, "pending")]
            for step, target in enumerate(sequence):
                audit_before = counts(conn, "audit_logs")
                got, _ = attempt(
                    conn, "UPDATE platform.deployments SET status = %s WHERE id = %s", (target, deployment)
                )
                moves = (status, target) in LEGAL
                expected = (
                    ACCEPTED if moves or target == status else Outcome("23514", "trg_deployments_status_transition")
                )
                case = (sequence, step)
                log.expect(case, expected, got)
                if got.accepted and target != status:
                    status = target
                    path.append((path[-1][1], target))
                now_status, started_at, deployed_at = deployment_state(conn, deployment)
                log.check(now_status == status, f"{case!r}: status {now_status}, expected {status}")
                log.check(
                    stamps_consistent(now_status, started_at, deployed_at),
                    f"{case!r}: stamps {started_at}, {deployed_at}",
                )
                log.check(history(conn, deployment) == path, f"{case!r}: history {history(conn, deployment)} != {path}")
                # An audit row per real move; none for a refused one or a no-op.
                log.expect_counts(
                    case, audit_before, counts(conn, "audit_logs"), {"audit_logs": int(got.accepted and moves)}
                )
            log.classes["moves taken"] += len(path) - 1
            log.classes[f"ended {status}"] += 1

    run()
    log.finish(require=("ended rolled_back", "ended cancelled"))


Stamp = dt.datetime | tuple[dt.datetime, dt.datetime]
"""A timestamp the writer gave (exact), or one the trigger stamps with clock_timestamp() during the UPDATE:
known only to lie between the clock read just before the statement and the clock read just after it."""


def bounds(stamp: Stamp) -> tuple[dt.datetime, dt.datetime]:
    return stamp if isinstance(stamp, tuple) else (stamp, stamp)


def at_least(a: Stamp, b: Stamp) -> bool | None:
    """a >= b: True or False when the bounds decide it, None when they do not."""
    (a_lo, a_hi), (b_lo, b_hi) = bounds(a), bounds(b)
    if a_lo >= b_hi:
        return True
    if a_hi < b_lo:
        return False
    return None


def within(value: Any, stamp: Stamp | None) -> bool:
    if stamp is None or value is None:
        return value is stamp
    lo, hi = bounds(stamp)
    return bool(lo <= value <= hi)


def clock(conn: psycopg.Connection[Any]) -> dt.datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


TOLERATED_BEFORE, TOLERATED_AFTER = dt.timedelta(seconds=30), dt.timedelta(seconds=5)
"""How far before and after the database clock a writer-given stamp may lie (trg_deployments_timestamps)."""
FAR_FROM_CLOCK = Outcome("23514", "trg_deployments_timestamps")
OFF_ITS_MOVE = Outcome("23000", "trg_deployments_timestamps")


def near_clock(given: dt.datetime, before: dt.datetime, after: dt.datetime) -> list[bool]:
    """Whether trg_deployments_timestamps keeps ``given``: it does when the clock it reads during the statement
    (somewhere in [before, after]) lies in [given - 5 s, given + 30 s]; both answers when the bounds do not
    decide it."""
    lo, hi = given - TOLERATED_AFTER, given + TOLERATED_BEFORE
    if lo <= before and after <= hi:
        return [True]
    if after < lo or before > hi:
        return [False]
    return [True, False]


def step_outcomes(
    status: str, given: dict[str, dt.datetime], stored_started: Stamp | None, default: Stamp
) -> list[tuple[Outcome, Stamp | None, Stamp | None]]:
    """Every outcome of one legal move (from an active status) the rules allow, with the stamps it stores:
    trg_deployments_timestamps first (started_at, then deployed_at), then the CHECKs."""
    before, after = bounds(default)

    def options(column: str, its_move: bool, kept: Stamp | None) -> list[tuple[Outcome | None, Stamp | None]]:
        value = given.get(column)
        if not its_move:
            return [(OFF_ITS_MOVE, None)] if value is not None else [(None, kept)]
        if value is None:
            return [(None, default)]
        return [(None, value) if ok else (FAR_FROM_CLOCK, None) for ok in near_clock(value, before, after)]

    out: list[tuple[Outcome, Stamp | None, Stamp | None]] = []
    for started_refusal, started in options("started_at", status == "in_progress", stored_started):
        if started_refusal is not None:
            out.append((started_refusal, None, None))
            continue
        for deployed_refusal, deployed in options("deployed_at", status not in ACTIVE, None):
            if deployed_refusal is not None:
                out.append((deployed_refusal, None, None))
                continue
            ordered = None if started is None or deployed is None else at_least(deployed, started)
            if ordered is not False:
                out.append((ACCEPTED, started, deployed))
            if ordered is not True and started is not None and deployed is not None:
                out.append((check_violation({"ck_deployments_deployed_after_started"}), None, None))
    return out


def test_deployment_finishes_no_earlier_than_it_started(conn: psycopg.Connection[Any], reliability: Record) -> None:
    """Writer-supplied started_at/deployed_at, or the trigger's clock_timestamp() when not supplied: a stamp is
    kept on its own move when it lies within 30 s before to 5 s after the clock, refused further off
    (trg_deployments_timestamps, 23514), refused off its move (23000); a deployment that would finish before it
    started is refused by ck_deployments_deployed_after_started; what is stored is what was given or the clock
    at the time of the statement."""
    make = Make(conn)
    service, environment = make.service(), make.environment()
    make.release(service, "1.0.0")
    log = PropertyLog(reliability)
    offsets = st.one_of(
        st.none(),
        st.just(dt.timedelta(0)),
        st.timedeltas(min_value=dt.timedelta(days=-3), max_value=dt.timedelta(days=3)),
        st.timedeltas(min_value=dt.timedelta(seconds=-40), max_value=dt.timedelta(seconds=10)),
        st.sampled_from([-TOLERATED_BEFORE, TOLERATED_AFTER]),  # the edges of the tolerance
        st.integers(-3, 3).map(lambda us: dt.timedelta(microseconds=us)),
    )

    @prop_settings(200)
    @given(
        via_in_progress=st.booleans(),
        final=st.sampled_from(["succeeded", "failed", "cancelled"]),
        started=offsets,
        finished=offsets,
        finished_early=offsets,
    )
    def run(
        via_in_progress: bool,
        final: str,
        started: dt.timedelta | None,
        finished: dt.timedelta | None,
        finished_early: dt.timedelta | None,
    ) -> None:
        if not via_in_progress:
            final = "cancelled"  # pending -> cancelled is the only way to finish without starting
        with example_scope(conn):
            deployment = make.deployment(service, environment, "1.0.0")
            anchor = clock(conn)  # supplied stamps are offsets from here
            started_at = None if started is None else anchor + started
            deployed_at = None if finished is None else anchor + finished
            steps: list[tuple[str, dict[str, Any]]] = []
            if via_in_progress:
                first = {"started_at": started_at}
                if finished_early is not None:  # a finish time given while entering an active status
                    first["deployed_at"] = anchor + finished_early
                steps.append(("in_progress", first))
                steps.append((final, {"deployed_at": deployed_at}))
            else:
                steps.append((final, {"started_at": started_at, "deployed_at": deployed_at}))
            stored_started: Stamp | None = None
            outcome = "finished"
            for status, stamps in steps:
                given = {k: v for k, v in stamps.items() if v is not None}
                sets = "".join(f", {column} = %s" for column in given)
                before = clock(conn)
                got, _ = attempt(
                    conn,
                    f"UPDATE platform.deployments SET status = %s{sets} WHERE id = %s",
                    (status, *given.values(), deployment),
                )
                possible = step_outcomes(status, given, stored_started, (before, clock(conn)))
                case = (status, {k: v - anchor for k, v in given.items()})
                if len({o for o, _, _ in possible}) > 1:  # the clock ran past an edge during the statement
                    log.classes["undecidable by the clock"] += 1
                log.check(got in {o for o, _, _ in possible}, f"{case!r}: {got}, expected one of {possible}")
                if not got.accepted:
                    outcome = "refused entering in_progress" if status == "in_progress" else "refused finishing"
                    log.classes[f"refused by {got.constraint} ({got.sqlstate})"] += 1
                    break
                state, new_started, new_deployed = deployment_state(conn, deployment)
                log.check(
                    state == status
                    and any(within(new_started, s) and within(new_deployed, d) for o, s, d in possible if o.accepted),
                    f"{case!r}: stored {(state, new_started, new_deployed)}, expected one of {possible}",
                )
                stored_started = new_started
            log.case(outcome)

    run()
    log.finish(
        require=(
            "finished",
            "refused entering in_progress",
            "refused finishing",
            "refused by trg_deployments_timestamps (23514)",
            "refused by trg_deployments_timestamps (23000)",
            # ck_deployments_deployed_after_started is counted when it fires, not required: since 0018 the stamps
            # trigger refuses almost every inverted pair first (the rule has its own test in test_delivery.py).
        )
    )
