"""Identity: sign-in, authorization checks and team membership."""

from __future__ import annotations

from platformdb.queries.base import Query
from platformdb.queries.roles import EVERY_ROLE, IDENTITY, READONLY

LOGIN_BY_EMAIL = Query(
    name="identity.login_by_email",
    roles=(IDENTITY,),
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
    roles=(*EVERY_ROLE,),
    caller="every service's authorization middleware, on each mutating request: may this user use this "
    "permission on this service in this environment? A grant counts when its scope is NULL (any) or matches, it "
    "has not expired, and the user is active. platform.may_user_do() is SECURITY DEFINER: a service needs EXECUTE "
    "on it, not SELECT on the grants.",
    kind="point",
    sql="""
SELECT platform.may_user_do(%(user_id)s, %(permission)s, %(service_id)s, %(environment_id)s) AS allowed
""",
)

TEAMS_OF_USER = Query(
    name="identity.teams_of_user",
    roles=(IDENTITY, READONLY),
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
