"""Delivery rules: releases, the deployment state machine and its append-only status history."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import (
    COMMIT_SHA,
    DIGEST,
    Make,
    assert_created_at_trigger,
    assert_keys_trigger,
    assert_updated_at_trigger,
    delete_by_id,
    rejected,
    replica_mode,
    restrict_sqlstate,
)

STATUSES = ("pending", "in_progress", "succeeded", "failed", "cancelled", "rolled_back")
LEGAL_TRANSITIONS = {
    ("pending", "in_progress"),
    ("pending", "cancelled"),
    ("in_progress", "succeeded"),
    ("in_progress", "failed"),
    ("in_progress", "cancelled"),
    ("succeeded", "rolled_back"),
    ("failed", "rolled_back"),
}
# Legal moves that bring a new (pending) deployment to each status.
PATH_TO = {
    "pending": (),
    "in_progress": ("in_progress",),
    "succeeded": ("in_progress", "succeeded"),
    "failed": ("in_progress", "failed"),
    "cancelled": ("cancelled",),
    "rolled_back": ("in_progress", "succeeded", "rolled_back"),
}
TRANSITIONS = [
    pytest.param(old, new, (old, new) in LEGAL_TRANSITIONS, id=f"{old}->{new}")
    for old in STATUSES
    for new in STATUSES
    if old != new
]


def deployment_row(conn: psycopg.Connection[Any], deployment_id: uuid.UUID) -> tuple[Any, ...]:
    """(status, started_at, deployed_at) of a deployment."""
    row = conn.execute(
        "SELECT status, started_at, deployed_at FROM platform.deployments WHERE id = %s", (deployment_id,)
    ).fetchone()
    assert row is not None
    return tuple(row)


def history(conn: psycopg.Connection[Any], deployment_id: uuid.UUID) -> list[tuple[str | None, str]]:
    rows = conn.execute(
        "SELECT from_status, to_status FROM platform.deployment_status_history WHERE deployment_id = %s ORDER BY id",
        (deployment_id,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


# releases ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1.0", "1.0", "01.2.3", "1.2.3-", "1.2.3+", "1.2.3.4", "1.2.3-rc..1", ""])
def test_releases_version_semver(make: Make, version: str) -> None:
    service = make.service()
    with rejected("23514", "ck_releases_version_semver"):
        make.release(service, version)
    make.release(service, "0.0.0")
    make.release(service, "1.2.3-rc.1+build.5")
    assert make.count("releases") == 2


@pytest.mark.parametrize(
    "commit_sha",
    ["0123456789ABCDEF0123456789ABCDEF01234567", "a" * 39, "a" * 41, "a" * 63, "g" * 40, ""],
)
def test_releases_commit_sha_format(make: Make, commit_sha: str) -> None:
    service = make.service()
    with rejected("23514", "ck_releases_commit_sha_format"):
        make.release(service, commit_sha=commit_sha)
    make.release(service, "1.0.0", commit_sha="0123456789abcdef" * 2 + "01234567")
    make.release(service, "1.0.1", commit_sha="0123456789abcdef" * 4)
    assert make.count("releases") == 2


@pytest.mark.parametrize(
    "artifact_digest",
    ["ab" * 32, "sha256:" + "ab" * 31 + "a", "sha256:" + "AB" * 32, "sha512:" + "ab" * 32, "sha256:" + "ab" * 33],
)
def test_releases_artifact_digest_format(make: Make, artifact_digest: str) -> None:
    service = make.service()
    with rejected("23514", "ck_releases_artifact_digest_format"):
        make.release(service, artifact_digest=artifact_digest)
    make.release(service, artifact_digest="sha256:" + "0123456789abcdef" * 4)
    assert make.count("releases") == 1


def test_releases_version_is_unique_per_service(make: Make) -> None:
    service, other = make.service(), make.service()
    make.release(service, "1.0.0")
    with rejected("23505", "uq_releases_service_id_version"):
        make.release(service, "1.0.0")
    make.release(other, "1.0.0")
    make.release(service, "1.0.1")
    assert make.count("releases") == 3


@pytest.mark.parametrize(
    "assignment",
    ["version = '9.9.9'", f"commit_sha = '{'f' * 40}'", f"artifact_digest = 'sha256:{'0' * 64}'", "created_by = NULL"],
)
def test_releases_are_immutable(conn: psycopg.Connection[Any], make: Make, assignment: str) -> None:
    service = make.service()
    release = make.release(service, "1.0.0")
    with rejected("23000", "trg_releases_immutable"):
        conn.execute(f"UPDATE platform.releases SET {assignment} WHERE id = %s", (release,))
    row = conn.execute("SELECT version, commit_sha, artifact_digest FROM platform.releases").fetchone()
    assert row == ("1.0.0", COMMIT_SHA, DIGEST)
    make.release(service, "1.0.1")  # a change is a new release
    assert make.count("releases") == 2


def test_releases_service_must_exist_and_cannot_be_deleted_while_released(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    with rejected("23503", "fk_releases_service_id_services"):
        make.release(uuid.uuid4())
    service, idle = make.service(), make.service()
    make.release(service)
    with rejected(restrict_sqlstate(conn), "fk_releases_service_id_services"):
        conn.execute("DELETE FROM platform.services WHERE id = %s", (service,))
    conn.execute("DELETE FROM platform.services WHERE id = %s", (idle,))
    assert (make.count("services"), make.count("releases")) == (1, 1)


def test_releases_created_by_must_exist_and_cannot_be_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """Users are never deleted (trg_users_no_delete); were that guard bypassed, a release keeps its creator."""
    service = make.service()
    with rejected("23503", "fk_releases_created_by_users"):
        make.release(service, created_by=uuid.uuid4())
    creator, idle = make.user(), make.user()
    make.release(service, created_by=creator)
    with rejected(restrict_sqlstate(conn), "fk_releases_created_by_users"):
        delete_by_id(conn, "users", creator)
    delete_by_id(conn, "users", idle)
    assert (make.count("users"), make.count("releases")) == (1, 1)


# deployments -------------------------------------------------------------------------------------------
def test_deployments_reference_an_existing_release(make: Make) -> None:
    service, other, env = make.service(), make.service(), make.environment()
    make.release(other, "2.0.0")
    for version in ("9.9.9", "2.0.0"):  # never released; released, but by another service
        with rejected("23503", "fk_deployments_service_id_version_releases"):
            make.insert("deployments", service_id=service, version=version, environment_id=env)
    make.release(service, "2.0.0")
    make.insert("deployments", service_id=service, version="2.0.0", environment_id=env)
    assert make.count("deployments") == 1


def test_deployments_release_cannot_be_deleted_while_deployed(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env = make.service(), make.environment()
    deployed, idle = make.release(service, "1.0.0"), make.release(service, "1.0.1")
    make.deployment(service, env, "1.0.0")
    with rejected(restrict_sqlstate(conn), "fk_deployments_service_id_version_releases"):
        conn.execute("DELETE FROM platform.releases WHERE id = %s", (deployed,))
    conn.execute("DELETE FROM platform.releases WHERE id = %s", (idle,))
    assert (make.count("releases"), make.count("deployments")) == (1, 1)


@pytest.mark.parametrize(
    ("column", "table", "constraint"),
    [
        ("environment_id", "environments", "fk_deployments_environment_id_environments"),
        ("deployed_by", "users", "fk_deployments_deployed_by_users"),
    ],
)
def test_deployments_references_must_exist_and_cannot_be_deleted(
    conn: psycopg.Connection[Any], make: Make, column: str, table: str, constraint: str
) -> None:
    """A deployment names an existing environment and deployer, neither deleted from under it (RESTRICT)."""
    service = make.service()
    make.release(service)
    values: dict[str, Any] = {"service_id": service, "version": "1.0.0", "environment_id": make.environment()}
    with rejected("23503", constraint):
        make.insert("deployments", **(values | {column: uuid.uuid4()}))
    assert make.count("deployments") == 0
    referenced, idle = (make.user(), make.user()) if table == "users" else (make.environment(), make.environment())
    make.insert("deployments", **(values | {column: referenced}))
    with rejected(restrict_sqlstate(conn), constraint):
        delete_by_id(conn, table, referenced)
    delete_by_id(conn, table, idle)
    row = conn.execute(f"SELECT {column} FROM platform.deployments").fetchall()
    assert row == [(referenced,)]


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "pending"])
def test_deployments_start_pending(conn: psycopg.Connection[Any], make: Make, status: str) -> None:
    service, env = make.service(), make.environment()
    with rejected("23514", "trg_deployments_status_transition"):
        make.deployment(service, env, status=status)
    assert make.count("deployments") == 0
    deployment = make.deployment(service, env)
    assert deployment_row(conn, deployment)[0] == "pending"
    make.deployment(make.service(), env, status="pending")
    assert make.count("deployments") == 2


@pytest.mark.parametrize(("from_status", "to_status", "legal"), TRANSITIONS)
def test_deployment_status_moves_only_along_legal_transitions(
    conn: psycopg.Connection[Any], make: Make, from_status: str, to_status: str, legal: bool
) -> None:
    deployment = make.deployment(make.service(), make.environment())
    make.set_status(deployment, *PATH_TO[from_status])
    assert deployment_row(conn, deployment)[0] == from_status
    steps = len(history(conn, deployment))
    if legal:
        make.set_status(deployment, to_status)
    else:
        with rejected("23514", "trg_deployments_status_transition"):
            make.set_status(deployment, to_status)
    assert deployment_row(conn, deployment)[0] == (to_status if legal else from_status)
    assert len(history(conn, deployment)) == steps + legal


def test_deployments_at_most_one_active_per_service_and_environment(make: Make) -> None:
    service, env, other_env = make.service(), make.environment(), make.environment()
    first = make.deployment(service, env)
    for active in ("pending", "in_progress"):
        make.set_status(first, *PATH_TO[active][-1:])
        with rejected("23505", "uq_deployments_active_service_id_environment_id"):
            make.deployment(service, env)
    make.deployment(service, other_env)  # another environment is independent
    make.deployment(make.service(), env)  # so is another service
    make.set_status(first, "succeeded")
    make.deployment(service, env)  # a finished deployment blocks nothing
    assert make.count("deployments") == 4


def clock(conn: psycopg.Connection[Any], offset: str = "0 seconds") -> dt.datetime:
    """The database clock (clock_timestamp()) plus ``offset``."""
    row = conn.execute("SELECT clock_timestamp() + %s::interval", (offset,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_deployments_deployed_after_started(conn: psycopg.Connection[Any], make: Make) -> None:
    """A finish no earlier than the start, for a writer-given stamp (within the skew trg_deployments_timestamps
    tolerates) and for the automatic one."""
    deployment = make.deployment(make.service(), make.environment())
    started = clock(conn, "4 seconds")  # a clock a little ahead: still within the 5 s tolerated
    conn.execute(
        "UPDATE platform.deployments SET status = 'in_progress', started_at = %s WHERE id = %s", (started, deployment)
    )
    finish = "UPDATE platform.deployments SET status = 'succeeded', deployed_at = %s WHERE id = %s"
    with rejected("23514", "ck_deployments_deployed_after_started"):
        conn.execute(finish, (started - dt.timedelta(seconds=1), deployment))
    with rejected("23514", "ck_deployments_deployed_after_started"):  # the automatic stamp (the clock) is too early
        make.set_status(deployment, "succeeded")
    assert deployment_row(conn, deployment) == ("in_progress", started, None)
    conn.execute(finish, (started, deployment))
    assert deployment_row(conn, deployment) == ("succeeded", started, started)


@pytest.mark.parametrize("finished", ["succeeded", "failed"])
def test_deployments_started_at_when_started(conn: psycopg.Connection[Any], make: Make, finished: str) -> None:
    """A deployment that ran has a start time; only one cancelled while pending (or still pending) lacks it.
    trg_deployments_timestamps refuses clearing it first; the CHECK still holds where no trigger fires."""
    service, env = make.service(), make.environment()
    deployment = make.deployment(service, env)
    make.set_status(deployment, "in_progress")
    for status in (finished, "cancelled"):
        with rejected("23000", "trg_deployments_timestamps"):
            conn.execute(
                "UPDATE platform.deployments SET status = %s, started_at = NULL WHERE id = %s", (status, deployment)
            )
    status, started, _ = deployment_row(conn, deployment)
    assert (status, started is not None) == ("in_progress", True)
    with replica_mode(conn), rejected("23514", "ck_deployments_started_at_when_started"):
        conn.execute(
            "UPDATE platform.deployments SET status = %s, started_at = NULL, deployed_at = now() WHERE id = %s",
            (finished, deployment),
        )
    make.set_status(deployment, "cancelled")  # cancelled after it started: keeps its start
    status, started, deployed = deployment_row(conn, deployment)
    assert (status, started is not None, deployed is not None) == ("cancelled", True, True)
    never_started = make.deployment(service, env)
    make.set_status(never_started, "cancelled")
    status, started, deployed = deployment_row(conn, never_started)
    assert (status, started, deployed is not None) == ("cancelled", None, True)


def test_deployments_deployed_at_when_finished(conn: psycopg.Connection[Any], make: Make) -> None:
    """An active (pending, in_progress) deployment has no finish time; a finished one has one.
    trg_deployments_timestamps refuses a finish time given off its move first; the CHECK still holds where no
    trigger fires."""
    service, env = make.service(), make.environment()
    make.release(service)
    with rejected("23000", "trg_deployments_timestamps"):
        make.deployment(service, env, deployed_at=dt.datetime.now(dt.UTC))
    deployment = make.deployment(service, env)
    with rejected("23000", "trg_deployments_timestamps"):
        conn.execute(
            "UPDATE platform.deployments SET status = 'in_progress', deployed_at = clock_timestamp() WHERE id = %s",
            (deployment,),
        )
    assert deployment_row(conn, deployment) == ("pending", None, None)
    with replica_mode(conn):
        with rejected("23514", "ck_deployments_deployed_at_when_finished"):
            conn.execute("UPDATE platform.deployments SET deployed_at = now() WHERE id = %s", (deployment,))
        with rejected("23514", "ck_deployments_deployed_at_when_finished"):
            conn.execute(
                "UPDATE platform.deployments SET status = 'failed', started_at = now() WHERE id = %s", (deployment,)
            )
    make.set_status(deployment, "in_progress", "failed")
    assert deployment_row(conn, deployment)[2] is not None


def test_deployments_timestamps(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_deployments_timestamps: each stamp is set on its move by the database clock, and a stamp the writer
    gives is kept only within 30 s before to 5 s after that clock (23514 otherwise, and for a stamp that is not
    finite); a stamp given off its move, or changed once set, is refused (23000)."""
    service = make.service()
    make.release(service)

    def deployment(*path: str) -> uuid.UUID:
        d = make.deployment(service, make.environment())
        make.set_status(d, *path)
        return d

    move = "UPDATE platform.deployments SET status = %s, {column} = %s WHERE id = %s"
    cases = (
        ("in_progress", "started_at", (), ("-25 seconds", "0 seconds", "3 seconds")),
        ("succeeded", "deployed_at", ("in_progress",), ("0 seconds", "3 seconds")),  # not before it started
    )
    for status, column, path, nears in cases:
        for far in ("-31 seconds", "6 seconds", "-1 day", "1 year"):
            d = deployment(*path)
            with rejected("23514", "trg_deployments_timestamps"):
                conn.execute(move.format(column=column), (status, clock(conn, far), d))
        for not_finite in ("infinity", "-infinity"):
            with rejected("23514", "trg_deployments_timestamps"):
                conn.execute(move.format(column=column), (status, not_finite, deployment(*path)))
        for near in nears:
            d = deployment(*path)
            given = clock(conn, near)
            conn.execute(move.format(column=column), (status, given, d))
            stored = conn.execute(f"SELECT {column} FROM platform.deployments WHERE id = %s", (d,)).fetchone()
            assert stored == (given,)
    frozen = [
        (deployment(), "started_at = clock_timestamp()"),
        (deployment(), "status = 'cancelled', started_at = clock_timestamp()"),
        (deployment("in_progress"), "started_at = started_at + interval '1 second'"),
        (deployment("in_progress"), "status = 'failed', started_at = clock_timestamp()"),
        (deployment("in_progress", "succeeded"), "deployed_at = deployed_at - interval '1 second'"),
        (deployment("in_progress", "failed"), "status = 'rolled_back', deployed_at = clock_timestamp()"),
        (deployment("cancelled"), "deployed_at = NULL"),
    ]
    for d, assignment in frozen:
        with rejected("23000", "trg_deployments_timestamps"):
            conn.execute(f"UPDATE platform.deployments SET {assignment} WHERE id = %s", (d,))
    with rejected("23000", "trg_deployments_timestamps"):
        make.deployment(service, make.environment(), started_at=clock(conn))
    # The valid moves: stamped by the clock, kept through the moves after, and told alike by the history.
    d = deployment("in_progress", "succeeded", "rolled_back")
    row = conn.execute(
        "SELECT started_at, deployed_at, deployed_at >= started_at AND deployed_at <= clock_timestamp()"
        " FROM platform.deployments WHERE id = %s",
        (d,),
    ).fetchone()
    assert row is not None
    assert row[2] is True
    recorded = conn.execute(
        "SELECT to_status, created_at FROM platform.deployment_status_history"
        " WHERE deployment_id = %s AND to_status IN ('in_progress', 'succeeded') ORDER BY id",
        (d,),
    ).fetchall()
    assert recorded == [("in_progress", row[0]), ("succeeded", row[1])]


