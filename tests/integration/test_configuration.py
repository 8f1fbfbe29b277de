"""Configuration rules: key slots, versioned values, secrets by reference, effective configuration and
what was in force at each deployment."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from tests.factories import (
    Make,
    assert_created_at_trigger,
    delete_by_id,
    rejected,
    replica_mode,
    restrict_sqlstate,
    triggers_disabled,
)

SECRET_REF = "vault://kv/payments/db#password"


def write_version(make: Make, configuration_id: uuid.UUID, kind: str, **columns: Any) -> int:
    """Insert a version with exactly the given columns (make.config_version fills value in for plain)."""
    return make.insert(  # type: ignore[no-any-return]
        "configuration_versions", returning="version", configuration_id=configuration_id, kind=kind, **columns
    )


def versions(conn: psycopg.Connection[Any], configuration_id: uuid.UUID) -> list[int]:
    rows = conn.execute(
        "SELECT version FROM platform.configuration_versions WHERE configuration_id = %s ORDER BY version",
        (configuration_id,),
    ).fetchall()
    return [r[0] for r in rows]


def effective(conn: psycopg.Connection[Any], service_id: uuid.UUID, environment_id: uuid.UUID) -> dict[str, Any]:
    """key -> (configuration_id, version, value) in force for the service in the environment."""
    rows = conn.execute(
        "SELECT key, configuration_id, version, value FROM platform.effective_configuration(%s, %s)",
        (service_id, environment_id),
    ).fetchall()
    return {key: (configuration_id, version, value) for key, configuration_id, version, value in rows}


def captured(conn: psycopg.Connection[Any], deployment_id: uuid.UUID) -> dict[uuid.UUID, int]:
    rows = conn.execute(
        "SELECT configuration_id, version FROM platform.deployment_configurations WHERE deployment_id = %s",
        (deployment_id,),
    ).fetchall()
    return dict(rows)


# configurations ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["", "1TIMEOUT", "-timeout", ".timeout", "HTTP TIMEOUT", "timeout!", "tïmeout", "K" * 201]
)
def test_configurations_key_format(make: Make, key: str) -> None:
    service = make.service()
    with rejected("23514", "ck_configurations_key_format"):
        make.configuration(service, key)
    for key_ok in ("HTTP_TIMEOUT", "db.pool.size", "_private", "feature-flag.v2", "K" * 200):
        make.configuration(service, key_ok)
    assert make.count("configurations") == 5


def test_configurations_one_slot_per_service_key_and_environment(make: Make) -> None:
    """One service-wide default (NULL environment) and one override per environment, per key."""
    service, staging, production = make.service(), make.environment(), make.environment()
    make.configuration(service, "TIMEOUT")
    with rejected("23505", "uq_configurations_service_id_key_environment_id"):
        make.configuration(service, "TIMEOUT")
    make.configuration(service, "TIMEOUT", environment_id=staging)
    with rejected("23505", "uq_configurations_service_id_key_environment_id"):
        make.configuration(service, "TIMEOUT", environment_id=staging)
    make.configuration(service, "TIMEOUT", environment_id=production)
    make.configuration(service, "RETRIES")
    make.configuration(make.service(), "TIMEOUT")
    assert make.count("configurations") == 5


@pytest.mark.parametrize(
    ("column", "table", "constraint"),
    [
        ("service_id", "services", "fk_configurations_service_id_services"),
        ("environment_id", "environments", "fk_configurations_environment_id_environments"),
    ],
)
def test_configurations_service_and_environment_must_exist_and_stay(
    conn: psycopg.Connection[Any], make: Make, column: str, table: str, constraint: str
) -> None:
    """A key belongs to an existing service (and environment); neither is deleted from under it (RESTRICT)."""
    values: dict[str, Any] = {"service_id": make.service(), "environment_id": make.environment()}
    with rejected("23503", constraint):
        make.insert("configurations", key="TIMEOUT", **(values | {column: uuid.uuid4()}))
    assert make.count("configurations") == 0
    make.insert("configurations", key="TIMEOUT", **values)
    with rejected(restrict_sqlstate(conn), constraint):
        conn.execute(f"DELETE FROM platform.{table} WHERE id = %s", (values[column],))
    idle = make.service() if table == "services" else make.environment()
    conn.execute(f"DELETE FROM platform.{table} WHERE id = %s", (idle,))
    assert (make.count("configurations"), make.count(table)) == (1, 1)


def test_configurations_are_immutable(conn: psycopg.Connection[Any], make: Make) -> None:
    service = make.service()
    configuration = make.configuration(service, "TIMEOUT")
    for assignment, value in [("key = %s", "RENAMED"), ("environment_id = %s", make.environment())]:
        with rejected("23000", "trg_configurations_immutable"):
            conn.execute(f"UPDATE platform.configurations SET {assignment} WHERE id = %s", (value, configuration))
    row = conn.execute(
        "SELECT key, environment_id FROM platform.configurations WHERE id = %s", (configuration,)
    ).fetchone()
    assert row == ("TIMEOUT", None)
    make.config_version(configuration, 30)
    assert versions(conn, configuration) == [1]


# configuration_versions: values by kind ------------------------------------------------------------------
def test_configuration_versions_secret_has_no_plaintext(make: Make) -> None:
    configuration = make.configuration(make.service())
    with rejected("23514", "ck_configuration_versions_secret_has_no_plaintext"):
        write_version(make, configuration, "secret", value=Jsonb("hunter2"), secret_ref=SECRET_REF)
    with rejected("23514", "ck_configuration_versions_secret_has_no_plaintext"):
        write_version(make, configuration, "secret", value=Jsonb("hunter2"))
    assert make.count("configuration_versions") == 0
    assert make.config_version(configuration, kind="secret", secret_ref=SECRET_REF) == 1


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"kind": "plain"}, id="plain-without-value"),
        pytest.param({"kind": "plain", "value": Jsonb(30), "secret_ref": SECRET_REF}, id="plain-with-secret-ref"),
        pytest.param({"kind": "secret"}, id="secret-without-secret-ref"),
        pytest.param({"kind": "deleted", "value": Jsonb(30)}, id="deleted-with-value"),
        pytest.param({"kind": "deleted", "secret_ref": SECRET_REF}, id="deleted-with-secret-ref"),
    ],
)
def test_configuration_versions_value_matches_kind(make: Make, values: dict[str, Any]) -> None:
    configuration = make.configuration(make.service())
    with rejected("23514", "ck_configuration_versions_value_matches_kind"):
        write_version(make, configuration, **values)
    assert make.count("configuration_versions") == 0
    make.config_version(configuration, {"ms": 30})
    make.config_version(configuration, kind="secret", secret_ref=SECRET_REF)
    make.config_version(configuration, kind="deleted")
    assert make.count("configuration_versions") == 3


@pytest.mark.parametrize("kind", ["Plain", "removed", ""])
def test_configuration_versions_kind_allowed(make: Make, kind: str) -> None:
    configuration = make.configuration(make.service())
    with rejected("23514", "ck_configuration_versions_kind_allowed"):
        make.config_version(configuration, kind=kind)
    assert make.count("configuration_versions") == 0
    assert make.config_version(configuration, kind="plain") == 1


@pytest.mark.parametrize(
    "secret_ref",
    [
        "kv/payments/db",
        "vault:kv/payments",
        "vault://",
        "Vault://kv/x",
        "1vault://kv/x",
        "vault://kv/a b",
        # no credential: no userinfo, no query string
        "vault://admin:pw@vault.internal/kv/payments#password",
        "vault://s.hvsTOKEN@vault.internal/kv/payments",
        "vault://kv/payments/db?token=s.hvsTOKEN#password",
        "vault://kv/payments/db?#password",
        "vault://kv/payments/db#pass@word",
        # only the allow-listed secret managers
        "postgresql://admin:pw@host/db",
        "https://secrets.example.com/v1/db",
        "file:///etc/shadow",
        "aws+sm://eu-west-1/payments/db",
        # one non-empty fragment
        "vault://kv/payments/db#",
        "vault://kv/payments/db#a#b",
    ],
)
def test_configuration_versions_secret_ref_format(make: Make, secret_ref: str) -> None:
    """A reference points into an allow-listed secret manager and carries no credential (no user:password@,
    no ?query); printable ASCII, at most 1024 characters."""
    configuration = make.configuration(make.service())
    with rejected("23514", "ck_configuration_versions_secret_ref_format"):
        make.config_version(configuration, kind="secret", secret_ref=secret_ref)
    with rejected("23514", "ck_configuration_versions_secret_ref_format"):
        make.config_version(configuration, kind="secret", secret_ref="vault://" + "k" * 1017)
    assert make.count("configuration_versions") == 0
    valid = [
        SECRET_REF,
        "aws-sm://eu-west-1/payments/db#password",
        "aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db",
        "gcp-sm://projects/p/secrets/db/versions/3",
        "azure-kv://payments-vault/db-password",
        "k8s://payments/db-credentials#password",
        "vault://" + "k" * 1016,
    ]
    for ref in valid:
        make.config_version(configuration, kind="secret", secret_ref=ref)
    assert make.count("configuration_versions") == len(valid)


def test_configuration_versions_value_size(conn: psycopg.Connection[Any], make: Make) -> None:
    """A value is at most 64 KiB as JSON text, whatever its shape."""
    configuration = make.configuration(make.service())
    for too_big in ("x" * 65535, ["y" * 1000] * 66, {f"k{i}": "z" * 1000 for i in range(66)}):
        with rejected("23514", "ck_configuration_versions_value_size"):
            make.config_version(configuration, too_big)
    assert make.count("configuration_versions") == 0
    make.config_version(configuration, "x" * 65534)  # 65536 bytes with its quotes
    make.config_version(configuration, {"hosts": [f"db-{i}.internal:5432" for i in range(20)]})
    assert versions(conn, configuration) == [1, 2]


def test_configurations_keys_per_service(conn: psycopg.Connection[Any], make: Make) -> None:
    """A service has at most 1000 keys, defaults and environment overrides together; a deleted key frees its
    place; other services are not affected."""
    service, other = make.service(), make.service()
    keys = "INSERT INTO platform.configurations (service_id, key) SELECT %s, 'KEY_' || g FROM generate_series(1, %s) g"
    conn.execute(keys, (service, 999))
    make.configuration(service, "OVERRIDE", environment_id=make.environment())  # the 1000th
    with rejected("23514", "trg_configurations_keys_per_service"):
        make.configuration(service, "ONE_TOO_MANY")
    with rejected("23514", "trg_configurations_keys_per_service"):
        make.configuration(service, "OVERRIDE", environment_id=make.environment())
    assert make.count("configurations") == 1000
    conn.execute("DELETE FROM platform.configurations WHERE service_id = %s AND key = 'KEY_1'", (service,))
    make.configuration(service, "ONE_MORE")
    conn.execute(keys, (other, 10))
    assert make.count("configurations") == 1010


def test_configurations_keys_per_service_hold_under_concurrent_writers(db: URL, make: Make) -> None:
    """Two transactions adding a service's last free key at once: the second waits on the service's row lock,
    then counts the first's key and is refused."""
    service = make.service()
    make.conn.execute(
        "INSERT INTO platform.configurations (service_id, key) SELECT %s, 'KEY_' || g FROM generate_series(1, 999) g",
        (service,),
    )
    first, second = psycopg.connect(libpq_dsn(db)), psycopg.connect(libpq_dsn(db), autocommit=True)
    try:
        insert = "INSERT INTO platform.configurations (service_id, key) VALUES (%s, %s)"
        first.execute(insert, (service, "FIRST"))
        outcome: dict[str, BaseException | None] = {}

        def add_second() -> None:
            try:
                second.execute(insert, (service, "SECOND"))
                outcome["err"] = None
            except psycopg.Error as exc:
                outcome["err"] = exc

        thread = threading.Thread(target=add_second)
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and make.conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (second.info.backend_pid,)
        ).fetchone() != ("Lock",):
            time.sleep(0.02)
        first.commit()
        thread.join(timeout=30)
        err = outcome["err"]
        assert isinstance(err, psycopg.Error)
        assert (err.sqlstate, err.diag.constraint_name) == ("23514", "trg_configurations_keys_per_service")
    finally:
        first.close()
        second.close()
    assert make.count("configurations") == 1000


