"""Parameters for the audit catalog queries, drawn from a loaded database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from platformdb.workbench.samplers.base import Draw, Sampler, sample

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


def _actor_params(s: Sampler) -> dict[str, Any]:
    actor = s.row(sample("actor_id", "(SELECT DISTINCT actor_id FROM platform.audit_logs) a", "actor_id",
                         where="actor_id IS NOT NULL"))  # fmt: skip
    newest = s.one("SELECT max(created_at) AS at FROM platform.audit_logs WHERE actor_id = %(actor_id)s", actor)["at"]
    until = (newest or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=1)
    return {**actor, "since": until - dt.timedelta(days=7), "until": until, "limit": 200}


def _latest_params(s: Sampler) -> dict[str, Any]:
    newest = s.one("SELECT max(created_at) AS at FROM platform.audit_logs", {})["at"] or dt.datetime.now(dt.UTC)
    return {"since": newest - dt.timedelta(days=1), "limit": 100}


SAMPLERS: dict[str, Draw] = {
    "audit.entity_trail": _entity_params,
    "audit.actor_activity": _actor_params,
    "audit.latest_events": _latest_params,
}
