"""Who may deploy, protected environments and four-eyes approvals (revision 0042), through the owner and the
services' own roles: platform_delivery relays decisions and starts rollouts, platform_identity writes the rules."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL

from tests.factories import (
    Make,
    assert_created_at_trigger,
    assert_keys_trigger,
    assert_updated_at_trigger,
    rejected,
    restrict_sqlstate,
    triggers_disabled,
)
from tests.integration.test_catalog_governance import second_waits_for_first

ROLES = [None, "platform_delivery"]


def as_role(conn: psycopg.Connection[Any], role: str | None) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)) if role else sql.SQL("RESET ROLE"))


def status(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> str:
    row = conn.execute("SELECT status FROM platform.deployments WHERE id = %s", (deployment,)).fetchone()
    assert row is not None
    return str(row[0])


def requirements(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            "SELECT approval_rule_id, required_approvals, allow_self_approval"
            " FROM platform.deployment_approval_requirements WHERE deployment_id = %s ORDER BY approval_rule_id",
            (deployment,),
        )
    ]


class Protected:
    """A service and a protected environment (one rule: ``required`` approvals by deployment:approve holders), a
    deployer holding deployment:create there and approvers holding deployment:approve there."""

    def __init__(self, make: Make, required: int = 2, **rule: Any) -> None:
        self.make = make
        self.service, self.env = make.service(), make.environment(tier="production")
        make.release(self.service, "1.0.0")
        self.rule = make.approval_rule(self.env, required_approvals=required, **rule)
        scope = {"service_id": self.service, "environment_id": self.env}
        self.deployer = make.holder("deployment:create", **scope)
        make.insert("role_permissions", "role_id", role_id=self._role_of(self.deployer),
                    permission_id=make.permission_named("deployment:approve"))  # fmt: skip
        self.approvers = [make.holder("deployment:approve", **scope) for _ in range(3)]

    def _role_of(self, user: uuid.UUID) -> uuid.UUID:
        row = self.make.conn.execute("SELECT role_id FROM platform.role_grants WHERE user_id = %s", (user,)).fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    def deploy(self, **kw: Any) -> uuid.UUID:
        values = {"service_id": self.service, "version": "1.0.0", "environment_id": self.env,
                  "deployed_by": self.deployer} | kw  # fmt: skip
        return self.make.insert("deployments", **values)  # type: ignore[no-any-return]


# who may deploy -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_v1_deployment_flow_without_a_deployer_in_an_unprotected_environment(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    """The README's v1 flow, unchanged: register a release, deploy it naming nobody, run it to success."""
    service, env = make.service(), make.environment(is_production=True)
    as_role(conn, role)
    make.release(service, "1.0.0")
    deployment = make.insert("deployments", service_id=service, version="1.0.0", environment_id=env)
    make.set_status(deployment, "in_progress", "succeeded")
    assert status(conn, deployment) == "succeeded"
    assert requirements(conn, deployment) == []


def test_a_named_deployer_must_hold_deployment_create_there(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env, elsewhere = make.service(), make.environment(), make.environment()
    make.release(service, "1.0.0")
    nobody = make.user()
    scoped_elsewhere = make.holder("deployment:create", environment_id=elsewhere)
    expired = make.holder("deployment:create", created_at="2000-01-01", expires_at="2000-01-02")
    other_permission = make.holder("deployment:approve")
    deactivated = make.holder("deployment:create")
    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (deactivated,))
    allowed = make.holder("deployment:create", service_id=service, environment_id=env)
    as_role(conn, "platform_delivery")
    for deployer in (nobody, scoped_elsewhere, expired, other_permission, deactivated):
        with rejected("23514", "trg_deployments_deployer_may_deploy"):
            make.insert("deployments", service_id=service, version="1.0.0", environment_id=env, deployed_by=deployer)
    make.insert("deployments", service_id=service, version="1.0.0", environment_id=env, deployed_by=allowed)


