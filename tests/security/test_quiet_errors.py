"""Issue #11 point 5: a rejected write on a table holding secrets, hashes or personal data puts no value into the
client's error or the server log, whichever rule refuses it (NOT NULL, unique, foreign key, CHECK); and the
optimistic-concurrency refusal of configuration versions has one structured shape under every isolation level.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.factories import PASSWORD_HASH, Make, rejected
from tests.pg import Server
from tests.security.test_hostile_rules import SECRET_REF, Logins, attempt, error_text, login

__all__ = ["login"]  # the fixture, used by name

UNIQUE = uuid.uuid4().hex[:10]
"""Marks this run's values, so the log grep finds only what these tests wrote."""
EMAIL = f"quiet.{UNIQUE}@example.com"
PLAINTEXT = f"plaintext-{UNIQUE}"
SECRET = f"vault://kv/quiet-{UNIQUE}#password"
NAME = f"Quiet Person {UNIQUE}"
HASH = f"$argon2id$v=19$m=65536,t=3,p=4${UNIQUE}c2FsdA$0mJ1cQbB2d8kL0Tj2Yf3YxZq4sVQ3mD1hA"
"""A hash whose first 64 characters (what a DETAIL shows of a value) are this run's."""
TAKEN = f"taken.{UNIQUE}@example.com"


def wait_for_log(log: Path, marker: str) -> str:
    """The server log once it holds ``marker`` (the server writes it asynchronously from this client)."""
    for _ in range(200):
        text = log.read_text(errors="replace")
        if marker in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{marker} never reached {log}: not the server's log")


def test_rejected_writes_show_no_secret_hash_or_email_in_the_error_or_the_server_log(
    server: Server, conn: psycopg.Connection[Any], make: Make, login: Logins
) -> None:
    """Every way a write on users or configuration_versions is refused -- a missing column (NOT NULL, whose
    DETAIL is "Failing row contains ..."), a taken address (unique, "Key (lower(email))=(...)"), an unknown key
    (foreign key), a CHECK -- through the service's own login: the SQLSTATE and the rule's name, and no value in
    the error or in the server log (the check of the log is shown real by a marker error that must appear)."""
    identity, configuration = login("identity"), login("configuration")
    make.user(email=EMAIL.upper(), display_name=NAME, password_hash=HASH)
    cfg = make.configuration(make.service())
    insert_user = "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, %s, %s)"
    insert_version = (
        "INSERT INTO platform.configuration_versions (configuration_id, kind, value, secret_ref)"
        " VALUES (%s, %s, %s, %s)"
    )
    cases: list[tuple[str, psycopg.Connection[Any], str, tuple[Any, ...], str, str | None]] = [
        ("a user without an address", identity, insert_user, (None, NAME, HASH), "23502", None),
        # A human needs a password hash (0030 made the column nullable for service accounts): the CHECK says so.
        ("a user without a hash", identity, insert_user, (EMAIL, NAME, None), "23514", "ck_users_password_by_kind"),
        ("a user without a name", identity, insert_user, (EMAIL, None, HASH), "23502", None),
        ("a taken address", identity, insert_user, (EMAIL, NAME, HASH), "23505", "uq_users_email_lower"),
        ("a CHECK", identity, insert_user, (EMAIL, NAME, "plain-" + HASH), "23514", "ck_users_password_hash_format"),
        ("a version without a kind", configuration, insert_version, (cfg, None, Jsonb(PLAINTEXT), SECRET), "23502",
         None),
        ("a version of an unknown key", configuration, insert_version,
         (uuid.uuid4(), "secret", None, SECRET), "23503", "fk_configuration_versions_configuration_id_configurations"),
        ("a secret with a plaintext value", configuration, insert_version, (cfg, "secret", Jsonb(PLAINTEXT), SECRET),
         "23514", "ck_configuration_versions_secret_has_no_plaintext"),
    ]  # fmt: skip
    taken = make.user(email=TAKEN, display_name=NAME, password_hash=HASH)
    update = "UPDATE platform.users SET email = %s WHERE id = %s"
    cases.append(("an update to a taken address", identity, update, (EMAIL, taken), "23505", "uq_users_email_lower"))
    cases.append(("an update to no name", identity, "UPDATE platform.users SET display_name = NULL WHERE id = %s",
                  (taken,), "23502", None))  # fmt: skip
    values = (EMAIL, TAKEN, PLAINTEXT, SECRET, NAME, HASH[31:60])
    problems = []
    for what, c, statement, params, sqlstate, name in cases:
        err = attempt(c, statement, params)
        if err is None:
            problems.append(f"{what}: accepted")
            continue
        if (err.sqlstate, err.diag.constraint_name) != (sqlstate, name):
            problems.append(f"{what}: {err.sqlstate} {err.diag.constraint_name}, not {sqlstate} {name}")
        text = error_text(err).lower()
        if shown := [v for v in values if v.lower() in text]:
            problems.append(f"{what}: the error shows {shown}: {err.diag.message_detail}")

    marker = f"log-marker-{UNIQUE}-{uuid.uuid4().hex[:6]}"
    with pytest.raises(psycopg.errors.RaiseException):
        conn.execute(f"DO $$ BEGIN RAISE EXCEPTION '{marker}'; END $$")
    log = wait_for_log(server.cluster.log_file, marker).lower()
    if logged := [v for v in values if v.lower() in log]:
        problems.append(f"the server log shows {logged}")
    assert problems == []

    # The valid writes, through the same logins.
    identity.execute(insert_user, (f"other.{UNIQUE}@example.com", "Other Person", PASSWORD_HASH))
    identity.execute(update, (f"renamed.{UNIQUE}@example.com", taken))
    configuration.execute(insert_version, (cfg, "secret", None, SECRET_REF))


