"""Hostile writers against the schema's rules: the findings of the security review, one test per rule.

Each test is written before its fix: it fails on today's schema and passes once the rule holds, whatever names
the fix gives its rules, as long as they follow the naming convention (a CHECK is ``ck_<table>_...``, a trigger-
enforced rule ``trg_<table>_...``, a unique index ``uq_<table>_...``). A rejected write is asserted by SQLSTATE and
by the prefix of the constraint it names; the valid write next to it must still succeed. Writes are made through
a real LOGIN of the service that writes the table (made with ``platformdb.ops.roles.grant_login``, so whatever
that function sets on a login applies), not ``SET ROLE`` as the owner: ``session_user`` is the service's login.

Fix shapes assumed (the fix may pick other names within the conventions):
- audit_logs gets a column ``claimed_client_addr`` for the address a client claims (setting
  ``platformdb.client_addr``); ``client_addr`` keeps ``inet_client_addr()``;
- a rejected audit setting (``platformdb.actor_id``, ``actor_name``, ``request_id``, ``client_addr``) fails with a
  data or integrity SQLSTATE (class 22 or 23) whose message names the setting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.ops.roles import GROUP_ROLES, grant_login, grant_login_sql
from tests.factories import PASSWORD_HASH, Make
from tests.pg import Server
from tests.reliability.report import Record

CHECK_OR_TRIGGER = ("ck", "trg")
REFUSED_STATES = ("23514", "23000")  # check_violation, integrity_constraint_violation
TOLERANCE = "interval '1 minute'"  # how close to the database clock a stamp the database sets must be
SECRET_REF = "vault://kv/payments/db#password"  # the documented form (models/configuration.py)
HASH_PIECE = PASSWORD_HASH[30:60]  # salt and digest start: a DETAIL shows only a value's first 64 characters


@pytest.fixture(autouse=True)
def _counted(reliability: Record) -> None:
    """Each hostile write is one case in docs/RELIABILITY.md (``make reliability``)."""
    reliability.cases = 1


# --- helpers ---------------------------------------------------------------------------------------------
def error_text(err: psycopg.Error) -> str:
    """Everything a client (and the server log) is told about an error."""
    d = err.diag
    fields = (d.message_primary, d.message_detail, d.message_hint, d.context, d.internal_query)
    return "\n".join([str(err), *(f for f in fields if f)])


def refusal(
    err: psycopg.Error | None,
    table: str,
    states: tuple[str, ...] = REFUSED_STATES,
    kinds: tuple[str, ...] = CHECK_OR_TRIGGER,
) -> str | None:
    """None when ``err`` refuses a write the way a rule of ``table`` must (SQLSTATE in ``states``, naming a
    constraint ``<kind>_<table>_...``); otherwise what went wrong, for the test's report."""
    if err is None:
        return "accepted"
    name = err.diag.constraint_name
    if err.sqlstate not in states:
        return f"{err.sqlstate} ({name}): {err.diag.message_primary}"
    if name is None or not name.startswith(tuple(f"{k}_{table}_" for k in kinds)):
        return f"{err.sqlstate} names {name!r}, not a {'/'.join(k + '_' + table + '_' for k in kinds)}* rule"
    return None


def attempt(c: psycopg.Connection[Any], statement: Any, params: Any = None) -> psycopg.Error | None:
    """Run one statement (its own transaction on an autocommit connection); the error it raised, if any."""
    try:
        c.execute(statement, params)
    except psycopg.Error as exc:
        return exc
    return None


@contextmanager
def refused(
    table: str, states: tuple[str, ...] = REFUSED_STATES, kinds: tuple[str, ...] = CHECK_OR_TRIGGER
) -> Iterator[None]:
    """Assert that the block's write is refused by a rule of ``table`` (see :func:`refusal`)."""
    with pytest.raises(psycopg.Error) as info:
        yield
    problem = refusal(info.value, table, states, kinds)
    assert problem is None, problem


def names_setting(err: psycopg.Error, setting: str) -> str | None:
    """None when ``err`` is a clear up-front refusal of ``setting``; otherwise what is wrong with it."""
    if err.sqlstate is None or err.sqlstate[:2] not in ("22", "23"):
        return f"{err.sqlstate}: {err.diag.message_primary}"
    if setting not in (err.diag.message_primary or ""):
        return f"{err.sqlstate} ({err.diag.constraint_name}) does not name {setting}: {err.diag.message_primary}"
    return None


def set_settings(c: psycopg.Connection[Any], settings: dict[str, str]) -> None:
    for name, value in settings.items():
        c.execute("SELECT set_config(%s, %s, true)", (name, value))


def audited_write(c: psycopg.Connection[Any], settings: dict[str, str], name: str) -> psycopg.Error | None:
    """As a catalog login: in one transaction, set the audit settings and create environment ``name`` (an
    audited write); the error, if any."""
    try:
        with c.transaction():
            set_settings(c, settings)
            c.execute("INSERT INTO platform.environments (name) VALUES (%s)", (name,))
    except psycopg.Error as exc:
        return exc
    return None


def audit_row(conn: psycopg.Connection[Any], table: str, column: str, value: Any) -> dict[str, Any]:
    """The (only) audit row of the ``table`` row whose ``column`` is ``value``, as JSON (every column, including
    ones the fix adds)."""
    rows = conn.execute(
        f"SELECT to_jsonb(a) FROM platform.audit_logs a WHERE a.entity_type = %s AND a.after ->> '{column}' = %s",
        (table, value),
    ).fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]  # type: ignore[no-any-return]


