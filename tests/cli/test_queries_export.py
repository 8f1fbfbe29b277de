"""``platformdb queries export``: the catalog as sqlc-style SQL files and a typed manifest, run through psql.

Every exported file is run by psql against the seeded database (PREPARE with the manifest's parameter types,
EXECUTE with parameters drawn from the data, as the query's first group role) and returns the rows the catalog
query returns through Query.execute.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from platformdb.db import libpq_dsn
from platformdb.migrate import head
from platformdb.queries import CATALOG
from platformdb.workbench.samplers import Sampler, draw
from tests.cli.test_cli import assert_ok, assert_one_line_error, cli_home, run
from tests.conftest import Seeded
from tests.pg import Server, server_bins

__all__ = ["cli_home"]  # autouse: each test gets a PLATFORMDB_HOME of its own


def _url(seeded: Seeded) -> str:
    return seeded.url.render_as_string(hide_password=False)


def _export(seeded: Seeded, out: Path, fmt: str) -> dict[str, Any]:
    assert_ok(run("--database-url", _url(seeded), "queries", "export", "--format", fmt, "--out", str(out)))
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return manifest


def test_export_writes_one_sqlc_file_per_query_and_a_typed_manifest(seeded: Seeded, tmp_path: Path) -> None:
    manifest = _export(seeded, tmp_path, "sql")
    entries = {e["name"]: e for e in manifest["queries"]}
    assert list(entries) == list(CATALOG)
    assert manifest["revision"] == head()
    for name, query in CATALOG.items():
        entry = entries[name]
        text = (tmp_path / entry["file"]).read_text()
        assert text.startswith(f"-- name: {entry['sqlc_name']} :many\n")
        assert entry["roles"] == list(query.roles)
        assert [p["name"] for p in entry["parameters"]] == query.param_names
        assert all(p["type"] and c["type"] for p in entry["parameters"] for c in entry["columns"])
        assert "%(" not in text
        assert {int(n) for n in re.findall(r"\$(\d+)", entry["sql"])} == set(range(1, len(query.param_names) + 1))
        assert text.endswith(entry["sql"].rstrip() + ";\n")
    may = entries["identity.may_user_do"]
    assert [(p["name"], p["type"]) for p in may["parameters"]] == [
        ("user_id", "uuid"), ("permission", "text"), ("service_id", "uuid"), ("environment_id", "uuid"),
    ]  # fmt: skip
    assert may["columns"] == [{"name": "allowed", "type": "boolean"}]


def test_json_format_is_the_manifest_alone_with_the_same_sql(seeded: Seeded, tmp_path: Path) -> None:
    as_sql = _export(seeded, tmp_path / "sql", "sql")
    as_json = _export(seeded, tmp_path / "json", "json")
    assert [p.name for p in (tmp_path / "json").iterdir()] == ["manifest.json"]
    assert [{**e, "file": None} for e in as_sql["queries"]] == as_json["queries"]


def _psql_script(conn: psycopg.Connection[Any], out: Path, manifest: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """A psql script that PREPAREs every exported file and EXECUTEs it as the query's first role; and the number
    of rows each returns through Query.execute, as that role."""
    lines, expected = [], {}
    for entry in manifest["queries"]:
        query = CATALOG[entry["name"]]
        params = draw(query, Sampler(conn, random.Random(query.name)))  # noqa: S311
        role = sql.Identifier(entry["roles"][0]).as_string(conn)
        types = ", ".join(p["type"] for p in entry["parameters"])
        values = ", ".join(
            f"{sql.Literal(params[p['name']]).as_string(conn)}::{p['type']}" for p in entry["parameters"]
        )
        lines += [f"\\echo @@ {entry['name']}", f"PREPARE q{'(' + types + ')' if types else ''} AS"]
        lines.append((out / entry["file"]).read_text())
        lines += [f"SET ROLE {role};", f"EXECUTE q{'(' + values + ')' if values else ''};", "RESET ROLE;"]
        lines.append("DEALLOCATE q;")
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL ROLE {role}")
            expected[entry["name"]] = len(query.execute(conn, **params))
    return "\n".join(lines) + "\n", expected


def test_every_exported_file_runs_through_psql(server: Server, seeded: Seeded, tmp_path: Path) -> None:
    out = tmp_path / "export"
    manifest = _export(seeded, out, "sql")
    with psycopg.connect(libpq_dsn(seeded.url), autocommit=True) as conn:
        script, expected = _psql_script(conn, out, manifest)
    (tmp_path / "run.sql").write_text(script)
    psql = server_bins()[server.name] / "psql"
    result = subprocess.run(
        [str(psql), "-X", "-q", "-A", "-v", "ON_ERROR_STOP=1", "-f", str(tmp_path / "run.sql"), server.dsn(
            seeded.url.database or "")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts = dict(re.findall(r"^@@ (\S+)\n(?:.*\n)*?\((\d+) rows?\)$", result.stdout, re.MULTILINE))
    assert {name: int(n) for name, n in counts.items()} == expected
    assert sum(expected.values()) > 0


@pytest.mark.usefixtures("server")
def test_export_from_a_database_not_at_head_is_one_line(empty_db: Any, tmp_path: Path) -> None:
    url = empty_db.render_as_string(hide_password=False)
    result = run("--database-url", url, "queries", "export", "--out", str(tmp_path / "x"))
    assert_one_line_error(result, "platformdb upgrade")
    assert not (tmp_path / "x").exists()


def test_an_unknown_format_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("queries", "export", "--format", "yaml", "--out", str(tmp_path)), "yaml")
