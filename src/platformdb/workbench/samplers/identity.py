"""Parameters for the identity catalog queries, drawn from a loaded database."""

from __future__ import annotations

from typing import Any

from platformdb.workbench.samplers.base import Draw, Sampler, sample


def _login_params(s: Sampler) -> dict[str, Any]:
    email = str(s.row(sample("email", "platform.users", where="deactivated_at IS NULL"))["email"])
    return {"email": s.rng.choice([email, email.lower(), email.upper()])}  # as typed into the sign-in form


def _may_user_do_params(s: Sampler) -> dict[str, Any]:
    grant = s.row(sample("user_id, service_id, environment_id", "platform.role_grants"))
    service = grant["service_id"] or s.row(sample("id", "platform.services"))["id"]
    environment = grant["environment_id"] or s.row(sample("id", "platform.environments"))["id"]
    permission = s.row(sample("name", "platform.permissions"))["name"]
    return {"user_id": grant["user_id"], "permission": permission, "service_id": service, "environment_id": environment}


def _token_check_params(s: Sampler) -> dict[str, Any]:
    token = s.row(sample("id, selector, service_id, environment_id", "platform.api_tokens"))
    permission = s.one(
        "SELECT p.name FROM platform.api_token_scopes ts JOIN platform.permissions p ON p.id = ts.permission_id"
        " WHERE ts.token_id = %(token)s ORDER BY p.name LIMIT 1",
        {"token": token["id"]},
    )
    service = token["service_id"] or s.row(sample("id", "platform.services"))["id"]
    environment = token["environment_id"] or s.row(sample("id", "platform.environments"))["id"]
    # The secret of a seeded token is nobody's: the check runs the lookup and the comparison, and refuses.
    verifier = bytes(s.rng.getrandbits(8) for _ in range(32))
    return {"selector": token["selector"], "verifier": verifier, "permission": permission["name"],
            "service_id": service, "environment_id": environment}  # fmt: skip


SAMPLERS: dict[str, Draw] = {
    "identity.login_by_email": _login_params,
    "identity.may_user_do": _may_user_do_params,
    "identity.teams_of_user": lambda s: s.row(sample("user_id", "platform.team_memberships", key="user_id")),
    "identity.verify_api_token": _token_check_params,
    "identity.tokens_of_user": lambda s: s.row(sample("user_id", "platform.api_tokens", key="user_id")),
}