class Logins:
    """Service logins for one test: each made by ``grant_login`` as a member of one group role, connected
    (autocommit) as itself; all dropped at the end of the test."""

    def __init__(self, db: URL, owner: psycopg.Connection[Any]) -> None:
        self.db = db
        self.owner = owner
        self.names: list[str] = []
        self.conns: list[psycopg.Connection[Any]] = []

    def new_name(self) -> str:
        name = f"hostile_{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def connect(self, name: str) -> psycopg.Connection[Any]:
        c = psycopg.connect(libpq_dsn(self.db.set(username=name, password=None)), autocommit=True)
        self.conns.append(c)
        return c

    def __call__(self, role: str) -> psycopg.Connection[Any]:
        name = self.new_name()
        grant_login(self.db, name, role)
        return self.connect(name)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.owner.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s)", (self.names,)
        ).fetchone() != (0,):
            time.sleep(0.05)
        for name in self.names:
            if self.owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                self.owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                self.owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def login(db: URL, conn: psycopg.Connection[Any]) -> Iterator[Logins]:
    logins = Logins(db, conn)
    yield logins
    logins.close()


def fill_every_lane(db: URL) -> list[str]:
    """One committed audited write in every lane of the audit chain (16 transactions holding their lane at
    once), so no lane head is the all-zero start; returns the heads as hex."""
    conns = [psycopg.connect(libpq_dsn(db)) for _ in range(16)]
    try:
        for c in conns:
            c.execute("INSERT INTO platform.teams (name, display_name) VALUES (%s, 'Lane')", (f"lane-{uuid.uuid4()}",))
        for c in conns:
            c.commit()
        heads = conns[0].execute("SELECT encode(last_hash, 'hex') FROM platform.audit_chain").fetchall()
    finally:
        for c in conns:
            c.close()
    assert "0" * 64 not in [h for (h,) in heads], "every lane was written"
    return [h for (h,) in heads]


# --- 5. errors reveal nothing the caller cannot read -----------------------------------------------------
def test_audit_errors_reveal_nothing_the_caller_cannot_read(
    db: URL, conn: psycopg.Connection[Any], make: Make, login: Logins
) -> None:
    """Finding 5. The SECURITY DEFINER audit trigger looks up the acting user's email; when its insert into
    audit_logs then fails a CHECK (a 129-character request id), the DETAIL ("Failing row contains ...") showed the
    caller the email, which it may not read, and the chain's hashes. Each audit setting is instead validated up
    front: the write is refused with a message naming the setting and revealing nothing else."""
    hidden = "hidden.person@example.com"
    actor = str(make.user(email=hidden))
    heads = fill_every_lane(db)
    catalog = login("catalog")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        catalog.execute("SELECT email FROM platform.users LIMIT 0")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        catalog.execute("SELECT last_hash FROM platform.audit_chain LIMIT 0")

    bad = {
        "platformdb.request_id": "r" * 129,
        "platformdb.actor_name": "a" * 321,
        "platformdb.actor_id": "not-a-uuid",
        "platformdb.client_addr": "999.1.1.1",
    }
    problems = []
    for i, (setting, value) in enumerate(bad.items()):
        settings = {"platformdb.actor_id": actor, setting: value}
        err = audited_write(catalog, settings, f"env-bad-{i}")
        if err is None:
            problems.append(f"{setting}={value[:20]!r}: accepted")
            continue
        text = error_text(err)
        if hidden in text:
            problems.append(f"{setting}: the error shows the actor's email: {err.diag.message_detail}")
        leaked = [h[:32] for h in heads if h[:32] in text]  # DETAIL shows at most 64 characters of a value
        if leaked:
            problems.append(f"{setting}: the error shows audit chain hashes {leaked}")
        if problem := names_setting(err, setting):
            problems.append(f"{setting}: {problem}")
    assert problems == []

    # The valid write, with the same actor: accepted and audited under the user's email.
    valid = {"platformdb.actor_id": actor, "platformdb.request_id": "r" * 128, "platformdb.client_addr": "192.0.2.1"}
    assert audited_write(catalog, valid, "env-good") is None
    assert audit_row(conn, "environments", "name", "env-good")["actor_name"] == hidden


def test_rejected_writes_do_not_echo_secrets_hashes_or_emails(
    conn: psycopg.Connection[Any], make: Make, login: Logins
) -> None:
    """Finding 5, for CHECKs on tables holding secrets, password hashes and personal data: the DETAIL of a CHECK
    violation echoes the whole row into the client's error and the server log. A write refused by such a rule
    is refused (23514, a ck_/trg_ rule of the table) without the plaintext secret, the secret reference, the
    password hash or the email in the error."""
    identity, configuration = login("identity"), login("configuration")
    plaintext = "hunter2-plaintext-password"
    cfg = make.configuration(make.service())
    user_email = "person@example.com"
    user = make.user(email=user_email)
    insert_user = "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, %s, %s)"
    cases: list[tuple[str, psycopg.Connection[Any], str, str, tuple[Any, ...], tuple[str, ...]]] = [
        (
            "a secret version with a plaintext value",
            configuration,
            "configuration_versions",
            "INSERT INTO platform.configuration_versions (configuration_id, kind, value, secret_ref)"
            " VALUES (%s, 'secret', %s, %s)",
            (cfg, Jsonb(plaintext), SECRET_REF),
            (plaintext, SECRET_REF),
        ),
        (
            "a user with a malformed email",
            identity,
            "users",
            insert_user,
            ("not-an-email", "Someone", PASSWORD_HASH),
            (HASH_PIECE,),
        ),
        (
            "a user with a padded display name",
            identity,
            "users",
            insert_user,
            ("other.person@example.com", " Padded", PASSWORD_HASH),
            (HASH_PIECE, "other.person@example.com"),
        ),
        (
            "an update to an empty display name",
            identity,
            "users",
            "UPDATE platform.users SET display_name = '' WHERE id = %s",
            (user,),
            (HASH_PIECE, user_email),
        ),
    ]
    problems = []
    for what, c, table, statement, params, secrets in cases:
        err = attempt(c, statement, params)
        if problem := refusal(err, table, ("23514",), CHECK_OR_TRIGGER):
            problems.append(f"{what}: {problem}")
        if err is not None:
            shown = [s for s in secrets if s in error_text(err)]
            if shown:
                problems.append(f"{what}: the error shows {shown}: {err.diag.message_detail}")
    assert problems == []

    # The valid writes, through the same logins.
    configuration.execute(
        "INSERT INTO platform.configuration_versions (configuration_id, kind, secret_ref) VALUES (%s, 'secret', %s)",
        (cfg, SECRET_REF),
    )
    identity.execute(insert_user, ("other.person@example.com", "Other Person", PASSWORD_HASH))
    identity.execute("UPDATE platform.users SET display_name = 'Renamed' WHERE id = %s", (user,))


