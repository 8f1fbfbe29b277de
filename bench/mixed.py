"""The platform's day: every microservice at once, with pgbench.

One pgbench script per catalog query (its parameters drawn from the seeded data by the query's sampler and
stored in ``bench_params.<table>``, read per transaction with ``\\gset``), plus the writes services make (the
deployment controller moving a rollout through the state machine, configuration edits), weighted like a platform:
the API gateway's permission checks on most transactions. pgbench runs them with ``-M prepared`` at 1, 4, 8 and 16
clients while, beside it, a metric ingest stream COPYs batches at a fixed rate and partition maintenance runs
``ensure`` once. Each transaction's latency comes from pgbench's ``--log``; per script we report TPS and
p50/p95/p99, and each read's p99 under load over its quiet p99 (:mod:`bench.catalog`).

A script's latency includes its parameter lookup (a primary-key read of an unlogged table, measured alone as the
``params`` script so it can be subtracted by eye). pgbench connects as the database owner: privilege checks
are not what is measured here.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import Bench, draw_params, fmt_ms, percentile, settle
from platformdb.ops import partitions
from platformdb.queries import CATALOG, Query

CLIENTS = (1, 4, 8, 16)
PARAM_ROWS = 2000
INGEST_BATCH_ROWS = 1000
INGEST_BATCHES_PER_SECOND = 5

# Share of transactions per microservice (they sum to 100). The gateway's permission check on most requests.
SERVICE_WEIGHTS = {
    "identity": 40,
    "configuration": 15,
    "catalog": 10,
    "delivery": 8,
    "monitoring": 7,
    "audit": 5,
    "rollout": 8,
    "config_edit": 7,
}
# Within a context, a query's share of the context's weight (default: equal).
QUERY_WEIGHTS = {"identity.may_user_do": 6, "identity.login_by_email": 2}


@dataclass(frozen=True)
class Script:
    name: str
    service: str
    text: str
    weight: int


def pgbench_sql(text: str) -> str:
    """SQL with psycopg parameters (``%(name)s``) with pgbench variables (``:name``) instead, on one line."""
    return " ".join(re.sub(r"%\((\w+)\)s", r":\1", text).replace("%%", "%").split())


def _variable_sql(query: Query) -> str:
    """The query with pgbench variables (``:name``) for its parameters."""
    return pgbench_sql(query.sql)


def param_table(conn: psycopg.Connection[Any], name: str, names: list[str], draws: list[dict[str, Any]]) -> None:
    """``bench_params.<name>`` (i, one text column per parameter) filled with ``draws``, numbered from 1."""
    table = sql.Identifier("bench_params", name)
    conn.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} (i int PRIMARY KEY{})").format(
            table, sql.SQL("").join(sql.SQL(", {} text").format(sql.Identifier(n)) for n in names)
        )
    )
    with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(table)) as copy:
        for i, d in enumerate(draws, 1):
            copy.write_row([i, *(None if d[n] is None else _text(d[n]) for n in names)])


def lookup(name: str, names: list[str], rows: int) -> str:
    """The pgbench lines that pick a random parameter set of ``bench_params.<name>`` into variables."""
    if not names:
        return ""
    cols = ", ".join(f'"{n}"' for n in names)
    return f"\\set i random(1, {rows})\nSELECT {cols} FROM bench_params.{name} WHERE i = :i \\gset\n"


def _param_table(query: Query) -> str:
    return query.name.replace(".", "__")


def _load_params(conn: psycopg.Connection[Any], dsn: str, query: Query, rng: random.Random) -> bool:
    """Fill ``bench_params.<query>`` with drawn parameter sets (as text: the prepared statement types them; a
    NULL stays NULL, which ``\\gset`` carries as a NULL variable)."""
    param_table(conn, _param_table(query), list(query.param_names), draw_params(dsn, query, PARAM_ROWS, rng))
    return True


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()  # bytea's hex input form
    if isinstance(value, (list, tuple)):
        return "{" + ",".join(str(v) for v in value) + "}"
    return str(value)


def _read_script(query: Query, weight: int) -> Script:
    head = lookup(_param_table(query), list(query.param_names), PARAM_ROWS)
    return Script(query.name, query.context, f"{head}{_variable_sql(query)};\n", weight)


def _write_scripts(conn: psycopg.Connection[Any], rng: random.Random) -> list[Script]:
    """The writes: a rollout (pending -> in_progress -> succeeded, three transactions, as a controller does) and a
    configuration edit. Each pgbench client has targets of its own (``:client_id``), so no two clients contend
    for one service's rollout slot or one key's numbering."""
    targets = conn.execute(
        """SELECT r.service_id::text, r.version, e.id::text
             FROM platform.releases r CROSS JOIN LATERAL (  -- an environment no approval or promotion step guards
                  SELECT x.id FROM platform.environments x
                   WHERE NOT EXISTS (SELECT FROM platform.approval_rules a WHERE a.environment_id = x.id)
                     AND NOT EXISTS (SELECT FROM platform.environment_promotions p WHERE p.to_environment_id = x.id)
                   ORDER BY x.id OFFSET 0 LIMIT 1) e
            WHERE NOT EXISTS (SELECT FROM platform.deployments d
                               WHERE d.service_id = r.service_id AND d.environment_id = e.id
                                 AND d.status IN ('pending', 'in_progress'))
            ORDER BY r.service_id, r.version"""
    ).fetchall()
    by_service: dict[str, tuple[str, str, str]] = {}
    for service, version, env in targets:
        by_service.setdefault(service, (service, version, env))
    rollout = list(by_service.values())
    rng.shuffle(rollout)
    keys = [r[0] for r in conn.execute("SELECT id::text FROM platform.configurations ORDER BY id").fetchall()]
    rng.shuffle(keys)
    per_client = max(1, min(len(rollout), len(keys)) // max(CLIENTS))
    conn.execute("CREATE UNLOGGED TABLE bench_params.rollout (i int PRIMARY KEY, service_id text, version text,"
                 " environment_id text)")  # fmt: skip
    conn.execute("CREATE UNLOGGED TABLE bench_params.config_edit (i int PRIMARY KEY, configuration_id text)")
    with conn.cursor().copy("COPY bench_params.rollout FROM STDIN") as copy:
        for i, row in enumerate(rollout[: per_client * max(CLIENTS)]):
            copy.write_row([i, *row])
    with conn.cursor().copy("COPY bench_params.config_edit FROM STDIN") as copy:
        for i, key in enumerate(keys[: per_client * max(CLIENTS)]):
            copy.write_row([i, key])
    pick = f"\\set i :client_id + {max(CLIENTS)} * random(0, {per_client - 1})\n"
    rollout_text = (
        pick + "SELECT service_id, version, environment_id FROM bench_params.rollout WHERE i = :i \\gset\n"
        "INSERT INTO platform.deployments (service_id, version, environment_id)"
        " VALUES (:service_id, :version, :environment_id) RETURNING id AS deployment_id \\gset\n"
        "UPDATE platform.deployments SET status = 'in_progress' WHERE id = :deployment_id;\n"
        "UPDATE platform.deployments SET status = 'succeeded' WHERE id = :deployment_id;\n"
    )
    edit_text = (
        pick + "\\set value random(1, 1000)\n"
        "SELECT configuration_id FROM bench_params.config_edit WHERE i = :i \\gset\n"
        "INSERT INTO platform.configuration_versions (configuration_id, kind, value)"
        " VALUES (:configuration_id, 'plain', to_jsonb(:value::int));\n"
    )
    return [
        Script("rollout", "rollout", rollout_text, SERVICE_WEIGHTS["rollout"]),
        Script("config_edit", "config_edit", edit_text, SERVICE_WEIGHTS["config_edit"]),
    ]


def scripts_for(dsn: str) -> tuple[list[Script], list[str]]:
    """The scripts for the seeded database at ``dsn`` (whose ``bench_params`` schema they fill), and the names of
    the catalog queries left out."""
    rng = random.Random("bench:mixed")  # noqa: S311 - not cryptography
    skipped: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_params CASCADE")
        conn.execute("CREATE SCHEMA bench_params")
        reads: dict[str, list[Query]] = defaultdict(list)
        for query in CATALOG.values():
            if _load_params(conn, dsn, query, rng):
                reads[query.context].append(query)
            else:
                skipped.append(query.name)
        scripts = []
        for context, queries in reads.items():
            shares = {q.name: QUERY_WEIGHTS.get(q.name, 1) for q in queries}
            total = sum(shares.values())
            for q in queries:
                weight = max(1, round(SERVICE_WEIGHTS.get(context, 5) * 10 * shares[q.name] / total))
                scripts.append(_read_script(q, weight))
        scripts = [Script(s.name, s.service, s.text, s.weight) for s in scripts]
        scripts += [Script(s.name, s.service, s.text, s.weight * 10) for s in _write_scripts(conn, rng)]
        conn.execute("VACUUM ANALYZE")
    return scripts, skipped


# --- the run ---------------------------------------------------------------------------------------------
def _ingest(dsn: str, stop: threading.Event, out: list[float]) -> None:
    """COPY batches of samples at a fixed rate into existing series, recording each batch's seconds."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        series = [r[0] for r in conn.execute("SELECT id FROM platform.metric_series LIMIT 500").fetchall()]
        interval = 1 / INGEST_BATCHES_PER_SECOND
        n = 0
        while not stop.is_set():
            began = time.perf_counter()
            buf = io.StringIO()
            base = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
            for i in range(INGEST_BATCH_ROWS):
                at = base + dt.timedelta(microseconds=n + i)  # distinct per series and batch
                buf.write(f"{series[(n + i) % len(series)]}\t{at.isoformat()}\t{i}\n")
            n += INGEST_BATCH_ROWS
            with conn.cursor().copy("COPY platform.metric_samples (series_id, sampled_at, value) FROM STDIN") as copy:
                copy.write(buf.getvalue())
            out.append(time.perf_counter() - began)
            time.sleep(max(0.0, interval - (time.perf_counter() - began)))