def version(c: psycopg.Connection[Any], cfg: uuid.UUID, expected: int | None) -> int:
    row = c.execute(
        "INSERT INTO platform.configuration_versions (configuration_id, kind, value, version)"
        " VALUES (%s, 'plain', '1', %s) RETURNING version",
        (cfg, expected),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_a_stale_expected_version_is_refused_with_the_current_version_in_a_structured_detail(
    make: Make, login: Logins, isolation: str
) -> None:
    """Optimistic concurrency: a writer that expects to create a version other than the next is refused (23514,
    trg_configuration_versions_number) with a JSON DETAIL naming the key, the version it is at and the one
    expected, the same under every isolation level. Under REPEATABLE READ and SERIALIZABLE a writer whose snapshot
    predates a concurrent version gets 40001 instead, and the retry (a new transaction) gets the same 23514."""
    cfg = make.configuration(make.service())
    writer, other = login("configuration"), login("configuration")
    assert version(writer, cfg, 1) == 1
    with rejected("23514", "trg_configuration_versions_number"), writer.transaction():
        writer.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        version(writer, cfg, 1)
    writer.execute(f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {isolation}")
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        version(writer, cfg, 3)
    detail = json.loads(info.value.diag.message_detail or "null")
    assert detail == {"configuration_id": str(cfg), "current_version": 1, "expected_version": 3}

    # A concurrent version committed after the writer's snapshot.
    errors: list[psycopg.Error] = []
    with writer.transaction():
        writer.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        writer.execute("SELECT 1 FROM platform.configurations LIMIT 1")  # the snapshot
        assert version(other, cfg, 2) == 2  # another connection, committed
        try:
            with writer.transaction():
                version(writer, cfg, 2)
        except psycopg.Error as exc:
            errors.append(exc)
    if isolation == "READ COMMITTED":
        assert [e.sqlstate for e in errors] == ["23514"]
    else:
        assert [e.sqlstate for e in errors] == ["40001"]
    with pytest.raises(psycopg.errors.CheckViolation) as retry:
        version(writer, cfg, 2)  # the retry
    assert json.loads(retry.value.diag.message_detail or "null")["current_version"] == 2
    assert version(writer, cfg, 3) == 3  # the valid write


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_concurrent_writers_of_one_address_get_the_quiet_refusal(
    conn: psycopg.Connection[Any], login: Logins, isolation: str
) -> None:
    """Two services insert the same address at once: the second waits for the first (the unique index would make
    it wait too) and then, under READ COMMITTED, gets the quiet 23505 uq_users_email_lower, not the index's
    "Key (lower(email))=(...)"; under REPEATABLE READ, whose snapshot cannot see the first row, 40001 (retry).
    INSERT ... ON CONFLICT keeps its meaning."""
    first, second = login("identity"), login("identity")
    email = f"race.{uuid.uuid4().hex[:8]}@example.com"
    insert = "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, 'Racer', %s)"
    errors: list[psycopg.Error] = []

    def race() -> None:
        try:
            with second.transaction():
                second.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
                second.execute("SELECT 1")  # the snapshot, before the first commits
                second.execute(insert, (email.upper(), PASSWORD_HASH))
        except psycopg.Error as exc:
            errors.append(exc)

    with first.transaction():
        first.execute(insert, (email, PASSWORD_HASH))
        racer = threading.Thread(target=race)
        racer.start()
        for _ in range(400):  # until the second waits for the first
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
                (str(second.info.user),),
            ).fetchone()
            if waiting == (1,):
                break
            time.sleep(0.025)
        assert waiting == (1,), "the second writer never waited"
    racer.join(timeout=30)
    [err] = errors
    if isolation == "READ COMMITTED":
        assert (err.sqlstate, err.diag.constraint_name) == ("23505", "uq_users_email_lower")
    else:
        assert err.sqlstate == "40001"
    assert email not in error_text(err).lower()

    # ON CONFLICT is left to its arbiter: the taken address is skipped, not refused; a free one is inserted.
    skipped = first.execute(insert + " ON CONFLICT DO NOTHING RETURNING id", (email.upper(), PASSWORD_HASH))
    assert skipped.fetchall() == []
    added = first.execute(insert + " ON CONFLICT DO NOTHING RETURNING id", (f"free.{email}", PASSWORD_HASH))
    assert len(added.fetchall()) == 1


def test_a_bulk_insert_holds_a_bounded_number_of_key_locks(conn: psycopg.Connection[Any], login: Logins) -> None:
    """The quiet unique check locks each key it checks until commit, so that a concurrent writer of the same key
    waits. A transaction that inserts thousands of rows must not take a lock-table entry per row: the table is
    shared by every session (a seed of 9,000 API tokens ran the server out of shared memory). Past a budget per
    transaction the check still refuses committed duplicates quietly and leaves a concurrent one to the index."""
    identity = login("identity")
    with identity.transaction():
        identity.execute(
            "INSERT INTO platform.users (email, display_name, password_hash)"
            " SELECT 'bulk' || i || '@example.com', 'Bulk', %s FROM generate_series(1, 5000) i",
            (PASSWORD_HASH,),
        )
        held = identity.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
        ).fetchone()
        assert held is not None
        assert 0 < held[0] <= 256
        with rejected("23505", "uq_users_email_lower"):  # beyond the budget: still refused, still quiet
            identity.execute(
                "INSERT INTO platform.users (email, display_name, password_hash)"
                " VALUES ('BULK4999@example.com', 'B', %s)",
                (PASSWORD_HASH,),
            )


