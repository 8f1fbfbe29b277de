"""Where an audited write's time goes: the capture trigger taken apart one component at a time.

Each variant is the shipped ``platform.audit_capture()`` body cut short or with one component removed, installed in
a copy of the database of its own (never in the one measured for the report):

- ``off``: the trigger disabled (the baseline);
- ``settings``: only the client settings' checks, then return;
- ``images``: also the row images (``to_jsonb`` of OLD and NEW, the no-change test, the entity id, redaction);
- ``insert``: also the audit row's insert, with no lane and no hash (a zero hash in lane 0);
- ``hash``: also the row hash;
- ``lane``: also the lane's lookup and lock, but not the head's update;
- ``full``: the shipped trigger.

Two figures per variant, from runs that alternate between the variants (the order reversed every other round):
the trigger's own time per row from ``EXPLAIN ANALYZE`` (one writer, server side, so the client and the commit are
left out), and rows/s of single-row UPDATEs by 8 writers as a share of ``off`` in the same round (the figure of
issue #13, point 4). ``python -m bench.audit_costs --seconds 3 --rounds 3`` starts a throwaway cluster of its own.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import click
import psycopg
from rich.console import Console

from bench.audited_writes import _writers
from bench.common import Bench, settle, throwaway_bench

ZERO_HASH = "'\\x" + "00" * 32 + "'::bytea"
VARIANTS = ("off", "settings", "images", "insert", "hash", "lane", "full")
_INSTALL = (
    "CREATE OR REPLACE FUNCTION platform.audit_capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER"
    " SET search_path = pg_catalog, pg_temp AS $variant$"
)
_TRIGGER_TIME = re.compile(r"Trigger trg_services_audit: time=([0-9.]+)")


def _cut(body: str, marker: str) -> int:
    at = body.find(marker)
    if at < 0:
        raise ValueError(f"audit_capture() no longer contains {marker!r}: update bench/audit_costs.py")
    return at


def variants(body: str) -> dict[str, str | None]:
    """The variants' bodies derived from the shipped ``body`` (``None``: the trigger disabled)."""
    images_at = _cut(body, "  IF TG_OP <> 'INSERT' THEN v_before")
    lookup_at = _cut(body, "  IF v_actor_name IS NULL AND v_actor_id IS NOT NULL")
    lane_at = _cut(body, "  v_hint := nullif(current_setting('platformdb.audit_lane'")
    id_at = _cut(body, "  v_log.id := nextval(")
    head_at = _cut(body, "  UPDATE platform.audit_chain SET last_hash")
    end_at = body.find("  RETURN NULL;\nEND", head_at)
    if end_at < 0:
        raise ValueError("audit_capture() no longer ends with RETURN NULL after the head's update")
    hash_line = "  v_log.row_hash := platform.audit_row_hash(v_log);"
    _cut(body, hash_line)
    unlaned = body[:lane_at] + f"  v_log.chain_lane := 0;\n  v_log.prev_hash := {ZERO_HASH};\n" + body[id_at:head_at]
    hashed = unlaned + body[end_at:]
    return {
        "off": None,
        "settings": body[:images_at] + "  RETURN NULL;\nEND\n",
        "images": body[:lookup_at] + "  RETURN NULL;\nEND\n",
        "insert": hashed.replace(hash_line, "  v_log.row_hash := v_log.prev_hash;"),
        "hash": hashed,
        "lane": body[:head_at] + body[end_at:],
        "full": body,
    }


def _database(variant: str) -> str:
    return f"bench_capture_{variant}"


def _install(b: Bench, template: str, bodies: dict[str, str | None]) -> list[str]:
    services: list[str] = []
    for variant, body in bodies.items():
        b.create_database(_database(variant), template=template)
        with psycopg.connect(b.dsn(_database(variant)), autocommit=True) as conn:
            if body is None:
                conn.execute("ALTER TABLE platform.services DISABLE TRIGGER trg_services_audit")
            else:
                conn.execute(_INSTALL + body + "$variant$")
            services = [str(r[0]) for r in conn.execute("SELECT id FROM platform.services ORDER BY id")]
    return services


