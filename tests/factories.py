"""Valid rows for tests, made through plain SQL so each test states only what its rule is about."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQxMjM0$0mJ1cQbB2d8kL0Tj2Yf3YxZq4sVQ3mD1hA"
WELL_KNOWN_PERMISSIONS = 5
"""Permissions the schema itself inserts (role:grant, token:issue: 0030; freeze:manage, freeze:override,
promotion:override: 0050), present in every new database."""
COMMIT_SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


@contextmanager
def rejected(sqlstate: str, constraint: str | None) -> Iterator[None]:
    """Assert that the block's write fails with ``sqlstate``, naming ``constraint`` as the one violated."""
    with pytest.raises(psycopg.Error) as info:
        yield
    err = info.value
    assert (err.sqlstate, err.diag.constraint_name) == (sqlstate, constraint), err.diag.message_primary


def restrict_sqlstate(conn: psycopg.Connection[Any]) -> str:
    """SQLSTATE of an ON DELETE RESTRICT violation: restrict_violation (23001) since PostgreSQL 18,
    foreign_key_violation (23503) before; the constraint named is the same on both."""
    return "23001" if conn.info.server_version >= 180000 else "23503"


@contextmanager
def triggers_disabled(conn: psycopg.Connection[Any], table: str, *triggers: str) -> Iterator[None]:
    """Bypass the named triggers of ``platform.<table>`` for the block, to reach the rule a trigger stands in
    front of (defence in depth: what holds when the guard is bypassed or dropped)."""
    for trigger in triggers:
        conn.execute(f"ALTER TABLE platform.{table} DISABLE TRIGGER {trigger}")
    try:
        yield
    finally:
        for trigger in triggers:
            conn.execute(f"ALTER TABLE platform.{table} ENABLE TRIGGER {trigger}")


