"""Catalog: who owns which services, and what breaks when a service does."""

from __future__ import annotations

from platformdb.queries.base import Query
from platformdb.queries.roles import CATALOG, READONLY

PAGE_SIZE = 50


SERVICE_DIRECTORY = Query(
    name="catalog.service_directory",
    roles=(CATALOG, READONLY),
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
)

SERVICES_OF_TEAM = Query(
    name="catalog.services_of_team",
    roles=(CATALOG, READONLY),
    caller="catalog service and the developer portal's team page: the services a team owns.",
    kind="point",
    sql="""
SELECT s.id, s.name, s.status, s.tier
  FROM platform.services s
 WHERE s.owner_team_id = %(team_id)s
 ORDER BY s.name
""",
)

TRANSITIVE_DEPENDENTS = Query(
    name="catalog.transitive_dependents",
    roles=(CATALOG, READONLY),
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
)

QUERIES = [SERVICE_DIRECTORY, SERVICES_OF_TEAM, TRANSITIVE_DEPENDENTS]
