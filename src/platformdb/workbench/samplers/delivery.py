"""Parameters for the delivery catalog queries, drawn from a loaded database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from platformdb.queries.delivery import FIRST_PAGE, PAGE_SIZE
from platformdb.workbench.samplers.base import Draw, Sampler, sample


def _running_params(s: Sampler) -> dict[str, Any]:
    """The first page half of the time, else the page after a service: a cursor a previous page ended on, so
    one with a running service after it in the environment."""
    env = s.row(sample("id AS environment_id", "platform.environments"))
    after = ""
    if s.rng.random() >= 0.5:
        last = (
            "(SELECT max(x.name) FROM platform.services x JOIN platform.deployments d ON d.service_id = x.id"
            f" WHERE d.status = 'succeeded' AND d.environment_id = '{env['environment_id']}')"
        )
        after = str(s.row(sample("name", "platform.services", where=f"name < {last}"))["name"])
    return {**env, "after_name": after, "page_size": PAGE_SIZE}


def _history_params(s: Sampler) -> dict[str, Any]:
    """A page of a service's history: the first page half of the time, else the page after a deployment that
    has an older one (a cursor a previous page ended on, so the page is not empty)."""
    if s.rng.random() < 0.5:
        row = s.row(sample("service_id", "platform.deployments"))
        return {"service_id": row["service_id"], **FIRST_PAGE, "page_size": PAGE_SIZE}
    older = (
        "EXISTS (SELECT FROM platform.deployments o WHERE o.service_id = d.service_id"
        " AND (o.created_at, o.id) < (d.created_at, d.id))"
    )
    row = s.row(sample("d.service_id, d.created_at, d.id", "platform.deployments d", key="d.id", where=older))
    cursor = {"before_created_at": row["created_at"], "before_id": row["id"]}
    return {"service_id": row["service_id"], **cursor, "page_size": PAGE_SIZE}


def _calendar_params(s: Sampler) -> dict[str, Any]:
    """Four weeks around a freeze of an environment that has freezes."""
    row = s.row(sample("environment_id, lower(during) AS starts_at", "platform.freeze_periods",
                       where="environment_id IS NOT NULL"))  # fmt: skip
    return {"environment_id": row["environment_id"], "since": row["starts_at"] - dt.timedelta(weeks=2),
            "until": row["starts_at"] + dt.timedelta(weeks=2)}  # fmt: skip


_AWAITING = (
    "platform.deployments d JOIN platform.deployment_approval_requirements q ON q.deployment_id = d.id",
    "d.status = 'pending' AND q.required_approvals > (SELECT count(*) FROM platform.deployment_approvals a"
    " WHERE a.deployment_id = d.id AND a.approval_rule_id = q.approval_rule_id AND a.decision = 'approved')",
)
"""Pending rollouts short of approvals under a captured rule (they have something blocking them)."""


def _approver_params(s: Sampler) -> dict[str, Any]:
    """Someone who may approve a rollout awaiting approvals and has not decided on it: a live, matching grant of
    a role carrying the rule's permission, not the deployer."""
    tables, awaiting = _AWAITING
    grants = (
        f"{tables} JOIN platform.role_permissions rp ON rp.permission_id = q.approver_permission_id"
        " JOIN platform.role_grants g ON g.role_id = rp.role_id JOIN platform.users u ON u.id = g.user_id"
    )
    where = (
        f"{awaiting} AND u.deactivated_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())"
        " AND (g.service_id IS NULL OR g.service_id = d.service_id)"
        " AND (g.environment_id IS NULL OR g.environment_id = d.environment_id)"
        " AND g.user_id IS DISTINCT FROM d.deployed_by AND NOT EXISTS (SELECT FROM platform.deployment_approvals a"
        " WHERE a.deployment_id = d.id AND (a.approver_id = g.user_id OR a.decision = 'rejected'))"
    )
    return s.row(sample("g.user_id AS approver_id", grants, key="g.user_id", where=where))


SAMPLERS: dict[str, Draw] = {
    "delivery.freeze_calendar": _calendar_params,
    "delivery.rollout_blockers": lambda s: s.row(
        sample("d.id AS deployment_id", _AWAITING[0], key="d.id", where=_AWAITING[1])
    ),
    "delivery.pending_approvals_of_approver": _approver_params,
    "delivery.running_in_environment": _running_params,
    "delivery.deployment_history": _history_params,
    "delivery.deployment_timeline": lambda s: s.row(sample("id AS deployment_id", "platform.deployments")),
}
