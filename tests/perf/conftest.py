"""The performance tests share one seeded database per server (scale 1: ``seeded``, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from platformdb.db import libpq_dsn
from tests.conftest import Seeded


@pytest.fixture(scope="module")
def seeded_conn(seeded: Seeded) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the seeded database (read-only use)."""
    with psycopg.connect(libpq_dsn(seeded.url), autocommit=True) as conn:
        yield conn
