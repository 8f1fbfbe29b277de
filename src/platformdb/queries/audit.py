"""Audit: one entity's trail, one actor's activity, the newest events."""

from __future__ import annotations

from platformdb.queries.base import Query, Window
from platformdb.queries.roles import AUDIT_READER, READONLY

ENTITY_TRAIL = Query(
    name="audit.entity_trail",
    roles=(AUDIT_READER, READONLY),
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
)


ACTOR_ACTIVITY = Query(
    name="audit.actor_activity",
    roles=(AUDIT_READER, READONLY),
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
    window=Window("audit_logs"),
)


LATEST_EVENTS = Query(
    name="audit.latest_events",
    roles=(AUDIT_READER, READONLY),
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
    window=Window("audit_logs", until=None),
)

QUERIES = [ENTITY_TRAIL, ACTOR_ACTIVITY, LATEST_EVENTS]