# --- 7. lookalike emails and invisible display names -------------------------------------------------------
NFC_JOSE = unicodedata.normalize("NFC", "jos\u00e9@example.com")
NFD_JOSE = unicodedata.normalize("NFD", NFC_JOSE)
INVISIBLES = {
    "U+200B zero width space": "\u200b",
    "U+200C zero width non-joiner": "\u200c",
    "U+200D zero width joiner": "\u200d",
    "U+FEFF zero width no-break space (BOM)": "\ufeff",
    "U+2060 word joiner": "\u2060",
    "U+00AD soft hyphen": "\u00ad",
    "U+200E left-to-right mark": "\u200e",
    "U+200F right-to-left mark": "\u200f",
    "U+202E right-to-left override": "\u202e",
    "U+2066 left-to-right isolate": "\u2066",
}


def test_users_email_lookalikes_collide_or_are_rejected(make: Make, login: Logins) -> None:
    """Finding 7. Addresses that display alike are one address: the second is refused as a duplicate (23505, a
    uq_users_ rule) or as malformed (23514, a ck_/trg_users_ rule), never stored beside the first. Today NFC and
    NFD 'josé' and any address with an invisible character inserted are distinct and accepted."""
    identity = login("identity")
    insert = "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, 'Lookalike', %s)"
    groups: dict[str, list[str]] = {
        "NFC vs NFD": [NFC_JOSE, NFD_JOSE],
        "NFC vs NFD in the domain": [
            "kim@" + unicodedata.normalize("NFC", "ex\u00e4mple.com"),
            "kim@" + unicodedata.normalize("NFD", "ex\u00e4mple.com"),
        ],
        "case beyond ASCII": ["\u00c9LODIE@example.com", "\u00e9lodie@example.com"],
        "invisibles": ["alice@example.com"]
        + [f"al{ch}ice@example.com" for ch in INVISIBLES.values()]
        + [f"alice@exa{ch}mple.com" for ch in INVISIBLES.values()]
        + [f"{ch}alice@example.com" for ch in INVISIBLES.values()]
        + [f"alice@example.com{ch}" for ch in INVISIBLES.values()],
    }
    problems = []
    for group, emails in groups.items():
        stored = []
        for email in emails:
            err = attempt(identity, insert, (email, PASSWORD_HASH))
            if err is None:
                stored.append(ascii(email))
            elif err.sqlstate == "23505":
                if problem := refusal(err, "users", ("23505",), ("uq",)):
                    problems.append(f"{group} {email!a}: {problem}")
            elif problem := refusal(err, "users", ("23514",), CHECK_OR_TRIGGER):
                problems.append(f"{group} {email!a}: {problem}")
        if len(stored) > 1:
            problems.append(f"{group}: {len(stored)} lookalikes stored: {', '.join(stored)}")
    assert problems == []
    # The valid writes: the plain address was the one stored, and different addresses are still different.
    assert make.conn.execute("SELECT count(*) FROM platform.users WHERE email = 'alice@example.com'").fetchone() == (1,)
    identity.execute(insert, ("alicia@example.com", PASSWORD_HASH))
    identity.execute(insert, ("jose@example.com", PASSWORD_HASH))


@pytest.mark.parametrize("table", ["users", "teams"])
def test_display_names_reject_invisible_and_control_characters(make: Make, login: Logins, table: str) -> None:
    """Finding 7. A display name is what people see: invisible characters (zero-width, bidi controls, soft
    hyphen, BOM) and control characters (C0, DEL, C1) anywhere in it are refused (23514, a ck_/trg_ rule of the
    table). Today only leading and trailing whitespace is refused. (ZWJ is left out: emoji sequences use it.)"""
    identity = login("identity")
    bad = {name: f"Ali{ch}ce" for name, ch in INVISIBLES.items() if ch != "\u200d"}
    bad |= {
        "leading U+200B": "\u200bAlice",
        "U+2066..U+2069 isolate pair": "Bob \u2066evil\u2069",
        "newline": "Mallory\nAdmin",
        "carriage return": "Mallory\rAdmin",
        "tab": "Mallory\tAdmin",
        "ESC (terminal escape)": "Eve\x1b[31mred",
        "BEL": "Bell\x07",
        "U+0001": "Start\x01",
        "DEL": "Del\x7fete",
        "U+0085 next line (C1)": "Next\x85Line",
    }

    def insert(display_name: str) -> psycopg.Error | None:
        n = make.n()
        if table == "users":
            return attempt(
                identity,
                "INSERT INTO platform.users (email, display_name, password_hash) VALUES (%s, %s, %s)",
                (f"dn{n}@example.com", display_name, PASSWORD_HASH),
            )
        return attempt(
            identity, "INSERT INTO platform.teams (name, display_name) VALUES (%s, %s)", (f"dn-{n}", display_name)
        )

    problems = [
        f"{what}: {problem}"
        for what, name in bad.items()
        if (problem := refusal(insert(name), table, ("23514",), CHECK_OR_TRIGGER))
    ]
    assert problems == []
    for valid in (
        "Jos\u00e9 \u00d1\u00fa\u00f1ez",
        "Zo\u00eb \u00c5ngstr\u00f6m",
        "\u674e\u5c0f\u9f99",
        "O'Brien-Smith",
    ):
        assert insert(valid) is None, valid


