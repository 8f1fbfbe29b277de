"""Audit rules: every change to an audited table leaves one append-only audit_logs row, with its actor."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from platformdb.actor import set_actor
from tests.factories import PASSWORD_HASH, Make, rejected

REDACTED = "[redacted]"


def audit_rows(conn: psycopg.Connection[Any], entity_type: str, entity_id: object) -> list[dict[str, Any]]:
    """The audit rows of one entity, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM platform.audit_logs WHERE entity_type = %s AND entity_id = %s ORDER BY id",
            (entity_type, str(entity_id)),
        ).fetchall()


def only_audit_row(conn: psycopg.Connection[Any], entity_type: str, entity_id: object) -> dict[str, Any]:
    rows = audit_rows(conn, entity_type, entity_id)
    assert len(rows) == 1, rows
    return rows[0]


def session_user(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT session_user").fetchone()
    assert row is not None
    return str(row[0])


def insert_audit_log(conn: psycopg.Connection[Any], **values: Any) -> None:
    """A direct insert into audit_logs (normally only the trigger writes there)."""
    row = {"actor_name": "test", "action": "insert", "entity_type": "teams", "entity_id": "x",
           "prev_hash": bytes(32), "row_hash": bytes(32), "chain_lane": 0} | values  # fmt: skip
    params = [Jsonb(v) if isinstance(v, dict) else v for v in row.values()]
    conn.execute(f"INSERT INTO platform.audit_logs ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})", params)


def test_audit_logs_record_every_insert_update_and_delete(conn: psycopg.Connection[Any], make: Make) -> None:
    team = make.team(name="payments", display_name="Payments")
    conn.execute("UPDATE platform.teams SET display_name = 'Payments Core' WHERE id = %s", (team,))
    conn.execute("DELETE FROM platform.teams WHERE id = %s", (team,))
    inserted, updated, deleted = audit_rows(conn, "teams", team)
    assert [r["action"] for r in (inserted, updated, deleted)] == ["insert", "update", "delete"]
    assert (inserted["before"], inserted["after"]["display_name"]) == (None, "Payments")
    assert (updated["before"]["display_name"], updated["after"]["display_name"]) == ("Payments", "Payments Core")
    assert (deleted["before"]["display_name"], deleted["after"]) == ("Payments Core", None)
    assert {r["after"]["id"] for r in (inserted, updated)} == {str(team)}


@pytest.mark.parametrize(
    ("table", "create"),
    [
        ("teams", lambda make: make.team()),
        ("services", lambda make: make.service()),
        ("environments", lambda make: make.environment()),
        ("releases", lambda make: make.release(make.service())),
        ("deployments", lambda make: make.deployment(make.service(), make.environment())),
        ("metrics", lambda make: make.metric()),
    ],
)
def test_audit_logs_capture_each_audited_table(
    conn: psycopg.Connection[Any], make: Make, table: str, create: Callable[[Make], object]
) -> None:
    entity_id = create(make)
    row = only_audit_row(conn, table, entity_id)
    assert (row["action"], row["before"], str(row["after"]["id"])) == ("insert", None, str(entity_id))


def test_audit_logs_capture_deployment_status_changes(conn: psycopg.Connection[Any], make: Make) -> None:
    deployment = make.deployment(make.service(), make.environment())
    make.set_status(deployment, "in_progress", "succeeded")
    rows = audit_rows(conn, "deployments", deployment)
    assert [(r["action"], (r["before"] or {}).get("status"), r["after"]["status"]) for r in rows] == [
        ("insert", None, "pending"),
        ("update", "pending", "in_progress"),
        ("update", "in_progress", "succeeded"),
    ]


def test_audit_logs_join_composite_keys_into_entity_id(conn: psycopg.Connection[Any], make: Make) -> None:
    team, user = make.team(), make.user()
    make.insert("team_memberships", returning="team_id", team_id=team, user_id=user)
    conn.execute("UPDATE platform.team_memberships SET role = 'maintainer' WHERE team_id = %s", (team,))
    conn.execute("DELETE FROM platform.team_memberships WHERE team_id = %s", (team,))
    rows = audit_rows(conn, "team_memberships", f"{team},{user}")
    assert [(r["action"], (r["after"] or r["before"])["role"]) for r in rows] == [
        ("insert", "member"),
        ("update", "maintainer"),
        ("delete", "maintainer"),
    ]


def test_audit_logs_capture_the_actor_of_the_transaction(conn: psycopg.Connection[Any], make: Make) -> None:
    user = make.user()
    with conn.transaction():
        set_actor(conn, user, actor_name="Ann Admin", request_id="req-42", client_addr="203.0.113.7")
        team = make.team()
    row = only_audit_row(conn, "teams", team)
    assert (row["actor_id"], row["actor_name"], row["request_id"], row["client_addr"]) == (
        user,
        "Ann Admin",
        "req-42",
        ipaddress.ip_address("203.0.113.7"),
    )
    assert row["db_role"] == session_user(conn)


def test_audit_logs_record_writes_without_an_actor(conn: psycopg.Connection[Any], make: Make) -> None:
    team = make.team()
    row = only_audit_row(conn, "teams", team)
    assert session_user(conn) == "postgres"
    assert (row["actor_id"], row["actor_name"], row["request_id"]) == (None, "db:postgres", None)
    # No client_addr setting: the database client's address, which a Unix-socket connection does not have.
    assert row["client_addr"] is None


def test_audit_logs_actor_name_falls_back_to_the_users_email(conn: psycopg.Connection[Any], make: Make) -> None:
    user = make.user(email="ann@example.com")
    with conn.transaction():
        set_actor(conn, user)
        team = make.team()
    with conn.transaction():
        set_actor(conn, uuid.uuid4())  # not a user: no email to fall back to
        unknown = make.team()
    assert only_audit_row(conn, "teams", team)["actor_name"] == "ann@example.com"
    assert only_audit_row(conn, "teams", unknown)["actor_name"] == "db:postgres"


def test_audit_logs_actor_settings_do_not_leak_into_the_next_transaction(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    user = make.user()
    with conn.transaction():
        set_actor(conn, user, actor_name="Ann Admin", request_id="req-42", client_addr="203.0.113.7")
        first = make.team()
    second = make.team()
    assert only_audit_row(conn, "teams", first)["actor_id"] == user
    row = only_audit_row(conn, "teams", second)
    assert (row["actor_id"], row["actor_name"], row["request_id"], row["client_addr"]) == (
        None,
        "db:postgres",
        None,
        None,
    )


def test_audit_logs_redact_password_hash(conn: psycopg.Connection[Any], make: Make) -> None:
    user = make.user()
    new_hash = "$2b$12$" + "b" * 53
    conn.execute("UPDATE platform.users SET password_hash = %s, display_name = 'Ann' WHERE id = %s", (new_hash, user))
    inserted, updated = audit_rows(conn, "users", user)
    assert inserted["after"]["password_hash"] == REDACTED
    assert (updated["before"]["password_hash"], updated["after"]["password_hash"]) == (REDACTED, REDACTED)
    assert updated["after"]["display_name"] == "Ann"  # the rest of the image is kept
    leaked = conn.execute(
        "SELECT count(*) FROM platform.audit_logs WHERE before::text LIKE %s OR after::text LIKE %s"
        " OR before::text LIKE %s OR after::text LIKE %s",
        (f"%{PASSWORD_HASH}%", f"%{PASSWORD_HASH}%", f"%{new_hash}%", f"%{new_hash}%"),
    ).fetchone()
    assert leaked == (0,)


def test_audit_logs_redact_secret_ref(conn: psycopg.Connection[Any], make: Make) -> None:
    configuration = make.configuration(make.service())
    make.config_version(configuration, kind="secret", secret_ref="vault://kv/payments/db#password")
    make.config_version(configuration, value={"seconds": 30})
    secret, plain = audit_rows(conn, "configuration_versions", f"{configuration},1") + audit_rows(
        conn, "configuration_versions", f"{configuration},2"
    )
    assert (secret["after"]["kind"], secret["after"]["secret_ref"]) == ("secret", REDACTED)
    assert plain["after"]["value"] == {"seconds": 30}  # only the named column is masked


def test_audit_logs_skip_updates_that_change_only_updated_at(conn: psycopg.Connection[Any], make: Make) -> None:
    team = make.team(display_name="Payments")
    conn.execute("UPDATE platform.teams SET display_name = display_name WHERE id = %s", (team,))
    row = conn.execute("SELECT updated_at > created_at FROM platform.teams WHERE id = %s", (team,)).fetchone()
    assert row == (True,)  # the row was written, but only updated_at moved
    assert [r["action"] for r in audit_rows(conn, "teams", team)] == ["insert"]
    conn.execute("UPDATE platform.teams SET display_name = 'Payments Core' WHERE id = %s", (team,))
    assert [r["action"] for r in audit_rows(conn, "teams", team)] == ["insert", "update"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE platform.audit_logs SET actor_name = 'someone else'",
        "UPDATE platform.audit_logs SET after = NULL, action = 'delete', before = after",
        "DELETE FROM platform.audit_logs",
    ],
)
def test_audit_logs_are_append_only(conn: psycopg.Connection[Any], make: Make, statement: str) -> None:
    make.team()
    with rejected("23000", "trg_audit_logs_append_only"):
        conn.execute(statement)
    assert make.count("audit_logs") == 1
    make.team()  # appending still works
    assert make.count("audit_logs") == 2


def test_audit_logs_cannot_be_truncated(conn: psycopg.Connection[Any], make: Make) -> None:
    make.team()
    with rejected("23000", "trg_audit_logs_no_truncate"):
        conn.execute("TRUNCATE platform.audit_logs")
    assert make.count("audit_logs") == 1


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("insert", {"id": 1}, {"id": 1}),
        ("insert", None, None),
        ("update", None, {"id": 1}),
        ("update", {"id": 1}, None),
        ("delete", None, None),
        ("delete", {"id": 1}, {"id": 1}),
    ],
)
def test_audit_logs_images_match_action(
    conn: psycopg.Connection[Any], make: Make, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    with rejected("23514", "ck_audit_logs_images_match_action"):
        insert_audit_log(conn, action=action, before=before, after=after)
    assert make.count("audit_logs") == 0
    insert_audit_log(conn, action="insert", before=None, after={"id": 1})
    insert_audit_log(conn, action="update", before={"id": 1}, after={"id": 2})
    insert_audit_log(conn, action="delete", before={"id": 2}, after=None)
    assert make.count("audit_logs") == 3


def test_audit_logs_without_a_monthly_partition_land_in_the_default(conn: psycopg.Connection[Any], make: Make) -> None:
    insert_audit_log(conn, entity_id="future", after={"id": 1}, created_at="2100-01-01T00:00:00Z")
    team = make.team()
    where = conn.execute("SELECT entity_id, tableoid::regclass::text FROM platform.audit_logs ORDER BY id").fetchall()
    month = conn.execute("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')").fetchone()
    assert month is not None
    assert where == [("future", "platform.audit_logs_default"), (str(team), f"platform.audit_logs_p{month[0]}")]


def test_audit_logs_have_partitions_for_this_month_and_the_next_two(conn: psycopg.Connection[Any]) -> None:
    expected = conn.execute(
        "SELECT 'audit_logs_p' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + n * interval '1 month',"
        " 'YYYY_MM') FROM generate_series(0, 2) AS n"
    ).fetchall()
    partitions = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'platform.audit_logs'::regclass"
    ).fetchall()
    assert {r[0] for r in expected} <= {r[0] for r in partitions}
    assert ("audit_logs_default",) in partitions


def test_audit_log_partitions_cannot_be_truncated_either(conn: psycopg.Connection[Any]) -> None:
    """TRUNCATE triggers are not inherited by partitions; ensure_partitions copies them to each one."""
    partitions = [
        row[0]
        for row in conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'platform.audit_logs'::regclass"
        )
    ]
    assert "platform.audit_logs_default" in partitions
    assert len(partitions) >= 4
    for partition in partitions:
        with rejected("23000", "trg_audit_logs_no_truncate"):
            conn.execute(f"TRUNCATE {partition}")