def test_deployments_status_allowed(conn: psycopg.Connection[Any], make: Make) -> None:
    """The status trigger refuses an unknown status first; the CHECK still holds where no trigger fires (a
    logical-replication apply, a restore with triggers disabled)."""
    service, env = make.service(), make.environment()
    make.release(service)
    insert = (
        "INSERT INTO platform.deployments (service_id, version, environment_id, status, started_at, deployed_at)"
        " VALUES (%s, '1.0.0', %s, %s, now(), now())"
    )
    with rejected("23514", "trg_deployments_status_transition"):
        conn.execute(insert, (service, env, "done"))
    with replica_mode(conn):
        for status in ("done", "Succeeded", ""):
            with rejected("23514", "ck_deployments_status_allowed"):
                conn.execute(insert, (service, env, status))
        conn.execute(insert, (service, env, "succeeded"))
    assert conn.execute("SELECT status FROM platform.deployments").fetchall() == [("succeeded",)]


def test_deployments_updated_at_trigger(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_deployments_updated_at stamps every UPDATE; a created_at rewrite is refused, by
    trg_deployments_immutable_columns first (it fires before, in name order)."""
    old = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    deployment = make.deployment(make.service(), make.environment(), created_at=old, updated_at=old)
    assert_updated_at_trigger(
        conn,
        "deployments",
        "id = %s",
        (deployment,),
        "status = 'in_progress'",
        guard="trg_deployments_immutable_columns",
    )


def test_deployments_started_at_and_deployed_at_are_stamped(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env = make.service(), make.environment()
    deployment = make.deployment(service, env)
    assert deployment_row(conn, deployment) == ("pending", None, None)
    make.set_status(deployment, "in_progress")
    _, started, deployed = deployment_row(conn, deployment)
    assert (started is not None, deployed) == (True, None)
    make.set_status(deployment, "succeeded")
    _, started_after, deployed = deployment_row(conn, deployment)
    assert started_after == started
    assert deployed is not None
    assert deployed >= started

    cancelled = make.deployment(service, env)
    make.set_status(cancelled, "cancelled")
    _, started, deployed = deployment_row(conn, cancelled)
    assert (started, deployed is not None) == (None, True)

    given = clock(conn, "-2 seconds")  # a v0.1 writer's own stamp, close to the database clock: kept
    explicit = make.deployment(service, env)
    conn.execute(
        "UPDATE platform.deployments SET status = 'in_progress', started_at = %s WHERE id = %s", (given, explicit)
    )
    assert deployment_row(conn, explicit) == ("in_progress", given, None)


def test_deployments_roll_back_a_deployment_of_the_same_service_and_environment(make: Make) -> None:
    service, env, other_env = make.service(), make.environment(), make.environment()
    original = make.deployment(service, env)
    make.set_status(original, "in_progress", "succeeded")
    elsewhere = make.deployment(service, other_env)
    other_service = make.deployment(make.service(), env)
    for target in (elsewhere, other_service, uuid.uuid4()):
        with rejected("23503", "fk_deployments_rollback_of_id_deployments"):
            make.deployment(service, env, rollback_of_id=target)
    own_id = uuid.uuid4()
    with rejected("23514", "ck_deployments_no_self_rollback"):
        make.deployment(service, env, id=own_id, rollback_of_id=own_id)
    assert make.count("deployments") == 3
    make.deployment(service, env, rollback_of_id=original)
    assert make.count("deployments") == 4


@pytest.mark.parametrize(
    ("column", "new_value"),
    [
        ("service_id", "platform.uuidv7()"),
        ("version", "'2.0.0'"),
        ("environment_id", "platform.uuidv7()"),
        ("deployed_by", "platform.uuidv7()"),
        ("rollback_of_id", "platform.uuidv7()"),
        ("created_at", "created_at - interval '1 day'"),
    ],
)
def test_deployments_immutable_columns(conn: psycopg.Connection[Any], make: Make, column: str, new_value: str) -> None:
    deployment = make.deployment(make.service(), make.environment())
    before = conn.execute(f"SELECT {column} FROM platform.deployments WHERE id = %s", (deployment,)).fetchone()
    with rejected("23000", "trg_deployments_immutable_columns"):
        conn.execute(f"UPDATE platform.deployments SET {column} = {new_value} WHERE id = %s", (deployment,))
    after = conn.execute(f"SELECT {column} FROM platform.deployments WHERE id = %s", (deployment,)).fetchone()
    assert after == before
    make.set_status(deployment, "in_progress")  # the mutable columns still change
    assert deployment_row(conn, deployment)[0] == "in_progress"


def test_deployments_with_history_cannot_be_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    deployment = make.deployment(make.service(), make.environment())
    make.set_status(deployment, "cancelled")
    with rejected(restrict_sqlstate(conn), "fk_deployment_status_history_deployment_id_deployments"):
        conn.execute("DELETE FROM platform.deployments WHERE id = %s", (deployment,))
    assert make.count("deployments") == 1
    assert len(history(conn, deployment)) == 2


def test_deployment_status_history_records_each_status_in_order(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_deployments_status_history_insert records the first status; trg_deployments_status_history_update
    each move, and nothing for an UPDATE that leaves the status as it was."""
    deployment = make.deployment(make.service(), make.environment())
    assert history(conn, deployment) == [(None, "pending")]
    make.set_status(deployment, "in_progress", "succeeded")
    conn.execute("UPDATE platform.deployments SET status = status WHERE id = %s", (deployment,))  # no move
    make.set_status(deployment, "rolled_back")
    assert history(conn, deployment) == [
        (None, "pending"),
        ("pending", "in_progress"),
        ("in_progress", "succeeded"),
        ("succeeded", "rolled_back"),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE platform.deployment_status_history SET to_status = 'pending'",
        "UPDATE platform.deployment_status_history SET created_at = created_at - interval '1 day'",
        "DELETE FROM platform.deployment_status_history",
    ],
)
def test_deployment_status_history_is_append_only(conn: psycopg.Connection[Any], make: Make, statement: str) -> None:
    deployment = make.deployment(make.service(), make.environment())
    make.set_status(deployment, "in_progress")
    with rejected("23000", "trg_deployment_status_history_append_only"):
        conn.execute(statement)
    assert history(conn, deployment) == [(None, "pending"), ("pending", "in_progress")]
    make.set_status(deployment, "failed")  # appending still works
    assert make.count("deployment_status_history") == 3