# --- 8. deployment stamps ----------------------------------------------------------------------------------
def stamp_problem(
    writer: psycopg.Connection[Any], conn: psycopg.Connection[Any], deployment: uuid.UUID, assignment: str, column: str
) -> str | None:
    """A status move that also gives ``column`` a hostile value: refused (23514/23000, a ck_/trg_deployments_
    rule), or the stamp the database keeps is finite and close to its clock. None when so."""
    err = attempt(writer, f"UPDATE platform.deployments SET {assignment} WHERE id = %s", (deployment,))
    if err is not None:
        return refusal(err, "deployments", REFUSED_STATES, CHECK_OR_TRIGGER)
    row = conn.execute(
        f"SELECT {column}::text, isfinite({column}) AND {column} BETWEEN clock_timestamp() - {TOLERANCE}"
        f" AND clock_timestamp() + {TOLERANCE} FROM platform.deployments WHERE id = %s",
        (deployment,),
    ).fetchone()
    assert row is not None
    return None if row[1] else f"accepted and kept {column} = {row[0]}"


@pytest.mark.parametrize("writer_role", ["delivery", "owner"])
def test_deployment_stamps_are_set_once_on_their_status_move_near_the_clock(
    conn: psycopg.Connection[Any], make: Make, login: Logins, writer_role: str
) -> None:
    """Finding 8. started_at is set on entering in_progress and deployed_at on leaving the active statuses:
    each only on that move, finite and close to the database clock, and frozen afterwards. Today a finished
    deployment's stamps can be rewritten (deployed_at = 'infinity'), and a move takes any stamp the writer
    gives. Refusals are 23514/23000 naming a ck_/trg_deployments_ rule; on its own move a hostile stamp may be
    refused or replaced by the clock. Through the delivery service's login and as the owner."""
    writer = conn if writer_role == "owner" else login("delivery")
    service = make.service()
    make.release(service)

    def deployment(*path: str) -> uuid.UUID:
        d = make.deployment(service, make.environment())
        make.set_status(d, *path)
        return d

    problems: list[str] = []

    def must_refuse(what: str, d: uuid.UUID, assignment: str) -> None:
        err = attempt(writer, f"UPDATE platform.deployments SET {assignment} WHERE id = %s", (d,))
        if problem := refusal(err, "deployments", REFUSED_STATES, CHECK_OR_TRIGGER):
            problems.append(f"{what} ({assignment}): {problem}")

    # Not on its move: a pending deployment has no stamps, given at insert or later.
    err = attempt(
        writer,
        "INSERT INTO platform.deployments (service_id, version, environment_id, started_at)"
        " VALUES (%s, '1.0.0', %s, clock_timestamp())",
        (service, make.environment()),
    )
    if problem := refusal(err, "deployments", REFUSED_STATES, CHECK_OR_TRIGGER):
        problems.append(f"insert pending with started_at: {problem}")
    must_refuse("pending", deployment(), "started_at = clock_timestamp()")
    must_refuse("pending", deployment(), "deployed_at = clock_timestamp()")

    # On its move: finite and near the clock.
    for stamp in ("2000-01-01", "2999-01-01", "infinity", "-infinity"):
        d = deployment()
        move = f"status = 'in_progress', started_at = '{stamp}'"
        if problem := stamp_problem(writer, conn, d, move, "started_at"):
            problems.append(f"{move}: {problem}")
    for stamp in ("2999-01-01", "infinity"):
        d = deployment("in_progress")
        move = f"status = 'succeeded', deployed_at = '{stamp}'"
        if problem := stamp_problem(writer, conn, d, move, "deployed_at"):
            problems.append(f"{move}: {problem}")

    # Frozen afterwards.
    must_refuse("in_progress", deployment("in_progress"), "started_at = '2999-01-01'")
    must_refuse("in_progress", deployment("in_progress"), "started_at = started_at - interval '1 hour'")
    must_refuse(
        "moving to succeeded",
        deployment("in_progress"),
        "status = 'succeeded', started_at = started_at - interval '1 day'",
    )
    must_refuse("succeeded", deployment("in_progress", "succeeded"), "deployed_at = 'infinity'")
    must_refuse("succeeded", deployment("in_progress", "succeeded"), "deployed_at = deployed_at + interval '1 second'")
    must_refuse("succeeded", deployment("in_progress", "succeeded"), "started_at = started_at - interval '1 hour'")
    must_refuse(
        "moving to rolled_back",
        deployment("in_progress", "succeeded"),
        "status = 'rolled_back', deployed_at = clock_timestamp() + interval '1 hour'",
    )
    must_refuse("cancelled", deployment("cancelled"), "deployed_at = 'infinity'")
    assert problems == []

    # The valid writes, by the same writer: every move stamps what it should, near the clock, once. The move to
    # rolled_back needs a succeeded rollback (trg_deployments_rolled_back_has_rollback, revision 0024), here of
    # the same release, which the writer finishes first; the database then makes the move and the writer's own
    # UPDATE changes no status.
    environment = make.environment()
    row = writer.execute(
        "INSERT INTO platform.deployments (service_id, version, environment_id) VALUES (%s, '1.0.0', %s) RETURNING id",
        (service, environment),
    ).fetchone()
    assert row is not None
    d = row[0]

    def roll_back() -> None:
        rollback = make.deployment(service, environment, rollback_of_id=d)
        for status in ("in_progress", "succeeded"):
            writer.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (status, rollback))

    near = f"BETWEEN clock_timestamp() - {TOLERANCE} AND clock_timestamp()"
    stamps = "SELECT started_at, deployed_at FROM platform.deployments WHERE id = %s"
    for status, check in (
        ("in_progress", f"started_at {near} AND deployed_at IS NULL"),
        ("succeeded", f"deployed_at {near} AND deployed_at >= started_at"),
        ("rolled_back", "true"),
    ):
        before = conn.execute(stamps, (d,)).fetchone()
        if status == "rolled_back":
            roll_back()
        writer.execute("UPDATE platform.deployments SET status = %s WHERE id = %s", (status, d))
        assert conn.execute(f"SELECT status, {check} FROM platform.deployments WHERE id = %s", (d,)).fetchone() == (
            status,
            True,
        )
        after = conn.execute(stamps, (d,)).fetchone()
        assert before is not None
        assert after is not None
        assert [a for a, b in zip(after, before, strict=True) if b is not None] == [b for b in before if b is not None]