@contextmanager
def replica_mode(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Writes as a logical-replication apply worker (or ``pg_restore --disable-triggers``) makes them: no
    ordinary trigger fires, so only the CHECK and unique constraints stand between the row and the table."""
    conn.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        conn.execute("RESET session_replication_role")


def delete_by_id(conn: psycopg.Connection[Any], table: str, row_id: Any) -> None:
    """DELETE one row of ``platform.<table>`` by id. A user is deleted with trg_users_no_delete bypassed: users
    are never deleted, and this shows what the foreign keys that point at them would do if one were."""
    statement = f"DELETE FROM platform.{table} WHERE id = %s"
    if table == "users":
        with triggers_disabled(conn, "users", "trg_users_no_delete"):
            conn.execute(statement, (row_id,))
    else:
        conn.execute(statement, (row_id,))


def assert_updated_at_trigger(
    conn: psycopg.Connection[Any], table: str, where: str, params: tuple[Any, ...], change: str, guard: str
) -> None:
    """The set_updated_at trigger of a mutable table, on the one row ``where`` selects (its created_at and
    updated_at set in the past): an UPDATE stamps updated_at with its transaction's time, even when the writer
    sets another value, and a rewrite of created_at is refused (SQLSTATE 23000) naming ``guard``."""
    old = conn.execute(f"SELECT created_at, updated_at FROM platform.{table} WHERE {where}", params).fetchone()
    assert old is not None
    assert old[0] == old[1] < conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    for assignment in (change, "updated_at = created_at"):
        row = conn.execute(
            f"UPDATE platform.{table} SET {assignment} WHERE {where} RETURNING created_at, updated_at, now()", params
        ).fetchone()
        assert row is not None
        assert row[0] == old[0]
        assert row[1] == row[2] > old[0]
    with rejected("23000", guard):
        conn.execute(f"UPDATE platform.{table} SET created_at = created_at - interval '1 day' WHERE {where}", params)
    conn.execute(f"UPDATE platform.{table} SET created_at = created_at WHERE {where}", params)
    row = conn.execute(f"SELECT created_at FROM platform.{table} WHERE {where}", params).fetchone()
    assert row == (old[0],)


BACKDATED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def assert_created_at_trigger(
    conn: psycopg.Connection[Any], table: str, role: str, values: dict[str, Any], trigger: str
) -> None:
    """The set_created_at trigger ``trigger`` of ``table``: a row inserted as the service group ``role`` with a
    backdated created_at (and updated_at) gets now() for them; the owner (here a superuser) may backdate, as the
    seed and restores do; and with the trigger disabled the service's stamps would be kept, so it is that
    trigger which replaces them. Each insert is rolled back."""
    stamps = [
        c
        for c in ("created_at", "updated_at")
        if conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s AND NOT attisdropped",
            (f"platform.{table}", c),
        ).fetchone()
    ]
    row = values | dict.fromkeys(stamps, BACKDATED)
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}, now()").format(
        sql.Identifier("platform", table),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
        sql.SQL(", ").join(map(sql.Identifier, stamps)),
    )
    params = [Jsonb(v) if isinstance(v, dict | list) else v for v in row.values()]

    def insert(as_role: str | None, disabled: bool = False) -> tuple[list[Any], Any]:
        with conn.transaction(force_rollback=True):
            if disabled:
                conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                    sql.Identifier("platform", table), sql.Identifier(trigger)))  # fmt: skip
            if as_role:
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(as_role)))
            got = conn.execute(statement, params).fetchone()
        assert got is not None
        return list(got[:-1]), got[-1]

    kept, now = insert(role)
    assert kept == [now] * len(stamps), f"{role}'s backdated {stamps} kept: {kept}"
    assert insert(None)[0] == [BACKDATED] * len(stamps), "the owner's backdated stamps were replaced"
    assert insert(role, disabled=True)[0] == [BACKDATED] * len(stamps), f"{trigger} is not what stamps them"


def assert_keys_trigger(
    conn: psycopg.Connection[Any],
    table: str,
    where: str,
    params: tuple[Any, ...],
    change: str,
    trigger: str,
    keep: str | None = None,
) -> None:
    """The forbid_column_change trigger ``trigger`` freezing the primary key of ``table``: ``change`` (an
    assignment moving the key of the one row ``where`` selects, which nothing references) is refused (23000)
    naming it; ``keep`` (by default, assigning the key its own value) goes through."""
    with rejected("23000", trigger):
        conn.execute(f"UPDATE platform.{table} SET {change} WHERE {where}", params)
    key = change.split("=")[0].strip()
    keep = keep or f"{key} = {key}"
    assert conn.execute(f"UPDATE platform.{table} SET {keep} WHERE {where}", params).rowcount == 1


class Make:
    """Creates valid rows; keyword arguments override any column."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._n = itertools.count(1)

    def n(self) -> int:
        return next(self._n)

    def insert(self, table: str, returning: str = "id", **values: Any) -> Any:
        cols = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        params = [Jsonb(v) if isinstance(v, dict | list) else v for v in values.values()]
        row = self.conn.execute(
            f"INSERT INTO platform.{table} ({cols}) VALUES ({marks}) RETURNING {returning}", params
        ).fetchone()
        assert row is not None
        return row[0] if len(row) == 1 else row

    def count(self, table: str) -> int:
        row = self.conn.execute(f"SELECT count(*) FROM platform.{table}").fetchone()
        assert row is not None
        return int(row[0])

    # identity ------------------------------------------------------------------------------------------
    def user(self, **kw: Any) -> uuid.UUID:
        i = self.n()
        values = {
            "email": f"user{i}@example.com",
            "display_name": f"User {i}",
            "password_hash": PASSWORD_HASH,
        }
        return self.insert("users", **(values | kw))  # type: ignore[no-any-return]

    def team(self, **kw: Any) -> uuid.UUID:
        i = self.n()
        return self.insert("teams", **({"name": f"team-{i}", "display_name": f"Team {i}"} | kw))  # type: ignore[no-any-return]

    def role(self, **kw: Any) -> uuid.UUID:
        return self.insert("roles", **({"name": f"role-{self.n()}"} | kw))  # type: ignore[no-any-return]

    def permission(self, **kw: Any) -> uuid.UUID:
        letters = "".join(chr(ord("a") + int(d)) for d in str(self.n()))  # names allow no digits
        return self.insert("permissions", **({"name": f"thing_{letters}:read"} | kw))  # type: ignore[no-any-return]

    def grant(self, user_id: uuid.UUID, role_id: uuid.UUID, **kw: Any) -> uuid.UUID:
        return self.insert("role_grants", user_id=user_id, role_id=role_id, **kw)  # type: ignore[no-any-return]

    def permission_id(self, name: str) -> uuid.UUID:
        """The id of permission ``name``, inserted if missing (the well-known ones exist already)."""
        row = self.conn.execute("SELECT id FROM platform.permissions WHERE name = %s", (name,)).fetchone()
        return row[0] if row else self.permission(name=name)  # type: ignore[no-any-return]

    def role_with(self, *permissions: str, **kw: Any) -> uuid.UUID:
        """A role holding the named permissions (each inserted if missing)."""
        role = self.role(**kw)
        for name in permissions:
            self.insert("role_permissions", returning="role_id", role_id=role, permission_id=self.permission_id(name))
        return role

    def granter(self, *permissions: str, **scope: Any) -> uuid.UUID:
        """A user holding role:grant and ``permissions`` (globally, or in ``scope``): one who may grant them.
        Its own grant is written as the schema owner (the bootstrap path: no granter)."""
        user = self.user()
        self.grant(user, self.role_with("role:grant", *permissions), **scope)
        return user

    # catalog -------------------------------------------------------------------------------------------
    def environment(self, **kw: Any) -> uuid.UUID:
        return self.insert("environments", **({"name": f"env-{self.n()}"} | kw))  # type: ignore[no-any-return]

    def service(self, **kw: Any) -> uuid.UUID:
        if "owner_team_id" not in kw:
            kw["owner_team_id"] = self.team()
        return self.insert("services", **({"name": f"service-{self.n()}"} | kw))  # type: ignore[no-any-return]

    # delivery ------------------------------------------------------------------------------------------
    def release(self, service_id: uuid.UUID, version: str = "1.0.0", **kw: Any) -> uuid.UUID:
        values = {
            "service_id": service_id,
            "version": version,
            "commit_sha": COMMIT_SHA,
            "artifact_digest": DIGEST,
        }
        return self.insert("releases", **(values | kw))  # type: ignore[no-any-return]

    def deployment(
        self, service_id: uuid.UUID, environment_id: uuid.UUID, version: str = "1.0.0", **kw: Any
    ) -> uuid.UUID:
        exists = self.conn.execute(
            "SELECT 1 FROM platform.releases WHERE service_id = %s AND version = %s", (service_id, version)
        ).fetchone()
        if not exists:
            self.release(service_id, version)
        return self.insert(  # type: ignore[no-any-return]
            "deployments", service_id=service_id, version=version, environment_id=environment_id, **kw
        )

    def set_status(self, deployment_id: uuid.UUID, *statuses: str) -> None:
        for status in statuses:
            self.conn.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (status, deployment_id))

    # governance: freezes and the promotion path -------------------------------------------------------
    def permit(self, permission: str, user_id: uuid.UUID | None = None, **scope: Any) -> uuid.UUID:
        """A user (new unless given) granted a new role holding the named permission (made if missing), in
        ``scope`` (service_id, environment_id); returns the user."""
        user = user_id or self.user()
        row = self.conn.execute(
            "INSERT INTO platform.permissions (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name"
            " RETURNING id",
            (permission,),
        ).fetchone()
        assert row is not None
        role = self.role()
        self.insert("role_permissions", "role_id", role_id=role, permission_id=row[0])
        self.grant(user, role, **scope)
        return user

    def freeze(self, start: str = "-1 hour", end: str = "1 hour", **kw: Any) -> uuid.UUID:
        """A freeze period [now + start, now + end) (offsets as intervals), unless ``during`` is given."""
        if "during" not in kw:
            row = self.conn.execute("SELECT tstzrange(now() + %s::interval, now() + %s::interval)", (start, end))
            kw["during"] = row.fetchone()[0]  # type: ignore[index]
        return self.insert("freeze_periods", **({"reason": "Quarter close"} | kw))  # type: ignore[no-any-return]

    def freeze_schedule(self, **kw: Any) -> uuid.UUID:
        values = {"cron": "0 18 * * 5", "time_zone": "Europe/Berlin", "duration": dt.timedelta(days=2, hours=15),
                  "reason": "Weekend freeze"}  # fmt: skip
        return self.insert("freeze_schedules", **(values | kw))  # type: ignore[no-any-return]

    def override(self, table: str, deployment_id: uuid.UUID, permission: str, **kw: Any) -> uuid.UUID:
        """A four-eyed override in ``table`` (freeze_overrides or promotion_overrides) for a deployment: a new
        requester and a new approver holding ``permission`` everywhere."""
        values = {"deployment_id": deployment_id, "reason": "Hotfix for an outage"} | kw
        if "requested_by" not in values:
            values["requested_by"] = self.user()
        if "approved_by" not in values:
            values["approved_by"] = self.permit(permission)
        return self.insert(table, **values)  # type: ignore[no-any-return]

    def approval_rule(self, environment_id: uuid.UUID, **kw: Any) -> uuid.UUID:
        """A rule of ``environment_id`` needing one approval by holders of deployment:approve (made if missing)."""
        if "approver_permission_id" not in kw:
            kw["approver_permission_id"] = self.permission_named("deployment:approve")
        values = {"environment_id": environment_id, "required_approvals": 1} | kw
        return self.insert("approval_rules", **values)  # type: ignore[no-any-return]

    def permission_named(self, name: str) -> uuid.UUID:
        row = self.conn.execute("SELECT id FROM platform.permissions WHERE name = %s", (name,)).fetchone()
        return row[0] if row else self.permission(name=name)  # type: ignore[no-any-return]

    def holder(self, permission: str, **scope: Any) -> uuid.UUID:
        """A new user holding ``permission`` through a role of its own, granted in ``scope`` (service_id,
        environment_id, expires_at)."""
        user, role = self.user(), self.role()
        self.insert("role_permissions", "role_id", role_id=role, permission_id=self.permission_named(permission))
        self.grant(user, role, **scope)
        return user

    def approval(self, deployment_id: uuid.UUID, approver_id: uuid.UUID, decision: str = "approved", **kw: Any) -> None:
        """The approver's decision under the deployment's (first) captured rule."""
        if "approval_rule_id" not in kw:
            row = self.conn.execute(
                "SELECT approval_rule_id FROM platform.deployment_approval_requirements WHERE deployment_id = %s"
                " ORDER BY approval_rule_id LIMIT 1",
                (deployment_id,),
            ).fetchone()
            assert row is not None, "the deployment captured no approval rule"
            kw["approval_rule_id"] = row[0]
        self.insert(
            "deployment_approvals", "deployment_id", deployment_id=deployment_id, approver_id=approver_id,
            decision=decision, **kw,
        )  # fmt: skip

    # configuration -------------------------------------------------------------------------------------
    def configuration(self, service_id: uuid.UUID, key: str = "TIMEOUT", **kw: Any) -> uuid.UUID:
        return self.insert("configurations", service_id=service_id, key=key, **kw)  # type: ignore[no-any-return]

    def config_version(self, configuration_id: uuid.UUID, value: Any = 1, **kw: Any) -> int:
        values: dict[str, Any] = {
            "configuration_id": configuration_id,
            "kind": "plain",
            "value": Jsonb(value),
        }
        if kw.get("kind") in ("secret", "deleted"):
            values["value"] = None
        return self.insert("configuration_versions", returning="version", **(values | kw))  # type: ignore[no-any-return]

    # monitoring ----------------------------------------------------------------------------------------
    def metric(self, **kw: Any) -> int:
        values = {"name": f"metric_{self.n()}_total", "unit": "requests", "kind": "counter"}
        return self.insert("metrics", **(values | kw))  # type: ignore[no-any-return]

    def series(self, **kw: Any) -> int:
        if "service_id" not in kw:
            kw["service_id"] = self.service()
        if "environment_id" not in kw:
            kw["environment_id"] = self.environment()
        if "metric_id" not in kw:
            kw["metric_id"] = self.metric()
        return self.insert("metric_series", **kw)  # type: ignore[no-any-return]
