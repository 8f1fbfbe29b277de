"""Audit rules: every change to an audited table leaves one append-only audit_logs row, with its actor."""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from platformdb import tokens
from platformdb.actor import set_actor
from tests.factories import PASSWORD_HASH, Make, assert_keys_trigger, rejected, triggers_disabled

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


@dataclass(frozen=True)
class Audited:
    """An audited table, and how plain SQL writes to it: ``create`` makes a valid row and returns its entity_id
    (the trigger's key columns joined by commas); ``update`` is a SET clause, or None where UPDATE is refused;
    ``delete`` whether a plain DELETE of the new row is allowed."""

    trigger: str
    key: str  # the primary-key columns that form entity_id: the audit trigger's first argument
    create: Callable[[Make], object]
    update: str | None
    delete: bool


def _token(make: Make) -> object:
    new = tokens.generate()
    return make.insert("api_tokens", user_id=make.user(), name="ci", selector=new.selector, verifier=new.verifier,
                       expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=30))  # fmt: skip


def _token_scope(make: Make) -> str:
    with make.conn.transaction():  # scopes are set in the transaction that issues the token
        token = _token(make)
        permission = make.permission()
        make.insert("api_token_scopes", returning="token_id", token_id=token, permission_id=permission)
    return f"{token},{permission}"


def _membership(make: Make) -> str:
    team, user = make.team(), make.user()
    make.insert("team_memberships", "team_id", team_id=team, user_id=user)
    return f"{team},{user}"


def _role_permission(make: Make) -> str:
    role, permission = make.role(), make.permission()
    make.insert("role_permissions", "role_id", role_id=role, permission_id=permission)
    return f"{role},{permission}"


def _dependency(make: Make) -> str:
    service, depends_on = make.service(), make.service()
    make.insert("service_dependencies", "service_id", service_id=service, depends_on_service_id=depends_on)
    return f"{service},{depends_on}"


def _config_version(make: Make) -> str:
    configuration = make.configuration(make.service())
    return f"{configuration},{make.config_version(configuration, 30)}"


def _retention(make: Make) -> str:
    return str(make.insert("partition_retention", returning="table_name", table_name=f"t{make.n()}", keep_days=9))


def _freeze_override(make: Make) -> object:
    deployment = make.deployment(make.service(), make.environment())
    return make.override("freeze_overrides", deployment, "freeze:override", freeze_period_id=make.freeze())


def _promotion(make: Make) -> str:
    source, target = make.environment(), make.environment()
    make.insert("environment_promotions", "from_environment_id", from_environment_id=source, to_environment_id=target)
    return f"{source},{target}"


def _promotion_override(make: Make) -> object:
    deployment = make.deployment(make.service(), make.environment())
    return make.override("promotion_overrides", deployment, "promotion:override")


def _captured_rule(make: Make) -> str:
    env = make.environment()
    rule = make.approval_rule(env)
    deployment = make.deployment(make.service(), env, deployed_by=make.user())  # the owner backfills
    return f"{deployment},{rule}"


def _approval(make: Make) -> str:
    deployment, _ = _captured_rule(make).split(",")
    approver = make.holder("deployment:approve")
    make.approval(uuid.UUID(deployment), approver)
    return f"{deployment},{approver}"