# --- 9. sizes ---------------------------------------------------------------------------------------------
def test_jsonb_values_have_bounded_sizes(make: Make, login: Logins) -> None:
    """Finding 9. A configuration value and a metric series' labels have a bounded size: a clearly absurd one
    (5 MB value, 100 KB label set) is refused (23514, a ck_/trg_ rule of the table) through the writing service's
    login; a normal one is accepted. Today the 5 MB value is accepted (labels already stop at 1 KB)."""
    configuration, metrics = login("configuration"), login("metrics-writer")
    cfg = make.configuration(make.service())
    series = {"metric_id": make.metric(), "service_id": make.service(), "environment_id": make.environment()}
    insert_value = (
        "INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES (%s, 'plain', %s)"
    )
    insert_series = (
        "INSERT INTO platform.metric_series (metric_id, service_id, environment_id, labels)"
        " VALUES (%(metric_id)s, %(service_id)s, %(environment_id)s, %(labels)s)"
    )
    huge_labels = {f"label_{i}": "v" * 90 for i in range(1000)}  # about 100 KB
    problems = [
        f"{what}: {problem}"
        for what, table, err in (
            (
                "5 MB configuration value",
                "configuration_versions",
                attempt(configuration, insert_value, (cfg, Jsonb("x" * 5_000_000))),
            ),
            (
                "100 KB label set",
                "metric_series",
                attempt(metrics, insert_series, series | {"labels": Jsonb(huge_labels)}),
            ),
        )
        if (problem := refusal(err, table, ("23514",), CHECK_OR_TRIGGER))
    ]
    assert problems == []
    normal = {"timeout_ms": 1500, "hosts": [f"db-{i}.internal:5432" for i in range(20)], "note": "n" * 500}
    configuration.execute(insert_value, (cfg, Jsonb(normal)))
    metrics.execute(insert_series, series | {"labels": Jsonb({"route": "/login", "method": "POST"})})


def test_configuration_keys_per_service_are_bounded(conn: psycopg.Connection[Any], make: Make, login: Logins) -> None:
    """Finding 9. The number of configuration keys of one service is bounded: 20,000 keys in one statement are
    refused (23514, a ck_/trg_configurations_ rule) and none is kept; a service with ten keys is fine. Today all
    20,000 are accepted."""
    configuration = login("configuration")
    service = make.service()
    many = (
        "INSERT INTO platform.configurations (service_id, key) SELECT %s, 'KEY_' || g FROM generate_series(1, %s) AS g"
    )
    with refused("configurations", ("23514",)):
        configuration.execute(many, (service, 20_000))
    assert conn.execute(
        "SELECT count(*) FROM platform.configurations WHERE service_id = %s", (service,)
    ).fetchone() == (0,)
    configuration.execute(many, (service, 10))
    configuration.execute(many, (make.service(), 10))


# --- 10. read-only writes nothing ---------------------------------------------------------------------------
def test_readonly_login_cannot_write_large_objects_or_temp_tables(login: Logins) -> None:
    """Finding 10. A platform_readonly login writes nothing: creating a large object (lo_create, lo_from_bytea)
    is refused with 42501, and so is CREATE TEMP TABLE. (temp_file_limit is no alternative: it bounds sort and
    hash spill files, not temporary tables, whose size no setting limits.) Today all three succeed."""
    readonly = login("readonly")
    problems = []
    for statement in ("SELECT lo_create(0)", "SELECT lo_from_bytea(0, '\\x00'::bytea)"):
        err = attempt(readonly, statement)
        if err is None or err.sqlstate != "42501":
            problems.append(f"{statement}: {'accepted' if err is None else err.sqlstate}")
    err = attempt(readonly, "CREATE TEMP TABLE spill (x text)")
    if err is None or err.sqlstate != "42501":
        problems.append(f"CREATE TEMP TABLE: {'accepted' if err is None else err.sqlstate}")
    assert problems == []
    # The valid reads.
    readonly.execute("SELECT name FROM platform.services LIMIT 1")
    readonly.execute("SELECT count(*) FROM platform.audit_logs")


# --- 12. secret references carry no credential ----------------------------------------------------------------
def test_secret_ref_carries_no_credential(make: Make, login: Logins) -> None:
    """Finding 12. A secret reference points into a secret manager; it carries no credential: no userinfo
    (user:password@), no query string (?token=...), and only allow-listed schemes. Each bad reference is refused
    (23514, a ck_/trg_configuration_versions_ rule) through the configuration service's login; the documented
    form (vault://kv/payments/db#password) is still accepted. Today every one below is accepted."""
    configuration = login("configuration")
    cfg = make.configuration(make.service())
    insert = (
        "INSERT INTO platform.configuration_versions (configuration_id, kind, secret_ref) VALUES (%s, 'secret', %s)"
    )
    bad = [
        "postgresql://admin:pw@host/db",
        "mysql://root:root@db:3306/app",
        "redis://:pw@cache:6379/0",
        "https://user:pass@secrets.example.com/v1/db",
        "vault://admin:pw@vault.internal/kv/payments#password",
        "vault://s.hvsTOKEN@vault.internal/kv/payments#password",
        "vault://kv/payments/db?token=s.hvsTOKEN#password",
        "vault://kv/payments/db?#password",
        "aws-sm://prod/payments?AWSAccessKeyId=AKIAEXAMPLE&Signature=abc",
        "file:///etc/shadow",
    ]
    problems = [
        f"{ref}: {problem}"
        for ref in bad
        if (
            problem := refusal(
                attempt(configuration, insert, (cfg, ref)), "configuration_versions", ("23514",), CHECK_OR_TRIGGER
            )
        )
    ]
    assert problems == []
    configuration.execute(insert, (cfg, SECRET_REF))
    configuration.execute(insert, (cfg, "vault://secret/data/payments/api#token"))


