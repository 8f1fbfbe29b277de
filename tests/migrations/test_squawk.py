"""squawk (PyPI squawk-cli) over the offline SQL of each revision on its own.

Every finding is fixed or carries an inline ``-- squawk-ignore-file <rule> -- <reason>`` emitted by the revision
itself (squawk's line-level ignore covers one line, and Alembic renders a CREATE TABLE over many). Alembic's own
bookkeeping (the alembic_version table) is not ours to lint and is left out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from platformdb import migrate

pytestmark = pytest.mark.migration

REVISIONS = [rev for rev, _, _ in migrate.history()]
_ALEMBIC_BOOKKEEPING = re.compile(
    r"^(CREATE TABLE|INSERT INTO|UPDATE|DELETE FROM|DROP TABLE) alembic_version.*?;\n", re.S | re.M
)


def squawk() -> str:
    found = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
    assert Path(found).exists(), "squawk is not installed: pip install -e '.[test]' (squawk-cli)"
    return found


def lintable(sql: str) -> str:
    """The revision's SQL without Alembic's bookkeeping."""
    return _ALEMBIC_BOOKKEEPING.sub("", sql)


@pytest.mark.parametrize("revision", REVISIONS)
def test_revision_passes_squawk(revision: str, tmp_path: Path) -> None:
    index = REVISIONS.index(revision)
    previous = REVISIONS[index - 1] if index else "base"
    sql = lintable(migrate.offline_sql(previous, revision))
    assert "alembic_version" not in sql
    assert "SET lock_timeout" in sql
    assert "SET statement_timeout" in sql
    for ignore in re.findall(r"squawk-ignore\S* (.*)", sql):
        assert " -- " in ignore, f"squawk-ignore without a reason: {ignore}"
    path = tmp_path / f"{revision}.sql"
    path.write_text(sql)
    result = subprocess.run([squawk(), "--no-error-on-unmatched-pattern", str(path)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_squawk_bites_on_a_lock_heavy_statement(tmp_path: Path) -> None:
    """The harness is live: an index built without CONCURRENTLY on an existing table is reported."""
    path = tmp_path / "bad.sql"
    path.write_text("SET lock_timeout = '10s';\nCREATE INDEX ix_users_display_name ON platform.users (display_name);\n")
    result = subprocess.run([squawk(), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "require-concurrent-index-creation" in result.stdout + result.stderr
