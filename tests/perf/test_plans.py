"""Plan checks: every catalog query EXPLAINed on a seeded database (scale 1, ANALYZEd), with parameters drawn
from the data, on PostgreSQL 18 and 15. One test per rule, parametrized over the queries it applies to:

- no Seq Scan on a table whose expected volume (the models' ``__volume__``) is medium, large or huge: such
  tables are small at scale 1 but not in production, so a plan that scans them is a plan that will not scale.
  An empty partition (a month or day not reached yet: no pages at all) is exempt: scanning nothing costs nothing.
  So is a scan the planner expects to return at least a tenth of the table (the most popular service owns that
  much of metric_series under the Zipf-shaped data): reading that share sequentially is the right plan at any size.
  Nor an index scan without an index condition that filters: that walks the whole index, a seq scan in disguise;
- a time-windowed query reads only the partitions of its window, in the custom plan (pruned while planning)
  and in the generic plan a prepared statement gets after five executions (pruned when execution starts);
- a plan shows every table it reads: no Function Scan hides one. The read API the catalog calls
  (platform.may_user_do, effective_configuration, configuration_at_deployment) is SECURITY DEFINER, which the
  planner never inlines: every check here EXPLAINs such a query as the function's body, with the query's
  parameters in place of the function's arguments (what the function plans when it runs);
- a keyset page of a long deployment history reads the index backwards from the cursor into a Limit: the
  history is never sorted; a page of what runs where walks the services' name index into a Limit, one probe
  per service;
- every catalog query runs with the drawn parameters and finds rows (the parameters are realistic).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from platformdb.models import metadata
from platformdb.queries import CATALOG, Query
from platformdb.queries.delivery import FIRST_PAGE, PAGE_SIZE
from platformdb.workbench.samplers import Sampler, draw
from tests.conftest import Seeded
from tests.factories import Make

DRAWS = 3
"""Parameter sets drawn per query (each its own seed, so a query's draws do not depend on test order)."""
LARGE_VOLUMES = {"medium", "large", "huge"}
VOLUMES = {table.name: str(table.info.get("volume", "small")) for table in metadata.tables.values()}
WINDOWED = [q for q in CATALOG.values() if q.window is not None]


@dataclass(frozen=True)
class Partition:
    name: str
    parent: str
    low: dt.datetime | None  # None: the DEFAULT partition
    high: dt.datetime | None
    empty: bool


@dataclass(frozen=True)
class Layout:
    """The partitions of the seeded database, as its catalogs describe them."""

    partitions: dict[str, Partition]

    def table_of(self, relation: str) -> str:
        partition = self.partitions.get(relation)
        return partition.parent if partition else relation

    def window(self, table: str, since: dt.datetime, until: dt.datetime | None) -> set[str]:
        """The partitions of ``table`` that can hold rows with since <= key < until: the ranges overlapping the
        window, and the DEFAULT partition unless those ranges cover the whole window."""
        ranges = sorted((p.low, p.high, p.name) for p in self.partitions.values()
                        if p.parent == table and p.low is not None and p.high is not None)  # fmt: skip
        hit = [(low, high, name) for low, high, name in ranges if (until is None or low < until) and high > since]
        covered_to = since
        for low, high, _ in hit:
            if low > covered_to:
                break
            covered_to = max(covered_to, high)
        covered = until is not None and covered_to >= until
        default = {p.name for p in self.partitions.values() if p.parent == table and p.low is None}
        return {name for *_, name in hit} | (set() if covered else default)


_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@pytest.fixture(scope="module")
def layout(seeded_conn: psycopg.Connection[Any]) -> Layout:
    rows = seeded_conn.execute(
        """SELECT c.relname, p.relname, pg_get_expr(c.relpartbound, c.oid), pg_relation_size(c.oid) = 0
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace
            WHERE n.nspname = 'platform' AND p.relkind = 'p'"""
    ).fetchall()
    partitions = {}
    for name, parent, bound, empty in rows:
        match = _BOUND.search(bound)  # no match: the DEFAULT partition
        low = dt.datetime.fromisoformat(match[1]) if match else None
        high = dt.datetime.fromisoformat(match[2]) if match else None
        partitions[name] = Partition(name, parent, low, high, empty)
    return Layout(partitions)


@pytest.fixture(scope="module")
def candidates(seeded: Seeded) -> dict[str, list[dict[str, Any]]]:
    """Candidate rows for parameters, shared by every draw against one seeded database (and only that one: the
    servers' seeds are the same data set but their ids carry the minute each was loaded)."""
    return {}


def draws(
    conn: psycopg.Connection[Any], query: Query, cache: dict[str, list[dict[str, Any]]], n: int = DRAWS
) -> list[dict[str, Any]]:
    return [draw(query, Sampler(conn, random.Random(f"{query.name}:{i}"), cache)) for i in range(n)]  # noqa: S311


_CALL = re.compile(r"\bplatform\.(\w+)\(((?:\s*%\(\w+\)s\s*,?)*)\)")


def planned(conn: psycopg.Connection[Any], query: Query) -> Query:
    """``query`` as what the planner plans: a call of a SECURITY DEFINER function of platform (never inlined)
    replaced by the function's body, its arguments by the query's parameters."""
    call = _CALL.search(query.sql)
    if not call:
        return query
    row = conn.execute(
        """SELECT p.prosrc, p.proargnames FROM pg_proc p
            WHERE p.pronamespace = 'platform'::regnamespace AND p.proname = %s AND p.prosecdef""",
        (call[1],),
    ).fetchone()
    if row is None:
        return query
    body, names = str(row[0]), list(row[1])
    arguments = [a.strip() for a in call[2].split(",")]
    for name, argument in zip(names, arguments, strict=False):  # OUT columns follow the arguments
        body = re.sub(rf"\b{name}\b", argument, body)
    return dataclasses.replace(query, sql=body)


def _explain(
    conn: psycopg.Connection[Any], query: Query, params: dict[str, Any], plan_kind: str, options: str
) -> list[tuple[Any, ...]]:
    """EXPLAIN (options) the custom plan (what a one-off execution with these parameters gets) or the generic
    plan of the prepared statement (what it runs after five executions; shown after initial pruning). A call of
    the read API is EXPLAINed as the function's body (:func:`planned`)."""
    query = planned(conn, query)
    if plan_kind == "custom":
        return conn.execute(f"EXPLAIN ({options}) {query.sql}", params).fetchall()
    conn.execute(f"PREPARE plan_check AS {query.positional_sql()}")
    try:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        args = sql.SQL(", ").join(sql.Literal(params[name]) for name in query.param_names)
        execute = sql.SQL("EXECUTE plan_check({})").format(args) if query.param_names else sql.SQL("EXECUTE plan_check")
        return conn.execute(sql.SQL(f"EXPLAIN ({options}) ") + execute).fetchall()
    finally:
        conn.execute("RESET plan_cache_mode")
        conn.execute("DEALLOCATE plan_check")


PLANS = ("custom", "generic")


def explain(conn: psycopg.Connection[Any], query: Query, params: dict[str, Any], plan_kind: str) -> dict[str, Any]:
    plan: dict[str, Any] = _explain(conn, query, params, plan_kind, "FORMAT JSON")[0][0][0]["Plan"]
    return plan


def show(conn: psycopg.Connection[Any], query: Query, params: dict[str, Any], plan_kind: str = "custom") -> str:
    """The plan as text, for failure messages."""
    return "\n".join(str(row[0]) for row in _explain(conn, query, params, plan_kind, "FORMAT TEXT"))


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of the plan, InitPlans, SubPlans and CTEs included."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


MIN_SHARE_FOR_SCAN = 0.1


def _returned_share(conn: psycopg.Connection[Any], relation: str, node: dict[str, Any]) -> float:
    """The planner's estimate of the share of ``relation``'s rows this scan returns."""
    row = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (f"platform.{relation}",)
    ).fetchone()
    total = float(row[0]) if row and row[0] and row[0] > 0 else 0.0
    return float(node.get("Plan Rows", 0)) / total if total else 0.0


