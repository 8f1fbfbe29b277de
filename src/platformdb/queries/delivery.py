"""Delivery: what runs where, a service's deployment history, rollouts under way and their timelines."""

from __future__ import annotations

import datetime as dt
import uuid

from platformdb.queries.base import Query
from platformdb.queries.roles import DELIVERY, READONLY

FIRST_PAGE = {
    "before_created_at": dt.datetime.max.replace(tzinfo=dt.UTC),
    "before_id": uuid.UUID(int=(1 << 128) - 1),
}
"""The deployment_history cursor of the first page: after every (created_at, id)."""
PAGE_SIZE = 50


RUNNING_IN_ENVIRONMENT = Query(
    name="delivery.running_in_environment",
    roles=(DELIVERY, READONLY),
    caller='delivery service and the portal\'s environment dashboard ("what runs where"): per service, the '
    "latest succeeded deployment in one environment, a keyset page of services in name order at a time (the "
    "cursor is the last service name of the previous page, '' for the first). The services' name index gives "
    "the order; one backward index probe per service (LATERAL ... LIMIT 1) finds its latest success, so a page "
    "costs the same however many services there are.",
    kind="range",
    sql="""
SELECT s.id AS service_id, s.name, d.id AS deployment_id, d.version, d.deployed_at
  FROM platform.services s
  CROSS JOIN LATERAL (
    SELECT d.id, d.version, d.deployed_at
      FROM platform.deployments d
     WHERE d.environment_id = %(environment_id)s
       AND d.service_id = s.id
       AND d.status = 'succeeded'
     ORDER BY d.deployed_at DESC
     LIMIT 1) d
 WHERE s.name > %(after_name)s
 ORDER BY s.name
 LIMIT %(page_size)s
""",
)


DEPLOYMENT_HISTORY = Query(
    name="delivery.deployment_history",
    roles=(DELIVERY, READONLY),
    caller="delivery service's API and the portal's service page: a service's deployments newest first, one "
    "keyset page at a time. The cursor is the (created_at, id) of the last row of the previous page (FIRST_PAGE "
    "for the first); the row comparison is an index condition, so a page reads PAGE_SIZE index entries "
    "backwards and never sorts the history.",
    kind="range",
    sql="""
SELECT d.id, d.version, d.environment_id, d.status, d.created_at, d.deployed_at
  FROM platform.deployments d
 WHERE d.service_id = %(service_id)s
   AND (d.created_at, d.id) < (%(before_created_at)s, %(before_id)s)
 ORDER BY d.created_at DESC, d.id DESC
 LIMIT %(page_size)s
""",
)

ACTIVE_DEPLOYMENTS = Query(
    name="delivery.active_deployments",
    roles=(DELIVERY, READONLY),
    caller="delivery service's rollout controller, polling every few seconds: every deployment pending or in "
    "progress, oldest first, by id (the controller keeps service and environment names in its cache). The "
    "partial index ix_deployments_created_at_active holds only these rows, in this order: no sort, no join.",
    kind="range",
    sql="""
SELECT d.id, d.service_id, d.environment_id, d.version, d.status, d.created_at, d.started_at
  FROM platform.deployments d
 WHERE d.status IN ('pending', 'in_progress')
 ORDER BY d.created_at
""",
)

DEPLOYMENT_TIMELINE = Query(
    name="delivery.deployment_timeline",
    roles=(DELIVERY, READONLY),
    caller="delivery service's API and the portal's deployment page: the statuses one deployment went through, "
    "in order.",
    kind="point",
    sql="""
SELECT h.from_status, h.to_status, h.created_at
  FROM platform.deployment_status_history h
 WHERE h.deployment_id = %(deployment_id)s
 ORDER BY h.id
""",
)

FREEZE_CALENDAR = Query(
    name="delivery.freeze_calendar",
    roles=(DELIVERY, READONLY),
    caller="delivery service's API and the portal's environment page: the deploy freezes that hold in one "
    "environment (its own and those of every environment) during a time window, in start order; a freeze of "
    "one service says which (service_id). The window is a range overlap (&&) on ix_freeze_periods_during "
    "(GiST), so the calendar reads the freezes of the window, not the table's history.",
    kind="range",
    sql="""
SELECT f.id, lower(f.during) AS starts_at, upper(f.during) AS ends_at, f.service_id, f.reason, f.freezes_rollbacks,
       f.schedule_id
  FROM platform.freeze_periods f
 WHERE f.during && tstzrange(%(since)s, %(until)s)
   AND (f.environment_id = %(environment_id)s OR f.environment_id IS NULL)
 ORDER BY lower(f.during), f.id
""",
)

ROLLOUT_BLOCKERS = Query(
    name="delivery.rollout_blockers",
    roles=(DELIVERY, READONLY),
    caller="delivery service's rollout controller before it starts a rollout, and the portal's deployment page: "
    "what blocks this rollout (approvals part: a row per rejection and per captured rule short of its approvals; "
    "none when it may start). platform.rollout_blockers() is SECURITY DEFINER: a point lookup of the deployment "
    "by its key, its captured rules and their decisions by the deployment's id.",
    kind="point",
    sql="""
SELECT b.blocker, b.detail FROM platform.rollout_blockers(%(deployment_id)s) b
""",
)

PENDING_APPROVALS_OF_APPROVER = Query(
    name="delivery.pending_approvals_of_approver",
    roles=(DELIVERY, READONLY),
    caller="the portal's approvals inbox and the chat bot's reminder: the pending rollouts this person may approve "
    "and has not yet decided on, a row per rule short of its approvals, oldest first (a rollout someone rejected "
    "awaits cancellation, not approvals). platform.pending_approvals_of() is SECURITY DEFINER: it turns the "
    "approver's live grants into scopes once and reaches the pending rollouts of each service a scope names by "
    "the active-rollout key (all of them only for a scope of every service), instead of asking may_user_do "
    "about every pending rollout.",
    kind="range",
    sql="""
SELECT a.deployment_id, a.service_id, a.environment_id, a.version, a.deployed_by, a.created_at,
       a.approval_rule_id, a.required_approvals, a.approved
  FROM platform.pending_approvals_of(%(approver_id)s) a
 ORDER BY a.created_at, a.deployment_id, a.approval_rule_id
""",
)

QUERIES = [
    RUNNING_IN_ENVIRONMENT,
    DEPLOYMENT_HISTORY,
    ACTIVE_DEPLOYMENTS,
    DEPLOYMENT_TIMELINE,
    ROLLOUT_BLOCKERS,
    PENDING_APPROVALS_OF_APPROVER,
    FREEZE_CALENDAR,
]