# --- 13. grant_login --------------------------------------------------------------------------------------
def memberships(conn: psycopg.Connection[Any], login_name: str) -> list[str]:
    """The platformdb group roles ``login_name`` is a member of, directly or through other roles (from
    pg_auth_members: pg_has_role would say a superuser is a member of every role)."""
    rows = conn.execute(
        """WITH RECURSIVE up(roleid) AS (
             SELECT m.roleid FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s
             UNION SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.roleid)
           SELECT r.rolname FROM up JOIN pg_roles r ON r.oid = up.roleid WHERE r.rolname = ANY(%s) ORDER BY 1""",
        (login_name, list(GROUP_ROLES.values())),
    ).fetchall()
    return [r for (r,) in rows]


def test_grant_login_leaves_exactly_one_group_and_no_privileged_attributes(
    db: URL, conn: psycopg.Connection[Any], login: Logins
) -> None:
    """Finding 13. grant_login on an existing login (here one with SUPERUSER, CREATEROLE, CREATEDB, REPLICATION,
    BYPASSRLS and already a member of platform_catalog) left all of that in place and added a second group.
    Afterwards the login is a LOGIN member of exactly the one group granted, with none of those attributes."""
    name = login.new_name()
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN SUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS").format(sql.Identifier(name))
    )
    conn.execute(sql.SQL("GRANT platform_catalog TO {}").format(sql.Identifier(name)))
    grant_login(db, name, "identity")
    row = conn.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = %s",
        (name,),
    ).fetchone()
    assert (row, memberships(conn, name)) == ((True, False, False, False, False, False), ["platform_identity"])
    # The valid write, as the login: the identity service's work, and only that.
    identity = login.connect(name)
    identity.execute("INSERT INTO platform.teams (name, display_name) VALUES ('granted', 'Granted')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        identity.execute("INSERT INTO platform.environments (name) VALUES ('not-mine')")


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>``) is one of
    ``password``."""
    scheme, iter_salt, keys = verifier.split("$")
    iterations, salt = iter_salt.split(":")
    stored_key, server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return (
        scheme == "SCRAM-SHA-256"
        and base64.b64decode(stored_key) == hashlib.sha256(client_key).digest()
        and base64.b64decode(server_key) == hmac.new(salted, b"Server Key", "sha256").digest()
    )


def test_grant_login_sends_the_password_as_a_scram_verifier(
    server: Server, db: URL, conn: psycopg.Connection[Any], login: Logins
) -> None:
    """Finding 13. The password travels as a SCRAM-SHA-256 verifier computed client-side, never as plaintext: not
    in the SQL grant_login_sql prints for DBAs, not in the statements grant_login sends (the server logs them
    here: log_statement = all for the database), and pg_authid holds a verifier of that password. Today the SQL
    says PASSWORD '<plaintext>'."""
    password = f"pw-{uuid.uuid4().hex}"
    name = login.new_name()
    conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(str(db.database))))
    log_size = server.cluster.log_file.stat().st_size
    grant_login(db, name, "configuration", password=password)
    problems = []
    for exists in (False, True):
        printed = grant_login_sql(name, "configuration", password=password, exists=exists).as_string(conn)
        if password in printed:
            problems.append(f"grant_login_sql(exists={exists}) holds the plaintext password: {printed!r}")
    with server.cluster.log_file.open("rb") as log:
        log.seek(log_size)
        if password.encode() in log.read():
            problems.append("the server log holds the plaintext password")
    row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,)).fetchone()
    assert row is not None
    if not (row[0] or "").startswith("SCRAM-SHA-256$") or not scram_matches(row[0], password):
        problems.append(f"pg_authid holds no SCRAM-SHA-256 verifier of the password: {(row[0] or '')[:20]}...")
    assert problems == []
    assert memberships(conn, name) == ["platform_configuration"]


def test_grant_login_clears_settings_that_outrank_the_group(
    db: URL, conn: psycopg.Connection[Any], login: Logins
) -> None:
    """Finding 13, further (not in the review): an existing login may carry role settings a superuser made, which
    apply at every login even without SUPERUSER. With session_replication_role = replica no ordinary trigger
    fires, so the login's writes skip the audit trail and every trg_ rule. After grant_login the login's
    sessions run with session_replication_role = origin and its writes are audited; it is no longer a member
    of predefined roles that outrank the group (pg_write_all_data)."""
    name = login.new_name()
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    conn.execute(sql.SQL("ALTER ROLE {} SET session_replication_role = replica").format(ident))
    conn.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET session_replication_role = replica").format(
            ident, sql.Identifier(str(db.database))
        )
    )
    conn.execute(sql.SQL("GRANT pg_write_all_data TO {}").format(ident))
    grant_login(db, name, "catalog")
    catalog = login.connect(name)
    problems = []
    if catalog.execute("SHOW session_replication_role").fetchone() != ("origin",):
        problems.append("the login's sessions still run with session_replication_role = replica")
    if catalog.execute("SELECT pg_has_role(session_user, 'pg_write_all_data', 'USAGE')").fetchone() != (False,):
        problems.append("the login still holds pg_write_all_data")
    catalog.execute("INSERT INTO platform.environments (name) VALUES ('audited')")
    audited = conn.execute(
        "SELECT db_role FROM platform.audit_logs WHERE entity_type = 'environments' AND after ->> 'name' = 'audited'"
    ).fetchall()
    if audited != [(name,)]:
        problems.append(f"the login's write was not audited: {audited}")
    assert problems == []


# --- 14. ids and creation times ----------------------------------------------------------------------------
# table -> (service that writes it, INSERT of a row with a backdated created_at (and updated_at), whether the
# service may UPDATE the table; if not, the id UPDATE is tried as the owner).
BACKDATED = "'2000-01-01 00:00:00+00'"
ID_TABLES: dict[str, tuple[str, str, bool]] = {
    "users": (
        "identity",
        "INSERT INTO platform.users (email, display_name, password_hash, created_at, updated_at)"
        f" VALUES ('backdated@example.com', 'Backdated', %(hash)s, {BACKDATED}, {BACKDATED})",
        True,
    ),
    "teams": (
        "identity",
        "INSERT INTO platform.teams (name, display_name, created_at, updated_at)"
        f" VALUES ('backdated', 'Backdated', {BACKDATED}, {BACKDATED})",
        True,
    ),
    "roles": (
        "identity",
        f"INSERT INTO platform.roles (name, created_at, updated_at) VALUES ('backdated', {BACKDATED}, {BACKDATED})",
        True,
    ),
    "environments": (
        "catalog",
        "INSERT INTO platform.environments (name, created_at, updated_at)"
        f" VALUES ('backdated', {BACKDATED}, {BACKDATED})",
        True,
    ),
    "services": (
        "catalog",
        "INSERT INTO platform.services (name, owner_team_id, created_at, updated_at)"
        f" VALUES ('backdated', %(team)s, {BACKDATED}, {BACKDATED})",
        True,
    ),
    "deployments": (
        "delivery",
        "INSERT INTO platform.deployments (service_id, version, environment_id, created_at,"
        f" updated_at) VALUES (%(service)s, '1.0.0', %(environment)s, {BACKDATED}, {BACKDATED})",
        True,
    ),
    "metrics": (
        "metrics-writer",
        "INSERT INTO platform.metrics (name, unit, kind, created_at, updated_at)"
        f" VALUES ('backdated_total', 'requests', 'counter', {BACKDATED}, {BACKDATED})",
        True,
    ),
    "releases": (
        "delivery",
        "INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest,"
        f" created_at) VALUES (%(service)s, '9.9.9', %(sha)s, %(digest)s, {BACKDATED})",
        False,
    ),
    "configurations": (
        "configuration",
        "INSERT INTO platform.configurations (service_id, key, created_at)"
        f" VALUES (%(service)s, 'BACKDATED', {BACKDATED})",
        False,
    ),
}


@pytest.mark.parametrize("table", list(ID_TABLES))
def test_ids_and_creation_times_are_set_by_the_database(
    conn: psycopg.Connection[Any], make: Make, login: Logins, table: str
) -> None:
    """Finding 14. A row's id and created_at (and updated_at) are the database's: an explicit backdated
    created_at/updated_at on insert is refused (23514/23000, a ck_/trg_ rule of the table) or replaced by the
    clock, and an UPDATE of the id is refused, even of a row nothing references (a referenced one is held by its
    foreign keys). UPDATE of created_at stays refused. Through the writing service's login."""
    role, insert, may_update = ID_TABLES[table]
    service_login = login(role)
    service = make.service()
    make.release(service)
    params = {
        "hash": PASSWORD_HASH,
        "team": make.team(),
        "service": service,
        "environment": make.environment(),
        "sha": "0" * 40,
        "digest": "sha256:" + "0" * 64,
    }
    stamps = ["created_at", "updated_at"] if "updated_at" in insert else ["created_at"]
    fresh = " AND ".join(f"{c} >= now() - {TOLERANCE}" for c in stamps)
    problems = []
    try:
        inserted = service_login.execute(f"{insert} RETURNING id", params).fetchone()
    except psycopg.Error as err:
        if problem := refusal(err, table):
            problems.append(f"insert with a backdated {'/'.join(stamps)}: {problem}")
        inserted = conn.execute(insert.replace(BACKDATED, "DEFAULT") + " RETURNING id", params).fetchone()
    else:
        kept = conn.execute(
            f"SELECT {fresh}, concat_ws(', ', {', '.join(stamps)}) FROM platform.{table} WHERE id = %s", inserted
        ).fetchone()
        assert kept is not None
        if not kept[0]:
            problems.append(f"insert with a backdated {'/'.join(stamps)}: accepted and kept {kept[1]}")
    assert inserted is not None
    row_id = inserted[0]
    updater = service_login if may_update else conn
    new_id = "DEFAULT" if table == "metrics" else "gen_random_uuid()"  # metrics.id is GENERATED ALWAYS
    # created_at first: once an id UPDATE is (wrongly) accepted, WHERE id = row_id would match nothing.
    for what, assignment in (("created_at", "created_at = created_at - interval '1 day'"), ("id", f"id = {new_id}")):
        err = attempt(updater, f"UPDATE platform.{table} SET {assignment} WHERE id = %s", (row_id,))
        if problem := refusal(err, table):
            problems.append(f"UPDATE of {what}{'' if may_update else ' (as the owner)'}: {problem}")
    assert problems == []
    # The valid write: the same insert without the stamps, through the service's login.
    valid = insert.replace(BACKDATED, "DEFAULT")
    for old, new in (("backdated", "fresh"), ("9.9.9", "9.9.10"), ("BACKDATED", "FRESH")):
        valid = valid.replace(old, new)
    service_login.execute(valid, params | {"environment": make.environment()})


