"""Audited writes: single-row UPDATEs of ``platform.services`` by 1 and 8 writers, on a copy of the database with
the audit trigger on and on one with it disabled."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from bench.common import Bench, fmt_rate, percentile, settle

WRITE_ROUNDS = 3
WRITERS = (1, 8)
AUDIT_TRIGGER = "trg_services_audit"


def audited_writes(b: Bench, template: str, seconds: float) -> dict[str, Any]:
    """Rows/s of audited writes against the same writes with the audit trigger disabled, on two copies of the
    database: runs alternate between the two, ``WRITE_ROUNDS`` of each, and the median run counts (a single run
    on a shared 2-core machine moved by a third between attempts)."""
    result: dict[str, Any] = {"seconds_per_run": seconds, "rounds": WRITE_ROUNDS}
    names = {audited: f"bench_writes_{'audited' if audited else 'unaudited'}" for audited in (True, False)}
    services = _copies(b, template, names)
    settle(b)
    for writers in WRITERS:
        result.update(_rounds(b, names, services, writers, seconds))
    with b.admin() as conn:
        for name in names.values():
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    for writers in WRITERS:
        result[f"share_{writers}"] = result[f"audited_{writers}"] / result[f"unaudited_{writers}"]
    return result


def _copies(b: Bench, template: str, names: dict[bool, str]) -> list[str]:
    """Copy ``template`` once per side (the trigger disabled on the unaudited one); returns the service ids."""
    services: list[str] = []
    for audited, name in names.items():
        b.create_database(name, template=template)
        with psycopg.connect(b.dsn(name), autocommit=True) as conn:
            if not audited:
                conn.execute(f"ALTER TABLE platform.services DISABLE TRIGGER {AUDIT_TRIGGER}")
            services = [str(r[0]) for r in conn.execute("SELECT id FROM platform.services ORDER BY id")]
    return services


def _rounds(b: Bench, names: dict[bool, str], services: list[str], writers: int, seconds: float) -> dict[str, Any]:
    """:data:`WRITE_ROUNDS` runs per side with ``writers`` writers, alternating which side goes first; the median
    rate per side and every run's rate."""
    rates: dict[str, list[float]] = {}
    for k in range(WRITE_ROUNDS):
        for audited in (True, False) if k % 2 == 0 else (False, True):
            key = f"{'audited' if audited else 'unaudited'}_{writers}"
            rates.setdefault(key, []).append(_writers(b.dsn(names[audited]), services, writers, seconds))
    result: dict[str, Any] = {}
    for key in (f"audited_{writers}", f"unaudited_{writers}"):
        result[key] = percentile(rates[key], 50)
        result[f"{key}_runs"] = rates[key]
        b.log(f"writes: {key}: median {fmt_rate(result[key])} rows/s of {[fmt_rate(r) for r in rates[key]]}")
    return result


def _writers(dsn: str, services: list[str], writers: int, seconds: float) -> float:
    """Rows per second of single-row UPDATEs of services.description, each its own transaction, by ``writers``
    connections updating disjoint services (so no two writers wait on the same row lock)."""
    counts = [0] * writers
    start = threading.Barrier(writers + 1)
    stop = threading.Event()

    def work(index: int) -> None:
        mine = services[index::writers]
        with psycopg.connect(dsn, autocommit=True) as conn:
            start.wait()
            i = 0
            while not stop.is_set():
                conn.execute(
                    "UPDATE platform.services SET description = %s WHERE id = %s",
                    (f"bench write {i}", mine[i % len(mine)]),
                    prepare=True,
                )
                i += 1
            counts[index] = i

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)
