"""Identity: sign-in, authorization checks and team membership."""

from __future__ import annotations

from platformdb.queries.base import Query

LOGIN_BY_EMAIL = Query(
    name="identity.login_by_email",
    caller="identity service, on every sign-in: the active account for an address, compared case-insensitively "
    "(served by the expression index uq_users_email_lower).",
    kind="point",
    sql="""
SELECT u.id, u.email, u.display_name, u.password_hash
  FROM platform.users u
 WHERE lower(u.email) = lower(%(email)s::text)
   AND u.deactivated_at IS NULL
""",
)


MAY_USER_DO = Query(
    name="identity.may_user_do",
    caller="every service's authorization middleware, on each mutating request: may this user use this "
    "permission on this service in this environment? A grant counts when its scope is NULL (any) or matches, it "
    "has not expired, and the user is active.",
    kind="point",
    sql="""
SELECT EXISTS (
  SELECT
    FROM platform.role_grants g
    JOIN platform.users u ON u.id = g.user_id
    JOIN platform.role_permissions rp ON rp.role_id = g.role_id
    JOIN platform.permissions p ON p.id = rp.permission_id
   WHERE g.user_id = %(user_id)s
     AND u.deactivated_at IS NULL
     AND p.name = %(permission)s
     AND (g.service_id IS NULL OR g.service_id = %(service_id)s)
     AND (g.environment_id IS NULL OR g.environment_id = %(environment_id)s)
     AND (g.expires_at IS NULL OR g.expires_at > now())
) AS allowed
""",
)

TEAMS_OF_USER = Query(
    name="identity.teams_of_user",
    caller="identity service and the developer portal's profile page: the teams a user belongs to, with the "
    "user's role in each.",
    kind="point",
    sql="""
SELECT t.id, t.name, t.display_name, m.role
  FROM platform.team_memberships m
  JOIN platform.teams t ON t.id = m.team_id
 WHERE m.user_id = %(user_id)s
 ORDER BY t.name
""",
)

QUERIES = [LOGIN_BY_EMAIL, MAY_USER_DO, TEAMS_OF_USER]
