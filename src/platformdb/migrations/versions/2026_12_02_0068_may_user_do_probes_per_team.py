"""may_user_do by index probes per team: the team walk no longer scans every team

Why: platform.may_user_do (revision 0030) walked up the user's teams with a join the planner hashed against a
     sequential scan of teams, and found the teams' grants with a merge join along ix_role_grants_team_id: the
     buffers of a check grew with the platform, 12 per call at scale 10 and 61 at scale 100 (issue #13), in
     every service's authorization middleware, every token check and every trigger that asks it. The same
     rules, the same answers (a test compares the two bodies on the seeded data for every user): each step up
     the walk is a scalar subquery (one team by its key), and the teams' grants are probed for the walk's teams.
Locks: CREATE OR REPLACE FUNCTION only (a catalog row; the grants on the function stay). No table is locked.
       Runs before or after the code (either): the signature and answers are unchanged.

Revision ID: 0068
Revises: 0067
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0068"
down_revision: str | Sequence[str] | None = "0067"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(MAY_USER_DO)


def downgrade() -> None:
    op.execute(MAY_USER_DO_0030)


# Frozen copies of the function as this revision makes it (see models/identity.sql for today's) and as revision
# 0030 made it.
MAY_USER_DO = r"""
CREATE OR REPLACE FUNCTION platform.may_user_do(p_user_id uuid, p_permission text, p_service_id uuid, p_environment_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- Per team, not per platform (revision 0068): each step up the walk is a scalar subquery, a lookup of one team
  -- by its key (planned as a join, the walk hashed a scan of every team), and the teams' grants are probed by
  -- ix_role_grants_team_id for the walk's teams (= ANY, not a merge join along the whole index).
  WITH RECURSIVE member_of (team_id) AS (
      SELECT m.team_id
        FROM platform.team_memberships m
       WHERE m.user_id = p_user_id
         AND (m.expires_at IS NULL OR m.expires_at > now())
    UNION
      SELECT (SELECT t.parent_team_id FROM platform.teams t WHERE t.id = member_of.team_id)
        FROM member_of
       WHERE member_of.team_id IS NOT NULL)
  SELECT EXISTS (SELECT FROM platform.users u WHERE u.id = p_user_id AND u.deactivated_at IS NULL)
     AND EXISTS (
    SELECT
      FROM (SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.user_id = p_user_id
            UNION ALL
            SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.team_id = ANY (ARRAY(SELECT member_of.team_id FROM member_of))) g
      JOIN platform.role_permissions rp ON rp.role_id = g.role_id
      JOIN platform.permissions p ON p.id = rp.permission_id
     WHERE p.name = p_permission
       AND (g.service_id IS NULL OR g.service_id = p_service_id)
       AND (g.environment_id IS NULL OR g.environment_id = p_environment_id)
       AND (g.expires_at IS NULL OR g.expires_at > now()))
$$;
"""

MAY_USER_DO_0030 = r"""
CREATE OR REPLACE FUNCTION platform.may_user_do(p_user_id uuid, p_permission text, p_service_id uuid, p_environment_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE member_of (team_id) AS (
      SELECT m.team_id
        FROM platform.team_memberships m
       WHERE m.user_id = p_user_id
         AND (m.expires_at IS NULL OR m.expires_at > now())
    UNION
      SELECT t.parent_team_id
        FROM member_of
        JOIN platform.teams t ON t.id = member_of.team_id
       WHERE t.parent_team_id IS NOT NULL)
  SELECT EXISTS (SELECT FROM platform.users u WHERE u.id = p_user_id AND u.deactivated_at IS NULL)
     AND EXISTS (
    SELECT
      FROM (SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.user_id = p_user_id
            UNION ALL
            SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM member_of
              JOIN platform.role_grants g ON g.team_id = member_of.team_id) g
      JOIN platform.role_permissions rp ON rp.role_id = g.role_id
      JOIN platform.permissions p ON p.id = rp.permission_id
     WHERE p.name = p_permission
       AND (g.service_id IS NULL OR g.service_id = p_service_id)
       AND (g.environment_id IS NULL OR g.environment_id = p_environment_id)
       AND (g.expires_at IS NULL OR g.expires_at > now()))
$$;
"""
