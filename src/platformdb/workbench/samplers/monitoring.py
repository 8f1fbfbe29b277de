"""Parameters for the monitoring catalog queries, drawn from a loaded database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from platformdb.workbench.samplers.base import CANDIDATES, Draw, Sampler, sample

# Series that have samples, with their newest sample time: one backward index probe per series and partition.
_LIVE_SERIES = f"""
SELECT s.id AS series_id, s.service_id, last.sampled_at AS last_sample
  FROM platform.metric_series s
  CROSS JOIN LATERAL (
    SELECT x.sampled_at FROM platform.metric_samples x
     WHERE x.series_id = s.id ORDER BY x.sampled_at DESC LIMIT 1) last
 ORDER BY md5(s.id::text)
 LIMIT {CANDIDATES}
"""


def _window_params(hours: int) -> Any:
    def draw(s: Sampler) -> dict[str, Any]:
        series = s.row(_LIVE_SERIES)
        until = series["last_sample"] + dt.timedelta(seconds=1)  # the dashboard opened just after the last scrape
        return {"series_id": series["series_id"], "since": until - dt.timedelta(hours=hours), "until": until}

    return draw


def _latest_params(s: Sampler) -> dict[str, Any]:
    series = s.row(_LIVE_SERIES)
    return {"service_id": series["service_id"], "since": series["last_sample"] - dt.timedelta(hours=1)}


SAMPLERS: dict[str, Draw] = {
    "monitoring.series_of_service": lambda s: s.row(
        sample("service_id", "(SELECT DISTINCT service_id FROM platform.metric_series) s", "service_id")
    ),
    "monitoring.series_buckets_1h": _window_params(1),
    "monitoring.series_buckets_24h": _window_params(24),
    "monitoring.latest_values_of_service": _latest_params,
}
