"""Parameters for the identity catalog queries, drawn from a loaded database."""

from __future__ import annotations

from typing import Any

from platformdb.workbench.samplers.base import Draw, Sampler, sample


def _login_params(s: Sampler) -> dict[str, Any]:
    email = str(s.row(sample("email", "platform.users", where="deactivated_at IS NULL"))["email"])
    return {"email": s.rng.choice([email, email.lower(), email.upper()])}  # as typed into the sign-in form


def _may_user_do_params(s: Sampler) -> dict[str, Any]:
    """Half the checks for a holder of a direct grant within its scope, half for a team member asking what
    their teams (and the teams' ancestors) may do: the API gateway asks both."""
    if s.rng.random() < 0.5:
        grant = s.row(
            sample("user_id, service_id, environment_id", "platform.role_grants", where="user_id IS NOT NULL")
        )
        user = grant["user_id"]
        service = grant["service_id"] or s.row(sample("id", "platform.services"))["id"]
        environment = grant["environment_id"] or s.row(sample("id", "platform.environments"))["id"]
    else:
        user = s.row(sample("user_id", "platform.team_memberships", key="user_id"))["user_id"]
        service = s.row(sample("id", "platform.services"))["id"]
        environment = s.row(sample("id", "platform.environments"))["id"]
    permission = s.row(sample("name", "platform.permissions"))["name"]
    return {"user_id": user, "permission": permission, "service_id": service, "environment_id": environment}


def _token_check_params(s: Sampler) -> dict[str, Any]:
    """Mostly a live token presented rightly (its verifier is what the client sends: the SHA-256 of its secret;
    the sampler reads it as the owner), for a permission in its scopes and within its scope: the request path
    that records the use and asks may_user_do. One in ten presents a wrong secret."""
    token = s.row(sample("id, selector, verifier, service_id, environment_id", "platform.api_tokens",
                         where="revoked_at IS NULL AND expires_at > now()"))  # fmt: skip
    permission = s.one(
        "SELECT p.name FROM platform.api_token_scopes ts JOIN platform.permissions p ON p.id = ts.permission_id"
        " WHERE ts.token_id = %(token)s ORDER BY p.name LIMIT 1",
        {"token": token["id"]},
    )
    service = token["service_id"] or s.row(sample("id", "platform.services"))["id"]
    environment = token["environment_id"] or s.row(sample("id", "platform.environments"))["id"]
    verifier = bytes(token["verifier"]) if s.rng.random() < 0.9 else bytes(s.rng.getrandbits(8) for _ in range(32))
    return {"selector": token["selector"], "verifier": verifier, "permission": permission["name"],
            "service_id": service, "environment_id": environment}  # fmt: skip


SAMPLERS: dict[str, Draw] = {
    "identity.login_by_email": _login_params,
    "identity.may_user_do": _may_user_do_params,
    "identity.teams_of_user": lambda s: s.row(sample("user_id", "platform.team_memberships", key="user_id")),
    "identity.verify_api_token": _token_check_params,
    "identity.tokens_of_user": lambda s: s.row(sample("user_id", "platform.api_tokens", key="user_id")),
}
