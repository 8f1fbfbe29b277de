"""Identity: sign-in, authorization checks and team membership."""

from __future__ import annotations

from platformdb.queries.base import Query
from platformdb.queries.roles import CATALOG, CONFIGURATION, DELIVERY, EVERY_ROLE, IDENTITY, METRICS_WRITER, READONLY

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
    caller="every service's authorization middleware, on each mutating request: may this user (or service "
    "account) use this permission on this service in this environment? Counts the user's own grants and those of "
    "every team the user is an unexpired member of, directly or through ancestor teams (a recursive walk up "
    "teams.parent_team_id from the memberships, ix_team_memberships_user_id; team grants by "
    "ix_role_grants_team_id). A grant counts when its scope is NULL (any) or matches and it has not expired; a "
    "deactivated user may do nothing. platform.may_user_do() is SECURITY DEFINER: a service needs EXECUTE on it, "
    "not SELECT on the grants.",
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

VERIFY_API_TOKEN = Query(
    name="identity.verify_api_token",
    roles=(IDENTITY, CATALOG, DELIVERY, CONFIGURATION, METRICS_WRITER),
    caller="every service's API middleware, on each request that presents a token (platformdb.tokens.verify): "
    "the principal the token acts as for this permission, service and environment, or why not. A point lookup "
    "by selector (uq_api_tokens_selector), the verifier compared in the function, the scopes by primary key, "
    "the owner's permissions by may_user_do; records the use at most once a minute. SECURITY DEFINER: no "
    "service reads a verifier.",
    kind="point",
    sql="""
SELECT principal_id, principal_kind, refusal
  FROM platform.verify_api_token(%(selector)s, %(verifier)s, %(permission)s, %(service_id)s, %(environment_id)s)
""",
)

TOKENS_OF_USER = Query(
    name="identity.tokens_of_user",
    roles=(IDENTITY, READONLY),
    caller="identity service and `platformdb tokens list --owner`: a user's or service account's tokens, newest "
    "first (never a verifier).",
    kind="point",
    sql="""
SELECT t.id, t.name, t.selector, t.service_id, t.environment_id, t.expires_at, t.revoked_at, t.last_used_at
  FROM platform.api_tokens t
 WHERE t.user_id = %(user_id)s
 ORDER BY t.created_at DESC
""",
)

QUERIES = [LOGIN_BY_EMAIL, MAY_USER_DO, TEAMS_OF_USER, VERIFY_API_TOKEN, TOKENS_OF_USER]
