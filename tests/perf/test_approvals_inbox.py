"""The approvals inbox on the seeded data (scale 1): platform.pending_approvals_of (revision 0066) answers what
the query it replaced answered by asking platform.may_user_do about every pending rollout, for every user and
service account. (What it reads, against the old query, is measured by the benchmark at scales 10 and 100.)"""

from __future__ import annotations

from typing import Any

import psycopg

from platformdb.queries import CATALOG

INBOX = CATALOG["delivery.pending_approvals_of_approver"]

BY_MAY_USER_DO = """
SELECT d.id AS deployment_id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at,
       q.approval_rule_id, q.required_approvals, n.approved
  FROM platform.deployments d
  JOIN platform.deployment_approval_requirements q ON q.deployment_id = d.id
  JOIN platform.permissions p ON p.id = q.approver_permission_id
  CROSS JOIN LATERAL (
    SELECT count(*) AS approved
      FROM platform.deployment_approvals a
     WHERE a.deployment_id = q.deployment_id AND a.approval_rule_id = q.approval_rule_id
       AND a.decision = 'approved') n
 WHERE d.status = 'pending'
   AND n.approved < q.required_approvals
   AND (d.deployed_by IS DISTINCT FROM %(approver_id)s OR q.allow_self_approval)
   AND NOT EXISTS (SELECT FROM platform.deployment_approvals a
                    WHERE a.deployment_id = d.id AND (a.approver_id = %(approver_id)s OR a.decision = 'rejected'))
   AND platform.may_user_do(%(approver_id)s, p.name, d.service_id, d.environment_id)
 ORDER BY d.created_at, d.id, q.approval_rule_id
"""
"""The inbox of release 0.4.0: the may_user_do check per pending rollout and captured rule."""


def test_the_inbox_answers_what_may_user_do_answers_for_every_user(seeded_conn: psycopg.Connection[Any]) -> None:
    users = [row[0] for row in seeded_conn.execute("SELECT id FROM platform.users ORDER BY id")]
    with_rows = 0
    for user in users:
        expected = seeded_conn.execute(BY_MAY_USER_DO, {"approver_id": user}).fetchall()
        assert seeded_conn.execute(INBOX.sql, {"approver_id": user}).fetchall() == expected, user
        with_rows += bool(expected)
    assert with_rows >= 3, f"only {with_rows} of {len(users)} users have pending rollouts to approve"