def test_the_table_owner_may_backfill_deployments_of_any_deployer(make: Make) -> None:
    service, env = make.service(), make.environment()
    make.deployment(service, env, deployed_by=make.user())  # history replays: grants may since have expired


def test_a_rollback_names_a_deployer_who_may_deploy(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env = make.service(), make.environment()
    make.release(service, "1.0.0")
    make.set_status(make.deployment(service, env, "1.0.0"), "in_progress", "succeeded")
    bad = make.deployment(service, env, "2.0.0")
    make.set_status(bad, "in_progress", "failed")
    nobody = make.user()
    allowed = make.holder("deployment:create", service_id=service)
    as_role(conn, "platform_delivery")
    with rejected("23514", "trg_deployments_deployer_may_deploy"):
        conn.execute("SELECT platform.start_rollback(%s, NULL, %s)", (bad, nobody))
    conn.execute("SELECT platform.start_rollback(%s, NULL, %s)", (bad, allowed))


@pytest.mark.parametrize("role", ROLES)
def test_a_protected_environment_needs_a_named_deployer(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make)
    unprotected = make.environment()
    as_role(conn, role)
    with rejected("23514", "trg_deployments_deployer_named"):
        p.deploy(deployed_by=None)
    p.deploy()
    make.insert("deployments", service_id=p.service, version="1.0.0", environment_id=unprotected)
    as_role(conn, None)
    conn.execute("UPDATE platform.approval_rules SET disabled_at = now() WHERE id = %s", (p.rule,))
    as_role(conn, role)
    conn.execute("UPDATE platform.deployments SET status = 'cancelled' WHERE environment_id = %s", (p.env,))
    p.deploy(deployed_by=None)  # no rule in force: no longer protected


# capture -------------------------------------------------------------------------------------------------
def test_the_rules_in_force_are_captured_at_creation(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=2)
    critical = make.service(tier=1)
    make.release(critical, "1.0.0")
    tier_rule = make.approval_rule(p.env, max_service_tier=1, required_approvals=3,
                                   approver_permission_id=make.permission(name="deployment:sign"))  # fmt: skip
    other_service_rule = make.approval_rule(p.env, service_id=make.service(), required_approvals=4)
    make.approval_rule(make.environment(), required_approvals=5)  # another environment's
    make.approval_rule(
        p.env,
        required_approvals=6,
        created_at="2000-01-01",
        updated_at="2000-01-01",
        disabled_at="2000-01-02",
        approver_permission_id=make.permission(name="deployment:veto"),
    )
    make.approval_rule(
        p.env,
        required_approvals=7,
        created_at="2999-01-01",
        updated_at="2999-01-01",
        approver_permission_id=make.permission(name="deployment:later"),
    )  # not yet in force
    deployment = p.deploy()
    assert requirements(conn, deployment) == [(p.rule, 2, False)]  # tier 3 service: the tier rule is not for it
    crit_deployer = make.holder("deployment:create", service_id=critical)
    crit = make.insert("deployments", service_id=critical, version="1.0.0", environment_id=p.env,
                       deployed_by=crit_deployer)  # fmt: skip
    assert sorted(requirements(conn, crit)) == sorted([(p.rule, 2, False), (tier_rule, 3, False)])
    assert other_service_rule not in [r[0] for r in requirements(conn, crit)]
    # A later change of the rule does not move the open rollout's goalposts.
    conn.execute("UPDATE platform.approval_rules SET required_approvals = 1, allow_self_approval = true"
                 " WHERE id = %s", (p.rule,))  # fmt: skip
    assert requirements(conn, deployment) == [(p.rule, 2, False)]


def test_rollbacks_need_approvals_only_under_rules_that_say_so(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=1)
    make.release(p.service, "2.0.0")
    first = p.deploy()
    p.make.approval(first, p.approvers[0])
    make.set_status(first, "in_progress", "succeeded")
    bad = p.deploy(version="2.0.0")
    p.make.approval(bad, p.approvers[0])
    make.set_status(bad, "in_progress", "failed")
    rollback = conn.execute("SELECT platform.start_rollback(%s, NULL, %s)", (bad, p.deployer)).fetchone()[0]  # type: ignore[index]
    assert requirements(conn, rollback) == []
    make.set_status(rollback, "in_progress", "succeeded")  # not gated
    conn.execute("UPDATE platform.approval_rules SET applies_to_rollbacks = true WHERE id = %s", (p.rule,))
    again = conn.execute("SELECT platform.start_rollback(%s, '2.0.0', %s)", (rollback, p.deployer)).fetchone()[0]  # type: ignore[index]
    assert requirements(conn, again) == [(p.rule, 1, False)]
    with rejected("23514", "trg_deployments_approved"):
        make.set_status(again, "in_progress")


@pytest.mark.parametrize("role", ROLES)
def test_captured_rules_are_append_only_and_written_by_trigger_only(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make)
    deployment = p.deploy()
    if role is None:
        for statement in ("UPDATE platform.deployment_approval_requirements SET required_approvals = 1",
                          "DELETE FROM platform.deployment_approval_requirements"):  # fmt: skip
            with rejected("23000", "trg_deployment_approval_requirements_append_only"):
                conn.execute(statement + " WHERE deployment_id = %s", (deployment,))
        return
    as_role(conn, role)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE platform.deployment_approval_requirements SET required_approvals = 1")


# approvals -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_the_gate_opens_when_every_captured_rule_has_its_approvals(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make, required=2)
    deployment = p.deploy()
    as_role(conn, role)
    with rejected("23514", "trg_deployments_approved"):
        make.set_status(deployment, "in_progress")
    make.approval(deployment, p.approvers[0])
    with rejected("23514", "trg_deployments_approved"):
        make.set_status(deployment, "in_progress")
    with rejected("23505", "pk_deployment_approvals"):  # one decision per approver
        make.approval(deployment, p.approvers[0])
    make.approval(deployment, p.approvers[1], comment="looks good")
    make.set_status(deployment, "in_progress", "succeeded")
    assert status(conn, deployment) == "succeeded"


@pytest.mark.parametrize("role", ROLES)
def test_a_rejection_leaves_cancel_as_the_only_move(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    as_role(conn, role)
    make.approval(deployment, p.approvers[0], "rejected", comment="not during the sale")
    make.approval(deployment, p.approvers[1])
    with rejected("23514", "trg_deployments_approved"):
        make.set_status(deployment, "in_progress")
    make.set_status(deployment, "cancelled")


@pytest.mark.parametrize("role", ROLES)
def test_approvals_are_given_while_pending_only(conn: psycopg.Connection[Any], make: Make, role: str | None) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    as_role(conn, role)
    make.approval(deployment, p.approvers[0])
    make.set_status(deployment, "in_progress")
    with rejected("23514", "trg_deployment_approvals_open"):
        make.approval(deployment, p.approvers[1])


@pytest.mark.parametrize("role", ROLES)
def test_the_deployer_approves_their_own_rollout_only_if_the_rule_allows(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make, required=1)
    allowing = Protected(make, required=1, allow_self_approval=True)
    deployment, own = p.deploy(), allowing.deploy()
    as_role(conn, role)
    with rejected("23514", "trg_deployment_approvals_not_self"):
        make.approval(deployment, p.deployer)
    with rejected("23514", "trg_deployment_approvals_not_self"):
        make.approval(deployment, p.deployer, "rejected")
    make.approval(own, allowing.deployer)
    make.set_status(own, "in_progress")


@pytest.mark.parametrize("role", ROLES)
def test_the_approver_holds_the_rules_permission_there_at_the_time(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    nobody = make.user()
    elsewhere = make.holder("deployment:approve", environment_id=make.environment())
    wrong_permission = make.holder("deployment:create")
    deactivated = make.holder("deployment:approve")
    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (deactivated,))
    revoked = make.holder("deployment:approve")
    conn.execute("DELETE FROM platform.role_grants WHERE user_id = %s", (revoked,))
    as_role(conn, role)
    for approver in (nobody, elsewhere, wrong_permission, deactivated, revoked):
        with rejected("23514", "trg_deployment_approvals_approver_authorized"):
            make.approval(deployment, approver)
    make.approval(deployment, make.holder("deployment:approve") if role is None else p.approvers[0])


@pytest.mark.parametrize("role", ROLES)
def test_a_decision_counts_toward_a_rule_the_deployment_captured(
    conn: psycopg.Connection[Any], make: Make, role: str | None
) -> None:
    p = Protected(make, required=1)
    deployment, other_rule = p.deploy(), make.approval_rule(make.environment())
    as_role(conn, role)
    with rejected("23503", "fk_deployment_approvals_requirement"):
        make.approval(deployment, p.approvers[0], approval_rule_id=other_rule)


@pytest.mark.parametrize("role", ROLES)
def test_approvals_are_append_only(conn: psycopg.Connection[Any], make: Make, role: str | None) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    make.approval(deployment, p.approvers[0], "rejected")
    as_role(conn, role)
    statements = ("UPDATE platform.deployment_approvals SET decision = 'approved'",
                  "DELETE FROM platform.deployment_approvals")  # fmt: skip
    for statement in statements:
        if role is None:
            with rejected("23000", "trg_deployment_approvals_append_only"):
                conn.execute(statement + " WHERE deployment_id = %s", (deployment,))
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement + " WHERE deployment_id = %s", (deployment,))


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"decision": "maybe"}, "ck_deployment_approvals_decision_allowed"),
        ({"comment": "x" * 1001}, "ck_deployment_approvals_comment_length"),
    ],
)
def test_approval_checks(conn: psycopg.Connection[Any], make: Make, values: dict[str, Any], constraint: str) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    as_role(conn, "platform_delivery")
    with rejected("23514", constraint):
        make.approval(deployment, p.approvers[0], **values)


