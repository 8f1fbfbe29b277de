"""What every part of the generator shares: the run (scale, seed, time anchor), its random streams, and ids."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from platformdb.errors import UserError

HISTORY_DAYS = 180
"""Releases, deployments and configuration edits span this many days before the time anchor."""
SAMPLE_DAYS = 3
"""Metric samples cover this many days before the anchor (a retention window of day partitions)."""
PER_SCALE = {"teams": 12, "users": 150, "services": 60}
"""Entities per unit of scale; everything else follows from them and from each service's popularity."""


def check_scale(scale: int) -> None:
    if scale < 1:
        raise UserError(f"--scale must be 1 or more, not {scale}")


def stream(seed: int, scale: int, part: str) -> random.Random:
    """The random stream of one part of the data set: a part of its own, so changing one part of the generator
    leaves the others' rows as they were."""
    return random.Random(f"platformdb-seed:{seed}:{scale}:{part}")  # noqa: S311 - not cryptography


@dataclass(frozen=True)
class Run:
    """One generation: its scale and seed, and the time anchor its history ends at."""

    scale: int
    seed: int
    now: dt.datetime

    @property
    def start(self) -> dt.datetime:
        """Where the simulated history begins."""
        return self.now - dt.timedelta(days=HISTORY_DAYS)

    @property
    def founded(self) -> dt.datetime:
        """When the platform was set up: reference data (environments, permissions, roles) dates from then."""
        return self.start - dt.timedelta(days=400)

    def rng(self, part: str) -> random.Random:
        return stream(self.seed, self.scale, part)

    def ago(self, rng: random.Random, low_days: float, high_days: float) -> dt.datetime:
        return self.now - dt.timedelta(seconds=rng.uniform(low_days, high_days) * 86400)


def uuid7(at: dt.datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for ``at`` with seeded random bits: time-ordered like the database's own, but reproducible."""
    ms = int(at.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


def request_id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}-{rng.getrandbits(64):016x}"


def hex_digest(*parts: object, digest: Callable[[bytes], Any] = hashlib.sha1) -> str:
    return str(digest(":".join(map(str, parts)).encode()).hexdigest())


def zipf_weights(n: int, s: float, scale: int) -> list[float]:
    """Zipf-like weights of ``n`` things whose popularity ranks repeat ``scale`` times: scale N is N copies of
    scale 1's shape, so every count grows linearly with the scale."""
    return [1.0 / (i // scale + 1) ** s for i in range(n)]
