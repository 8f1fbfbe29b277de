"""One test per rule, as a check: every named rule of the schema is named by some test.

The rules are read from a migrated database's catalogs: CHECK, UNIQUE, FOREIGN KEY (and exclusion)
constraints and unique indexes that are no constraint, of the tables of ``platform`` (partitioned parents
and ordinary tables, not partitions), and their triggers. Each name must appear literally (as a whole word) in
a test source file under tests/, where a rule's test asserts it with ``rejected(sqlstate, "<name>")``. A name
no test mentions fails the check unless ``tests/rule_coverage_exceptions.toml`` gives a reviewed reason; an
exception that is no longer needed (the name is gone, or a test now names it) fails it too.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest

TESTS = Path(__file__).resolve().parents[1]
EXCEPTIONS = TESTS / "rule_coverage_exceptions.toml"

# (kind, name) of every rule, from the catalogs. pg_constraint rows of partitions (inherited CHECKs, cloned
# foreign keys) and clones made for partitioned referenced tables (conparentid) are left out: same names.
RULES_SQL = """
WITH tables AS (
  SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'platform' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
)
SELECT CASE con.contype WHEN 'c' THEN 'check' WHEN 'u' THEN 'unique' WHEN 'f' THEN 'foreign key'
                        ELSE 'exclusion' END, con.conname
  FROM pg_constraint con JOIN tables t ON t.oid = con.conrelid
 WHERE con.contype IN ('c', 'u', 'f', 'x') AND con.conparentid = 0
UNION
SELECT 'unique index', i.relname
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN tables t ON t.oid = x.indrelid
 WHERE x.indisunique AND NOT EXISTS (SELECT FROM pg_constraint con WHERE con.conindid = i.oid)
UNION
SELECT 'trigger', tg.tgname FROM pg_trigger tg JOIN tables t ON t.oid = tg.tgrelid WHERE NOT tg.tgisinternal
ORDER BY 1, 2
"""


def rules(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """name -> kind of every rule in the migrated schema."""
    return {str(name): str(kind) for kind, name in conn.execute(RULES_SQL)}


@cache
def sources() -> str:
    """The text of every test source file, this one excepted."""
    me = Path(__file__).resolve()
    return "\n".join(p.read_text() for p in sorted(TESTS.rglob("*.py")) if p.resolve() != me)


def named_by_a_test(name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", sources()) is not None


def load_exceptions(text: str | None = None) -> dict[str, str]:
    """name -> reason, from the reviewed exception list (or ``text``); refuses entries without a reason."""
    data = tomllib.loads(EXCEPTIONS.read_text() if text is None else text)
    out: dict[str, str] = {}
    for entry in data.get("exception", []):
        name, reason = entry.get("name"), str(entry.get("reason", "")).strip()
        if not name or not reason:
            raise ValueError(f"rule coverage exception {entry} needs a name and a reason")
        if name in out:
            raise ValueError(f"rule coverage exception {name} is listed twice")
        out[name] = reason
    return out


def test_every_rule_is_named_by_a_test(conn: psycopg.Connection[Any]) -> None:
    found = rules(conn)
    kinds = {kind for kind in found.values()}
    assert {"check", "unique", "foreign key", "unique index", "trigger"} <= kinds  # the catalog query sees them
    excepted = load_exceptions()
    untested = sorted(f"{found[name]} {name}" for name in found if name not in excepted and not named_by_a_test(name))
    assert not untested, "rules no test names (write the test, or add a reasoned exception):\n" + "\n".join(untested)


def test_every_rule_coverage_exception_is_still_needed(conn: psycopg.Connection[Any]) -> None:
    found = rules(conn)
    excepted = load_exceptions()
    gone = sorted(name for name in excepted if name not in found)
    tested = sorted(name for name in excepted if name in found and named_by_a_test(name))
    assert (gone, tested) == ([], []), "stale rule coverage exceptions: drop them"


def test_rule_coverage_exceptions_need_a_name_and_a_reason() -> None:
    for text in (
        '[[exception]]\nname = "ck_x"\nreason = " "\n',
        '[[exception]]\nname = "ck_x"\n',
        '[[exception]]\nreason = "because"\n',
        '[[exception]]\nname = "ck_x"\nreason = "a"\n[[exception]]\nname = "ck_x"\nreason = "b"\n',
    ):
        with pytest.raises(ValueError, match=r"needs a name and a reason|listed twice"):
            load_exceptions(text)


def test_a_name_counts_only_as_a_whole_word() -> None:
    assert named_by_a_test("fk_services_owner_team_id_teams")
    assert not named_by_a_test("fk_services_owner_team_id")  # a prefix of a tested name is not tested
    assert not named_by_a_test("ck_no_such_rule_anywhere")
