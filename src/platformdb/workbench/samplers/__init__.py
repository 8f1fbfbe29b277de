"""Realistic parameters for every catalog query, drawn from a seeded database (``platformdb seed``).

Benchmarks and plan checks use them; services never do, so they live in the workbench, not beside the SQL.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from platformdb.contexts import NAMES
from platformdb.queries import Query
from platformdb.workbench.samplers.base import CANDIDATES, Draw, Sampler, sample

SAMPLERS: dict[str, Draw] = {
    name: draw for context in NAMES for name, draw in import_module(f"{__name__}.{context}").SAMPLERS.items()
}
"""Catalog query name -> its parameter draw (queries without parameters have none)."""


def draw(query: Query, sampler: Sampler) -> dict[str, Any]:
    """One set of parameters for ``query``, drawn with ``sampler`` (empty for a query without parameters)."""
    found = SAMPLERS.get(query.name)
    return found(sampler) if found else {}


__all__ = ["CANDIDATES", "SAMPLERS", "Draw", "Sampler", "draw", "sample"]
