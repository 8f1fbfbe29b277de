"""Schema drift: the models, the migrations and the committed snapshot all describe one schema.

Three ways to build the schema must agree: the Alembic migrations (what production runs),
``metadata.create_all`` (the models plus their context SQL), and ``docs/schema-snapshot.txt`` (what
reviewers read). A change to one without the others fails here.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import URL

from platformdb.db import engine, libpq_dsn
from platformdb.migrate import include_name
from platformdb.models import SCHEMA, metadata
from platformdb.review.snapshot import snapshot

pytestmark = pytest.mark.migration

SNAPSHOT_FILE = Path(__file__).resolve().parents[2] / "docs" / "schema-snapshot.txt"
REGENERATE = (
    "docs/schema-snapshot.txt does not match the migrated schema. If the change is intended, regenerate it "
    "with `make snapshot` (runs `python -m tools.regenerate snapshot` against a "
    "migrated database) and commit the diff."
)


def autogenerate_diff(url: URL, target: MetaData) -> list[Any]:
    """What `alembic revision --autogenerate` would propose to turn the database at ``url`` into ``target``."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "target_metadata": target,
                    "include_schemas": True,
                    "include_name": include_name,
                    "compare_type": True,
                    "compare_server_default": True,
                },
            )
            return list(compare_metadata(context, target))
    finally:
        eng.dispose()


def schema_snapshot(url: URL, *, dated_partitions: bool = False, portable: bool = False) -> str:
    with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
        return snapshot(conn, dated_partitions=dated_partitions, portable=portable)


def test_models_match_migrations_autogenerate_proposes_nothing(db: URL) -> None:
    diff = autogenerate_diff(db, metadata)
    for op in diff:
        print("autogenerate proposes:", op)
    assert diff == []


def test_autogenerate_comparison_sees_the_platform_tables(db: URL) -> None:
    """Guards the test above against passing vacuously: against no models, every table (and no partition)
    would be dropped, so the filter lets the platform tables through and keeps the partitions out."""
    diff = autogenerate_diff(db, MetaData(schema=SCHEMA))
    removed = sorted(op[1].name for op in diff if op[0] == "remove_table")
    assert removed == sorted(t.name for t in metadata.sorted_tables)


def test_create_all_equals_migrations(empty_db: URL, db: URL) -> None:
    eng = engine(empty_db)
    try:
        with eng.begin() as conn:
            metadata.create_all(conn)
    finally:
        eng.dispose()
    from_models = schema_snapshot(empty_db)
    assert from_models.startswith(f"schema {SCHEMA}:")
    assert from_models == schema_snapshot(db)


def test_migrated_schema_matches_committed_snapshot(db: URL) -> None:
    live = schema_snapshot(db, portable=True)
    committed = SNAPSHOT_FILE.read_text() if SNAPSHOT_FILE.exists() else ""
    diff = "\n".join(
        difflib.unified_diff(
            committed.splitlines(), live.splitlines(), "docs/schema-snapshot.txt", "migrated", lineterm="", n=1
        )
    )
    assert live == committed, f"{REGENERATE}\n{diff[:4000]}"
