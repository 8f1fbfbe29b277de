"""Identity: sign-in, authorization checks and team membership."""

from __future__ import annotations

from typing import Any

from platformdb.queries.base import Query, Sampler, sample


def _login_params(s: Sampler) -> dict[str, Any]:
    email = str(s.row(sample("email", "platform.users", where="deactivated_at IS NULL"))["email"])
    return {"email": s.rng.choice([email, email.lower(), email.upper()])}  # as typed into the sign-in form


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
    params=_login_params,
)


def _may_user_do_params(s: Sampler) -> dict[str, Any]:
    grant = s.row(sample("user_id, service_id, environment_id", "platform.role_grants"))
    service = grant["service_id"] or s.row(sample("id", "platform.services"))["id"]
    environment = grant["environment_id"] or s.row(sample("id", "platform.environments"))["id"]
    permission = s.row(sample("name", "platform.permissions"))["name"]
    return {"user_id": grant["user_id"], "permission": permission, "service_id": service, "environment_id": environment}


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
    params=_may_user_do_params,
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
    params=lambda s: s.row(sample("user_id", "platform.team_memberships", key="user_id")),
)

QUERIES = [LOGIN_BY_EMAIL, MAY_USER_DO, TEAMS_OF_USER]
