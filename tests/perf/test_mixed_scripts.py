"""The mixed workload's pgbench scripts (bench/mixed.py) run: one per catalog query and write path, each executed
a few times by the server's own pgbench on a copy of the seeded database. A catalog query whose parameters
pgbench cannot carry is named, not silently dropped. (No timing is asserted: `make bench` measures.)"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.mixed import script_files, scripts_for

from platformdb.queries import CATALOG
from tests.conftest import Seeded
from tests.pg import Server


@pytest.fixture
def seeded_copy(server: Server, seeded: Seeded) -> Iterator[str]:
    name = server.create_database(str(seeded.url.database), prefix="mixed")
    yield server.dsn(name)
    server.drop_database(name)


def test_every_mixed_workload_script_runs_in_pgbench(server: Server, seeded_copy: str, tmp_path: Path) -> None:
    scripts, skipped = scripts_for(seeded_copy)
    assert skipped == [], f"catalog queries with no pgbench script: {skipped}"
    names = {s.name for s in scripts}
    assert set(CATALOG) <= names
    assert {"rollout", "config_edit"} <= names
    for script, path in zip(scripts, script_files(scripts, tmp_path), strict=True):
        done = subprocess.run(
            [str(server.cluster.bin_dir / "pgbench"), "-n", "-M", "prepared", "-t", "3", "-f", str(path), seeded_copy],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{script.name}: {done.stderr.strip()}"


def test_every_catalog_query_runs_through_the_quiet_benchmarks_libpq_path(seeded_copy: str) -> None:
    """bench/catalog.py sends drawn parameters in text form through libpq (bench.common.Run): each catalog query
    runs that way with the parameters its sampler draws (a bytea once went as "b'...'" and failed the run)."""
    import random

    from bench.common import draw_params, timed

    for query in CATALOG.values():
        run = timed(seeded_copy, query.sql, draw_params(seeded_copy, query, 3, random.Random(7)), warmup=0)  # noqa: S311
        assert len(run.times) == 3, query.name
