"""Writes a :class:`Dataset` through the schema's own rules.

- Reference, identity and catalog rows are COPYed into their tables. COPY fires row triggers, so every audited
  row gets its audit row from the real capture trigger, with an actor set by ``set_actor``.
- The history is COPYed into a temporary event table and replayed in time order by a temporary PL/pgSQL
  function, one statement per event under its own actor and request id: every deployment is born ``pending``
  and moves along the state machine, captures the configuration in force when it was created, and every change
  is audited with the user who made it. Nothing is fabricated; the triggers do what they do in production.
- Metric samples are COPYed, alongside the replay on a second connection, into day partitions made beforehand.

Timestamps the database stamps itself (audit rows, status history, ``updated_at``) carry the load time.
The load commits in chunks: the audit hash chain updates its head row once per audited row, and inside one
long transaction each update gets slower (the head's dead versions pile up until the transaction ends).
A seed that fails part-way leaves a partial data set; seed a fresh database again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import psycopg
from psycopg.types.json import Jsonb
from rich.progress import Progress
from sqlalchemy.engine import URL

from platformdb.actor import set_actor
from platformdb.db import connect
from platformdb.workbench.seed.base import SAMPLE_DAYS, stream
from platformdb.workbench.seed.catalog import Environment, Service, ServiceDependency
from platformdb.workbench.seed.configuration import Configuration
from platformdb.workbench.seed.dataset import Dataset
from platformdb.workbench.seed.delivery import ApprovalRule
from platformdb.workbench.seed.history import Event
from platformdb.workbench.seed.identity import (
    ApiToken,
    ApiTokenScope,
    Permission,
    Role,
    RoleGrant,
    RolePermission,
    ServiceAccount,
    Team,
    TeamGrant,
    TeamMembership,
    User,
)
from platformdb.workbench.seed.monitoring import SAMPLE_COLUMNS, Metric, MetricSeries, Timestamps, sample_lines

REPLAY_CHUNK = 400
"""Events replayed per transaction: short transactions keep the audit chain's head row cheap to update."""
SAMPLE_CHUNK = 60_000
"""Samples per COPY statement: each statement's queue of foreign-key checks stays small."""

# Event's columns and their SQL types; COPY lists the columns from Event itself, so their order here is free.
_EVENTS_TABLE = """
CREATE TEMP TABLE seed_events (
  seq bigint PRIMARY KEY, kind text NOT NULL, at timestamptz NOT NULL, actor_id uuid, actor_name text,
  request_id text NOT NULL, id uuid NOT NULL, service_id uuid, environment_id uuid, version text, status text,
  rollback_of_id uuid, value jsonb, secret_ref text, commit_sha text, artifact_digest text)
"""

_REPLAY_FUNCTION = """
CREATE FUNCTION pg_temp.seed_replay(p_from bigint, p_to bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  e record;
  n integer := 0;
  v_rule uuid;
  v_approver uuid;
BEGIN
  FOR e IN SELECT * FROM seed_events WHERE seq >= p_from AND seq < p_to ORDER BY seq LOOP
    PERFORM set_config('platformdb.actor_id', coalesce(e.actor_id::text, ''), true),
            set_config('platformdb.actor_name', coalesce(e.actor_name, ''), true),
            set_config('platformdb.request_id', e.request_id, true);
    CASE e.kind
    WHEN 'release' THEN
      INSERT INTO platform.releases (id, service_id, version, commit_sha, artifact_digest, created_by, created_at)
      VALUES (e.id, e.service_id, e.version, e.commit_sha, e.artifact_digest, e.actor_id, e.at);
    WHEN 'deploy' THEN
      INSERT INTO platform.deployments
        (id, service_id, version, environment_id, deployed_by, rollback_of_id, created_at)
      VALUES (e.id, e.service_id, e.version, e.environment_id, e.actor_id, e.rollback_of_id, e.at);
    WHEN 'approve' THEN  -- by a holder of the captured rule's permission there, not the deployer, chosen here
      SELECT q.approval_rule_id, g.user_id INTO v_rule, v_approver
        FROM platform.deployment_approval_requirements q
        JOIN platform.deployments d ON d.id = q.deployment_id
        JOIN platform.role_permissions rp ON rp.permission_id = q.approver_permission_id
        JOIN platform.role_grants g ON g.role_id = rp.role_id
        JOIN platform.users u ON u.id = g.user_id
       WHERE q.deployment_id = e.id AND u.deactivated_at IS NULL AND (g.expires_at IS NULL OR g.expires_at > now())
         AND (g.service_id IS NULL OR g.service_id = d.service_id)
         AND (g.environment_id IS NULL OR g.environment_id = d.environment_id)
         AND g.user_id IS DISTINCT FROM d.deployed_by
       ORDER BY md5(g.user_id::text || e.id::text) LIMIT 1;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'seed: no approver for deployment %', e.id;
      END IF;
      PERFORM set_config('platformdb.actor_id', v_approver::text, true), set_config('platformdb.actor_name', '', true);
      INSERT INTO platform.deployment_approvals (deployment_id, approver_id, approval_rule_id, decision, created_at)
      VALUES (e.id, v_approver, v_rule, 'approved', e.at);
    WHEN 'start' THEN
      UPDATE platform.deployments SET status = 'in_progress', started_at = e.at WHERE id = e.id;
    WHEN 'finish' THEN
      UPDATE platform.deployments SET status = e.status, deployed_at = e.at WHERE id = e.id;
    WHEN 'roll_back' THEN  -- since revision 0024 the rollback's success has made this move: then a no-op
      UPDATE platform.deployments SET status = 'rolled_back' WHERE id = e.id AND status <> 'rolled_back';
    WHEN 'configure' THEN
      INSERT INTO platform.configuration_versions (configuration_id, kind, value, secret_ref, created_by, created_at)
      VALUES (e.id, e.status, e.value, e.secret_ref, e.actor_id, e.at);
    END CASE;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$
"""


