"""The query catalog and the indexes agree: every index that names a query names one that exists, and every
query is served by an index that names it or by a primary key or unique constraint listed here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

from platformdb.contexts import NAMES
from platformdb.models import metadata
from platformdb.queries import CATALOG, Query
from platformdb.workbench.samplers import SAMPLERS

SNAPSHOT = Path(__file__).parents[2] / "docs" / "schema-snapshot.txt"
QUERY_NAME = re.compile(rf"\b(?:{'|'.join(NAMES)})\.[a-z][a-z0-9_]*")

SERVED_BY_KEY = {
    "catalog.service_directory": "uq_services_name",
    "configuration.effective_configuration": "uq_configurations_service_id_key_environment_id",
    "configuration.configuration_at_deployment": "pk_deployment_configurations",
    "monitoring.series_of_service": "uq_metric_series_service_id_environment_id_metric_id_labels",
    "monitoring.series_buckets_1h": "pk_metric_samples",
    "monitoring.series_buckets_24h": "pk_metric_samples",
    "monitoring.latest_values_of_service": "pk_metric_samples",
    "delivery.rollout_blockers": "pk_deployments",
    "identity.verify_api_token": "uq_api_tokens_selector",
}
"""Queries served by a primary key or unique constraint, whose index has no COMMENT of its own to name them."""


def index_comments() -> dict[str, str]:
    """Index name -> its 'Serves: ...' text, from the models and from the migrated schema's snapshot."""
    comments = {
        str(index.name): str(index.info["serves"])
        for table in metadata.tables.values()
        for index in table.indexes
        if index.info.get("serves")
    }
    for line in SNAPSHOT.read_text().splitlines():
        found = re.match(r"\s+index (\w+): .* -- Serves: (.*)$", line)
        if found:
            comments.setdefault(found[1], found[2])
    return comments


def key_constraints() -> set[str]:
    return {
        str(constraint.name)
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, PrimaryKeyConstraint | UniqueConstraint)
    }


def test_every_query_an_index_comment_names_is_in_the_catalog() -> None:
    unknown = sorted(
        f"{index}: {name}"
        for index, text in index_comments().items()
        for name in QUERY_NAME.findall(text)
        if name not in CATALOG
    )
    assert not unknown, f"index comments name queries the catalog does not have: {unknown}"


def test_every_catalog_query_is_served_by_an_index_that_names_it_or_by_a_key() -> None:
    named = {name for text in index_comments().values() for name in QUERY_NAME.findall(text)}
    unserved = sorted(set(CATALOG) - named - set(SERVED_BY_KEY))
    assert not unserved, f"no index names these queries, and no key is listed as serving them: {unserved}"


def test_queries_served_by_a_key_name_a_real_key_and_no_index_names_them() -> None:
    named = {name for text in index_comments().values() for name in QUERY_NAME.findall(text)}
    assert set(SERVED_BY_KEY) <= set(CATALOG)
    assert set(SERVED_BY_KEY.values()) <= key_constraints()
    assert not set(SERVED_BY_KEY) & named, "listed as served by a key, but an index comment names it too"


@pytest.mark.parametrize("query", CATALOG.values(), ids=CATALOG.keys())
def test_catalog_query_is_declared_completely(query: Query) -> None:
    assert query.context in NAMES, "a query is named after its bounded context"
    assert query.kind in ("point", "range")
    assert len(query.caller.split()) >= 5, "say which service calls it, and why"
    assert (query.name in SAMPLERS) == bool(query.param_names), "a query with parameters has a sampler, no other"
    if query.window is not None:
        windowed = [query.window.since] + ([query.window.until] if query.window.until else [])
        assert set(windowed) <= set(query.param_names)
        assert re.search(rf"\w+\.\w+ >= %\({query.window.since}\)s", query.sql), "compare the key itself"
        if query.window.horizon is not None:
            assert query.window.until is None, "a horizon bounds an open-ended window"
            days = query.window.horizon.days
            bound = rf"\w+\.\w+ < now\(\) \+ interval '{days} days?'"
            assert re.search(bound, query.sql), "bound the key at the horizon"
