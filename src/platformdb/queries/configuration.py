"""Configuration: what a service gets now, and what it got at a deployment."""

from __future__ import annotations

from platformdb.queries.base import Query

EFFECTIVE_CONFIGURATION = Query(
    name="configuration.effective_configuration",
    caller="configuration service, when a service instance starts or reloads: the settings in force for a "
    "service in an environment (per key the live override, else the live default). Calls "
    "platform.effective_configuration(), a STABLE SQL function the planner inlines: its plan is the plan of the "
    "same SQL written out, and there is one definition of the rule.",
    kind="point",
    sql="""
SELECT e.configuration_id, e.key, e.version, e.kind, e.value, e.secret_ref
  FROM platform.effective_configuration(%(service_id)s, %(environment_id)s) e
 ORDER BY e.key
""",
)

CONFIGURATION_AT_DEPLOYMENT = Query(
    name="configuration.configuration_at_deployment",
    caller='delivery service and incident tooling ("what changed?"): the exact configuration versions in force '
    "when a deployment was created, as recorded by trg_deployments_capture_configuration. A deployment records a "
    "few dozen keys, out of tables that grow with services x keys x environments (x edits), so each recorded key "
    "is looked up by primary key: its slot and its version. OFFSET 0 keeps that plan at every size: while the "
    "tables are a few pages, the planner would rather hash them whole (random_page_cost 4 prices every probe as "
    "a disk read), and that plan does not scale.",
    kind="point",
    sql="""
SELECT x.key, x.environment_id, dc.version, x.kind, x.value, x.secret_ref, x.created_at
  FROM platform.deployment_configurations dc
  CROSS JOIN LATERAL (
    SELECT c.key, c.environment_id, v.kind, v.value, v.secret_ref, v.created_at
      FROM platform.configurations c
      JOIN platform.configuration_versions v ON v.configuration_id = c.id
     WHERE c.id = dc.configuration_id
       AND v.version = dc.version
    OFFSET 0) x
 WHERE dc.deployment_id = %(deployment_id)s
 ORDER BY x.key
""",
)

QUERIES = [EFFECTIVE_CONFIGURATION, CONFIGURATION_AT_DEPLOYMENT]
