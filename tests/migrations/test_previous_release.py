"""The previous release's write paths keep working after an upgrade (old code, new schema), with its data.

A database at the previous release's head (v0.2.0 ships revisions 0001-0013, as v0.1.0 did) holds data in every
table; it is upgraded to head, and then every write a v0.2 service makes, as the service's own group role and
with the SQL that release documented, must still succeed. Downgrading back restores the previous schema
exactly. A revision that breaks one of these needs an expand/contract path instead.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.db import libpq_dsn
from tests.migrations.test_migrations import PASSWORD_HASH, SEED, row_counts, schema_snapshot
from tests.pg import Server

pytestmark = pytest.mark.migration

PREVIOUS_RELEASE = "0013"
"""The head of the last release (v0.2.0)."""

SVC, ENV, TEAM, USER = (f"00000000-0000-7000-8000-00000000000{n}" for n in (6, 5, 2, 1))
COMMIT_SHA, DIGEST = "c" * 40, "sha256:" + "d" * 64

# (group role, statements of one transaction): what each v0.2 service writes, as it wrote it.
V1_WRITES: list[tuple[str, list[str]]] = [
    ("platform_identity", [
        f"""INSERT INTO platform.users (email, display_name, password_hash)
            VALUES ('v1-writer@example.com', 'Bo', '{PASSWORD_HASH}')""",
        "INSERT INTO platform.teams (name, display_name) VALUES ('v1-search', 'Search')",
        """INSERT INTO platform.team_memberships (team_id, user_id, role)
           SELECT t.id, u.id, 'member' FROM platform.teams t, platform.users u
            WHERE t.name = 'v1-search' AND u.email = 'v1-writer@example.com'""",
        "INSERT INTO platform.roles (name) VALUES ('v1-viewer')",
        "INSERT INTO platform.permissions (name) VALUES ('catalog:read')",
        """INSERT INTO platform.role_permissions (role_id, permission_id)
           SELECT r.id, p.id FROM platform.roles r, platform.permissions p
            WHERE r.name = 'v1-viewer' AND p.name = 'catalog:read'""",
        f"""INSERT INTO platform.role_grants (user_id, role_id, service_id)
            SELECT u.id, r.id, '{SVC}' FROM platform.users u, platform.roles r
             WHERE u.email = 'v1-writer@example.com' AND r.name = 'v1-viewer'""",
        "UPDATE platform.users SET display_name = 'Bo B.' WHERE email = 'v1-writer@example.com'",
    ]),
    ("platform_catalog", [
        "INSERT INTO platform.environments (name, is_production) VALUES ('v1-qa', false)",
        f"INSERT INTO platform.services (name, owner_team_id) VALUES ('v1-search-api', '{TEAM}')",
        f"""INSERT INTO platform.service_dependencies (service_id, depends_on_service_id)
            SELECT id, '{SVC}' FROM platform.services WHERE name = 'v1-search-api'""",
    ]),
    ("platform_delivery", [
        f"""INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest, created_by)
            VALUES ('{SVC}', '1.1.0', '{COMMIT_SHA}', '{DIGEST}', '{USER}')""",
        # No deployer named, to an environment of the previous release: v0.2 allowed both.
        f"""INSERT INTO platform.deployments (service_id, version, environment_id)
            SELECT '{SVC}', '1.1.0', id FROM platform.environments WHERE name = 'v1-qa'""",
        f"""UPDATE platform.deployments SET status = 'in_progress'
             WHERE service_id = '{SVC}' AND version = '1.1.0' AND status = 'pending'""",
        f"""UPDATE platform.deployments SET status = 'succeeded'
             WHERE service_id = '{SVC}' AND version = '1.1.0' AND status = 'in_progress'""",
    ]),
    ("platform_configuration", [
        f"INSERT INTO platform.configurations (service_id, key) VALUES ('{SVC}', 'V1_RETRIES')",
        """INSERT INTO platform.configuration_versions (configuration_id, kind, value)
           SELECT id, 'plain', '3' FROM platform.configurations WHERE key = 'V1_RETRIES'""",
        """INSERT INTO platform.configuration_versions (configuration_id, kind, secret_ref)
           SELECT id, 'secret', 'vault://kv/pay/v1' FROM platform.configurations WHERE key = 'V1_RETRIES'""",
    ]),
    ("platform_metrics_writer", [
        "INSERT INTO platform.metrics (name, unit, kind) VALUES ('v1_latency_ms', 'ms', 'gauge')",
        f"""INSERT INTO platform.metric_series (metric_id, service_id, environment_id, labels)
            SELECT id, '{SVC}', '{ENV}', '{{}}' FROM platform.metrics WHERE name = 'v1_latency_ms'""",
        """INSERT INTO platform.metric_samples (series_id, sampled_at, value)
           SELECT s.id, now() - i * interval '1 second', i
             FROM platform.metric_series s JOIN platform.metrics m ON m.id = s.metric_id,
                  generate_series(1, 100) i WHERE m.name = 'v1_latency_ms'""",
    ]),
]  # fmt: skip


def write_as_services(url: URL) -> None:
    """Every v0.2 write, each service's in one transaction as its group role, with an actor set."""
    with psycopg.connect(libpq_dsn(url)) as conn:
        for role, statements in V1_WRITES:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                conn.execute("SELECT set_config('platformdb.actor_name', %s, true)", (f"svc:{role}",))
                for statement in statements:
                    conn.execute(statement)