def _columns(row: type[NamedTuple]) -> str:
    return ", ".join(row._fields)


@dataclass(frozen=True)
class _Copy:
    """One table COPYed from the data set, and the actor its audit rows name."""

    table: str
    row: type[NamedTuple]
    rows: Sequence[tuple[Any, ...]]
    actor: str


def _copies(d: Dataset) -> list[_Copy]:
    """The COPYed tables, referenced tables first."""
    return [
        _Copy("environments", Environment, d.environments, "platformdb seed"),
        _Copy("permissions", Permission, d.permissions, "platformdb seed"),
        _Copy("roles", Role, d.roles, "platformdb seed"),
        _Copy("role_permissions", RolePermission, d.role_permissions, "platformdb seed"),
        _Copy("teams", Team, d.teams, "scim-provisioning"),
        _Copy("users", User, d.users, "scim-provisioning"),
        _Copy("team_memberships", TeamMembership, d.memberships, "scim-provisioning"),
        _Copy("services", Service, d.services, "service-catalog-sync"),
        _Copy("service_dependencies", ServiceDependency, d.dependencies, "service-catalog-sync"),
        _Copy("role_grants", RoleGrant, d.grants, "access-review"),
        _Copy("approval_rules", ApprovalRule, d.approval_rules, "access-review"),
        _Copy("role_grants", TeamGrant, d.team_grants, "access-review"),
        _Copy("users", ServiceAccount, d.service_accounts, "scim-provisioning"),
        _Copy("api_tokens", ApiToken, d.tokens, "platformdb tokens"),
        _Copy("api_token_scopes", ApiTokenScope, d.token_scopes, "platformdb tokens"),
        _Copy("configurations", Configuration, d.configurations, "config-sync"),
        _Copy("metrics", Metric, d.metrics, "metrics-registry"),
    ]


_VALUE_AT = Event._fields.index("value")


def _event_row(event: Event) -> tuple[Any, ...]:
    """An event as COPY writes it: its JSON value adapted as jsonb (a bare string is not JSON text)."""
    value = None if event.value is None else Jsonb(event.value)
    return (*event[:_VALUE_AT], value, *event[_VALUE_AT + 1 :])


