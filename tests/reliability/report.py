"""The reliability report: one :class:`Record` per test run, appended to the JSON file named by
``$PLATFORMDB_RELIABILITY_REPORT`` (a JSON list), from which ``make reliability`` renders docs/RELIABILITY.md."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_ENV = "PLATFORMDB_RELIABILITY_REPORT"


@dataclass
class Record:
    """What one reliability test measured."""

    test: str
    name: str
    kind: str  # property, race, crash, resource
    server: str | None
    cases: int = 0
    """Generated (property) cases, race rounds or crashes: the unit the test counts in."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Further counts: accepted/rejected cases, conflicts observed, batches committed, ..."""
    counterexamples: list[str] = field(default_factory=list)
    """The shortest inputs on which the database disagreed with the rule (empty when it passed)."""
    outcome: str = "unknown"
    duration_s: float = 0.0

    def add(self, figure: str, n: int = 1) -> None:
        self.figures[figure] = self.figures.get(figure, 0) + n


def append_record(path: Path, record: Record) -> None:
    """Append ``record`` to the JSON list in ``path`` (created if missing), replacing the file atomically."""
    records: list[Any] = []
    if path.exists() and path.stat().st_size:
        loaded = json.loads(path.read_text())
        records = loaded if isinstance(loaded, list) else [loaded]
    records.append(asdict(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(records, out, indent=1, sort_keys=True, default=str)
        out.write("\n")
    os.replace(tmp, path)


def summary_line(record: Record) -> str:
    figures = ", ".join(f"{k}={v}" for k, v in sorted(record.figures.items()))
    return f"{record.outcome:6} {record.name}[{record.server}]: {record.cases} {record.kind} cases; {figures}"
