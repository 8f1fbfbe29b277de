"""Configuration: what a service gets now, and what it got at a deployment."""

from __future__ import annotations

from platformdb.queries.base import Query
from platformdb.queries.roles import CONFIGURATION, DELIVERY, READONLY

EFFECTIVE_CONFIGURATION = Query(
    name="configuration.effective_configuration",
    roles=(CONFIGURATION, DELIVERY, READONLY),
    caller="configuration service, when a service instance starts or reloads: the settings in force for a "
    "service in an environment (per key the live override, else the live default). Calls "
    "platform.effective_configuration(), the one definition of the rule: SECURITY DEFINER, so delivery and "
    "read-only need no SELECT on the tables; secret references come back NULL to read-only.",
    kind="point",
    sql="""
SELECT e.configuration_id, e.key, e.version, e.kind, e.value, e.secret_ref
  FROM platform.effective_configuration(%(service_id)s, %(environment_id)s) e
 ORDER BY e.key
""",
)

CONFIGURATION_AT_DEPLOYMENT = Query(
    name="configuration.configuration_at_deployment",
    roles=(DELIVERY, CONFIGURATION, READONLY),
    caller='delivery service and incident tooling ("what changed?"): the exact configuration versions in force '
    "when a deployment was created, as recorded by trg_deployments_capture_configuration. Calls "
    "platform.configuration_at_deployment() (SECURITY DEFINER, secret references NULL to read-only), which looks "
    "each recorded key up by primary key: its slot and its version, a plan that holds at every size.",
    kind="point",
    sql="""
SELECT x.key, x.environment_id, x.version, x.kind, x.value, x.secret_ref, x.created_at
  FROM platform.configuration_at_deployment(%(deployment_id)s) x
 ORDER BY x.key
""",
)

QUERIES = [EFFECTIVE_CONFIGURATION, CONFIGURATION_AT_DEPLOYMENT]