# rules ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"required_approvals": 0}, "ck_approval_rules_required_approvals_range"),
        ({"required_approvals": 11}, "ck_approval_rules_required_approvals_range"),
        ({"max_service_tier": 0}, "ck_approval_rules_max_service_tier_range"),
        ({"max_service_tier": 5}, "ck_approval_rules_max_service_tier_range"),
        ({"max_service_tier": 1, "service_id": "service"}, "ck_approval_rules_service_or_tier"),
        ({"disabled_at": "2000-01-01"}, "ck_approval_rules_disabled_after_created"),
    ],
)
@pytest.mark.parametrize("role", [None, "platform_identity"])
def test_approval_rule_checks(
    conn: psycopg.Connection[Any], make: Make, values: dict[str, Any], constraint: str, role: str | None
) -> None:
    env, service, permission = make.environment(), make.service(), make.permission_named("deployment:approve")
    values = {k: service if v == "service" else v for k, v in values.items()}
    as_role(conn, role)
    with rejected("23514", constraint):
        make.approval_rule(env, approver_permission_id=permission, **values)
    make.approval_rule(env, approver_permission_id=permission, max_service_tier=2, required_approvals=10)


@pytest.mark.parametrize("role", [None, "platform_identity"])
def test_one_rule_per_scope_and_permission(conn: psycopg.Connection[Any], make: Make, role: str | None) -> None:
    env, permission = make.environment(), make.permission_named("deployment:approve")
    as_role(conn, role)
    make.approval_rule(env, approver_permission_id=permission)
    with rejected("23505", "uq_approval_rules_scope"):  # NULL scopes are not distinct
        make.approval_rule(env, approver_permission_id=permission, required_approvals=2)
    make.approval_rule(env, approver_permission_id=permission, max_service_tier=1)


