"""The history the loader replays: releases, deployments and configuration versions as time-ordered events."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NamedTuple, TypeAlias

JsonValue: TypeAlias = bool | int | float | str | dict[str, bool | int | str]

UNNUMBERED = -1
"""The ``seq`` of an event not yet put in replay order (:meth:`History.events` numbers them)."""


class Event(NamedTuple):
    """One change, a row of the loader's event table: ``kind`` says which statement replays it and which of
    the optional fields it uses."""

    seq: int
    kind: str  # release, deploy, approve, start, finish, roll_back or configure
    at: dt.datetime
    actor_id: uuid.UUID | None
    actor_name: str | None
    request_id: str
    id: uuid.UUID  # the release, deployment or configuration changed
    service_id: uuid.UUID | None = None
    environment_id: uuid.UUID | None = None
    version: str | None = None
    status: str | None = None  # a deployment's outcome, or a configuration version's kind
    rollback_of_id: uuid.UUID | None = None
    value: JsonValue | None = None
    secret_ref: str | None = None
    commit_sha: str | None = None
    artifact_digest: str | None = None


class History:
    """Events in the order they were generated."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self._events: list[Event] = []

    def add(self, event: Event) -> None:
        """Queue one event; events after the anchor have not happened yet and are dropped."""
        if event.at <= self.now:
            self._events.append(event)

    def events(self) -> list[Event]:
        """The events in replay order, numbered: by time, and events at the same time in generation order."""
        in_time = sorted(self._events, key=lambda event: event.at)  # stable: ties keep their generation order
        return [event._replace(seq=seq) for seq, event in enumerate(in_time)]