# configuration_versions: numbering and immutability -------------------------------------------------------
def test_configuration_versions_are_numbered_without_gaps(conn: psycopg.Connection[Any], make: Make) -> None:
    """Versions are 1, 2, 3 per key, whatever was written to other keys in between."""
    service = make.service()
    timeout, retries = make.configuration(service, "TIMEOUT"), make.configuration(service, "RETRIES")
    assert [make.config_version(timeout, 10), make.config_version(retries, 1)] == [1, 1]
    assert make.config_version(timeout, kind="deleted") == 2
    with rejected("23514", "ck_configuration_versions_value_matches_kind"):
        write_version(make, timeout, "plain")
    assert make.config_version(timeout, 30) == 3
    assert versions(conn, timeout) == [1, 2, 3]
    assert versions(conn, retries) == [1]


def test_configuration_versions_expected_version_must_be_the_next(conn: psycopg.Connection[Any], make: Make) -> None:
    """A writer may state the version it expects to create; a stale or skipping number is refused."""
    configuration = make.configuration(make.service())
    assert make.config_version(configuration, 10, version=1) == 1
    for stale_or_skipping in (1, 3, 0):
        with rejected("23514", "trg_configuration_versions_number"):
            make.config_version(configuration, 20, version=stale_or_skipping)
    assert versions(conn, configuration) == [1]
    assert make.config_version(configuration, 20, version=2) == 2
    assert make.config_version(configuration, 30) == 3
    assert versions(conn, configuration) == [1, 2, 3]