def add_history(conn: psycopg.Connection[Any], deployment_id: Any, from_status: str | None, to_status: str) -> None:
    """A direct write to the history (normally only the status triggers write there)."""
    conn.execute(
        "INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status) VALUES (%s, %s, %s)",
        (deployment_id, from_status, to_status),
    )


def test_deployment_status_history_deployment_must_exist(conn: psycopg.Connection[Any], make: Make) -> None:
    with rejected("23503", "fk_deployment_status_history_deployment_id_deployments"):
        add_history(conn, uuid.uuid4(), None, "pending")
    deployment = make.deployment(make.service(), make.environment())
    add_history(conn, deployment, "pending", "cancelled")
    assert make.count("deployment_status_history") == 2


@pytest.mark.parametrize(
    ("from_status", "to_status"), [(None, "in_progress"), (None, "failed"), ("pending", "pending")]
)
def test_deployment_status_history_initial_status_pending(
    conn: psycopg.Connection[Any], make: Make, from_status: str | None, to_status: str
) -> None:
    """A history starts (no from_status) with pending, and only there does pending appear as a to_status."""
    deployment = make.deployment(make.service(), make.environment())
    with rejected("23514", "ck_deployment_status_history_initial_status_pending"):
        add_history(conn, deployment, from_status, to_status)
    add_history(conn, deployment, None, "pending")
    add_history(conn, deployment, "pending", "in_progress")
    assert len(history(conn, deployment)) == 3


