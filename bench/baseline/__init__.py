"""The original task's schema (``original_task.sql``, beside this module) loaded with the same facts it can hold,
answering the equivalent questions; and an A/A check (the same ``SELECT 1`` on both databases, timed the same
way) that shows how far apart two equal queries land."""

from __future__ import annotations

import datetime as dt
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.common import Bench, Run, buffers, draw_params, fmt_ms, settle, summarize, time_runs, timing
from platformdb.queries import CATALOG
from platformdb.queries.base import positional

ORIGINAL_DDL = Path(__file__).resolve().parent / "original_task.sql"
THEIRS_DB = "bench_original"
SAMPLES_FACTOR = 3
"""Three times the samples of a catalog query: the two sides are often within microseconds."""
SIDE_BUDGET_S = 60.0
"""At most about this long per side and question: a question the original answers in 0.7 s at scale 100 (what
runs where) would otherwise take hours; such a gap needs no microsecond resolution."""
MIN_SAMPLES = 200

# table: (the SELECT on our schema that yields its rows, its columns)
BASELINE_LOAD = {
    "users": (
        # A service account has no password; the original has no such user, so it gets an unusable hash ('!').
        "SELECT u.id, u.email, coalesce(u.password_hash, '!'),"
        " coalesce((SELECT array_agg(DISTINCT r.name ORDER BY r.name) FROM platform.role_grants g"
        " JOIN platform.roles r ON r.id = g.role_id WHERE g.user_id = u.id), '{}'::text[]),"
        " u.created_at AT TIME ZONE 'UTC', u.updated_at AT TIME ZONE 'UTC' FROM platform.users u",
        "id, email, password_hash, roles, created_at, updated_at",
    ),
    "services": (
        "SELECT id, name, description, status, created_at AT TIME ZONE 'UTC' FROM platform.services",
        "id, name, description, status, created_at",
    ),
    "deployments": (
        "SELECT id, service_id, version, status, deployed_at AT TIME ZONE 'UTC', created_at AT TIME ZONE 'UTC'"
        " FROM platform.deployments ORDER BY created_at",
        "id, service_id, version, status, deployed_at, created_at",
    ),
}


def _naive(params: dict[str, Any]) -> dict[str, Any]:
    """The original schema stores timestamp without time zone (UTC): pass naive UTC values so its index applies."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None) if value.year < 9999 else value.replace(tzinfo=None)
        out[key] = value
    return out


@dataclass(frozen=True)
class Question:
    """One question both schemas answer, with the same columns: ours is the catalog query's statement (same
    predicate and order, so the same index and plan) narrowed to the columns the original can also return;
    its parameters are drawn by that catalog query's sampler."""

    catalog: str
    ours: str
    theirs: str
    mapping: Callable[[dict[str, Any]], dict[str, Any]] = lambda p: p


BASELINE_QUERIES: dict[str, Question] = {
    "login by email": Question(
        "identity.login_by_email",
        "SELECT u.id, u.email, u.password_hash FROM platform.users u"
        " WHERE lower(u.email) = lower(%(email)s::text) AND u.deactivated_at IS NULL",
        # The original has no case-insensitive lookup: it gets the address exactly as stored (its best case).
        "SELECT id, email, password_hash FROM users WHERE email = %(email)s",
    ),
    "service directory (page of 50)": Question(
        "catalog.service_directory",
        "SELECT s.id, s.name, s.status FROM platform.services s WHERE s.name > %(after_name)s"
        " ORDER BY s.name LIMIT %(page_size)s",
        "SELECT id, name, status FROM services WHERE name > %(after_name)s ORDER BY name LIMIT %(page_size)s",
    ),
    "deployment history, newest first (page of 50)": Question(
        "delivery.deployment_history",
        "SELECT d.id, d.version, d.status, d.created_at, d.deployed_at FROM platform.deployments d"
        " WHERE d.service_id = %(service_id)s AND (d.created_at, d.id) < (%(before_created_at)s, %(before_id)s)"
        " ORDER BY d.created_at DESC, d.id DESC LIMIT %(page_size)s",
        "SELECT id, version, status, created_at, deployed_at FROM deployments WHERE service_id = %(service_id)s"
        " AND (created_at, id) < (%(before_created_at)s, %(before_id)s)"
        " ORDER BY created_at DESC, id DESC LIMIT %(page_size)s",
        _naive,
    ),
    "active deployments": Question(
        "delivery.active_deployments",
        "SELECT d.id, d.service_id, d.version, d.status, d.created_at FROM platform.deployments d"
        " WHERE d.status IN ('pending', 'in_progress') ORDER BY d.created_at",
        "SELECT id, service_id, version, status, created_at FROM deployments"
        " WHERE status IN ('pending', 'in_progress') ORDER BY created_at",
    ),
    "what runs where (latest success per service, page of 50)": Question(
        "delivery.running_in_environment",
        CATALOG["delivery.running_in_environment"].sql,
        "SELECT s.id, s.name, d.id AS deployment_id, d.version, d.deployed_at FROM services s"
        " JOIN (SELECT DISTINCT ON (service_id) service_id, id, version, deployed_at FROM deployments"
        " WHERE status = 'succeeded' ORDER BY service_id, deployed_at DESC) d ON d.service_id = s.id"
        " WHERE s.name > %(after_name)s ORDER BY s.name LIMIT %(page_size)s",
        lambda p: {"after_name": p["after_name"], "page_size": p["page_size"]},
    ),
}


