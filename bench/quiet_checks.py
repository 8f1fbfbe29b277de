"""What the quiet checks cost an insert on users: the generated trigger (revision 0065), the generic
``platform.check_quietly()`` it replaced, and no quiet check at all, on three copies of one database.

One writer inserts users in autocommit transactions under ``EXPLAIN ANALYZE``, so the figures are the server's
own (the client and the commit's flush, which dominate on a shared disk, are left out): the quiet trigger's time
and the whole statement's. The copies take turns in blocks (the order reversed every other round); the medians
are printed, with each side's statement time as a ratio to the one without the check, per round.
``python -m bench.quiet_checks --rounds 6 --inserts 300`` starts a throwaway cluster of its own.
"""

from __future__ import annotations

import re
import statistics
import uuid
from typing import Any

import click
import psycopg
from rich.console import Console

from bench.common import Bench, settle, throwaway_bench

PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQxMjM0$0mJ1cQbB2d8kL0Tj2Yf3YxZq4sVQ3mD1hA"  # noqa: S105 - a format sample
SIDES = ("none", "generic", "generated")
_TRIGGER = re.compile(r"Trigger trg_users_validated: time=([0-9.]+)")
_EXECUTION = re.compile(r"Execution Time: ([0-9.]+)")


def _database(side: str) -> str:
    return f"bench_quiet_{side}"


def _copies(b: Bench, template: str) -> None:
    for side in SIDES:
        b.create_database(_database(side), template=template)
        with psycopg.connect(b.dsn(_database(side)), autocommit=True) as conn:
            if side == "none":
                conn.execute("ALTER TABLE platform.users DISABLE TRIGGER trg_users_validated")
            elif side == "generic":
                conn.execute(
                    "CREATE OR REPLACE TRIGGER trg_users_validated BEFORE INSERT OR UPDATE ON platform.users"
                    " FOR EACH ROW EXECUTE FUNCTION platform.check_quietly()"
                )


def _block(dsn: str, inserts: int) -> tuple[list[float], list[float]]:
    """Per INSERT of a user (each its own transaction): the quiet trigger's ms and the statement's ms."""
    trigger, statement = [], []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(inserts):
            plan = "\n".join(
                str(r[0])
                for r in conn.execute(
                    "EXPLAIN (ANALYZE) INSERT INTO platform.users (email, display_name, password_hash)"
                    " VALUES (%s, 'Bench User', %s)",
                    (f"bench.{uuid.uuid4().hex}@example.com", PASSWORD_HASH),
                )
            )
            found = _TRIGGER.search(plan)
            total = _EXECUTION.search(plan)
            trigger.append(float(found.group(1)) if found else 0.0)
            statement.append(float(total.group(1)) if total else 0.0)
    return trigger, statement


def quiet_checks(b: Bench, template: str, *, rounds: int, inserts: int) -> dict[str, Any]:
    """Per side: the median ms of the quiet trigger and of the statement per insert on users, and the statement's
    ratio to ``none``'s in each round."""
    _copies(b, template)
    settle(b)
    trigger: dict[str, list[float]] = {side: [] for side in SIDES}
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    per_round: dict[str, list[float]] = {side: [] for side in SIDES}
    for k in range(rounds):
        for side in SIDES if k % 2 == 0 else tuple(reversed(SIDES)):
            in_trigger, block = _block(b.dsn(_database(side)), inserts)
            trigger[side] += in_trigger
            times[side] += block
            per_round[side].append(statistics.median(block))
    with b.admin() as conn:
        for side in SIDES:
            conn.execute(f'DROP DATABASE "{_database(side)}" WITH (FORCE)')
    result: dict[str, Any] = {"rounds": rounds, "inserts": inserts, "sides": {}}
    for side in SIDES:
        ratios = [s / n for s, n in zip(per_round[side], per_round["none"], strict=True)]
        result["sides"][side] = {
            "trigger_ms": statistics.median(trigger[side]),
            "median_ms": statistics.median(times[side]),
            "ratio": statistics.median(ratios),
            "ratio_runs": ratios,
        }
    return result


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--inserts", type=click.IntRange(min=1), default=300, show_default=True, help="Inserts per block.")
def main(rounds: int, inserts: int) -> None:
    """Time inserts on users with each kind of quiet check on a throwaway embedded PostgreSQL."""
    from platformdb import migrate
    from platformdb.db import parse_url

    console = Console(stderr=True, soft_wrap=True)
    with throwaway_bench(console, 0, 0) as b:
        b.create_database("bench_quiet")
        migrate.upgrade(parse_url(b.dsn("bench_quiet")))
        result = quiet_checks(b, "bench_quiet", rounds=rounds, inserts=inserts)
    click.echo("| quiet check | trigger ms | statement ms (median) | / none (median, min-max) |")
    click.echo("| --- | ---: | ---: | ---: |")
    for side, figures in result["sides"].items():
        runs = figures["ratio_runs"]
        spread = f"{min(runs):.2f}-{max(runs):.2f}"
        ms = f"{figures['trigger_ms']:.3f} | {figures['median_ms']:.3f}"
        click.echo(f"| {side} | {ms} | {figures['ratio']:.2f}x ({spread}) |")


if __name__ == "__main__":
    main()
