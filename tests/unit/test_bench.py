"""The benchmark's pure helpers: percentiles, summaries and report formatting (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.common import fmt_ms, fmt_rate, fmt_ratio, percentile, summarize
from bench.report import BEGIN, END, STUB, load_note, markdown_table, render, splice, verdict, write_docs

from platformdb.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_RUNS = sorted((ROOT / "bench" / "results").glob("bench-scales-*.json"))
COMMITTED_RUN = COMMITTED_RUNS[-1] if COMMITTED_RUNS else ROOT / "bench" / "results" / "missing.json"


def test_one_committed_run_and_the_report_is_its_rendering() -> None:
    """docs/PERFORMANCE.md's generated part is what the one committed JSON renders (figures edited by hand, or a
    report left behind its run, fail here)."""
    assert len(COMMITTED_RUNS) == 1, f"one committed run in bench/results, not {[p.name for p in COMMITTED_RUNS]}"
    document = (ROOT / "docs" / "PERFORMANCE.md").read_text()
    generated = document[document.index(BEGIN) + len(BEGIN) : document.index(END)]
    assert generated.strip() == render(json.loads(COMMITTED_RUN.read_text())).strip()


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize("pct", [-1, 101])
def test_percentile_rejects_out_of_range(pct: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], pct)


def test_percentile_rejects_no_values() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summarize_reports_milliseconds_and_throughput() -> None:
    summary = summarize([0.001] * 99 + [0.011])
    assert summary["p50_ms"] == pytest.approx(1.0)
    assert summary["p99_ms"] == pytest.approx(1.1)
    assert summary["n"] == 100
    assert summary["qps"] == pytest.approx(100 / 0.11)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.04213, "0.0421"), (0.4213, "0.421"), (4.213, "4.213"), (4.2, "4.2"), (42.13, "42.1"), (421.3, "421")],
)
def test_fmt_ms(value: float, text: str) -> None:
    assert fmt_ms(value) == text


def test_fmt_rate_ratio_and_verdict() -> None:
    assert fmt_rate(123456.7) == "123,457"
    assert fmt_ratio(1.234) == "1.23x"
    assert verdict(True) == "**met**"
    assert verdict(False) == "**missed**"


def test_markdown_table_aligns_numeric_columns_right() -> None:
    table = markdown_table(["query", "p99 ms"], [("a", "0.1"), ("b", "2")], [False, True])
    assert table.splitlines() == ["| query | p99 ms |", "| --- | ---: |", "| a | 0.1 |", "| b | 2 |"]


def test_load_note_compares_the_peak_with_the_core_count() -> None:
    quiet = load_note({"cpus": 2, "load_average_mean": 1.2, "load_average_max": 1.8})
    assert "mean 1.2, peak 1.8 on 2 cores (peak at or below the core count)" in quiet
    assert "(peak above the core count)" in load_note({"cpus": 2, "load_average_mean": 4.0, "load_average_max": 6.5})
    assert "not recorded" in load_note({"cpus": 2})


def test_splice_replaces_only_the_generated_part() -> None:
    document = f"# Title\n\nWritten by hand.\n\n{BEGIN}\nold figures\n{END}\n\n## Interpretation\n\nAlso by hand.\n"
    spliced = splice(document, "new figures\n")
    assert spliced == (
        f"# Title\n\nWritten by hand.\n\n{BEGIN}\n\nnew figures\n\n{END}\n\n## Interpretation\n\nAlso by hand.\n"
    )
    assert splice(spliced, "new figures") == spliced  # idempotent


def test_splice_without_markers_writes_the_stub() -> None:
    assert splice(None, "figures") == f"{STUB}\n{BEGIN}\n\nfigures\n\n{END}\n"
    assert splice("an old report without markers\n", "figures") == splice(None, "figures")


@pytest.mark.parametrize("document", [f"{END}\n{BEGIN}\n", f"{BEGIN}\nno end\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_splice_refuses_broken_markers(document: str) -> None:
    with pytest.raises(UserError, match="markers"):
        splice(document, "figures")


def test_render_keeps_hand_written_text_outside_the_markers(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = json.loads(COMMITTED_RUN.read_text())
    before, after = "# Performance\n\nHand-written intro.\n\n", "\n\n## Interpretation\n\nHand-written analysis.\n"
    (tmp_path / "PERFORMANCE.md").write_text(f"{before}{BEGIN}\nstale figures\n{END}{after}")
    write_docs(results, tmp_path)
    text = (tmp_path / "PERFORMANCE.md").read_text()
    assert text.startswith(before + BEGIN)
    assert text.endswith(END + after)
    assert "stale figures" not in text
    assert render(results).strip() in text
    assert (tmp_path / "performance-latency.png").stat().st_size > 0


def test_the_report_names_the_measured_code_when_the_run_recorded_it() -> None:
    results = json.loads(COMMITTED_RUN.read_text())
    results["meta"] |= {"platformdb": "9.9.9", "commit": "0123456789ab+dirty"}
    assert "platformdb 9.9.9 at commit 0123456789ab+dirty, PostgreSQL" in render(results)


def test_the_generated_part_holds_no_interpretation() -> None:
    generated = render(json.loads(COMMITTED_RUN.read_text()))
    for word in ("noise", "because", "otherwise quiet", "Why targets are missed", "tie, not a lead"):
        assert word not in generated


def test_the_capture_cost_variants_cut_the_shipped_trigger_where_they_say() -> None:
    """bench.audit_costs derives its variants from the shipped audit_capture() body: each is that body cut back
    (never a rewrite), and a body that no longer has the markers fails here, not in a half-run benchmark."""
    from bench.audit_costs import VARIANTS, variants

    from platformdb.ops.audit_chain import shipped_functions

    body = shipped_functions()["audit_capture"]
    cut = variants(body)
    assert tuple(cut) == VARIANTS
    assert cut["off"] is None
    assert cut["full"] == body
    order = [cut[v] for v in VARIANTS[1:]]
    assert all(isinstance(v, str) for v in order)
    assert [len(str(v)) for v in order] == sorted(len(str(v)) for v in order)  # each adds to the one before
    assert "INSERT INTO platform.audit_logs" not in str(cut["images"])
    assert "audit_row_hash" not in str(cut["insert"])
    assert "audit_row_hash" in str(cut["hash"])
    assert "FOR UPDATE SKIP LOCKED" not in str(cut["hash"])
    assert "FOR UPDATE SKIP LOCKED" in str(cut["lane"])
    assert "UPDATE platform.audit_chain" not in str(cut["lane"])
    with pytest.raises(ValueError, match="no longer contains"):
        variants(body.replace("  v_hint := nullif(", "  v_lane_hint := nullif("))
