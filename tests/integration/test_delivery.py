"""Delivery rules: releases, the deployment state machine and its append-only status history."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import COMMIT_SHA, DIGEST, Make, rejected, restrict_sqlstate

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


def test_deployments_deployed_after_started(conn: psycopg.Connection[Any], make: Make) -> None:
    deployment = make.deployment(make.service(), make.environment())
    started = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
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

    given = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
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


def test_deployment_status_transitions_change_only_by_migration(conn: psycopg.Connection[Any]) -> None:
    with rejected("23000", "trg_deployment_status_transitions_immutable"):
        conn.execute("UPDATE platform.deployment_status_transitions SET to_status = 'succeeded'")
    assert conn.execute("SELECT count(*) FROM platform.deployment_status_transitions").fetchone() == (7,)
