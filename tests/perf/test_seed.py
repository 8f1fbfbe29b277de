"""``platformdb seed``: deterministic, loaded through the schema's rules, complete, and refusing what it must."""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from rich.console import Console
from sqlalchemy.engine import URL

from platformdb.cli import main
from platformdb.db import display
from platformdb.errors import UserError
from platformdb.workbench.seed import Dataset, generate, seed
from tests.conftest import SCALE, SEED, Seeded
from tests.factories import WELL_KNOWN_PERMISSIONS

NOW = dt.datetime(2026, 3, 14, 15, 9, tzinfo=dt.UTC)


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_seed_generates_the_same_rows_for_the_same_seed() -> None:
    first, again, other = generate(1, 7, NOW), generate(1, 7, NOW), generate(1, 8, NOW)
    assert first == again
    assert first.events != other.events


def test_seed_loads_exactly_the_generated_data_set(seeded: Seeded) -> None:
    data: Dataset = generate(SCALE, SEED, seeded.report.now)
    events = collections.Counter(event[1] for event in data.events)
    copied = {
        "environments": data.environments, "permissions": data.permissions, "roles": data.roles,
        "role_permissions": data.role_permissions, "teams": data.teams,
        "team_memberships": data.memberships, "services": data.services, "service_dependencies": data.dependencies,
        "role_grants": data.grants + data.team_grants, "configurations": data.configurations,
        "metrics": data.metrics, "api_tokens": data.tokens, "api_token_scopes": data.token_scopes,
        "users": data.users + data.service_accounts,
        "approval_rules": data.approval_rules,
    }  # fmt: skip
    # Production's rule is in force from its creation: every later production rollout but a rollback captures it.
    protected = {rule.environment_id: rule.created_at for rule in data.approval_rules}
    captured = sum(
        1 for e in data.events
        if e.kind == "deploy" and e.environment_id in protected and e.at >= protected[e.environment_id]
        and e.rollback_of_id is None
    )  # fmt: skip
    expected = {table: len(rows) for table, rows in copied.items()} | {
        "releases": events["release"],
        "deployments": events["deploy"],
        "configuration_versions": events["configure"],
        "deployment_status_history": events["deploy"] + events["start"] + events["finish"] + events["roll_back"],
        "deployment_approval_requirements": captured,
        "deployment_approvals": events["approve"],
        "metric_series": len(data.series),
        "metric_samples": data.samples_expected(),
    }
    expected["permissions"] += WELL_KNOWN_PERMISSIONS  # the schema's own, unaudited reference rows
    counts = seeded.report.counts
    # Written after the history (seed._freezes_and_promotions): three edges, two schedules, 26 weeks each.
    governance = {"environment_promotions": 3, "freeze_schedules": 2, "freeze_periods": 52}
    # One audit row per change, written by the triggers: every row COPYed, every event replayed, and those.
    expected |= governance | {
        "audit_logs": sum(len(rows) for rows in copied.values())
        + sum(events.values())
        + captured
        + sum(governance.values())
    }
    assert {table: counts[table] for table in expected} == expected
    # Only partition maintenance writes the quarantine, and the seed writes no sample outside the window;
    # overrides need a second person holding an override permission, which the seeded roles do not grant.
    assert sorted(table for table, n in counts.items() if n == 0) == [
        "freeze_overrides",
        "metric_samples_quarantine",
        "promotion_overrides",
    ]


def test_seeded_history_follows_the_rules(seeded_conn: psycopg.Connection[Any]) -> None:
    checks = {
        "every deployment was born pending": """
            SELECT count(*) FROM platform.deployments d
             WHERE (SELECT h.to_status FROM platform.deployment_status_history h
                     WHERE h.deployment_id = d.id ORDER BY h.id LIMIT 1) <> 'pending'""",
        "every rolled-back deployment was undone by a successful rollback": """
            SELECT count(*) FROM platform.deployments b
             WHERE b.status = 'rolled_back' AND NOT EXISTS (
                   SELECT FROM platform.deployments r WHERE r.rollback_of_id = b.id AND r.status = 'succeeded')""",
        "a deployment captured the latest version of each key as it was when the deployment was created": """
            SELECT count(*) FROM platform.deployment_configurations dc
              JOIN platform.deployments d ON d.id = dc.deployment_id
              JOIN platform.configuration_versions v
                ON v.configuration_id = dc.configuration_id AND v.version = dc.version
             WHERE v.created_at > d.created_at OR EXISTS (
                   SELECT FROM platform.configuration_versions later
                    WHERE later.configuration_id = dc.configuration_id AND later.version > dc.version
                      AND later.created_at <= d.created_at)""",
        "the audit row of a deployment names who deployed it": """
            SELECT count(*) FROM platform.audit_logs a
              JOIN platform.deployments d ON a.entity_type = 'deployments' AND a.entity_id = d.id::text
             WHERE a.action = 'insert' AND a.actor_id IS DISTINCT FROM d.deployed_by""",
        "no sample or audit row fell into a DEFAULT partition": """
            SELECT (SELECT count(*) FROM platform.metric_samples_default)
                 + (SELECT count(*) FROM platform.audit_logs_default)""",
    }
    broken = {rule: n for rule, query in checks.items() if (n := _one(seeded_conn, query))}
    assert not broken
    assert _one(seeded_conn, "SELECT count(*) FROM platform.deployments WHERE status IN ('pending', 'in_progress')")
    assert _one(seeded_conn, "SELECT count(DISTINCT actor_id) FROM platform.audit_logs") > 10


def test_seed_refuses_a_scale_below_one(seeded: Seeded) -> None:
    with pytest.raises(UserError, match="--scale must be 1 or more"):
        seed(seeded.url, scale=0, console=Console(quiet=True))


def test_seed_refuses_an_unmigrated_database(empty_db: URL) -> None:
    with pytest.raises(UserError, match="not migrated to head"):
        seed(empty_db, console=Console(quiet=True))


def test_seed_refuses_a_database_that_holds_data(seeded: Seeded) -> None:
    with pytest.raises(UserError, match="already holds data"):
        seed(seeded.url, console=Console(quiet=True))


def test_seed_command_reports_a_bad_scale_in_one_line(seeded: Seeded) -> None:
    result = CliRunner().invoke(main, ["--database-url", display(seeded.url), "seed", "--scale", "0"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["platformdb: error: --scale must be 1 or more, not 0"]