AUDITED: dict[str, Audited] = {
    # identity
    "users": Audited("trg_users_audit", "id", Make.user, "display_name = 'Changed'", delete=False),  # never deleted
    "teams": Audited("trg_teams_audit", "id", Make.team, "display_name = 'Changed'", delete=True),
    "team_memberships": Audited(
        "trg_team_memberships_audit", "team_id,user_id", _membership, "role = 'maintainer'", delete=True
    ),
    "roles": Audited("trg_roles_audit", "id", Make.role, "description = 'Changed'", delete=True),
    "permissions": Audited("trg_permissions_audit", "id", Make.permission, "description = 'Changed'", delete=True),
    "role_permissions": Audited(
        "trg_role_permissions_audit", "role_id,permission_id", _role_permission, None, delete=True
    ),
    "role_grants": Audited(
        "trg_role_grants_audit",
        "id",
        lambda make: make.grant(make.user(), make.role()),
        "expires_at = now() + interval '1 day'",
        delete=True,
    ),
    # catalog
    "environments": Audited("trg_environments_audit", "id", Make.environment, "is_production = true", delete=True),
    "services": Audited("trg_services_audit", "id", Make.service, "description = 'Changed'", delete=True),
    "service_dependencies": Audited(
        "trg_service_dependencies_audit", "service_id,depends_on_service_id", _dependency, None, delete=True
    ),
    # delivery
    "releases": Audited("trg_releases_audit", "id", lambda make: make.release(make.service()), None, delete=True),
    "deployments": Audited(
        "trg_deployments_audit",
        "id",
        lambda make: make.deployment(make.service(), make.environment()),
        "status = 'in_progress'",
        delete=False,
    ),  # its status history restricts the delete
    "freeze_schedules": Audited(
        "trg_freeze_schedules_audit", "id", Make.freeze_schedule, "reason = 'Changed'", delete=True
    ),
    "freeze_periods": Audited(
        "trg_freeze_periods_audit",
        "id",
        lambda make: make.freeze("1 hour", "2 hours"),
        "reason = 'Changed'",
        delete=True,
    ),
    "freeze_overrides": Audited("trg_freeze_overrides_audit", "id", _freeze_override, None, delete=False),
    "environment_promotions": Audited(
        "trg_environment_promotions_audit", "from_environment_id,to_environment_id", _promotion, None, delete=True
    ),
    "promotion_overrides": Audited("trg_promotion_overrides_audit", "id", _promotion_override, None, delete=False),
    "approval_rules": Audited(
        "trg_approval_rules_audit",
        "id",
        lambda make: make.approval_rule(make.environment()),
        "required_approvals = 2",
        delete=True,
    ),
    "deployment_approval_requirements": Audited(
        "trg_deployment_approval_requirements_audit",
        "deployment_id,approval_rule_id",
        _captured_rule,
        None,
        delete=False,
    ),  # written by trigger, append-only
    "deployment_approvals": Audited(
        "trg_deployment_approvals_audit", "deployment_id,approver_id", _approval, None, delete=False
    ),  # append-only
    # configuration
    "configurations": Audited(
        "trg_configurations_audit", "id", lambda make: make.configuration(make.service()), None, delete=True
    ),
    "configuration_versions": Audited(
        "trg_configuration_versions_audit", "configuration_id,version", _config_version, None, delete=False
    ),
    "api_tokens": Audited("trg_api_tokens_audit", "id", _token, "revoked_at = now()", delete=True),
    "api_token_scopes": Audited(
        "trg_api_token_scopes_audit", "token_id,permission_id", _token_scope, None, delete=True
    ),
    # monitoring
    "metrics": Audited("trg_metrics_audit", "id", Make.metric, "description = 'Changed'", delete=True),
    "partition_retention": Audited(
        "trg_partition_retention_audit", "table_name", _retention, "keep_days = keep_days + 1", delete=True
    ),
}


def test_audited_tables_are_the_ones_with_an_audit_trigger(conn: psycopg.Connection[Any]) -> None:
    """AUDITED lists every table whose changes the catalogs say are captured, with its trigger and key."""
    rows = conn.execute(
        """SELECT c.relname, t.tgname, t.tgargs FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'platform' AND NOT c.relispartition AND NOT t.tgisinternal
              AND t.tgfoid = 'platform.audit_capture()'::regprocedure"""
    ).fetchall()
    found: dict[str, tuple[str, str]] = {}
    for table, trigger, args in sorted(rows, key=lambda r: r[1]):  # a table's audit triggers split by event:
        found.setdefault(table, (trigger, bytes(args).split(b"\0")[0].decode()))  # the first by name
    assert {(t, bytes(a).split(b"\0")[0].decode()) for t, _, a in rows} == {(t, k) for t, (_, k) in found.items()}
    assert found == {table: (case.trigger, case.key) for table, case in AUDITED.items()}


@pytest.mark.parametrize("table", list(AUDITED))
def test_audit_capture_records_plain_sql_writes_to_every_audited_table(
    conn: psycopg.Connection[Any], make: Make, table: str
) -> None:
    """An insert, update and delete through plain SQL each leave one audit row naming the table and the row;
    a write the table refuses leaves none."""
    case = AUDITED[table]
    entity_id = str(case.create(make))
    where = f"concat_ws(',', {case.key}) = %s"
    expected = ["insert"]
    if case.update is None:
        with pytest.raises(psycopg.errors.IntegrityError):
            conn.execute(f"UPDATE platform.{table} SET created_at = created_at WHERE {where}", (entity_id,))
    else:
        updated = conn.execute(f"UPDATE platform.{table} SET {case.update} WHERE {where}", (entity_id,))
        assert updated.rowcount == 1
        expected.append("update")
    delete = f"DELETE FROM platform.{table} WHERE {where}"
    if case.delete:
        assert conn.execute(delete, (entity_id,)).rowcount == 1
        expected.append("delete")
    else:
        with pytest.raises(psycopg.errors.IntegrityError):
            conn.execute(delete, (entity_id,))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM platform.audit_logs WHERE entity_id = %s ORDER BY id", (entity_id,)
        ).fetchall()
    assert [(r["entity_type"], r["action"]) for r in rows] == [(table, action) for action in expected]
    images = [(r["before"], r["after"]) for r in rows]
    for (_, after), (before, _) in itertools.pairwise(images):  # each image continues from the last
        assert before == after
    if case.update is not None:
        assert images[1][0] != images[1][1]
    inserted = images[0][1]
    assert ",".join(str(inserted[k]) for k in case.key.split(",")) == entity_id


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
    assert (row["actor_id"], row["actor_name"], row["request_id"], row["claimed_client_addr"]) == (
        user,
        "Ann Admin",
        "req-42",
        ipaddress.ip_address("203.0.113.7"),
    )
    assert row["client_addr"] is None  # what the database saw: a Unix socket has no address; the claim is apart
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