def baseline(b: Bench, ours_db: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the original DDL with our facts, then time the equivalent questions on both schemas.

    Returns the figures per question and the A/A resolution (``SELECT 1`` on both databases)."""
    _load_original(b, ours_db)
    settle(b)
    with timing(b):
        resolution = _resolution(b, ours_db)
        rng = random.Random("bench:baseline")  # noqa: S311 - not cryptography
        with psycopg.connect(b.dsn(THEIRS_DB), autocommit=True) as theirs:
            figures = {
                label: _compare(b, ours_db, theirs, label, question, rng)
                for label, question in BASELINE_QUERIES.items()
            }
    return figures, resolution


def _load_original(b: Bench, ours_db: str) -> None:
    """A fresh database with the original DDL, filled by COPY from ours (:data:`BASELINE_LOAD`), then analysed."""
    b.create_database(THEIRS_DB)
    with (
        psycopg.connect(b.dsn(ours_db), autocommit=True) as src,
        psycopg.connect(b.dsn(THEIRS_DB), autocommit=True) as dst,
    ):
        dst.execute(ORIGINAL_DDL.read_text())
        for table, (select, columns) in BASELINE_LOAD.items():
            with dst.transaction(), dst.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in src.execute(select):
                    copy.write_row(row)
        dst.execute("VACUUM (ANALYZE)")


def _resolution(b: Bench, ours_db: str) -> dict[str, Any]:
    """A/A: the same statement on both databases, timed the same way, shows how far apart two equal queries land."""
    same_o, same_t = (Run(b.dsn(db), "SELECT 1", [{}] * (SAMPLES_FACTOR * b.iterations)) for db in (ours_db, THEIRS_DB))
    time_runs([same_o, same_t], b.warmup)
    resolution = {"ours": summarize(same_o.times), "theirs": summarize(same_t.times)}
    b.log(
        "baseline resolution: SELECT 1 on both, p99 ratio "
        f"{resolution['ours']['p99_ms'] / resolution['theirs']['p99_ms']:.2f}"
    )
    return resolution


def _their_params(
    theirs: psycopg.Connection[Any], question: Question, ours_params: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The original's parameters for each of ours: login by email gets the address exactly as stored."""
    if question.catalog == "identity.login_by_email":
        stored = {str(r[0]).lower(): str(r[0]) for r in theirs.execute("SELECT email FROM users")}
        return [{"email": stored[p["email"].lower()]} for p in ours_params]
    return [question.mapping(p) for p in ours_params]


def _compare(
    b: Bench, ours_db: str, theirs: psycopg.Connection[Any], label: str, question: Question, rng: random.Random
) -> dict[str, Any]:
    """Time one question on both schemas, executions alternating between them."""
    ours_params = draw_params(b.dsn(ours_db), CATALOG[question.catalog], SAMPLES_FACTOR * b.iterations, rng)
    their_params = _their_params(theirs, question, ours_params)
    n = _samples_within_budget(b, ours_db, question, ours_params, their_params)
    o = Run(b.dsn(ours_db), question.ours, ours_params[:n])
    t = Run(b.dsn(THEIRS_DB), question.theirs, their_params[:n])
    time_runs([o, t], min(b.warmup, n))
    figures: dict[str, Any] = {
        "ours_query": question.catalog,
        "samples": n,
        "ours": {"rows_mean": o.mean_rows, **summarize(o.times), **buffers(o.dsn, o.sql, o.params).summary()},
        "theirs": {"rows_mean": t.mean_rows, **summarize(t.times), **buffers(t.dsn, t.sql, t.params).summary()},
    }
    b.log(
        f"baseline {label:<48} p99 ours {fmt_ms(figures['ours']['p99_ms'])} ms, "
        f"theirs {fmt_ms(figures['theirs']['p99_ms'])} ms"
    )
    return figures


def _samples_within_budget(
    b: Bench, ours_db: str, question: Question, ours: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> int:
    """How many parameter sets each side gets: all of them, unless the slower side's first calls say that warmup
    and timing would take more than :data:`SIDE_BUDGET_S` (then fewer, never under :data:`MIN_SAMPLES`)."""
    slowest = 0.0
    for dsn, sql, params in ((b.dsn(ours_db), question.ours, ours), (b.dsn(THEIRS_DB), question.theirs, theirs)):
        probe = Run(dsn, sql, params[:3])
        time_runs([probe], 0, rounds=1)
        slowest = max(slowest, max(probe.times))
    affordable = int(SIDE_BUDGET_S / (2 * slowest)) if slowest > 0 else len(ours)  # warmup and timed runs
    return max(MIN_SAMPLES, min(len(ours), affordable))


MIXED_CLIENTS = (1, 4, 8, 16)
MIXED_SECONDS = 15
"""Seconds per side and client count of the concurrent comparison."""


def _slug(label: str) -> str:
    return "q_" + "_".join(w for w in "".join(c if c.isalnum() else " " for c in label).split())[:50]


def baseline_mixed(b: Bench, ours_db: str) -> dict[str, Any]:
    """The equivalent questions under concurrency, on both schemas: one pgbench script per question (the same
    SQL as the quiet comparison, ``-M prepared``, parameters drawn as there and stored in ``bench_params`` on each
    side), equally weighted, at each of :data:`MIXED_CLIENTS`, each side for :data:`MIXED_SECONDS` in turn (which
    side goes first alternates). Needs the original's database that :func:`baseline` loaded."""
    from bench.mixed import PARAM_ROWS, Script, lookup, param_table, pgbench_sql, run_pgbench

    rng = random.Random("bench:baseline-mixed")  # noqa: S311 - not cryptography
    sides: dict[str, list[Script]] = {ours_db: [], THEIRS_DB: []}
    with (
        psycopg.connect(b.dsn(ours_db), autocommit=True) as ours,
        psycopg.connect(b.dsn(THEIRS_DB), autocommit=True) as theirs,
    ):
        for conn in (ours, theirs):
            conn.execute("CREATE SCHEMA IF NOT EXISTS bench_params")
        for label, question in BASELINE_QUERIES.items():
            name = _slug(label)
            ours_params = draw_params(b.dsn(ours_db), CATALOG[question.catalog], PARAM_ROWS, rng)
            for conn, db, text, params in (
                (ours, ours_db, question.ours, ours_params),
                (theirs, THEIRS_DB, question.theirs, _their_params(theirs, question, ours_params)),
            ):
                names = positional(text)[1]
                conn.execute(f"DROP TABLE IF EXISTS bench_params.{name}")
                param_table(conn, name, names, params)
                sides[db].append(
                    Script(label, "baseline", f"{lookup(name, names, PARAM_ROWS)}{pgbench_sql(text)};\n", 1)
                )
        for conn in (ours, theirs):
            conn.execute("VACUUM ANALYZE")
    settle(b)
    runs = []
    with timing(b), tempfile.TemporaryDirectory(prefix="platformdb-pgbench-") as tmp:
        for k, clients in enumerate(MIXED_CLIENTS):
            order = [ours_db, THEIRS_DB] if k % 2 == 0 else [THEIRS_DB, ours_db]
            figures = {db: run_pgbench(b, db, sides[db], clients, MIXED_SECONDS, Path(tmp)) for db in order}
            ours_f, theirs_f = figures[ours_db], figures[THEIRS_DB]
            run: dict[str, Any] = {"clients": clients, "seconds": MIXED_SECONDS, "ours": ours_f, "theirs": theirs_f}
            worst = max(
                (f["p99_ms"] / theirs_f[label]["p99_ms"], label)
                for label, f in ours_f.items()
                if "p99_ms" in f and "p99_ms" in theirs_f[label]
            )
            b.log(f"baseline mixed: {clients:>2} clients, worst p99 ours/theirs {worst[0]:.2f} ({worst[1]})")
            runs.append(run)
    return {"runs": runs}
