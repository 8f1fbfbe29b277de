"""Catalog: who owns which services, and what breaks when a service does."""

from __future__ import annotations

from typing import Any

from platformdb.queries.base import Query, Sampler, sample

PAGE_SIZE = 50


def _directory_params(s: Sampler) -> dict[str, Any]:
    """The first page half of the time, else the page after a service: a cursor a previous page ended on, so
    never the last service."""
    last = "(SELECT max(x.name) FROM platform.services x)"
    after = (
        "" if s.rng.random() < 0.5 else str(s.row(sample("name", "platform.services", where=f"name < {last}"))["name"])
    )
    return {"after_name": after, "page_size": PAGE_SIZE}


SERVICE_DIRECTORY = Query(
    name="catalog.service_directory",
    caller="the developer portal's service directory and `list services` in the platform CLI: every service in "
    "name order, one keyset page at a time (the cursor is the last name of the previous page, '' for the first). "
    "The unique index on name gives the order, so a page reads PAGE_SIZE entries whatever the number of services.",
    kind="range",
    sql="""
SELECT s.id, s.name, s.status, s.tier
  FROM platform.services s
 WHERE s.name > %(after_name)s
 ORDER BY s.name
 LIMIT %(page_size)s
""",
    params=_directory_params,
)

SERVICES_OF_TEAM = Query(
    name="catalog.services_of_team",
    caller="catalog service and the developer portal's team page: the services a team owns.",
    kind="point",
    sql="""
SELECT s.id, s.name, s.status, s.tier
  FROM platform.services s
 WHERE s.owner_team_id = %(team_id)s
 ORDER BY s.name
""",
    params=lambda s: s.row(sample("owner_team_id AS team_id", "platform.services")),
)

TRANSITIVE_DEPENDENTS = Query(
    name="catalog.transitive_dependents",
    caller="catalog service (blast radius), before a risky production deployment and during incidents: every "
    "service that depends on this one directly or through others. UNION (not UNION ALL) keeps each service once, "
    "which also ends the walk on dependency cycles.",
    kind="range",
    sql="""
WITH RECURSIVE dependents (service_id) AS (
  SELECT d.service_id
    FROM platform.service_dependencies d
   WHERE d.depends_on_service_id = %(service_id)s
  UNION
  SELECT d.service_id
    FROM dependents x
    JOIN platform.service_dependencies d ON d.depends_on_service_id = x.service_id
)
SELECT s.id, s.name, s.tier, s.status
  FROM dependents x
  JOIN platform.services s ON s.id = x.service_id
 WHERE s.id <> %(service_id)s
 ORDER BY s.tier, s.name
""",
    # Blast radius is asked about depended-on services, in proportion to how much they are depended on.
    params=lambda s: s.row(
        sample(
            "depends_on_service_id AS service_id",
            "platform.service_dependencies",
            key="(service_id, depends_on_service_id)",
        )
    ),
)

QUERIES = [SERVICE_DIRECTORY, SERVICES_OF_TEAM, TRANSITIVE_DEPENDENTS]
