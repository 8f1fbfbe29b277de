"""Reliability figures: what each reliability test measured (generated cases, races run, crashes survived,
privilege cells checked, tampering detected, CLI mistakes reported) and whether it passed.

Loaded by tests/conftest.py, so that tests of every layer can report. Such a test takes the ``reliability``
fixture, a :class:`Record` it fills in as it runs. When the test ends, the record gets the test's outcome and is
appended to the JSON file named by ``$PLATFORMDB_RELIABILITY_REPORT`` (a JSON list, one object per test run),
from which ``make reliability`` renders docs/RELIABILITY.md. Without the variable nothing is written; the
figures still show in the terminal summary (one line per test with ``-v``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.report import REPORT_ENV, Record, append_record, summary_line

_PHASES = pytest.StashKey[dict[str, pytest.TestReport]]()
_finished: list[Record] = []


_KIND_OF_MODULE = (
    ("property", "propert"),
    ("race", "race"),
    ("crash", "crash"),
    ("resource", "hygiene"),
    ("privilege", "privilege"),
    ("audit", "audit_chain"),
    ("hostile", "hostile"),
    ("cli", "test_cli"),
)


def _kind(module: str) -> str:
    for kind, marker in _KIND_OF_MODULE:
        if marker in module.rsplit(".", 1)[-1]:
            return kind
    return "other"


def _server(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for key in ("server", "durable"):
        value = params.get(key)
        if isinstance(value, str):
            return value
        if value is not None and hasattr(value, "name"):
            return str(value.name)
    return None


def _name(item: pytest.Item) -> str:
    """The test's name with its parameters' ids, less the server's (the report has a column for that)."""
    if not isinstance(item, pytest.Function):
        return item.name
    callspec = getattr(item, "callspec", None)
    server = _server(item)
    ids = [part for part in (callspec.id.split("-") if callspec else []) if part != server]
    return f"{item.originalname}[{'-'.join(ids)}]" if ids else item.originalname


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_PHASES, {})[report.when] = report
    return report


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Record]:
    item = request.node
    record = Record(
        test=item.nodeid,
        name=_name(item),
        kind=_kind(item.module.__name__ if item.module else ""),
        server=_server(item),
    )
    started = time.monotonic()
    yield record
    record.duration_s = round(time.monotonic() - started, 2)
    phases = item.stash.get(_PHASES, {})
    call = phases.get("call")
    if call is None:
        record.outcome = "error"
    else:
        record.outcome = "passed" if call.passed else ("failed" if call.failed else call.outcome)
    _finished.append(record)
    print(f"\n{summary_line(record)}")
    path = os.environ.get(REPORT_ENV)
    if path:
        append_record(Path(path), record)


def reliability_summary(terminalreporter: Any) -> None:
    """The figures of the reliability tests that ran, for the terminal summary."""
    if not _finished:
        return
    by_kind: dict[str, int] = {}
    for record in _finished:
        by_kind[record.kind] = by_kind.get(record.kind, 0) + record.cases
    failed = sum(r.outcome != "passed" for r in _finished)
    totals = ", ".join(f"{n} {kind} cases" for kind, n in sorted(by_kind.items()))
    terminalreporter.write_line(f"platformdb reliability: {len(_finished)} tests ({failed} not passed): {totals}")
    if terminalreporter.config.getoption("verbose") > 0:
        for record in _finished:
            terminalreporter.write_line(f"  {summary_line(record)}")
