"""pytest-alembic's four default tests, as a team adopting platformdb runs them: one head, upgrade from an empty
database, models = DDL (autogenerate finds nothing), and every revision's downgrade undoes its upgrade.

pytest-alembic hands env.py an Engine through ``config.attributes["connection"]``; env.py takes it as it takes a
Connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from pytest_alembic.plugin.fixtures import alembic_runner
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import Engine, create_engine, pool
from sqlalchemy.engine import URL

from platformdb import migrate

pytestmark = pytest.mark.migration

__all__ = [
    "alembic_runner",
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture
def alembic_config() -> Config:
    return migrate.alembic_config()


@pytest.fixture
def alembic_engine(empty_db: URL) -> Iterator[Engine]:
    eng = create_engine(empty_db, poolclass=pool.NullPool)
    yield eng
    eng.dispose()