GUARDED = ("api_tokens", "configuration_versions", "users")


def test_each_quiet_check_is_generated_from_its_tables_rules_as_they_are(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """trg_<table>_validated runs platform.check_quietly_<table>() (revision 0065), whose body is what
    platform.quiet_checks_source makes of the table's constraints today: a revision that changes them and forgets
    install_quiet_checks fails here (shown by adding a CHECK in a transaction that is rolled back); installed
    again, the new rule refuses quietly."""
    triggers = conn.execute(
        "SELECT t.tgrelid::regclass::text, p.proname, p.prosrc = platform.quiet_checks_source(t.tgrelid)"
        "  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE t.tgname LIKE 'trg\\_%\\_validated' AND t.tgrelid::regclass::text LIKE 'platform.%' ORDER BY 1"
    ).fetchall()
    assert triggers == [(f"platform.{t}", f"check_quietly_{t}", True) for t in GUARDED]
    user = make.user(display_name=NAME)
    with conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE platform.users ADD CONSTRAINT ck_users_probe CHECK (display_name <> 'probe')")
        stale = conn.execute(
            "SELECT prosrc = platform.quiet_checks_source('platform.users') FROM pg_proc"
            " WHERE oid = 'platform.check_quietly_users()'::regprocedure"
        ).fetchone()
        assert stale == (False,)
        conn.execute("SELECT platform.install_quiet_checks('platform.users')")
        with rejected("23514", "ck_users_probe"), conn.transaction():
            conn.execute("UPDATE platform.users SET display_name = 'probe' WHERE id = %s", (user,))
        conn.execute("UPDATE platform.users SET display_name = 'not the probe' WHERE id = %s", (user,))