def seeded_at(url: URL, revision: str) -> None:
    migrate.upgrade(url, revision)
    with psycopg.connect(libpq_dsn(url)) as conn, conn.transaction():
        for statement in SEED:
            table = re.search(r"INSERT INTO (platform\.\w+)", statement)
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table.group(1) if table else "x",)).fetchone()
            if table and not (exists and exists[0]):
                continue  # a table a later revision brought (the quarantine came with 0015, freezes with 0050...)
            conn.execute(statement)


def test_previous_release_writes_work_at_its_own_head(empty_db: URL) -> None:
    """The writes are the previous release's: they pass on its schema (so a failure below is the upgrade's)."""
    seeded_at(empty_db, PREVIOUS_RELEASE)
    write_as_services(empty_db)


def test_previous_release_writes_work_after_upgrading_its_data_to_head(empty_db: URL) -> None:
    seeded_at(empty_db, PREVIOUS_RELEASE)
    migrate.upgrade(empty_db, "head")
    write_as_services(empty_db)


def test_downgrade_with_data_restores_the_previous_schema_exactly(server: Server, empty_db: URL) -> None:
    reference = server.create_database(prefix="reference")
    try:
        migrate.upgrade(server.url(reference), PREVIOUS_RELEASE)
        expected = schema_snapshot(server.url(reference), dated_partitions=False)
    finally:
        server.drop_database(reference)
    seeded_at(empty_db, PREVIOUS_RELEASE)
    with psycopg.connect(libpq_dsn(empty_db)) as conn:
        before = row_counts(conn)
    migrate.upgrade(empty_db, "head")
    migrate.downgrade(empty_db, PREVIOUS_RELEASE)
    assert schema_snapshot(empty_db, dated_partitions=False) == expected
    with psycopg.connect(libpq_dsn(empty_db)) as conn:
        after: dict[str, Any] = row_counts(conn)
    assert after == before, "the round trip lost or added rows"


def test_grants_need_their_granter_once_the_contract_step_is_taken(empty_db: URL) -> None:
    """trg_role_grants_granter_required is the one v0.2 write it refuses (a service's grant naming no granter), so
    on a database that already holds grants revision 0030 adds it disabled (expand); the owner's
    `ALTER TABLE platform.role_grants ENABLE TRIGGER trg_role_grants_granter_required`, once every identity service
    sends granted_by, is the contract step. A database without grants has it enabled from the start."""
    seeded_at(empty_db, PREVIOUS_RELEASE)
    migrate.upgrade(empty_db, "head")
    grant = f"""INSERT INTO platform.role_grants (user_id, role_id, environment_id)
                SELECT '{USER}', r.id, '{ENV}' FROM platform.roles r WHERE r.name = 'service-owner'"""
    with psycopg.connect(libpq_dsn(empty_db)) as conn:
        state = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'trg_role_grants_granter_required'"
        ).fetchone()
        assert state == ("D",), "expand: the rule waits for the contract step on a database in use"
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE platform_identity")
            conn.execute(grant)  # a v0.2 identity service, as it wrote
        conn.execute("ALTER TABLE platform.role_grants ENABLE TRIGGER trg_role_grants_granter_required")
        conn.commit()
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE platform_identity")
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(grant)
        assert refused.value.diag.constraint_name == "trg_role_grants_granter_required"


def test_a_new_database_requires_the_granter_from_the_start(empty_db: URL) -> None:
    migrate.upgrade(empty_db, "head")
    with psycopg.connect(libpq_dsn(empty_db)) as conn:
        state = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'trg_role_grants_granter_required'"
        ).fetchone()
    assert state == ("O",)