# --- 15. configuration numbering under REPEATABLE READ --------------------------------------------------------
def test_configuration_numbering_race_under_repeatable_read_gets_the_documented_error(
    conn: psycopg.Connection[Any], make: Make, login: Logins
) -> None:
    """Finding 15. Two REPEATABLE READ transactions of the configuration service add the next version of one key
    at once. The loser waits on the key's row lock, then numbers from its old snapshot and today fails with 23505
    on pk_configuration_versions. It must get the documented refusal: 23514 naming the numbering trigger
    (trg_configuration_versions_...), or 40001 (serialization_failure: retry the transaction), which is what
    PostgreSQL itself raises when a REPEATABLE READ transaction cannot see a concurrent change it depends on.
    Either way the versions stay 1, 2, 3 without gaps once the loser retries."""
    cfg = make.configuration(make.service())
    make.config_version(cfg, 1)
    winner, loser = login("configuration"), login("configuration")
    insert = "INSERT INTO platform.configuration_versions (configuration_id, kind, value) VALUES (%s, 'plain', %s)"
    for c in (winner, loser):
        c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        c.execute("SELECT count(*) FROM platform.configuration_versions")  # takes the snapshot
    winner.execute(insert, (cfg, Jsonb(2)))
    outcome: dict[str, psycopg.Error | None] = {}

    def lose() -> None:
        outcome["err"] = attempt(loser, insert, (cfg, Jsonb(3)))

    thread = threading.Thread(target=lose, name="rr-loser")
    thread.start()
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline
        and thread.is_alive()
        and conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (loser.info.backend_pid,)
        ).fetchone()
        != ("Lock",)
    ):
        time.sleep(0.02)
    winner.execute("COMMIT")
    thread.join(timeout=30)
    assert not thread.is_alive()
    loser.execute("ROLLBACK")
    err = outcome["err"]
    assert err is not None, "the loser's version was accepted from a stale snapshot"
    if err.sqlstate != "40001":
        problem = refusal(err, "configuration_versions", ("23514",), ("trg",))
        assert problem is None, f"{problem} (expected 40001, or 23514 naming the numbering trigger)"
    # The valid write: the loser retries in a new REPEATABLE READ transaction and gets the next number.
    loser.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    loser.execute(insert, (cfg, Jsonb(3)))
    loser.execute("COMMIT")
    rows = conn.execute(
        "SELECT version FROM platform.configuration_versions WHERE configuration_id = %s ORDER BY 1", (cfg,)
    ).fetchall()
    assert [v for (v,) in rows] == [1, 2, 3]