def full_scans_of_large_tables(
    conn: psycopg.Connection[Any],
    layout: Layout,
    query: Query,
    cache: dict[str, list[dict[str, Any]]],
    plan_kind: str,
    is_full_scan: Callable[[dict[str, Any]], bool],
) -> list[str]:
    """The plan nodes (over every draw) that ``is_full_scan`` flags and that read a non-empty relation of a
    medium, large or huge table."""
    found = []
    for params in draws(conn, query, cache):
        for node in nodes(explain(conn, query, params, plan_kind)):
            if not is_full_scan(node):
                continue
            relation = node["Relation Name"]
            volume = VOLUMES[layout.table_of(relation)]
            partition = layout.partitions.get(relation)
            share = _returned_share(conn, relation, node)
            if volume in LARGE_VOLUMES and not (partition and partition.empty) and share < MIN_SHARE_FOR_SCAN:
                plan = show(conn, query, params, plan_kind)
                found.append(f"{node['Node Type']} on {relation} ({volume}) with {params}:\n{plan}")
    return found


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("query", CATALOG.values(), ids=CATALOG.keys())
def test_no_seq_scan_on_medium_or_larger_tables(
    seeded_conn: psycopg.Connection[Any], layout: Layout, candidates: dict[str, Any], query: Query, plan_kind: str
) -> None:
    found = full_scans_of_large_tables(
        seeded_conn, layout, query, candidates, plan_kind, lambda node: node["Node Type"] == "Seq Scan"
    )
    assert not found, "\n\n".join(found)