def test_approval_rule_foreign_keys(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=1)
    restrict = restrict_sqlstate(conn)
    with rejected(restrict, "fk_approval_rules_environment_id_environments"):
        conn.execute("DELETE FROM platform.environments WHERE id = %s", (p.env,))
    with rejected(restrict, "fk_approval_rules_approver_permission_id_permissions"):
        conn.execute("DELETE FROM platform.permissions WHERE name = 'deployment:approve'")
    with rejected("23503", "fk_approval_rules_service_id_services"):
        make.approval_rule(p.env, service_id=uuid.uuid4())
    scoped_service = make.service()
    scoped = make.approval_rule(p.env, service_id=scoped_service)
    conn.execute("DELETE FROM platform.services WHERE id = %s", (scoped_service,))  # its rules go with it
    assert conn.execute("SELECT count(*) FROM platform.approval_rules WHERE id = %s", (scoped,)).fetchone() == (0,)
    # A captured rule is disabled, not deleted; the captured copy keeps the rule and its permission.
    deployment = p.deploy()
    with rejected(restrict, "fk_deployment_approval_requirements_approval_rule_id"):
        conn.execute("DELETE FROM platform.approval_rules WHERE id = %s", (p.rule,))
    with rejected("23503", "fk_deployment_approval_requirements_deployment_id_deployments"):
        make.insert("deployment_approval_requirements", "deployment_id", deployment_id=uuid.uuid4(),
                    approval_rule_id=p.rule, approver_permission_id=make.permission_named("deployment:approve"),
                    required_approvals=1, allow_self_approval=False)  # fmt: skip
    # The rule now names another permission: the captured copy still holds the old one.
    conn.execute("UPDATE platform.approval_rules SET approver_permission_id = %s WHERE id = %s",
                 (make.permission(name="deployment:bless"), p.rule))  # fmt: skip
    with rejected(restrict, "fk_deployment_approval_requirements_approver_permission_id"):
        conn.execute("DELETE FROM platform.permissions WHERE name = 'deployment:approve'")
    # Behind the approval rules, the approver's foreign key.
    checks = ("trg_deployment_approvals_approver_authorized", "trg_deployment_approvals_not_self")
    with (
        triggers_disabled(conn, "deployment_approvals", *checks),
        rejected("23503", "fk_deployment_approvals_approver_id_users"),
    ):
        make.approval(deployment, uuid.uuid4())