def _maintenance(dsn: str, out: dict[str, Any]) -> None:
    began = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        partitions.ensure(conn, 14, None)
    out["ensure_seconds"] = time.perf_counter() - began


def script_files(scripts: list[Script], work: Path) -> list[Path]:
    """The scripts written into ``work``, one file each, in order."""
    paths = []
    for i, s in enumerate(scripts):
        path = work / f"{i:02d}_{s.name}.sql"
        path.write_text(s.text)
        paths.append(path)
    return paths


def run_pgbench(
    b: Bench, database: str, scripts: list[Script], clients: int, seconds: int, work: Path
) -> dict[str, dict[str, Any]]:
    """pgbench with ``scripts`` (weighted) at ``clients`` for ``seconds``, ``-M prepared``; per script its
    transactions, TPS and p50/p95/p99 from pgbench's ``--log``."""
    files = []
    for s, path in zip(scripts, script_files(scripts, work), strict=True):
        files += ["-f", f"{path}@{s.weight}"]
    prefix = work / f"log_{database}_c{clients}"
    cmd = [
        str(b.cluster.bin_dir / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 4)),
        "-T", str(seconds), "--log", f"--log-prefix={prefix}", *files, b.dsn(database),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 300)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    latencies: dict[int, list[float]] = defaultdict(list)
    for log in work.glob(f"{prefix.name}.*"):
        for line in log.read_text().splitlines():
            fields = line.split()  # client_id transaction_no time script_no time_epoch time_us
            latencies[int(fields[3])].append(int(fields[2]) / 1000)
        log.unlink()
    per_script = {}
    for i, s in enumerate(scripts):
        ms = latencies.get(i, [])
        per_script[s.name] = {
            "service": s.service,
            "weight": s.weight,
            "transactions": len(ms),
            "tps": len(ms) / seconds,
            **({f"p{p}_ms": percentile(ms, p) for p in (50, 95, 99)} if ms else {}),
        }
    return per_script