@pytest.mark.parametrize("to_status", ["done", "Succeeded", ""])
def test_deployment_status_history_to_status_allowed(conn: psycopg.Connection[Any], make: Make, to_status: str) -> None:
    deployment = make.deployment(make.service(), make.environment())
    with rejected("23514", "ck_deployment_status_history_to_status_allowed"):
        add_history(conn, deployment, "pending", to_status)
    for from_ok, to_ok in sorted(LEGAL_TRANSITIONS):  # every status but pending, each as a to_status
        add_history(conn, deployment, from_ok, to_ok)
    assert make.count("deployment_status_history") == 1 + len(LEGAL_TRANSITIONS)


def test_deployment_status_history_moves_along_a_transition(conn: psycopg.Connection[Any], make: Make) -> None:
    """Each recorded move is a row of the state machine, and a move that was made stays in it (RESTRICT)."""
    deployment = make.deployment(make.service(), make.environment())
    with rejected("23503", "fk_deployment_status_history_transition"):
        add_history(conn, deployment, "pending", "succeeded")
    make.set_status(deployment, "in_progress")
    delete = "DELETE FROM platform.deployment_status_transitions WHERE from_status = %s AND to_status = %s"
    with rejected(restrict_sqlstate(conn), "fk_deployment_status_history_transition"):
        conn.execute(delete, ("pending", "in_progress"))
    conn.execute(delete, ("failed", "rolled_back"))  # a transition never taken is not history
    assert history(conn, deployment) == [(None, "pending"), ("pending", "in_progress")]
    assert conn.execute("SELECT count(*) FROM platform.deployment_status_transitions").fetchone() == (6,)