def _walks_whole_index(node: dict[str, Any]) -> bool:
    return node["Node Type"] in ("Index Scan", "Index Only Scan") and "Index Cond" not in node and "Filter" in node


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("query", CATALOG.values(), ids=CATALOG.keys())
def test_no_filtered_full_index_scan_on_medium_or_larger_tables(
    seeded_conn: psycopg.Connection[Any], layout: Layout, candidates: dict[str, Any], query: Query, plan_kind: str
) -> None:
    """An index scan with no index condition that filters rows walks the whole index: a seq scan in disguise."""
    found = full_scans_of_large_tables(seeded_conn, layout, query, candidates, plan_kind, _walks_whole_index)
    assert not found, "\n\n".join(found)


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("query", CATALOG.values(), ids=CATALOG.keys())
def test_plan_shows_every_table_it_reads_no_function_scan(
    seeded_conn: psycopg.Connection[Any], candidates: dict[str, Any], query: Query, plan_kind: str
) -> None:
    """A SQL function the planner does not inline (platform.effective_configuration) is a Function Scan whose
    inside no plan check can see; inlined, its tables and indexes are part of the query's plan."""
    params = draws(seeded_conn, query, candidates, n=1)[0]
    plan = explain(seeded_conn, query, params, plan_kind)
    opaque = [node.get("Function Name") for node in nodes(plan) if node["Node Type"] == "Function Scan"]
    assert not opaque, f"not inlined: {opaque}\n{show(seeded_conn, query, params, plan_kind)}"


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("query", WINDOWED, ids=[q.name for q in WINDOWED])
def test_time_windowed_query_reads_only_the_partitions_of_its_window(
    seeded_conn: psycopg.Connection[Any], layout: Layout, candidates: dict[str, Any], query: Query, plan_kind: str
) -> None:
    assert query.window is not None
    window = query.window
    for params in draws(seeded_conn, query, candidates):
        plan = explain(seeded_conn, query, params, plan_kind)
        scanned = {
            node["Relation Name"]
            for node in nodes(plan)
            if "Relation Name" in node and layout.table_of(node["Relation Name"]) == window.table
        }
        since, until = params[window.since], params[window.until] if window.until else None
        if until is None and window.horizon is not None:
            until = seeded_conn.execute("SELECT now() + %s", (window.horizon,)).fetchone()[0]  # type: ignore[index]
        expected = layout.window(window.table, since, until)
        all_partitions = {p.name for p in layout.partitions.values() if p.parent == window.table}
        assert scanned, f"the plan reads no partition of {window.table}:\n{show(seeded_conn, query, params, plan_kind)}"
        assert scanned <= expected, (
            f"window [{since}, {until}) needs {sorted(expected)} of {len(all_partitions)} partitions; the {plan_kind} "
            f"plan also reads {sorted(scanned - expected)}:\n{show(seeded_conn, query, params, plan_kind)}"
        )