# --- 16. audit settings: log injection and the claimed client address -------------------------------------
CONTROL = {
    "newline": "\n",
    "carriage return": "\r",
    "ESC": "\x1b",
    "U+0001": "\x01",
    "U+001F": "\x1f",
    "DEL": "\x7f",
    "U+0085 next line (C1)": "\x85",
}


def test_audit_settings_reject_control_characters(conn: psycopg.Connection[Any], login: Logins) -> None:
    """Finding 16. actor_name and request_id are written into every audit row and from there into logs and
    dashboards: a newline, carriage return, ESC or other control character (C0, DEL, C1) in them forges lines or
    terminal output. Either the write is refused with an error naming the setting (SQLSTATE class 22 or 23), or
    the audit row keeps none of the control characters. Today they are stored as given."""
    catalog = login("catalog")
    problems = []
    for i, (what, ch) in enumerate(CONTROL.items()):
        for setting, column in (("platformdb.actor_name", "actor_name"), ("platformdb.request_id", "request_id")):
            name = f"env-ctl-{i}-{column.replace('_', '-')}"
            value = f"alice{ch}2026-12-01 INFO forged line{ch}[0m"
            err = audited_write(catalog, {setting: value}, name)
            if err is not None:
                if problem := names_setting(err, setting):
                    problems.append(f"{setting} with {what}: {problem}")
                continue
            stored = audit_row(conn, "environments", "name", name)[column]
            if any(c in stored for c in CONTROL.values()) or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in stored):
                problems.append(f"{setting} with {what}: stored as {stored!r}")
    assert problems == []
    # The valid write.
    assert (
        audited_write(catalog, {"platformdb.actor_name": "alice", "platformdb.request_id": "req-42"}, "env-ok") is None
    )
    row = audit_row(conn, "environments", "name", "env-ok")
    assert (row["actor_name"], row["request_id"]) == ("alice", "req-42")


def test_audit_keeps_the_claimed_client_addr_apart_from_the_connection_address(
    conn: psycopg.Connection[Any], login: Logins
) -> None:
    """Finding 16. platformdb.client_addr is what the service claims about its end user; inet_client_addr() is
    where the connection really comes from. Today the claim replaces the real address in client_addr. The audit
    row keeps both, apart: client_addr is the connection's address (NULL over a Unix socket, as here) and the
    claim goes to a new column, assumed to be named claimed_client_addr (NULL when nothing is claimed)."""
    catalog = login("catalog")
    real = catalog.execute("SELECT inet_client_addr()::text").fetchone()
    assert real is not None
    assert audited_write(catalog, {"platformdb.client_addr": "203.0.113.7"}, "env-claimed") is None
    assert audited_write(catalog, {}, "env-unclaimed") is None
    claimed, unclaimed = (audit_row(conn, "environments", "name", n) for n in ("env-claimed", "env-unclaimed"))
    assert "claimed_client_addr" in claimed, f"audit_logs has no claimed_client_addr column: {sorted(claimed)}"
    assert (claimed["client_addr"], claimed["claimed_client_addr"]) == (real[0], "203.0.113.7")
    assert (unclaimed["client_addr"], unclaimed["claimed_client_addr"]) == (real[0], None)