def test_identity_writes_the_rules_and_delivery_only_reads_them(conn: psycopg.Connection[Any], make: Make) -> None:
    env, permission = make.environment(), make.permission_named("deployment:approve")
    as_role(conn, "platform_delivery")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        make.approval_rule(env, approver_permission_id=permission)
    as_role(conn, "platform_identity")
    rule = make.approval_rule(env, approver_permission_id=permission)
    conn.execute("UPDATE platform.approval_rules SET required_approvals = 2 WHERE id = %s", (rule,))
    conn.execute("DELETE FROM platform.approval_rules WHERE id = %s", (rule,))  # never captured: may be deleted


def test_approval_rule_stamp_and_key_triggers(conn: psycopg.Connection[Any], make: Make) -> None:
    env, permission = make.environment(), make.permission_named("deployment:approve")
    values = {"environment_id": env, "approver_permission_id": permission, "required_approvals": 1}
    assert_created_at_trigger(conn, "approval_rules", "platform_identity", values, "trg_approval_rules_created_at")
    rule = make.approval_rule(env, approver_permission_id=permission, created_at="2000-01-01",
                              updated_at="2000-01-01")  # fmt: skip
    assert_updated_at_trigger(conn, "approval_rules", "id = %s", (rule,), "required_approvals = 3",
                              guard="trg_approval_rules_updated_at")  # fmt: skip
    assert_keys_trigger(conn, "approval_rules", "id = %s", (rule,), "id = gen_random_uuid()",
                        "trg_approval_rules_keys_immutable")  # fmt: skip


