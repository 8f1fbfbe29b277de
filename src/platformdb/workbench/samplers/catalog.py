"""Parameters for the catalog queries of the catalog context, drawn from a loaded database."""

from __future__ import annotations

from typing import Any

from platformdb.queries.catalog import PAGE_SIZE
from platformdb.workbench.samplers.base import Draw, Sampler, sample


def _directory_params(s: Sampler) -> dict[str, Any]:
    """The first page half of the time, else the page after a service: a cursor a previous page ended on, so
    never the last service."""
    last = "(SELECT max(x.name) FROM platform.services x)"
    after = (
        "" if s.rng.random() < 0.5 else str(s.row(sample("name", "platform.services", where=f"name < {last}"))["name"])
    )
    return {"after_name": after, "page_size": PAGE_SIZE}


SAMPLERS: dict[str, Draw] = {
    "catalog.service_directory": _directory_params,
    "catalog.services_of_team": lambda s: s.row(sample("owner_team_id AS team_id", "platform.services")),
    "catalog.transitive_dependents": lambda s: s.row(
        sample(
            "depends_on_service_id AS service_id",
            "platform.service_dependencies",
            key="(service_id, depends_on_service_id)",
        )
    ),
}
