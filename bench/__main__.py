"""``python -m bench`` (``make bench``): run the benchmarks from a checkout and write the report; or, with
``--render``, re-render the report from the JSON of a past run without running anything."""

from __future__ import annotations

from pathlib import Path

import click

from bench import run
from bench.report import CHART, REPORT, load_results, targets, write_docs
from platformdb.cli.app import OneLineErrors
from platformdb.errors import UserError


def _parse_scales(scales: str) -> list[int]:
    try:
        values = sorted({int(v) for v in scales.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"--scales must be comma-separated integers, not {scales!r}") from None
    if len(values) < 2 or values[0] < 1:
        raise UserError("--scales needs at least two scales of 1 or more, e.g. 1,10")
    return values


@click.command(cls=OneLineErrors)
@click.option("--scales", default="1,10", show_default=True, help="Comma-separated seed scales, at least two.")
@click.option("--iterations", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Timed runs per query, each with its own drawn parameters.")  # fmt: skip
@click.option("--warmup", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Untimed runs first, cycling through the same parameters (warms the cache they read).")  # fmt: skip
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/results"),
              show_default=True, help="Where the JSON figures go.")  # fmt: skip
@click.option("--docs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("docs"),
              show_default=True, help="Where PERFORMANCE.md and performance-latency.png go.")  # fmt: skip
@click.option("--render", "render_from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Run nothing: re-render PERFORMANCE.md's generated part and the chart from this JSON of a past "
              "run (--scales, --iterations, --warmup and --results-dir are then ignored).")  # fmt: skip
def main(
    scales: str, iterations: int, warmup: int, results_dir: Path, docs_dir: Path, render_from: Path | None
) -> None:
    """Measure the catalog queries, ingest and audited writes on a throwaway embedded PostgreSQL 18 cluster."""
    if render_from is not None:
        results = load_results(render_from)
        write_docs(results, docs_dir)
        written = f"{docs_dir / REPORT} and {docs_dir / CHART} from {render_from}"
    else:
        values = _parse_scales(scales)
        results = run(values, warmup=warmup, iterations=iterations, results_dir=results_dir, docs_dir=docs_dir)
        written = f"{docs_dir / REPORT}, {docs_dir / CHART} and {results_dir}/"
    for target, met, measured in targets(results):
        click.echo(f"{'met   ' if met else 'MISSED'}  {target}: {measured}")
    click.echo(f"wrote {written}")


if __name__ == "__main__":
    main()
