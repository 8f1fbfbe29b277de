"""Property tests of four-eyes approvals (revision 0042): any sequence of decisions by any mix of approvers,
then a start. The database must accept exactly the decisions the rules allow (one per approver, by holders of
the rule's permission, the deployer only under a rule allowing self-approval) and let the rollout start exactly
when the accepted approvals reach the captured count and nobody rejected."""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import example, given
from hypothesis import strategies as st

from tests.factories import Make
from tests.reliability.report import Record
from tests.reliability.support import ACCEPTED, Outcome, PropertyLog, attempt, example_scope, prop_settings

APPROVERS = 4
"""Holders of deployment:approve for the service and environment; index APPROVERS is the deployer (who holds it
too), APPROVERS + 1 someone who holds nothing."""


def test_approval_counts_and_the_gate(conn: psycopg.Connection[Any], reliability: Record) -> None:
    make = Make(conn)
    service, env = make.service(), make.environment(tier="production")
    make.release(service, "1.0.0")
    permission = make.permission_named("deployment:approve")
    scope = {"service_id": service, "environment_id": env}
    people = [make.holder("deployment:approve", **scope) for _ in range(APPROVERS)]
    deployer = make.holder("deployment:create", **scope)
    role = conn.execute("SELECT role_id FROM platform.role_grants WHERE user_id = %s", (deployer,)).fetchone()
    assert role is not None
    make.insert("role_permissions", "role_id", role_id=role[0], permission_id=permission)
    people += [deployer, make.user()]
    log = PropertyLog(reliability)
    decision = st.tuples(st.integers(0, len(people) - 1), st.sampled_from(["approved", "rejected"]))

    @prop_settings(150)
    @given(
        required=st.integers(1, 4),
        allow_self=st.booleans(),
        decisions=st.lists(decision, max_size=7),
    )
    @example(required=2, allow_self=False, decisions=[(4, "approved"), (0, "approved"), (0, "approved")])
    @example(required=1, allow_self=True, decisions=[(4, "approved")])
    @example(required=1, allow_self=False, decisions=[(5, "approved"), (1, "rejected"), (2, "approved")])
    def run(required: int, allow_self: bool, decisions: list[tuple[int, str]]) -> None:
        with example_scope(conn):
            rule = make.approval_rule(env, approver_permission_id=permission, required_approvals=required,
                                      allow_self_approval=allow_self)  # fmt: skip
            deployment = make.insert("deployments", service_id=service, version="1.0.0", environment_id=env,
                                     deployed_by=deployer)  # fmt: skip
            decided: set[int] = set()
            approved = rejected = 0
            for who, verdict in decisions:
                got, _ = attempt(
                    conn,
                    "INSERT INTO platform.deployment_approvals (deployment_id, approver_id, approval_rule_id,"
                    " decision) VALUES (%s, %s, %s, %s)",
                    (deployment, people[who], rule, verdict),
                )
                if who == APPROVERS + 1:
                    expected = Outcome("23514", "trg_deployment_approvals_approver_authorized")
                elif who == APPROVERS and not allow_self:
                    expected = Outcome("23514", "trg_deployment_approvals_not_self")
                elif who in decided:
                    expected = Outcome("23505", "pk_deployment_approvals")
                else:
                    expected = ACCEPTED
                    decided.add(who)
                    approved += verdict == "approved"
                    rejected += verdict == "rejected"
                log.expect((required, allow_self, decisions, who, verdict), expected, got)
            got, _ = attempt(conn, "UPDATE platform.deployments SET status = 'in_progress' WHERE id = %s",
                             (deployment,))  # fmt: skip
            opens = approved >= required and not rejected
            log.case("opens" if opens else "rejected" if rejected else "short")
            log.expect((required, allow_self, decisions), ACCEPTED if opens else
                       Outcome("23514", "trg_deployments_approved"), got)  # fmt: skip

    run()
    log.finish(require=("opens", "rejected", "short"))
