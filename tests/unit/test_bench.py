"""The benchmark's pure helpers: percentiles, summaries and report formatting (no timing is asserted)."""

from __future__ import annotations

import pytest

from platformdb.bench import fmt_ms, fmt_rate, fmt_ratio, load_note, markdown_table, percentile, summarize, verdict


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


def test_load_note_says_whether_the_machine_was_quiet() -> None:
    assert "otherwise quiet" in load_note({"cpus": 2, "load_average_mean": 1.2, "load_average_max": 1.8})
    assert "Other work was running" in load_note({"cpus": 2, "load_average_mean": 4.0, "load_average_max": 6.5})
    assert "not recorded" in load_note({"cpus": 2})