def test_deployment_approvals_created_at_trigger(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    values = {"deployment_id": deployment, "approver_id": p.approvers[0], "approval_rule_id": p.rule,
              "decision": "approved"}  # fmt: skip
    assert_created_at_trigger(conn, "deployment_approvals", "platform_delivery", values,
                              "trg_deployment_approvals_created_at")  # fmt: skip


# what blocks this rollout --------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, "platform_delivery", "platform_readonly"])
def test_rollout_blockers_say_what_is_missing(conn: psycopg.Connection[Any], make: Make, role: str | None) -> None:
    p = Protected(make, required=2)
    deployment = p.deploy()
    make.approval(deployment, p.approvers[0])

    def blockers() -> list[tuple[str, str]]:
        as_role(conn, role)
        rows = conn.execute("SELECT * FROM platform.rollout_blockers(%s) ORDER BY 1", (deployment,)).fetchall()
        as_role(conn, None)
        return [(r[0], r[1]) for r in rows]

    assert blockers() == [("approvals_missing", f"rule {p.rule}: 1 of 2 approvals by holders of deployment:approve")]
    make.approval(deployment, p.approvers[1], "rejected")
    assert [b for b, _ in blockers()] == ["approvals_missing", "rejected"]
    make.set_status(deployment, "cancelled")
    assert blockers() == []  # only a pending rollout is blocked
    assert conn.execute("SELECT count(*) FROM platform.rollout_blockers(%s)", (uuid.uuid4(),)).fetchone() == (0,)


# races ---------------------------------------------------------------------------------------------------
def test_an_approval_racing_the_start_is_counted_or_refused(db: URL, make: Make) -> None:
    """Two connections as the delivery service. The approval holds the deployment's row (FOR SHARE): the start
    waits and then counts it. The start holds the row: the approval waits and then finds the rollout started."""
    p = Protected(make, required=1)
    delivery = ("SET ROLE platform_delivery", ())
    for approval_first in (True, False):
        deployment = p.deploy()
        approve = ("INSERT INTO platform.deployment_approvals (deployment_id, approver_id, approval_rule_id,"
                   " decision) VALUES (%s, %s, %s, 'approved')", (deployment, p.approvers[0], p.rule))  # fmt: skip
        start = ("UPDATE platform.deployments SET status = 'in_progress' WHERE id = %s", (deployment,))
        if approval_first:
            assert second_waits_for_first(db, [delivery, approve], [delivery, start]) is None
            assert status(make.conn, deployment) == "in_progress"
        else:
            make.approval(deployment, p.approvers[1])  # so that the start may go first
            error = second_waits_for_first(db, [delivery, start], [delivery, approve])
            assert error is not None
            assert (error.sqlstate, error.diag.constraint_name) == ("23514", "trg_deployment_approvals_open")
        make.set_status(deployment, "cancelled")


def test_it_is_the_capture_trigger_that_copies_the_rules(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=1)
    with triggers_disabled(conn, "deployments", "trg_deployments_capture_approval_rules"):
        uncaptured = p.deploy()
    assert requirements(conn, uncaptured) == []
    make.set_status(uncaptured, "cancelled")
    assert requirements(conn, p.deploy()) == [(p.rule, 1, False)]


def test_captured_rule_checks(conn: psycopg.Connection[Any], make: Make) -> None:
    p = Protected(make, required=1)
    deployment = p.deploy()
    other = make.approval_rule(p.env, approver_permission_id=make.permission(name="deployment:sign"))
    values = {"deployment_id": deployment, "approval_rule_id": other, "allow_self_approval": False,
              "approver_permission_id": make.permission_named("deployment:approve")}  # fmt: skip
    with rejected("23514", "ck_deployment_approval_requirements_required_approvals_range"):
        make.insert("deployment_approval_requirements", "deployment_id", required_approvals=0, **values)
    make.insert("deployment_approval_requirements", "deployment_id", required_approvals=10, **values)
