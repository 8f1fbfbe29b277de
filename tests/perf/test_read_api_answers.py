"""The read API rewritten for speed answers as before, on the seeded data (scale 1): platform.may_user_do as
revision 0068 plans it against revision 0030's body, and the approvals inbox (platform.pending_approvals_of,
revision 0066) against the query it replaced, which asked may_user_do about every pending rollout. What each
reads is measured by the benchmark (buffers per call at scales 10 and 100), not here."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from platformdb import migrate
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


def _may_user_do_0030() -> str:
    """platform.may_user_do's body as revision 0030 made it (revision 0068 keeps a frozen copy for its downgrade),
    its arguments as the query parameters."""
    module = migrate.script_directory().get_revision("0068").module  # type: ignore[union-attr]
    body = str(module.MAY_USER_DO_0030).split("AS $$", 1)[1].rsplit("$$;", 1)[0]
    for name in ("user_id", "permission", "service_id", "environment_id"):
        body = re.sub(rf"\bp_{name}\b", f"%({name})s", body)
    return body


MAY_USER_DO_0030 = _may_user_do_0030()


def test_may_user_do_answers_as_revision_0030s_body_for_every_user_and_permission(
    seeded_conn: psycopg.Connection[Any],
) -> None:
    """Every user and service account, every permission, in one scoped place of each of the user's grants (their
    own and their teams') and in one place none names: about 30,000 checks at scale 1."""
    permissions = [row[0] for row in seeded_conn.execute("SELECT name FROM platform.permissions ORDER BY name")]
    elsewhere = seeded_conn.execute(
        "SELECT (SELECT id FROM platform.services ORDER BY id DESC LIMIT 1),"
        " (SELECT id FROM platform.environments ORDER BY id DESC LIMIT 1)"
    ).fetchone()
    assert elsewhere is not None
    places = seeded_conn.execute(
        """SELECT DISTINCT u.id, coalesce(g.service_id, %s), coalesce(g.environment_id, %s)
             FROM platform.users u
             LEFT JOIN platform.team_memberships m ON m.user_id = u.id
             LEFT JOIN platform.teams t ON t.id = m.team_id
             JOIN platform.role_grants g ON g.user_id = u.id OR g.team_id IN (t.id, t.parent_team_id)
           UNION
           SELECT u.id, %s, %s FROM platform.users u""",
        (*elsewhere, *elsewhere),
    ).fetchall()
    allowed = differ = 0
    for user, service, environment in places:
        for permission in permissions:
            params = {"user_id": user, "permission": permission, "service_id": service, "environment_id": environment}
            now = seeded_conn.execute(
                "SELECT platform.may_user_do(%(user_id)s, %(permission)s, %(service_id)s, %(environment_id)s)", params
            ).fetchone()
            before = seeded_conn.execute(MAY_USER_DO_0030, params).fetchone()
            assert now is not None
            assert before is not None
            differ += now[0] != before[0]
            allowed += bool(now[0])
    assert differ == 0, f"{differ} of {len(places) * len(permissions)} checks answer differently"
    assert allowed >= 1000, f"only {allowed} checks allowed: the comparison says little"
