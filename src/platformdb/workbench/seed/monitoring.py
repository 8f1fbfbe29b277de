"""Monitoring: metric definitions, a series per running instance, and the samples streamed into them."""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from psycopg.types.json import Jsonb

from platformdb.workbench.seed.base import SAMPLE_DAYS, Run
from platformdb.workbench.seed.catalog import REGIONS, ServiceProfile
from platformdb.workbench.seed.delivery import Rollout

# name, unit, kind, description; the first three are sampled per running instance of a production service.
METRICS = [
    ("http_requests_total", "requests", "counter", "HTTP requests served."),
    ("http_request_duration_p99_seconds", "seconds", "gauge", "99th percentile request latency."),
    ("cpu_usage_ratio", "ratio", "gauge", "CPU used over CPU requested."),
    ("memory_working_set_bytes", "bytes", "gauge", "Working set memory."),
    ("http_request_errors_total", "requests", "counter", "HTTP requests answered with a 5xx."),
    ("queue_depth", "messages", "gauge", "Messages waiting in the service's queue."),
    ("db_connections_in_use", "connections", "gauge", "Database connections checked out."),
    ("gc_pause_seconds", "seconds", "gauge", "Longest garbage-collection pause in the interval."),
]
SCRAPE_INTERVALS = ([10, 15, 30, 60], [0.02, 0.05, 0.18, 0.75])
"""Seconds between samples of a series, and how often each interval is configured."""
SAMPLE_COLUMNS = ("series_id", "sampled_at", "value")
"""The columns of the sample lines :func:`sample_lines` writes, in their order (COPY text, for speed)."""


class Metric(NamedTuple):
    name: str
    unit: str
    kind: str
    description: str
    created_at: dt.datetime


class MetricSeries(NamedTuple):
    """A metric_series row, written at load time: the metric's id is the database's."""

    metric_id: int
    service_id: uuid.UUID
    environment_id: uuid.UUID
    labels: Jsonb
    created_at: dt.datetime


@dataclass(frozen=True)
class Series:
    """A metric series and the stretch of the sample window it reports in."""

    metric: str
    service_id: uuid.UUID
    environment_id: uuid.UUID
    labels: dict[str, str]
    created_at: dt.datetime
    first: int  # epoch seconds of the first sample
    last: int  # epoch seconds after the last sample
    interval: int
    level: float  # typical value (rate per second for counters)

    def count(self) -> int:
        return max(0, math.ceil((self.last - self.first) / self.interval))

    def row(self, metric_id: int) -> MetricSeries:
        return MetricSeries(metric_id, self.service_id, self.environment_id, Jsonb(self.labels), self.created_at)


def metrics(run: Run) -> list[Metric]:
    created = run.start - dt.timedelta(days=300)
    return [Metric(name, unit, kind, description, created) for name, unit, kind, description in METRICS]


def series(
    run: Run, services: Sequence[ServiceProfile], rollouts: Sequence[Rollout], env_ids: Mapping[str, uuid.UUID]
) -> list[Series]:
    """Every successful production rollout starts a new instance whose series carry its pod name, so series
    accumulate over the whole history while samples exist only for the last SAMPLE_DAYS (retention)."""
    rng = run.rng("monitoring")
    found: list[Series] = []
    for (service_index, env), instances in sorted(_instances(run, rollouts).items()):
        service = services[service_index]
        if env == "us-production" and service.tier > 1:
            continue  # only tier-1 services are measured in the second region
        ends = [rollout.finished for rollout in instances[1:]] + [min(run.now, service.active_until)]
        for rollout, end in zip(instances, ends, strict=True):
            found += _instance_series(run, rng, rollout, end, env_ids[env])
    return found


def _instances(run: Run, rollouts: Sequence[Rollout]) -> dict[tuple[int, str], list[Rollout]]:
    """Per service and production environment, its successful rollouts in the order they finished."""
    live: dict[tuple[int, str], list[Rollout]] = {}
    for rollout in sorted(rollouts, key=lambda r: r.finished):
        if rollout.outcome == "succeeded" and rollout.finished <= run.now and rollout.env in REGIONS:
            live.setdefault((rollout.service.index, rollout.env), []).append(rollout)
    return live


def _instance_series(
    run: Run, rng: random.Random, rollout: Rollout, end: dt.datetime, environment_id: uuid.UUID
) -> list[Series]:
    """The series of the instance ``rollout`` started, which ran until ``end``."""
    service = rollout.service
    measured = METRICS[:3] if service.tier == 1 else METRICS[:2]
    traffic = 2000 / service.rank  # requests per second, by popularity
    pod = f"{service.name}-{rollout.id.hex[-10:-5]}-{rollout.id.hex[-5:]}"
    labels = {"region": REGIONS[rollout.env], "pod": pod, "version": rollout.version}
    first = max(rollout.finished, run.now - dt.timedelta(days=SAMPLE_DAYS))
    found = []
    for metric, _, _, _ in measured:
        interval = rng.choices(*SCRAPE_INTERVALS)[0]
        start = int(first.timestamp()) + rng.randrange(interval)
        # Both are drawn for every series, whichever it uses: the stream's order is part of the data set.
        cpu, other = rng.uniform(0.2, 0.7), rng.lognormvariate(-2.5, 0.5)
        level = {"http_requests_total": traffic, "cpu_usage_ratio": cpu}.get(metric, other)
        found.append(
            Series(metric, service.id, environment_id, dict(labels), rollout.finished, start, int(end.timestamp()),
                   interval, level)
        )  # fmt: skip
    return found


class Timestamps:
    """Formats epoch seconds as COPY text fast: cached per minute, then the seconds appended."""

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}
        self._seconds = [f"{s:02d}+00" for s in range(60)]

    def __call__(self, epoch: int) -> str:
        minute, second = divmod(epoch, 60)
        prefix = self._minutes.get(minute)
        if prefix is None:
            prefix = dt.datetime.fromtimestamp(minute * 60, dt.UTC).strftime("%Y-%m-%d %H:%M:")
            self._minutes[minute] = prefix
        return prefix + self._seconds[second]


def sample_lines(series_id: int, series: Series, rng: random.Random, stamp: Timestamps) -> Iterator[str]:
    """COPY text lines (SAMPLE_COLUMNS) of one series: counters grow with noisy traffic, gauges wander around
    their level."""
    if series.metric.endswith("_total"):
        total = rng.uniform(0, 1e6)
        for epoch in range(series.first, series.last, series.interval):
            daily = 1 + 0.5 * math.sin(epoch / 13751)  # a day-shaped traffic curve
            total += series.level * series.interval * daily * rng.uniform(0.8, 1.2)
            yield f"{series_id}\t{stamp(epoch)}\t{total:.0f}\n"
    else:
        value = series.level
        for epoch in range(series.first, series.last, series.interval):
            value = max(0.0, value + rng.gauss(0, series.level * 0.05) + (series.level - value) * 0.1)
            yield f"{series_id}\t{stamp(epoch)}\t{value:.6g}\n"
