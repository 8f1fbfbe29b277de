"""Monitoring: a service's series, a series over time, and the latest value of each series of a service."""

from __future__ import annotations

import datetime as dt

from platformdb.queries.base import Query, Window
from platformdb.queries.roles import METRICS_WRITER, READONLY

# date_bin's origin, TIMESTAMPTZ '2000-01-01 00:00:00+00': buckets start on whole minutes and quarter hours, UTC.


SERIES_OF_SERVICE = Query(
    name="monitoring.series_of_service",
    roles=(METRICS_WRITER, READONLY),
    caller="monitoring service and the portal's metrics tab: every series of a service (metric, environment, "
    "labels), to pick what to chart.",
    kind="range",
    sql="""
SELECT s.id, m.name AS metric, m.unit, s.environment_id, s.labels, s.created_at
  FROM platform.metric_series s
  JOIN platform.metrics m ON m.id = s.metric_id
 WHERE s.service_id = %(service_id)s
 ORDER BY m.name, s.environment_id, s.created_at DESC
""",
)

SERIES_BUCKETS_1H = Query(
    name="monitoring.series_buckets_1h",
    roles=(METRICS_WRITER, READONLY),
    caller="monitoring service's chart API (the default dashboard view): one series over the last hour, "
    "per minute: average, minimum, maximum and number of samples.",
    kind="range",
    sql="""
SELECT date_bin('1 minute', x.sampled_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       avg(x.value) AS avg, min(x.value) AS min, max(x.value) AS max, count(*) AS samples
  FROM platform.metric_samples x
 WHERE x.series_id = %(series_id)s
   AND x.sampled_at >= %(since)s
   AND x.sampled_at < %(until)s
 GROUP BY bucket
 ORDER BY bucket
""",
    window=Window("metric_samples"),
)

SERIES_BUCKETS_24H = Query(
    name="monitoring.series_buckets_24h",
    roles=(METRICS_WRITER, READONLY),
    caller="monitoring service's chart API (the day view): one series over the last 24 hours, per 15 minutes.",
    kind="range",
    sql="""
SELECT date_bin('15 minutes', x.sampled_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       avg(x.value) AS avg, min(x.value) AS min, max(x.value) AS max, count(*) AS samples
  FROM platform.metric_samples x
 WHERE x.series_id = %(series_id)s
   AND x.sampled_at >= %(since)s
   AND x.sampled_at < %(until)s
 GROUP BY bucket
 ORDER BY bucket
""",
    window=Window("metric_samples"),
)


LATEST_VALUES_OF_SERVICE = Query(
    name="monitoring.latest_values_of_service",
    roles=(METRICS_WRITER, READONLY),
    caller="monitoring service's service overview and the alerting evaluator: the newest sample of every series "
    "of a service. `since` is the staleness horizon (a series silent for longer is not current): it lets the "
    "probes skip every older partition. A sample stamped more than a day after the server's clock is not current "
    "either (a scraper's broken clock): that bound skips the partitions made ahead of time.",
    kind="range",
    sql="""
SELECT s.id AS series_id, m.name AS metric, s.environment_id, s.labels, last.sampled_at, last.value
  FROM platform.metric_series s
  JOIN platform.metrics m ON m.id = s.metric_id
  CROSS JOIN LATERAL (
    SELECT x.sampled_at, x.value
      FROM platform.metric_samples x
     WHERE x.series_id = s.id
       AND x.sampled_at >= %(since)s
       AND x.sampled_at < now() + interval '1 day'
     ORDER BY x.sampled_at DESC
     LIMIT 1) last
 WHERE s.service_id = %(service_id)s
 ORDER BY m.name, s.environment_id
""",
    window=Window("metric_samples", until=None, horizon=dt.timedelta(days=1)),
)

QUERIES = [SERIES_OF_SERVICE, SERIES_BUCKETS_1H, SERIES_BUCKETS_24H, LATEST_VALUES_OF_SERVICE]