@pytest.mark.parametrize(
    ("from_status", "to_status", "constraint"),
    [
        ("done", "pending", "ck_deployment_status_transitions_from_status_allowed"),
        ("Pending", "cancelled", "ck_deployment_status_transitions_from_status_allowed"),
        ("pending", "done", "ck_deployment_status_transitions_to_status_allowed"),
        ("in_progress", "", "ck_deployment_status_transitions_to_status_allowed"),
    ],
)
def test_deployment_status_transitions_statuses_allowed(
    conn: psycopg.Connection[Any], from_status: str, to_status: str, constraint: str
) -> None:
    insert = "INSERT INTO platform.deployment_status_transitions (from_status, to_status) VALUES (%s, %s)"
    with rejected("23514", constraint):
        conn.execute(insert, (from_status, to_status))
    conn.execute(insert, ("pending", "failed"))
    assert conn.execute("SELECT count(*) FROM platform.deployment_status_transitions").fetchone() == (8,)


def test_deployment_status_transitions_change_only_by_migration(conn: psycopg.Connection[Any]) -> None:
    with rejected("23000", "trg_deployment_status_transitions_immutable"):
        conn.execute("UPDATE platform.deployment_status_transitions SET to_status = 'succeeded'")
    assert conn.execute("SELECT count(*) FROM platform.deployment_status_transitions").fetchone() == (7,)


# ids and creation times are the database's ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "trigger"),
    [("releases", "trg_releases_created_at"), ("deployments", "trg_deployments_created_at")],
)
def test_delivery_created_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """The delivery service cannot backdate a release or a deployment: its stamps become now(); the owner's
    (the seed's replayed history) are kept."""
    service = make.service()
    values: dict[str, Any] = {"service_id": service, "version": "2.0.0"}
    if table == "releases":
        values |= {"commit_sha": COMMIT_SHA, "artifact_digest": DIGEST}
    else:
        make.release(service, "2.0.0")
        values["environment_id"] = make.environment()
    assert_created_at_trigger(conn, table, "platform_delivery", values, trigger)


def test_deployments_keys_immutable(conn: psycopg.Connection[Any], make: Make) -> None:
    """A deployment's id never changes, even when nothing references it."""
    deployment = make.deployment(make.service(), make.environment())
    assert_keys_trigger(
        conn, "deployments", "id = %s", (deployment,), "id = gen_random_uuid()", "trg_deployments_keys_immutable"
    )
