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
    """A page of a service's history: the first page half of the time, else the page after a deployment."""
    row = s.row(sample("service_id, created_at, id", "platform.deployments"))
    cursor = FIRST_PAGE if s.rng.random() < 0.5 else {"before_created_at": row["created_at"], "before_id": row["id"]}
    return {"service_id": row["service_id"], **cursor, "page_size": PAGE_SIZE}


def _calendar_params(s: Sampler) -> dict[str, Any]:
    """Four weeks around a freeze of an environment that has freezes."""
    row = s.row(sample("environment_id, lower(during) AS starts_at", "platform.freeze_periods",
                       where="environment_id IS NOT NULL"))  # fmt: skip
    return {"environment_id": row["environment_id"], "since": row["starts_at"] - dt.timedelta(weeks=2),
            "until": row["starts_at"] + dt.timedelta(weeks=2)}  # fmt: skip


SAMPLERS: dict[str, Draw] = {
    "delivery.freeze_calendar": _calendar_params,
    "delivery.running_in_environment": _running_params,
    "delivery.deployment_history": _history_params,
    "delivery.deployment_timeline": lambda s: s.row(sample("id AS deployment_id", "platform.deployments")),
}