def test_configuration_versions_numbering_reads_by_key(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_configuration_versions_number finds the last version through the primary key's index, newest first: no
    sequential scan of configuration_versions, however many versions the table holds (the counts are this
    transaction's, from pg_stat_xact_user_tables)."""
    configuration = make.configuration(make.service())
    conn.execute(
        "INSERT INTO platform.configuration_versions (configuration_id, kind, value)"
        " SELECT %s, 'plain', to_jsonb(g) FROM generate_series(1, 200) g",
        (configuration,),
    )
    conn.execute("ANALYZE platform.configuration_versions")
    with conn.transaction():
        for value in range(5):
            make.config_version(configuration, value)
        scans = conn.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables"
            " WHERE relid = 'platform.configuration_versions'::regclass"
        ).fetchone()
    assert scans is not None
    assert scans[0] == 0, scans
    assert scans[1] >= 5, scans
    assert versions(conn, configuration)[-1] == 205


def test_configuration_versions_numbering_race_under_repeatable_read(db: URL, make: Make) -> None:
    """Two REPEATABLE READ writers of one key: the one whose snapshot cannot see the other's committed version
    gets 40001 (serialization_failure: retry), not a duplicate number; its retry numbers after it."""
    configuration = make.configuration(make.service())
    make.config_version(configuration, 1)
    insert = "INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES (%s, 'plain', %s)"
    with psycopg.connect(libpq_dsn(db)) as winner, psycopg.connect(libpq_dsn(db)) as loser:
        for c in (winner, loser):
            c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            c.execute("SELECT count(*) FROM platform.configuration_versions")  # takes the snapshot
        winner.execute(insert, (configuration, Jsonb(2)))
        winner.commit()
        with pytest.raises(psycopg.errors.SerializationFailure):
            loser.execute(insert, (configuration, Jsonb(3)))
        loser.rollback()
        loser.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        loser.execute(insert, (configuration, Jsonb(3)))
        loser.commit()
    assert versions(make.conn, configuration) == [1, 2, 3]


def test_configuration_versions_version_positive(conn: psycopg.Connection[Any], make: Make) -> None:
    """The numbering trigger refuses a version it would not assign (trg_configuration_versions_number); the CHECK
    still holds where no trigger fires (a logical-replication apply, a restore with triggers disabled)."""
    configuration = make.configuration(make.service())
    with rejected("23514", "trg_configuration_versions_number"):
        make.config_version(configuration, 10, version=0)
    with replica_mode(conn):
        for version in (0, -1):
            with rejected("23514", "ck_configuration_versions_version_positive"):
                make.config_version(configuration, 10, version=version)
        make.config_version(configuration, 10, version=1)
    assert versions(conn, configuration) == [1]


def test_configuration_versions_configuration_must_exist_and_keep_its_history(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """A version belongs to an existing key, and a key with versions cannot be deleted (RESTRICT)."""
    with rejected("23503", "fk_configuration_versions_configuration_id_configurations"):
        make.config_version(uuid.uuid4(), 10)
    service = make.service()
    configuration, unused = make.configuration(service, "TIMEOUT"), make.configuration(service, "RETRIES")
    make.config_version(configuration, 10)
    with rejected(restrict_sqlstate(conn), "fk_configuration_versions_configuration_id_configurations"):
        conn.execute("DELETE FROM platform.configurations WHERE id = %s", (configuration,))
    conn.execute("DELETE FROM platform.configurations WHERE id = %s", (unused,))
    assert (make.count("configurations"), versions(conn, configuration)) == (1, [1])


def test_configuration_versions_created_by_must_exist_and_cannot_be_deleted(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """Users are never deleted (trg_users_no_delete); were that guard bypassed, a version keeps its author."""
    configuration = make.configuration(make.service())
    with rejected("23503", "fk_configuration_versions_created_by_users"):
        make.config_version(configuration, 10, created_by=uuid.uuid4())
    author, idle = make.user(), make.user()
    make.config_version(configuration, 10, created_by=author)
    with rejected(restrict_sqlstate(conn), "fk_configuration_versions_created_by_users"):
        delete_by_id(conn, "users", author)
    delete_by_id(conn, "users", idle)
    assert (make.count("users"), versions(conn, configuration)) == (1, [1])


def test_configuration_versions_are_append_only(conn: psycopg.Connection[Any], make: Make) -> None:
    configuration = make.configuration(make.service())
    make.config_version(configuration, 10)
    with rejected("23000", "trg_configuration_versions_append_only"):
        conn.execute(
            "UPDATE platform.configuration_versions SET value = '20' WHERE configuration_id = %s", (configuration,)
        )
    with rejected("23000", "trg_configuration_versions_append_only"):
        conn.execute("DELETE FROM platform.configuration_versions WHERE configuration_id = %s", (configuration,))
    row = conn.execute(
        "SELECT version, value FROM platform.configuration_versions WHERE configuration_id = %s", (configuration,)
    ).fetchall()
    assert row == [(1, 10)]
    assert make.config_version(configuration, 20) == 2


# effective_configuration ---------------------------------------------------------------------------------
def test_effective_configuration_override_beats_default(conn: psycopg.Connection[Any], make: Make) -> None:
    service, production = make.service(), make.environment()
    default = make.configuration(service, "TIMEOUT")
    make.config_version(default, 10)
    override = make.configuration(service, "TIMEOUT", environment_id=production)
    make.config_version(override, 30)
    make.config_version(override, 60)
    retries = make.configuration(service, "RETRIES")
    make.config_version(retries, 3)
    assert effective(conn, service, production) == {"TIMEOUT": (override, 2, 60), "RETRIES": (retries, 1, 3)}


def test_effective_configuration_deleted_override_falls_back_to_default(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    service, production = make.service(), make.environment()
    default = make.configuration(service, "TIMEOUT")
    make.config_version(default, 10)
    override = make.configuration(service, "TIMEOUT", environment_id=production)
    make.config_version(override, 30)
    make.config_version(override, kind="deleted")
    assert effective(conn, service, production) == {"TIMEOUT": (default, 1, 10)}


def test_effective_configuration_deleted_default_without_override_vanishes(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    service, production = make.service(), make.environment()
    default = make.configuration(service, "TIMEOUT")
    make.config_version(default, 10)
    make.config_version(default, kind="deleted")
    kept = make.configuration(service, "RETRIES")
    make.config_version(kept, 3)
    assert effective(conn, service, production) == {"RETRIES": (kept, 1, 3)}
    make.config_version(default, 20)
    assert effective(conn, service, production) == {"RETRIES": (kept, 1, 3), "TIMEOUT": (default, 3, 20)}


def test_effective_configuration_ignores_other_environments_and_services(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    service, staging, production = make.service(), make.environment(), make.environment()
    default = make.configuration(service, "TIMEOUT")
    make.config_version(default, 10)
    make.config_version(make.configuration(service, "TIMEOUT", environment_id=staging), 99)
    make.config_version(make.configuration(service, "STAGING_ONLY", environment_id=staging), 1)
    make.config_version(make.configuration(make.service(), "OTHER_SERVICE"), 1)
    assert effective(conn, service, production) == {"TIMEOUT": (default, 1, 10)}


# deployment_configurations -------------------------------------------------------------------------------
def test_deployment_configurations_record_the_versions_in_force(conn: psycopg.Connection[Any], make: Make) -> None:
    """A new deployment records, per key, the version in force (trg_deployments_capture_configuration); later
    edits leave that record alone."""
    service, production = make.service(), make.environment()
    timeout = make.configuration(service, "TIMEOUT")
    make.config_version(timeout, 10)
    make.config_version(timeout, 20)
    password = make.configuration(service, "DB_PASSWORD", environment_id=production)
    make.config_version(password, kind="secret", secret_ref=SECRET_REF)
    gone = make.configuration(service, "GONE")
    make.config_version(gone, 1)
    make.config_version(gone, kind="deleted")

    first = make.deployment(service, production)
    assert captured(conn, first) == {timeout: 2, password: 1}

    make.config_version(timeout, 30)
    make.config_version(password, kind="deleted")
    assert captured(conn, first) == {timeout: 2, password: 1}
    second = make.deployment(service, make.environment())
    assert captured(conn, second) == {timeout: 3}


def test_deployment_configurations_are_append_only(conn: psycopg.Connection[Any], make: Make) -> None:
    service, production = make.service(), make.environment()
    timeout = make.configuration(service, "TIMEOUT")
    make.config_version(timeout, 10)
    make.config_version(timeout, 20)
    deployment = make.deployment(service, production)
    with rejected("23000", "trg_deployment_configurations_append_only"):
        conn.execute(
            "UPDATE platform.deployment_configurations SET version = 1 WHERE deployment_id = %s", (deployment,)
        )
    with rejected("23000", "trg_deployment_configurations_append_only"):
        conn.execute("DELETE FROM platform.deployment_configurations WHERE deployment_id = %s", (deployment,))
    assert captured(conn, deployment) == {timeout: 2}


def test_configuration_versions_plain_value_is_not_json_null(make: Make) -> None:
    """JSON null would be a value that is not there: removing a key is kind 'deleted'."""
    cfg = make.configuration(make.service())
    with rejected("23514", "ck_configuration_versions_value_matches_kind"):
        write_version(make, cfg, "plain", value=Jsonb(None))
    write_version(make, cfg, "deleted")
    write_version(make, cfg, "plain", value=Jsonb({"retries": None}))
    assert make.count("configuration_versions") == 2


def add_captured(conn: psycopg.Connection[Any], deployment_id: Any, configuration_id: Any, version: int) -> None:
    """A direct write to deployment_configurations (normally only the capture trigger writes there)."""
    conn.execute(
        "INSERT INTO platform.deployment_configurations (deployment_id, configuration_id, version) VALUES (%s, %s, %s)",
        (deployment_id, configuration_id, version),
    )


def test_deployment_configurations_name_an_existing_version_that_stays(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """What was in force is a version that exists, and it cannot be deleted (RESTRICT) even were the
    append-only guard of configuration_versions bypassed."""
    service, env = make.service(), make.environment()
    deployment = make.deployment(service, env)  # before the key exists: nothing captured
    configuration = make.configuration(service)
    make.config_version(configuration, 10)
    make.config_version(configuration, 20)
    for version in (3, 0):
        with rejected("23503", "fk_deployment_configurations_configuration_id_version_c_35ba"):
            add_captured(conn, deployment, configuration, version)
    with rejected("23503", "fk_deployment_configurations_configuration_id_version_c_35ba"):
        add_captured(conn, deployment, uuid.uuid4(), 1)
    add_captured(conn, deployment, configuration, 1)
    delete = "DELETE FROM platform.configuration_versions WHERE configuration_id = %s AND version = %s"
    with triggers_disabled(conn, "configuration_versions", "trg_configuration_versions_append_only"):
        with rejected(restrict_sqlstate(conn), "fk_deployment_configurations_configuration_id_version_c_35ba"):
            conn.execute(delete, (configuration, 1))
        conn.execute(delete, (configuration, 2))
    assert (captured(conn, deployment), versions(conn, configuration)) == ({configuration: 1}, [1])


def test_deployment_configurations_deployment_must_exist_and_stay(conn: psycopg.Connection[Any], make: Make) -> None:
    """A deployment whose configuration was captured cannot be deleted (RESTRICT). Every deployment also has
    status history, which restricts the delete too; here the history trigger is bypassed to see this key alone."""
    service, env = make.service(), make.environment()
    configuration = make.configuration(service)
    make.config_version(configuration, 10)
    with rejected("23503", "fk_deployment_configurations_deployment_id_deployments"):
        add_captured(conn, uuid.uuid4(), configuration, 1)
    with triggers_disabled(conn, "deployments", "trg_deployments_status_history_insert"):
        deployment = make.deployment(service, env)
        idle = make.deployment(make.service(), env)  # no configuration to capture
    assert (captured(conn, deployment), captured(conn, idle)) == ({configuration: 1}, {})
    with rejected(restrict_sqlstate(conn), "fk_deployment_configurations_deployment_id_deployments"):
        conn.execute("DELETE FROM platform.deployments WHERE id = %s", (deployment,))
    conn.execute("DELETE FROM platform.deployments WHERE id = %s", (idle,))
    assert make.count("deployments") == 1


# creation times are the database's --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "trigger"),
    [
        ("configurations", "trg_configurations_created_at"),
        ("configuration_versions", "trg_configuration_versions_created_at"),
    ],
)
def test_configuration_created_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """The configuration service cannot backdate a key or a version: its created_at becomes now(); the owner's
    (the seed's replayed history) is kept."""
    service = make.service()
    values: dict[str, Any] = (
        {"service_id": service, "key": "RETRIES"}
        if table == "configurations"
        else {"configuration_id": make.configuration(service), "kind": "plain", "value": Jsonb(3)}
    )
    assert_created_at_trigger(conn, table, "platform_configuration", values, trigger)


def test_configuration_versions_validated_shows_no_value_of_a_rejected_row(make: Make) -> None:
    """trg_configuration_versions_validated: a rejected secret write names its rule and echoes neither value."""
    configuration = make.configuration(make.service())
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        write_version(make, configuration, "secret", value=Jsonb("hunter2-plaintext"), secret_ref=SECRET_REF)
    err = info.value
    assert err.diag.constraint_name == "ck_configuration_versions_secret_has_no_plaintext"
    told = " ".join(str(x) for x in (err, err.diag.message_detail, err.diag.message_hint, err.diag.context))
    assert "hunter2-plaintext" not in told
    assert SECRET_REF not in told
    assert make.config_version(configuration, kind="secret", secret_ref=SECRET_REF) == 1
