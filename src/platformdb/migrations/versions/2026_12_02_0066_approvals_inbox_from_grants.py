"""The approvals inbox from the approver's grants: platform.pending_approvals_of(approver)

Why: delivery.pending_approvals_of_approver scanned every pending rollout and asked platform.may_user_do about
     each (issue #13: p99 101 ms and 19,160 buffers per call at scale 100, growing with the platform).
     platform.pending_approvals_of turns the approver's live grants (their own and their teams', as may_user_do
     counts them) into scopes once and reaches the pending rollouts of each service a scope names through
     uq_deployments_active_service_id_environment_id; only a scope of every service (an administrator's) reads
     all pending rollouts, and only when the permission is one an approval rule names. Same rows, columns and
     order as the query it replaces but in one case: a rollout that captured a permission no rule names any
     more (its rule was changed since) is listed for that permission's holders on its service, not for those
     holding it on every service (the function's comment says so). SECURITY DEFINER: the delivery service needs EXECUTE, not SELECT on the grants.
Locks: CREATE FUNCTION and COMMENT ON INDEX only (catalog rows; the comment takes SHARE UPDATE EXCLUSIVE on
       deployments for the statement, writes go on). Runs before the code that uses it (pre-deploy): the
       catalog query of this release calls the function; the previous release's query reads the tables and
       keeps working.

Revision ID: 0066
Revises: 0065
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0066"
down_revision: str | Sequence[str] | None = "0065"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_KEY = "platform.uq_deployments_active_service_id_environment_id"
ACTIVE_KEY_SERVES = "rule: at most one active deployment per service and environment"


def upgrade() -> None:
    op.execute(INBOX)
    op.execute("REVOKE ALL ON FUNCTION platform.pending_approvals_of(uuid) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION platform.pending_approvals_of(uuid) TO platform_delivery, platform_readonly")
    op.execute(
        f"COMMENT ON INDEX {ACTIVE_KEY} IS 'Serves: {ACTIVE_KEY_SERVES};"
        " delivery.pending_approvals_of_approver (a service''s pending rollouts)'"
    )


def downgrade() -> None:
    op.execute(f"COMMENT ON INDEX {ACTIVE_KEY} IS 'Serves: {ACTIVE_KEY_SERVES}'")
    op.execute("DROP FUNCTION platform.pending_approvals_of(uuid)")


# A frozen copy of the function as it was when this revision landed (see models/delivery.sql for today's).
INBOX = r"""
-- The approvals inbox (revision 0066): the pending rollouts this person may approve and has not decided on,
-- found from the approver's grants rather than by asking may_user_do about every pending rollout (issue #13:
-- 19,160 buffers per call at scale 100). The approver's live grants (their own and their teams', as
-- may_user_do counts them) become scopes once; a scope naming a service reaches that service's pending rollouts
-- through the active-rollout key, one of every service (an administrator's) reaches them all. SECURITY DEFINER:
-- a caller needs EXECUTE, not the grants.
CREATE FUNCTION platform.pending_approvals_of(p_approver_id uuid)
RETURNS TABLE (deployment_id uuid, service_id uuid, environment_id uuid, version text, deployed_by uuid,
               created_at timestamptz, approval_rule_id uuid, required_approvals smallint, approved bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- One statement, no helper functions: the catalog's plan checks see every table it reads. The scopes say what
  -- platform.may_user_do checks, walking the teams the same way (index probes per team); a test holds the two to
  -- the same answers.
  WITH RECURSIVE member_of (team_id) AS (
      SELECT m.team_id
        FROM platform.team_memberships m
       WHERE m.user_id = p_approver_id
         AND (m.expires_at IS NULL OR m.expires_at > now())
    UNION
      SELECT (SELECT t.parent_team_id FROM platform.teams t WHERE t.id = member_of.team_id)
        FROM member_of
       WHERE member_of.team_id IS NOT NULL),
  scopes AS MATERIALIZED (
    SELECT DISTINCT rp.permission_id, g.service_id, g.environment_id
      FROM (SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.user_id = p_approver_id
            UNION ALL
            SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.team_id = ANY (ARRAY(SELECT member_of.team_id FROM member_of))) g
      JOIN platform.role_permissions rp ON rp.role_id = g.role_id
     WHERE (g.expires_at IS NULL OR g.expires_at > now())
       AND EXISTS (SELECT FROM platform.users u WHERE u.id = p_approver_id AND u.deactivated_at IS NULL)),
  candidates AS (
    -- Every pending rollout, when the approver holds on every service a permission an approval rule names
    -- (the rules, a small table, say which permissions approve; not every captured requirement).
    SELECT d.id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at
      FROM platform.deployments d
     WHERE d.status = 'pending'
       AND EXISTS (SELECT FROM scopes s JOIN platform.approval_rules r ON r.approver_permission_id = s.permission_id
                    WHERE s.service_id IS NULL)
    UNION
    -- The pending rollouts of each service a grant names, by the active-rollout key.
    SELECT d.id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at
      FROM (SELECT DISTINCT s.service_id FROM scopes s WHERE s.service_id IS NOT NULL) s
      JOIN platform.deployments d ON d.service_id = s.service_id AND d.status = 'pending')
  SELECT d.id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at,
         q.approval_rule_id, q.required_approvals, n.approved
    FROM candidates d
    JOIN platform.deployment_approval_requirements q ON q.deployment_id = d.id
    CROSS JOIN LATERAL (
      SELECT count(*) AS approved
        FROM platform.deployment_approvals a
       WHERE a.deployment_id = q.deployment_id AND a.approval_rule_id = q.approval_rule_id
         AND a.decision = 'approved') n
   WHERE n.approved < q.required_approvals
     AND (d.deployed_by IS DISTINCT FROM p_approver_id OR q.allow_self_approval)
     AND NOT EXISTS (SELECT FROM platform.deployment_approvals a
                      WHERE a.deployment_id = d.id AND (a.approver_id = p_approver_id OR a.decision = 'rejected'))
     AND EXISTS (SELECT FROM scopes s
                  WHERE s.permission_id = q.approver_permission_id
                    AND (s.service_id IS NULL OR s.service_id = d.service_id)
                    AND (s.environment_id IS NULL OR s.environment_id = d.environment_id))
   ORDER BY d.created_at, d.id, q.approval_rule_id
$$;
COMMENT ON FUNCTION platform.pending_approvals_of(uuid) IS 'The approvals inbox: the pending rollouts this person may approve (a live grant of the captured rule''s permission in its scope, their own or a team''s, as platform.may_user_do counts them) and has not decided on, a row per rule short of its approvals, oldest first; a rollout someone rejected awaits cancellation and is not listed, nor is the approver''s own rollout unless the rule allows self-approval. One difference from asking may_user_do per rollout: a rollout that captured a permission no approval rule names any more (the rule was since changed) is listed for the holders of that permission on its service, not for those who hold it on every service.';
"""