class Loader:
    """Writes a :class:`Dataset`: identity and catalog first, then the history replay and, at the same time on
    a second connection, the metric samples (they touch none of the replay's tables)."""

    def __init__(self, url: URL, conn: psycopg.Connection[Any], data: Dataset, progress: Progress) -> None:
        self.url, self.conn, self.data, self.progress = url, conn, data, progress
        self.phases: dict[str, float] = {}
        """Seconds per phase, in the order they are reported."""

    def run(self) -> None:
        self.timed("identity and catalog", self.identity_and_catalog)
        history, samples_phase = "history (replayed through the triggers)", "metric samples (alongside the replay)"
        self.phases |= {history: 0.0, samples_phase: 0.0}  # reported in this order
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed-samples") as pool:
            samples = pool.submit(self.timed, samples_phase, self.samples)
            try:
                self.timed(history, self.history)
            except BaseException:
                with contextlib.suppress(Exception):  # the replay's error is the one to report
                    samples.result()
                raise
            samples.result()  # wait for the samples; raises their error, if any

    def analyze(self) -> None:
        task = self.progress.add_task("ANALYZE", total=1)
        self.timed("analyze", self._analyze)
        self.progress.advance(task)

    def timed(self, phase: str, step: Callable[[], None]) -> None:
        started = time.perf_counter()
        step()
        self.phases[phase] = time.perf_counter() - started

    def copy(self, step: _Copy) -> None:
        """COPY rows into platform.<table> in one transaction, audited as done by the step's actor."""
        with self.conn.transaction():
            set_actor(self.conn, None, actor_name=step.actor, request_id=f"seed-{step.table}")
            with self.conn.cursor().copy(f"COPY platform.{step.table} ({_columns(step.row)}) FROM STDIN") as copy:
                for row in step.rows:
                    copy.write_row(row)

    def identity_and_catalog(self) -> None:
        steps = _copies(self.data)
        task = self.progress.add_task("identity and catalog", total=len(steps) + 1)
        self.partitions()
        self.progress.advance(task)
        for step in steps:
            self.copy(step)
            self.progress.advance(task)

    def partitions(self) -> None:
        """Partitions for everything the load writes: audit rows (now) and the samples' days."""
        now = self.data.now
        with self.conn.transaction():
            self.conn.execute("SELECT platform.ensure_partitions('platform.audit_logs', 'month', now(), now())")
            self.conn.execute(
                "SELECT platform.ensure_partitions('platform.metric_samples', 'day', %s, %s)",
                (now - dt.timedelta(days=SAMPLE_DAYS), now + dt.timedelta(days=1)),
            )

    def history(self) -> None:
        """COPY the events into a temporary table, then replay them in time order, REPLAY_CHUNK per transaction."""
        events = self.data.events
        with self.conn.transaction():
            self.conn.execute(_EVENTS_TABLE)
            self.conn.execute(_REPLAY_FUNCTION)
            with self.conn.cursor().copy(f"COPY seed_events ({_columns(Event)}) FROM STDIN") as copy:
                for event in events:
                    copy.write_row(_event_row(event))
        task = self.progress.add_task("history: releases, configuration, deployments", total=len(events))
        for low in range(0, len(events), REPLAY_CHUNK):
            with self.conn.transaction():
                # The events carry their own stamps (history, not the clock's): trg_deployments_timestamps is off
                # for this transaction only, as the owner may; every other rule still applies.
                self.conn.execute("ALTER TABLE platform.deployments DISABLE TRIGGER trg_deployments_timestamps")
                self.conn.execute("SELECT pg_temp.seed_replay(%s, %s)", (low, low + REPLAY_CHUNK))
                self.conn.execute("ALTER TABLE platform.deployments ENABLE TRIGGER trg_deployments_timestamps")
            self.progress.advance(task, min(REPLAY_CHUNK, len(events) - low))
        self.conn.execute("DROP TABLE seed_events")
        self.conn.execute("DROP FUNCTION pg_temp.seed_replay(bigint, bigint)")

    def samples(self) -> None:
        """The series, then their samples, SAMPLE_CHUNK rows per COPY, on a connection of their own."""
        with connect(self.url, autocommit=True) as conn:
            ids = self._series(conn)
            self._samples(conn, ids)

    def _series(self, conn: psycopg.Connection[Any]) -> list[int]:
        """COPY the series; their ids, in the order of the data set's series."""
        with conn.transaction():
            metric_ids = {str(name): id_ for name, id_ in conn.execute("SELECT name, id FROM platform.metrics")}
            with conn.cursor().copy(f"COPY platform.metric_series ({_columns(MetricSeries)}) FROM STDIN") as copy:
                for series in self.data.series:
                    copy.write_row(series.row(metric_ids[series.metric]))
            # COPY assigns identity values in row order: the n-th series written has the n-th smallest id.
            return [int(str(row[0])) for row in conn.execute("SELECT id FROM platform.metric_series ORDER BY id")]

    def _samples(self, conn: psycopg.Connection[Any], ids: list[int]) -> None:
        d = self.data
        task = self.progress.add_task("metric samples", total=d.samples_expected())
        stamp = Timestamps()
        pending: list[str] = []
        for index, (series_id, series) in enumerate(zip(ids, d.series, strict=True)):
            pending.extend(sample_lines(series_id, series, stream(d.seed, d.scale, f"samples:{index}"), stamp))
            if len(pending) >= SAMPLE_CHUNK or index == len(ids) - 1:
                with (
                    conn.transaction(),
                    conn.cursor().copy(
                        f"COPY platform.metric_samples ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN"
                    ) as copy,
                ):
                    copy.write("".join(pending))
                self.progress.advance(task, len(pending))
                pending = []

    def _analyze(self) -> None:
        self.conn.execute("ANALYZE")
