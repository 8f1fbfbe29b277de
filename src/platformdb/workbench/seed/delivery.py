"""Delivery: releases and their rollouts through the environments (history events)."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from platformdb.workbench.seed.base import Run, hex_digest, request_id, uuid7
from platformdb.workbench.seed.catalog import ENVIRONMENTS, REGIONS, ServiceProfile
from platformdb.workbench.seed.history import UNNUMBERED, Event, History
from platformdb.workbench.seed.identity import People

PROMOTION = [
    ("development", 0.95, (0.05, 2)), ("staging", 0.6, (1, 48)),
    ("eu-production", 0.6, (4, 120)), ("us-production", 0.85, (1, 24)),
]  # fmt: skip
"""Stages of a release's rollout: environment, chance the release goes there (once the stage before succeeded),
and hours of delay after that stage finished."""
PROTECTED_DAYS = 180
"""Production has been protected by a four-eyes rule (one approval by a holder of deployment:approve) for the
last PROTECTED_DAYS days, the whole history: its rollouts name their deployer and are approved before they
start (enough rows that the approval tables are planned as the medium tables they are)."""
# Deployment outcomes per environment class: (succeeded, failed, cancelled) weights.
OUTCOMES = {False: (0.88, 0.08, 0.04), True: (0.93, 0.04, 0.03)}


@dataclass(frozen=True)
class Rollout:
    """One deployment as simulated: its events are in the history; monitoring follows the successful ones."""

    id: uuid.UUID
    service: ServiceProfile
    env: str
    version: str
    created: dt.datetime
    outcome: str  # succeeded, failed or cancelled
    started: dt.datetime | None
    finished: dt.datetime
    deployed_by: uuid.UUID | None
    rollback_of: Rollout | None = None


class ApprovalRule(NamedTuple):
    id: uuid.UUID
    environment_id: uuid.UUID
    approver_permission_id: uuid.UUID
    required_approvals: int
    created_at: dt.datetime


def approval_rules(
    run: Run, env_ids: Mapping[str, uuid.UUID], permission_ids: Mapping[str, uuid.UUID]
) -> list[ApprovalRule]:
    """One rule per production environment, in force since PROTECTED_DAYS before the anchor."""
    rng, since = run.rng("approval-rules"), protected_since(run)
    approver = permission_ids["deployment:approve"]
    return [ApprovalRule(uuid7(since, rng), env_ids[env], approver, 1, since) for env in sorted(REGIONS)]


def protected_since(run: Run) -> dt.datetime:
    return run.now - dt.timedelta(days=PROTECTED_DAYS)


def needs_approval(run: Run, env: str, created: dt.datetime, rollback: bool) -> bool:
    """Whether a rollout captures the production rule (rules do not apply to rollbacks here)."""
    return env in REGIONS and created >= protected_since(run) and not rollback


@dataclass(frozen=True)
class _Timing:
    outcome: str
    started: dt.datetime | None
    finished: dt.datetime


class _Delivery:
    """Releases one service after another, each promoted through the environments as far as it gets."""

    def __init__(self, run: Run, env_ids: Mapping[str, uuid.UUID], people: People, history: History) -> None:
        self.run, self.env_ids, self.people, self.history = run, env_ids, people, history
        self.busy: dict[tuple[int, str], dt.datetime] = {}  # when the last rollout per service and env finishes
        self.last_good: dict[tuple[int, str], Rollout] = {}
        self.latest_release: dict[int, tuple[str, dt.datetime]] = {}  # per service index: version, built
        self.rollouts: list[Rollout] = []

    def releases(self, rng: random.Random, service: ServiceProfile) -> None:
        """A service's releases over its active part of the history: popular services release more often."""
        run = self.run
        begin = max(service.created_at + dt.timedelta(days=1), run.start)
        span = service.active_until - begin
        if span <= dt.timedelta(0):
            return
        share = span / (run.now - run.start)
        n_releases = max(3, round((10 + 290 / service.rank**0.9) * share))
        times = sorted(begin + span * rng.random() for _ in range(n_releases))
        major, minor, patch = rng.choice([(0, 1, 0), (1, 0, 0), (2, 3, 0)])
        for built in times:
            bump = rng.random()
            if bump < 0.04:
                major, minor, patch = major + 1, 0, 0
            elif bump < 0.3:
                minor, patch = minor + 1, 0
            else:
                patch += 1
            version = f"{major}.{minor}.{patch}"
            self.release(rng, service, version, built)
            self.latest_release[service.index] = (version, built)
            self.promote(rng, service, version, built)

    def release(self, rng: random.Random, service: ServiceProfile, version: str, built: dt.datetime) -> None:
        actor = self.people.actor(rng, service.team, 0.15, built)
        release_id = uuid7(built, rng)  # drawn before the request id: the stream's order is part of the data set
        request = request_id(rng, "ci")
        seed = self.run.seed
        self.history.add(
            Event(UNNUMBERED, "release", built, actor, None if actor else "ci-pipeline", request, release_id,
                  service_id=service.id, version=version, commit_sha=hex_digest(service.name, version, seed),
                  artifact_digest="sha256:" + hex_digest(service.name, version, seed, digest=hashlib.sha256))
        )  # fmt: skip

    def promote(self, rng: random.Random, service: ServiceProfile, version: str, built: dt.datetime) -> None:
        """Roll a release out: development, staging, then each production region, each stage only after the
        one before succeeded. A production rollout is sometimes rolled back (always after a failure, now and
        then after a success that misbehaved), which ends the release's promotion."""
        ready = built
        for env, chance, (low_h, high_h) in PROMOTION:
            if rng.random() > chance:
                return
            wanted = ready + dt.timedelta(hours=rng.uniform(low_h, high_h))
            rollout = self.deploy(rng, service, env, version, wanted)
            if rollout is None:
                return
            key = (service.index, env)
            previous = self.last_good.get(key)
            production = env in REGIONS
            if rollout.outcome == "succeeded":
                self.last_good[key] = rollout
                if production and previous is not None and rng.random() < 0.04:
                    self.roll_back(rng, rollout, previous)
                    return
            else:
                if rollout.outcome == "failed" and production and previous is not None and rng.random() < 0.3:
                    self.roll_back(rng, rollout, previous)
                return
            ready = rollout.finished

    def ongoing(self, rng: random.Random, services: Sequence[ServiceProfile]) -> None:
        """Rollouts under way at the anchor: a few services are mid-deployment (pending or in progress)."""
        now = self.run.now
        candidates = sorted((s for s in services if s.index in self.latest_release and s.status != "retired"),
                            key=lambda s: s.rank)  # fmt: skip
        for n, service in enumerate(candidates[: max(3, len(candidates) // 12)]):
            env = rng.choice([name for name, _ in ENVIRONMENTS])
            status = "pending" if n % 3 == 2 else "in_progress"
            if status == "pending" and env not in REGIONS:
                env = min(REGIONS)  # a pending production rollout awaits its approval: something to show as blocked
            version, built = self.latest_release[service.index]
            wanted = max(now - dt.timedelta(minutes=rng.uniform(5, 20)), built + dt.timedelta(minutes=1))
            idle_since = self.busy.get((service.index, env), self.run.start)
            if wanted < now and idle_since < wanted - dt.timedelta(minutes=30):
                self.deploy(rng, service, env, version, wanted, under_way=status)

    def deploy(
        self,
        rng: random.Random,
        service: ServiceProfile,
        env: str,
        version: str,
        wanted: dt.datetime,
        rollback_of: Rollout | None = None,
        *,
        under_way: str | None = None,
    ) -> Rollout | None:
        """One rollout, after the previous one of the same service and environment has finished. Its events
        after the anchor have not happened: one ``under_way`` is left in that status (pending or in_progress)."""
        key = (service.index, env)
        created = max(wanted, self.busy.get(key, wanted) + dt.timedelta(minutes=rng.uniform(1, 30)))
        if created > min(self.run.now, service.active_until):
            return None
        production = env in REGIONS
        timing = self.timing(rng, created, production, rollback_of, under_way)
        deployer = self.people.actor(rng, service.team, 0.85 if production else 0.5, created)
        if deployer is None and production and created >= protected_since(self.run):
            deployer = self.people.named(service.team, created)  # a protected environment's deployer is named
        rollout = Rollout(uuid7(created, rng), service, env, version, created, timing.outcome, timing.started,
                          timing.finished, deployer, rollback_of)  # fmt: skip
        self.busy[key] = rollout.finished
        self.rollouts.append(rollout)
        self.record(rng, rollout)
        return rollout

    def timing(
        self,
        rng: random.Random,
        created: dt.datetime,
        production: bool,
        rollback_of: Rollout | None,
        under_way: str | None,
    ) -> _Timing:
        """How a rollout created at ``created`` ends, and when it starts and finishes."""
        outcome = rng.choices(["succeeded", "failed", "cancelled"], OUTCOMES[production])[0]
        if rollback_of is not None:
            outcome = "succeeded" if rng.random() < 0.95 else "failed"
        started: dt.datetime | None = created + dt.timedelta(seconds=rng.uniform(5, 300))
        if outcome == "cancelled" and rng.random() < 0.5:
            started = None  # cancelled while still pending
        finished = (started or created) + dt.timedelta(minutes=rng.uniform(2, 25))
        if under_way is not None:
            now = self.run.now
            outcome, finished = "succeeded", now + dt.timedelta(minutes=rng.uniform(1, 30))
            started = min(created + dt.timedelta(minutes=1), now) if under_way == "in_progress" else finished
        return _Timing(outcome, started, finished)

    def record(self, rng: random.Random, rollout: Rollout) -> None:
        """A rollout's events: created by its deployer, then started and finished by the deploy controller."""
        deployer, rollback_of = rollout.deployed_by, rollout.rollback_of
        self.history.add(
            Event(UNNUMBERED, "deploy", rollout.created, deployer, None if deployer else "deploy-bot",
                  request_id(rng, "deploy"), rollout.id, service_id=rollout.service.id,
                  environment_id=self.env_ids[rollout.env], version=rollout.version,
                  rollback_of_id=rollback_of.id if rollback_of else None)
        )  # fmt: skip
        controller = request_id(rng, "rollout")
        started = rollout.started is not None and rollout.started <= self.run.now
        if started and needs_approval(self.run, rollout.env, rollout.created, bool(rollback_of)):
            # Approved half-way between creation and start; the loader picks an approver who may (in SQL).
            assert rollout.started is not None
            at = rollout.created + (rollout.started - rollout.created) / 2
            self.history.add(Event(UNNUMBERED, "approve", at, None, "approvals", controller, rollout.id))
        if rollout.started is not None:
            self.history.add(
                Event(UNNUMBERED, "start", rollout.started, None, "deploy-controller", controller, rollout.id)
            )
        self.history.add(
            Event(UNNUMBERED, "finish", rollout.finished, None, "deploy-controller", controller, rollout.id,
                  status=rollout.outcome)
        )  # fmt: skip

    def roll_back(self, rng: random.Random, bad: Rollout, good: Rollout) -> None:
        """Redeploy the last good version; once that succeeds, the bad deployment becomes rolled_back."""
        wanted = bad.finished + dt.timedelta(minutes=rng.uniform(10, 360))
        rollback = self.deploy(rng, bad.service, bad.env, good.version, wanted, rollback_of=bad)
        if rollback is not None and rollback.outcome == "succeeded":
            self.last_good[(bad.service.index, bad.env)] = rollback
            at = rollback.finished + dt.timedelta(seconds=1)
            request = request_id(rng, "rollout")
            self.history.add(Event(UNNUMBERED, "roll_back", at, None, "deploy-controller", request, bad.id))


def rollouts(
    run: Run,
    services: Sequence[ServiceProfile],
    env_ids: Mapping[str, uuid.UUID],
    people: People,
    history: History,
) -> list[Rollout]:
    """Every service's releases and rollouts (their events go into ``history``), then the ones under way."""
    delivery = _Delivery(run, env_ids, people, history)
    rng = run.rng("delivery")
    for service in sorted(services, key=lambda s: s.index):
        delivery.releases(rng, service)
    delivery.ongoing(run.rng("ongoing"), services)
    return delivery.rollouts
