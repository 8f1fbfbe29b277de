"""Parameters for the configuration catalog queries, drawn from a loaded database."""

from __future__ import annotations

from typing import Any

from platformdb.workbench.samplers.base import Draw, Sampler, sample


def _effective_params(s: Sampler) -> dict[str, Any]:
    service = s.row(sample("id AS service_id", "platform.services"))["service_id"]
    environment = s.row(sample("id AS environment_id", "platform.environments"))["environment_id"]
    return {"service_id": service, "environment_id": environment}


SAMPLERS: dict[str, Draw] = {
    "configuration.effective_configuration": _effective_params,
    "configuration.configuration_at_deployment": lambda s: s.row(sample("id AS deployment_id", "platform.deployments")),
}