def _long_histories(conn: psycopg.Connection[Any]) -> list[tuple[Any, int]]:
    """Services with at least four pages of deployments (short histories are cheaper to sort than to walk)."""
    return conn.execute(
        """SELECT service_id, count(*) FROM platform.deployments GROUP BY service_id
            HAVING count(*) >= %s ORDER BY count(*) DESC, service_id LIMIT 3""",
        (4 * PAGE_SIZE,),
    ).fetchall()


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("page", ["first", "middle"])
def test_keyset_page_of_a_long_history_reads_the_index_backwards_without_sorting(
    seeded_conn: psycopg.Connection[Any], page: str, plan_kind: str
) -> None:
    query = CATALOG["delivery.deployment_history"]
    histories = _long_histories(seeded_conn)
    assert histories, "the seed must give some services long deployment histories"
    for service_id, length in histories:
        cursor = FIRST_PAGE
        if page == "middle":
            row = seeded_conn.execute(
                """SELECT created_at, id FROM platform.deployments WHERE service_id = %s
                    ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1""",
                (service_id, length // 2),
            ).fetchone()
            assert row is not None
            cursor = {"before_created_at": row[0], "before_id": row[1]}
        params = {"service_id": service_id, **cursor, "page_size": PAGE_SIZE}
        plan = explain(seeded_conn, query, params, plan_kind)
        text = show(seeded_conn, query, params, plan_kind)
        assert not [n for n in nodes(plan) if n["Node Type"] == "Sort"], f"a page sorts the history:\n{text}"
        assert plan["Node Type"] == "Limit", text
        scan = plan["Plans"][0]
        assert (scan["Node Type"], scan.get("Index Name"), scan.get("Scan Direction")) == (
            "Index Scan",
            "ix_deployments_service_id_created_at",
            "Backward",
        ), text
        assert "ROW(created_at, id) < ROW(" in scan["Index Cond"], f"the cursor is not an index condition:\n{text}"


@pytest.mark.parametrize("plan_kind", PLANS)
@pytest.mark.parametrize("page", ["first", "middle"])
def test_page_of_what_runs_where_walks_the_services_name_index_and_probes_each_service(
    seeded_conn: psycopg.Connection[Any], page: str, plan_kind: str
) -> None:
    """A page costs PAGE_SIZE probes whatever the number of services: the services' name index gives the order
    into the Limit (nothing sorts the joined rows), and each service's latest success is one index probe."""
    query = CATALOG["delivery.running_in_environment"]
    environment = seeded_conn.execute("SELECT id FROM platform.environments ORDER BY name LIMIT 1").fetchone()
    names = [r[0] for r in seeded_conn.execute("SELECT name FROM platform.services ORDER BY name").fetchall()]
    assert environment is not None
    assert names
    # At scale 1 there are only 60 services: a middle page is made smaller than what follows its cursor, as
    # pages are at any real size (otherwise sorting the few rows left is rightly the cheaper plan).
    after, size = ("", PAGE_SIZE) if page == "first" else (names[len(names) // 2], len(names) // 6)
    params = {"environment_id": environment[0], "after_name": after, "page_size": size}
    plan = explain(seeded_conn, query, params, plan_kind)
    text = show(seeded_conn, query, params, plan_kind)
    assert not [n for n in nodes(plan) if n["Node Type"] == "Sort"], f"a page sorts the joined rows:\n{text}"
    assert plan["Node Type"] == "Limit", text
    loop = plan["Plans"][0]
    assert loop["Node Type"] == "Nested Loop", text
    outer, inner = loop["Plans"]
    # An index-only scan once the services' pages are all-visible: the key carries id (revision 0067).
    assert outer["Node Type"] in ("Index Scan", "Index Only Scan"), text
    assert outer.get("Index Name") == "uq_services_name", text
    probe = inner["Plans"][0]
    assert (probe["Node Type"], probe.get("Index Name"), probe.get("Scan Direction")) == (
        "Index Scan",
        "ix_deployments_environment_id_service_id_deployed_at",
        "Backward",
    ), text


@pytest.mark.parametrize("query", CATALOG.values(), ids=CATALOG.keys())
def test_catalog_query_finds_rows_with_drawn_parameters(
    seeded_conn: psycopg.Connection[Any], candidates: dict[str, Any], query: Query
) -> None:
    for params in draws(seeded_conn, query, candidates):
        rows = seeded_conn.execute(query.sql, params).fetchall()
        assert rows, f"{query.name} found nothing with {params}"


def test_freeze_calendar_reads_the_window_through_the_gist_index(conn: psycopg.Connection[Any], make: Make) -> None:
    """delivery.freeze_calendar on a long freeze history (20,000 periods over 8 environments and about 2 years):
    the window is an index condition on ix_freeze_periods_during (GiST, &&), not a scan of the history."""
    envs = [make.environment() for _ in range(8)]
    conn.execute(
        """INSERT INTO platform.freeze_periods (environment_id, during, reason)
           SELECT (%s::uuid[])[1 + i %% 8], tstzrange(t, t + interval '1 hour'), 'Maintenance'
             FROM generate_series(1, 20000) i,
                  LATERAL (SELECT timestamptz '2025-01-01' + i * interval '1 hour') x(t)""",
        (envs,),
    )
    conn.execute("ANALYZE platform.freeze_periods")
    query = CATALOG["delivery.freeze_calendar"]
    params = {"environment_id": envs[3], "since": dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
              "until": dt.datetime(2026, 1, 12, tzinfo=dt.UTC)}  # fmt: skip
    for plan_kind in ("custom", "generic"):
        text = show(conn, query, params, plan_kind)
        assert "ix_freeze_periods_during" in text, text
        assert "Seq Scan" not in text, text
    rows = query.execute(conn, **params)
    assert len(rows) == 21  # 168 hours, one period in 8 for this environment
