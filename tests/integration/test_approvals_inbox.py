"""The approvals inbox (delivery.pending_approvals_of_approver: platform.pending_approvals_of, revision 0066): the
pending rollouts a person may approve and has not decided on, found from their grants, read through the owner and
the roles that call it (platform_delivery, platform_readonly)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from platformdb.queries import CATALOG
from tests.factories import Make
from tests.integration.test_approvals import Protected, as_role

ROLES = [None, "platform_delivery", "platform_readonly"]
INBOX = CATALOG["delivery.pending_approvals_of_approver"]


def inbox(conn: psycopg.Connection[Any], approver: uuid.UUID) -> set[uuid.UUID]:
    """The deployments in the approver's inbox, through the catalog query."""
    return {row[0] for row in conn.execute(INBOX.sql, {"approver_id": approver})}


def approver(make: Make, **scope: Any) -> uuid.UUID:
    return make.holder("deployment:approve", **scope)


@pytest.mark.parametrize("role", ROLES)
def test_a_grant_puts_the_pending_rollouts_of_its_scope_in_the_inbox(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p, q = Protected(make), Protected(make)
    mine, theirs = p.deploy(), q.deploy()
    of_service, of_environment = approver(make, service_id=p.service), approver(make, environment_id=p.env)
    of_service_elsewhere = approver(make, service_id=p.service, environment_id=q.env)
    everywhere, deployer_only, nobody = approver(make), make.holder("deployment:create"), make.user()
    as_role(conn, role)
    assert inbox(conn, p.approvers[0]) == inbox(conn, of_service) == inbox(conn, of_environment) == {mine}
    assert inbox(conn, q.approvers[0]) == {theirs}
    assert inbox(conn, everywhere) == {mine, theirs}
    assert inbox(conn, of_service_elsewhere) == set()
    assert inbox(conn, deployer_only) == inbox(conn, nobody) == set()


@pytest.mark.parametrize("role", ROLES)
def test_team_grants_count_through_the_teams_ancestors_while_the_membership_lasts(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make)
    deployment = p.deploy()
    parent = make.team()
    child = make.team(parent_team_id=parent)
    make.insert("role_grants", team_id=parent, role_id=make.role_with("deployment:approve"), service_id=p.service)
    member, lapsed = make.user(), make.user()
    make.insert("team_memberships", "team_id", team_id=child, user_id=member)
    make.insert("team_memberships", "team_id", team_id=child, user_id=lapsed, created_at="2000-01-01",
                expires_at="2000-01-02")  # fmt: skip
    as_role(conn, role)
    assert inbox(conn, member) == {deployment}
    assert inbox(conn, lapsed) == set()


@pytest.mark.parametrize("role", ROLES)
def test_an_expired_grant_or_a_deactivated_approver_has_an_empty_inbox(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make)
    p.deploy()
    expired = approver(make, created_at="2000-01-01", expires_at="2000-01-02")
    deactivated = approver(make)
    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (deactivated,))
    as_role(conn, role)
    assert inbox(conn, expired) == inbox(conn, deactivated) == set()


@pytest.mark.parametrize("role", ROLES)
def test_a_decided_rejected_approved_or_started_rollout_leaves_the_inbox(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make, required=2)
    decided, rejected_one = p.deploy(), Protected(make, required=2)
    rejected_rollout = rejected_one.deploy()
    make.approval(decided, p.approvers[0])
    make.approval(rejected_rollout, rejected_one.approvers[0], "rejected")
    once = Protected(make, required=1)
    approved = once.deploy()
    make.approval(approved, once.approvers[0])
    as_role(conn, role)
    assert inbox(conn, p.approvers[0]) == set()
    row = conn.execute(INBOX.sql, {"approver_id": p.approvers[1]}).fetchone()
    assert row is not None
    assert (row[0], row[-2], row[-1]) == (decided, 2, 1)  # deployment, required, approved so far
    assert inbox(conn, rejected_one.approvers[1]) == set()
    assert inbox(conn, once.approvers[1]) == set()
    as_role(conn, None)
    make.set_status(approved, "in_progress")
    everywhere = approver(make)
    as_role(conn, role)
    assert inbox(conn, everywhere) == {decided}


@pytest.mark.parametrize("role", ROLES)
def test_the_deployer_sees_their_own_rollout_only_where_the_rule_allows_self_approval(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p, allowing = Protected(make, required=1), Protected(make, required=1, allow_self_approval=True)
    p.deploy()
    own = allowing.deploy()
    as_role(conn, role)
    assert inbox(conn, p.deployer) == set()
    assert inbox(conn, allowing.deployer) == {own}


def test_the_inbox_has_a_row_per_rule_short_of_its_approvals(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=1)
    make.approval_rule(p.env, service_id=p.service)  # a second rule, of this service only
    first = p.deploy()
    rows = conn.execute(INBOX.sql, {"approver_id": p.approvers[0]}).fetchall()
    assert [r[0] for r in rows] == [first, first]
    assert len({r[6] for r in rows}) == 2  # one row per captured rule


def test_a_rollout_whose_rule_changed_permission_is_listed_for_holders_of_the_captured_one_on_its_service(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """The one difference from asking may_user_do per rollout, as the function's comment says: the rules say
    which permissions approve on every service, so a rollout that captured a permission no rule names any more
    is listed for its holders on the rollout's service (who may still approve it), not for those holding it on
    every service."""
    p = Protected(make, required=1)
    deployment = p.deploy()
    everywhere = approver(make)
    conn.execute(
        "UPDATE platform.approval_rules SET approver_permission_id = %s WHERE id = %s",
        (make.permission_id("deployment:signoff"), p.rule),
    )
    assert inbox(conn, p.approvers[0]) == {deployment}
    assert inbox(conn, everywhere) == set()