def _trigger_us(dsn: str, services: list[str], writes: int, tag: str) -> list[float]:
    """Microseconds the audit trigger took, per single-row UPDATE, as EXPLAIN ANALYZE reports it."""
    times = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(writes):
            plan = "\n".join(
                str(r[0])
                for r in conn.execute(
                    "EXPLAIN (ANALYZE) UPDATE platform.services SET description = %s WHERE id = %s",
                    (f"cost {tag} {i}", services[i % len(services)]),
                )
            )
            found = _TRIGGER_TIME.search(plan)
            times.append(float(found.group(1)) * 1000 if found else 0.0)
    return times


def audit_costs(
    b: Bench, template: str, *, seconds: float, rounds: int, writes: int, writers: int = 8
) -> dict[str, Any]:
    """Per variant: median trigger µs per row (one writer) and the share of ``off``'s rows/s (``writers``
    writers), each round's share and its spread."""
    with psycopg.connect(b.dsn(template), autocommit=True) as conn:
        row = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'platform.audit_capture()'::regprocedure")
        body = str(row.fetchone()[0])  # type: ignore[index]
    bodies = variants(body)
    services = _install(b, template, bodies)
    settle(b)
    trigger: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for k in range(rounds):
        order = VARIANTS if k % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            trigger[variant] += _trigger_us(b.dsn(_database(variant)), services, writes, f"{k}")
        for variant in order:
            rates[variant].append(_writers(b.dsn(_database(variant)), services, writers, seconds))
        b.log("capture costs round " + ", ".join(f"{v} {rates[v][-1]:,.0f}" for v in VARIANTS) + " rows/s")
    with b.admin() as conn:
        for variant in VARIANTS:
            conn.execute(f'DROP DATABASE "{_database(variant)}" WITH (FORCE)')
    result: dict[str, Any] = {"seconds_per_run": seconds, "rounds": rounds, "writers": writers, "variants": {}}
    for variant in VARIANTS:
        shares = [r / o for r, o in zip(rates[variant], rates["off"], strict=True)]
        result["variants"][variant] = {
            "trigger_us": statistics.median(trigger[variant]) if variant != "off" else 0.0,
            "rows_per_s": rates[variant],
            "share": statistics.median(shares),
            "share_runs": shares,
        }
    return result


def table(result: dict[str, Any]) -> list[str]:
    """The figures as Markdown: each variant's trigger µs, the step from the one before, its share of ``off``."""
    lines = [
        f"| variant | trigger µs per row | step µs | {result['writers']} writers, share of off (median, min-max) |",
        "| --- | ---: | ---: | ---: |",
    ]
    previous = 0.0
    for variant, figures in result["variants"].items():
        us = figures["trigger_us"]
        runs = figures["share_runs"]
        spread = f"{min(runs):.0%}-{max(runs):.0%}"
        lines.append(f"| {variant} | {us:.0f} | {us - previous:+.0f} | {figures['share']:.0%} ({spread}) |")
        previous = us
    return lines


@click.command()
@click.option("--seconds", type=float, default=3.0, show_default=True, help="Seconds per 8-writer run.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Rounds of every variant.")
@click.option("--writes", type=click.IntRange(min=1), default=100, show_default=True,
              help="EXPLAIN ANALYZE writes per variant and round.")  # fmt: skip
def main(seconds: float, rounds: int, writes: int) -> None:
    """Profile the audit capture on a throwaway embedded PostgreSQL (scale 1) and print the cost table."""
    from platformdb import migrate
    from platformdb.db import parse_url
    from platformdb.workbench import seed as seeding

    console = Console(stderr=True, soft_wrap=True)
    with throwaway_bench(console, 0, 0) as b:
        b.create_database("bench_capture")
        url = parse_url(b.dsn("bench_capture"))
        migrate.upgrade(url)
        seeding.seed(url, scale=1, seed=1, console=console)
        with psycopg.connect(b.dsn("bench_capture"), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        result = audit_costs(b, "bench_capture", seconds=seconds, rounds=rounds, writes=writes)
    click.echo("\n".join(table(result)))


if __name__ == "__main__":
    main()