@pytest.mark.parametrize("action", ["upsert", "INSERT", "truncate", ""])
def test_audit_logs_action_allowed(make: Make, conn: psycopg.Connection[Any], action: str) -> None:
    with rejected("23514", "ck_audit_logs_action_allowed"):
        insert_audit_log(conn, action=action, after={"id": 1})
    for action_ok in ("insert", "update", "delete"):
        insert_audit_log(conn, action=action_ok, before=None if action_ok == "insert" else {"id": 1},
                         after=None if action_ok == "delete" else {"id": 1})  # fmt: skip
    assert make.count("audit_logs") == 3


@pytest.mark.parametrize("entity_type", ["Teams", "team-memberships", "1teams", "platform.teams", ""])
def test_audit_logs_entity_type_format(make: Make, conn: psycopg.Connection[Any], entity_type: str) -> None:
    with rejected("23514", "ck_audit_logs_entity_type_format"):
        insert_audit_log(conn, entity_type=entity_type, after={"id": 1})
    insert_audit_log(conn, entity_type="team_memberships", after={"id": 1})
    insert_audit_log(conn, entity_type="_x9", after={"id": 1})
    assert make.count("audit_logs") == 2


@pytest.mark.parametrize("actor_name", ["", "x" * 321])
def test_audit_logs_actor_name_length(make: Make, conn: psycopg.Connection[Any], actor_name: str) -> None:
    with rejected("23514", "ck_audit_logs_actor_name_length"):
        insert_audit_log(conn, actor_name=actor_name, after={"id": 1})
    insert_audit_log(conn, actor_name="x", after={"id": 1})
    insert_audit_log(conn, actor_name="x" * 320, after={"id": 1})
    assert make.count("audit_logs") == 2


@pytest.mark.parametrize("request_id", ["", "r" * 129])
def test_audit_logs_request_id_length(make: Make, conn: psycopg.Connection[Any], request_id: str) -> None:
    with rejected("23514", "ck_audit_logs_request_id_length"):
        insert_audit_log(conn, request_id=request_id, after={"id": 1})
    insert_audit_log(conn, request_id="r" * 128, after={"id": 1})
    insert_audit_log(conn, request_id=None, after={"id": 1})
    assert make.count("audit_logs") == 2


@pytest.mark.parametrize(
    "hashes", [{"prev_hash": bytes(31)}, {"prev_hash": b""}, {"row_hash": bytes(33)}, {"row_hash": bytes(20)}]
)
def test_audit_logs_hashes_are_sha256(make: Make, conn: psycopg.Connection[Any], hashes: dict[str, bytes]) -> None:
    with rejected("23514", "ck_audit_logs_hashes_are_sha256"):
        insert_audit_log(conn, after={"id": 1}, **hashes)
    insert_audit_log(conn, after={"id": 1}, prev_hash=bytes(32), row_hash=b"\xff" * 32)
    assert make.count("audit_logs") == 1


def audit_lanes(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT lane FROM platform.audit_chain ORDER BY lane")]


@pytest.mark.parametrize("lane", [-1, 16, 32767])
def test_audit_chain_lane_range(conn: psycopg.Connection[Any], lane: int) -> None:
    """The chain has exactly lanes 0 to 15 (AUDIT_LANES); no writer may add or renumber one outside them (a
    renumbering is refused first by trg_audit_chain_keys_immutable; the range holds behind it)."""
    with rejected("23514", "ck_audit_chain_lane_range"):
        conn.execute("INSERT INTO platform.audit_chain (lane, last_hash) VALUES (%s, %s)", (lane, bytes(32)))
    with rejected("23000", "trg_audit_chain_keys_immutable"):
        conn.execute("UPDATE platform.audit_chain SET lane = %s WHERE lane = 15", (lane,))
    with (
        triggers_disabled(conn, "audit_chain", "trg_audit_chain_keys_immutable"),
        rejected("23514", "ck_audit_chain_lane_range"),
    ):
        conn.execute("UPDATE platform.audit_chain SET lane = %s WHERE lane = 15", (lane,))
    assert audit_lanes(conn) == list(range(16))
    conn.execute("DELETE FROM platform.audit_chain WHERE lane = 15")
    conn.execute("INSERT INTO platform.audit_chain (lane, last_hash) VALUES (15, %s)", (bytes(32),))
    assert audit_lanes(conn) == list(range(16))


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


@pytest.mark.parametrize("change", ["lane = lane + 16", "created_at = created_at - interval '1 day'"])
def test_audit_chain_keys_immutable(conn: psycopg.Connection[Any], change: str) -> None:
    """A lane's number and creation time never change (the capture function moves only its head)."""
    assert_keys_trigger(conn, "audit_chain", "lane = %s", (0,), change, "trg_audit_chain_keys_immutable")
    conn.execute("UPDATE platform.audit_chain SET last_hash = last_hash WHERE lane = 0")
