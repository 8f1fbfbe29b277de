"""Audit: one entity's trail, one actor's activity, the newest events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from platformdb.queries.base import Query, Sampler, Window, sample

# Entities whose trails are looked up, and how often: (entity_type, candidate SQL giving entity_id).
_ENTITIES = [
    ("deployments", sample("id::text AS entity_id", "platform.deployments"), 6),
    ("services", sample("id::text AS entity_id", "platform.services"), 2),
    ("users", sample("id::text AS entity_id", "platform.users"), 1),
    ("configuration_versions", sample("configuration_id::text || ',' || version AS entity_id",
                                      "platform.configuration_versions", "(configuration_id, version)"), 1),
]  # fmt: skip


def _entity_params(s: Sampler) -> dict[str, Any]:
    entity_type, candidates, _ = s.rng.choices(_ENTITIES, [w for *_, w in _ENTITIES])[0]
    return {"entity_type": entity_type, **s.row(candidates), "limit": 50}


ENTITY_TRAIL = Query(
    name="audit.entity_trail",
    caller='audit service and the portal\'s "history" tab of any object: the newest changes of one entity. No '
    "time bound: every partition is probed through its index (a handful of rows each), newest first.",
    kind="point",
    sql="""
SELECT a.id, a.created_at, a.actor_name, a.action, a.request_id, a.before, a.after
  FROM platform.audit_logs a
 WHERE a.entity_type = %(entity_type)s
   AND a.entity_id = %(entity_id)s
 ORDER BY a.created_at DESC
 LIMIT %(limit)s
""",
    params=_entity_params,
)


def _actor_params(s: Sampler) -> dict[str, Any]:
    actor = s.row(sample("actor_id", "(SELECT DISTINCT actor_id FROM platform.audit_logs) a", "actor_id",
                         where="actor_id IS NOT NULL"))  # fmt: skip
    newest = s.one("SELECT max(created_at) AS at FROM platform.audit_logs WHERE actor_id = %(actor_id)s", actor)["at"]
    until = (newest or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=1)
    return {**actor, "since": until - dt.timedelta(days=7), "until": until, "limit": 200}


ACTOR_ACTIVITY = Query(
    name="audit.actor_activity",
    caller="audit service, for access reviews and incident forensics: what one user changed in a time window, "
    "newest first.",
    kind="range",
    sql="""
SELECT a.id, a.created_at, a.action, a.entity_type, a.entity_id, a.request_id
  FROM platform.audit_logs a
 WHERE a.actor_id = %(actor_id)s
   AND a.created_at >= %(since)s
   AND a.created_at < %(until)s
 ORDER BY a.created_at DESC
 LIMIT %(limit)s
""",
    params=_actor_params,
    window=Window("audit_logs"),
)


def _latest_params(s: Sampler) -> dict[str, Any]:
    newest = s.one("SELECT max(created_at) AS at FROM platform.audit_logs", {})["at"] or dt.datetime.now(dt.UTC)
    return {"since": newest - dt.timedelta(days=1), "limit": 100}


LATEST_EVENTS = Query(
    name="audit.latest_events",
    caller="audit service's live feed in the portal: the newest changes anywhere. Bounded by `since` (the feed "
    "shows the last day) so that only the partitions from `since` on are read.",
    kind="range",
    sql="""
SELECT a.id, a.created_at, a.actor_name, a.action, a.entity_type, a.entity_id
  FROM platform.audit_logs a
 WHERE a.created_at >= %(since)s
 ORDER BY a.created_at DESC
 LIMIT %(limit)s
""",
    params=_latest_params,
    window=Window("audit_logs", until=None),
)

QUERIES = [ENTITY_TRAIL, ACTOR_ACTIVITY, LATEST_EVENTS]