def _pgbench(b: Bench, database: str, scripts: list[Script], clients: int, seconds: int, work: Path) -> dict[str, Any]:
    """One mixed run: pgbench with every script, and beside it the ingest stream and partition maintenance."""
    stop = threading.Event()
    batches: list[float] = []
    maint: dict[str, Any] = {}
    ingest = threading.Thread(target=_ingest, args=(b.dsn(database), stop, batches), daemon=True)
    maintenance = threading.Timer(seconds / 2, _maintenance, args=(b.dsn(database), maint))
    ingest.start()
    maintenance.start()
    try:
        per_script = run_pgbench(b, database, scripts, clients, seconds, work)
    finally:
        stop.set()
        ingest.join()
        maintenance.join()
    total = sum(f["transactions"] for f in per_script.values())
    ingest_rows = len(batches) * INGEST_BATCH_ROWS
    return {
        "clients": clients,
        "seconds": seconds,
        "tps": total / seconds,
        "scripts": per_script,
        "ingest": {
            "batches": len(batches),
            "rows_per_second": ingest_rows / seconds,
            **({f"batch_p{p}_ms": percentile([x * 1000 for x in batches], p) for p in (50, 99)} if batches else {}),
        },
        "maintenance": maint,
    }


def mixed(b: Bench, database: str, quiet: dict[str, Any], seconds: int = 30) -> dict[str, Any]:
    """The mixed run on ``database`` (seeded), at each of :data:`CLIENTS`; ``quiet`` holds the per-query figures
    of the quiet run at the same scale, for the under-load ratio."""
    scripts, skipped = scripts_for(b.dsn(database))
    settle(b)
    runs = []
    with tempfile.TemporaryDirectory(prefix="platformdb-pgbench-") as tmp:
        for clients in CLIENTS:
            run = _pgbench(b, database, scripts, clients, seconds, Path(tmp))
            for name, figures in run["scripts"].items():
                if name in quiet and "p99_ms" in figures:
                    figures["p99_over_quiet"] = figures["p99_ms"] / quiet[name]["p99_ms"]
            gate = run["scripts"].get("identity.may_user_do", {}).get("p99_ms", 0)
            rate = run["ingest"]["rows_per_second"]
            b.log(f"mixed: {clients:>2} clients {run['tps']:,.0f} tps; ingest {rate:,.0f} rows/s; "
                  f"may_user_do p99 {fmt_ms(gate)} ms")  # fmt: skip
            runs.append(run)
    return {"runs": runs, "skipped": skipped, "scripts": {s.name: s.text for s in scripts}}
