"""Identity rules: one test per rule, the violating write rejected by name, the valid one accepted."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import (
    PASSWORD_HASH,
    WELL_KNOWN_PERMISSIONS,
    Make,
    assert_created_at_trigger,
    assert_keys_trigger,
    assert_updated_at_trigger,
    delete_by_id,
    rejected,
    restrict_sqlstate,
)


def test_users_email_is_unique_case_insensitively(make: Make) -> None:
    make.user(email="Ann@Example.com")
    with rejected("23505", "uq_users_email_lower"):
        make.user(email="ann@example.COM")
    assert make.count("users") == 1


@pytest.mark.parametrize("email", ["no-at-sign", "two@@example.com", "a b@example.com", "x@localhost"])
def test_users_email_format(make: Make, email: str) -> None:
    with rejected("23514", "ck_users_email_format"):
        make.user(email=email)
    make.user(email="first.last+tag@sub.example.org")


@pytest.mark.parametrize(
    "email",
    [
        "jos\u00e9@example.com",  # NFC
        "jose\u0301@example.com",  # NFD: looks the same
        "\u00c9LODIE@example.com",  # lower() does not fold it under LC_CTYPE=C
        "kim@ex\u00e4mple.com",  # an internationalized domain not in punycode
        "\uff41lice@example.com",  # FULLWIDTH LATIN SMALL LETTER A
        "al\u200bice@example.com",  # ZERO WIDTH SPACE
        "alice@example.com\u202e",  # RIGHT-TO-LEFT OVERRIDE
        "\ufeffalice@example.com",  # BOM
        "ali\x7fce@example.com",  # DEL
        "ali\x01ce@example.com",  # a C0 control
    ],
)
def test_users_email_printable_ascii(make: Make, email: str) -> None:
    """Addresses are printable ASCII: look-alikes are the same characters, and lower() folds all of them on any
    server, so uq_users_email_lower makes them one address."""
    with rejected("23514", "ck_users_email_printable_ascii"):
        make.user(email=email)
    make.user(email="jose@example.com")
    make.user(email="kim@xn--exmple-cua.com")  # the punycode form of ex\u00e4mple.com
    make.user(email="o'brien+tag!#$%&*/=?^_`{|}~-@example.org")
    with rejected("23505", "uq_users_email_lower"):
        make.user(email="JOSE@EXAMPLE.COM")
    assert make.count("users") == 3


@pytest.mark.parametrize("password_hash", ["hunter2", "", "$argon2id$v=19$m=1,t=1,p=1$", "$md5$abc"])
def test_users_password_hash_format(make: Make, password_hash: str) -> None:
    with rejected("23514", "ck_users_password_hash_format"):
        make.user(password_hash=password_hash)
    make.user(password_hash=PASSWORD_HASH)
    make.user(password_hash="$2b$12$" + "a" * 53)


def test_users_are_never_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    user = make.user()
    with rejected("23000", "trg_users_no_delete"):
        conn.execute("DELETE FROM platform.users WHERE id = %s", (user,))
    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (user,))
    assert make.count("users") == 1


@pytest.mark.parametrize("display_name", ["", "x" * 201, " Ann", "Ann ", "  ", "\tAnn", "Ann\n"])
def test_users_display_name_length_and_trimmed(make: Make, display_name: str) -> None:
    with rejected("23514", "ck_users_display_name_length"):
        make.user(display_name=display_name)
    make.user(display_name="x" * 200)
    make.user(display_name="A")
    assert make.count("users") == 2


INVISIBLE_OR_CONTROL = [
    "Ali\u200bce",  # ZERO WIDTH SPACE
    "Ali\u200cce",  # ZERO WIDTH NON-JOINER
    "Ali\u00adce",  # SOFT HYPHEN
    "Ali\ufeffce",  # BOM
    "Ali\u2060ce",  # WORD JOINER
    "Ali\u200ece",  # LEFT-TO-RIGHT MARK
    "Ali\u061cce",  # ARABIC LETTER MARK
    "Bob \u202eevil",  # RIGHT-TO-LEFT OVERRIDE
    "Bob \u2066evil\u2069",  # an isolate pair
    "Mallory\nAdmin",
    "Mallory\tAdmin",
    "Eve\x1b[31mred",
    "Del\x7fete",
    "Next\x85Line",
    "Tag\U000e0041",  # TAG LATIN CAPITAL LETTER A: invisible text
]
VISIBLE = [
    "Jos\u00e9 \u00d1\u00fa\u00f1ez",
    "\u674e\u5c0f\u9f99",
    "O'Brien-Smith",
    "Family \U0001f468\u200d\U0001f469\u200d\U0001f467",
]


@pytest.mark.parametrize("display_name", INVISIBLE_OR_CONTROL)
def test_users_display_name_visible(make: Make, display_name: str) -> None:
    """A display name is what people see: no control character and no invisible format character anywhere in it
    (the zero width joiner of emoji sequences excepted)."""
    with rejected("23514", "ck_users_display_name_visible"):
        make.user(display_name=display_name)
    for name in VISIBLE:
        make.user(display_name=name)
    assert make.count("users") == len(VISIBLE)


def test_users_deactivated_after_created(conn: psycopg.Connection[Any], make: Make) -> None:
    with rejected("23514", "ck_users_deactivated_after_created"):
        make.user(deactivated_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    user = make.user()
    with rejected("23514", "ck_users_deactivated_after_created"):
        conn.execute(
            "UPDATE platform.users SET deactivated_at = created_at - interval '1 second' WHERE id = %s", (user,)
        )
    conn.execute("UPDATE platform.users SET deactivated_at = created_at WHERE id = %s", (user,))
    assert make.count("users") == 1


OLD = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def old_row(make: Make, table: str) -> tuple[str, tuple[Any, ...], str]:
    """A row of an identity table created (and last updated) in 2000: (where, params, a real change to it)."""
    if table == "team_memberships":
        team, user = make.team(), make.user()
        make.insert(table, "team_id", team_id=team, user_id=user, created_at=OLD, updated_at=OLD)
        return "team_id = %s AND user_id = %s", (team, user), "role = 'maintainer'"
    if table == "role_grants":
        row_id = make.grant(make.user(), make.role(), created_at=OLD, updated_at=OLD)
        return "id = %s", (row_id,), "expires_at = now() + interval '1 day'"
    factory = {"users": make.user, "teams": make.team, "roles": make.role, "permissions": make.permission}[table]
    extra = {"name": "deployment:create"} if table == "permissions" else {}
    column = "description" if table in ("roles", "permissions") else "display_name"
    return "id = %s", (factory(created_at=OLD, updated_at=OLD, **extra),), f"{column} = 'Changed'"


@pytest.mark.parametrize(
    ("table", "trigger"),
    [
        ("users", "trg_users_updated_at"),
        ("teams", "trg_teams_updated_at"),
        ("team_memberships", "trg_team_memberships_updated_at"),
        ("roles", "trg_roles_updated_at"),
        ("permissions", "trg_permissions_updated_at"),
        ("role_grants", "trg_role_grants_updated_at"),
    ],
)
def test_identity_updated_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """An UPDATE stamps updated_at with its transaction's time, even when the writer sets another value;
    created_at is when the row was inserted, and the same trigger refuses to move it."""
    where, params, change = old_row(make, table)
    assert_updated_at_trigger(conn, table, where, params, change, guard=trigger)


def test_role_permissions_are_never_updated(conn: psycopg.Connection[Any], make: Make) -> None:
    role, other = make.role(), make.role()
    permission = make.permission(name="deployment:create")
    make.insert("role_permissions", "role_id", role_id=role, permission_id=permission)
    with rejected("23000", "trg_role_permissions_immutable"):
        conn.execute("UPDATE platform.role_permissions SET role_id = %s", (other,))
    conn.execute("DELETE FROM platform.role_permissions WHERE role_id = %s", (role,))
    assert make.count("role_permissions") == 0


# teams ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["Payments", "payments_core", "-payments", "payments-", "pay--ments", "1payments", "pay ments", "a" * 64, ""],
)
def test_teams_name_format(make: Make, name: str) -> None:
    with rejected("23514", "ck_teams_name_format"):
        make.team(name=name)
    make.team(name="payments-core2")
    make.team(name="a" * 63)
    assert make.count("teams") == 2


def test_teams_name_is_unique(make: Make) -> None:
    make.team(name="payments")
    with rejected("23505", "uq_teams_name"):
        make.team(name="payments")
    make.team(name="payments-core")
    assert make.count("teams") == 2


@pytest.mark.parametrize("display_name", INVISIBLE_OR_CONTROL)
def test_teams_display_name_visible(make: Make, display_name: str) -> None:
    with rejected("23514", "ck_teams_display_name_visible"):
        make.team(display_name=display_name)
    for name in VISIBLE:
        make.team(display_name=name)
    assert make.count("teams") == len(VISIBLE)


@pytest.mark.parametrize("display_name", ["", "x" * 201])
def test_teams_display_name_length(make: Make, display_name: str) -> None:
    with rejected("23514", "ck_teams_display_name_length"):
        make.team(display_name=display_name)
    make.team(display_name="x" * 200)
    assert make.count("teams") == 1


@pytest.mark.parametrize("role", ["owner", "admin", "Member", ""])
def test_team_memberships_role_allowed(make: Make, role: str) -> None:
    team = make.team()
    with rejected("23514", "ck_team_memberships_role_allowed"):
        make.insert("team_memberships", returning="role", team_id=team, user_id=make.user(), role=role)
    assert make.insert("team_memberships", returning="role", team_id=team, user_id=make.user()) == "member"
    make.insert("team_memberships", returning="role", team_id=team, user_id=make.user(), role="maintainer")
    assert make.count("team_memberships") == 2


def test_team_memberships_one_per_team_and_user(make: Make) -> None:
    team, user = make.team(), make.user()
    make.insert("team_memberships", returning="team_id", team_id=team, user_id=user)
    with rejected("23505", "pk_team_memberships"):
        make.insert("team_memberships", returning="team_id", team_id=team, user_id=user, role="maintainer")
    make.insert("team_memberships", returning="team_id", team_id=make.team(), user_id=user)
    assert make.count("team_memberships") == 2


@pytest.mark.parametrize(
    ("column", "constraint"),
    [("team_id", "fk_team_memberships_team_id_teams"), ("user_id", "fk_team_memberships_user_id_users")],
)
def test_team_memberships_team_and_user_must_exist(make: Make, column: str, constraint: str) -> None:
    values = {"team_id": make.team(), "user_id": make.user()}
    with rejected("23503", constraint):
        make.insert("team_memberships", "team_id", **(values | {column: uuid.uuid4()}))
    assert make.count("team_memberships") == 0
    make.insert("team_memberships", "team_id", **values)
    assert make.count("team_memberships") == 1


def test_team_memberships_cascade_when_team_is_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """fk_team_memberships_team_id_teams is ON DELETE CASCADE: a deleted team takes its memberships along."""
    team, other = make.team(), make.team()
    users = [make.user(), make.user()]
    for user in users:
        make.insert("team_memberships", returning="team_id", team_id=team, user_id=user)
        make.insert("team_memberships", returning="team_id", team_id=other, user_id=user)
    conn.execute("DELETE FROM platform.teams WHERE id = %s", (team,))
    assert make.count("teams") == 1
    assert make.count("team_memberships") == 2
    assert make.count("users") == 2


def test_team_memberships_cascade_when_user_is_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """fk_team_memberships_user_id_users is ON DELETE CASCADE (were a user deleted despite trg_users_no_delete)."""
    team, user, other = make.team(), make.user(), make.user()
    make.insert("team_memberships", "team_id", team_id=team, user_id=user)
    make.insert("team_memberships", "team_id", team_id=team, user_id=other)
    delete_by_id(conn, "users", user)
    rows = conn.execute("SELECT team_id, user_id FROM platform.team_memberships").fetchall()
    assert rows == [(team, other)]


# roles and permissions -----------------------------------------------------------------------------------
def test_roles_description_length(make: Make) -> None:
    with rejected("23514", "ck_roles_description_length"):
        make.role(description="x" * 1001)
    make.role(description="x" * 1000)
    make.role(description="")
    assert make.count("roles") == 2


def test_permissions_description_length(make: Make) -> None:
    with rejected("23514", "ck_permissions_description_length"):
        make.permission(description="x" * 1001)
    make.permission(description="x" * 1000)
    make.permission(description="")
    assert make.count("permissions") == 2 + WELL_KNOWN_PERMISSIONS


@pytest.mark.parametrize("name", ["Admin", "service_owner", "-admin", "admin-", "service--owner", "1admin", "a" * 64])
def test_roles_name_format(make: Make, name: str) -> None:
    with rejected("23514", "ck_roles_name_format"):
        make.role(name=name)
    make.role(name="service-owner")
    make.role(name="a" * 63)
    assert make.count("roles") == 2


def test_roles_name_is_unique(make: Make) -> None:
    make.role(name="viewer")
    with rejected("23505", "uq_roles_name"):
        make.role(name="viewer")
    make.role(name="viewer-2")
    assert make.count("roles") == 2


@pytest.mark.parametrize(
    "name",
    [
        "deployment",
        "deployment:",
        ":create",
        "Deployment:create",
        "deployment:Create",
        "deployment:create:all",
        "deploy-ment:create",
        "deployment2:create",
        "_deployment:create",
        "deployment :create",
        "a:" + "b" * 99,
    ],
)
def test_permissions_name_is_resource_colon_action(make: Make, name: str) -> None:
    with rejected("23514", "ck_permissions_name_format"):
        make.permission(name=name)
    make.permission(name="deployment:create")
    make.permission(name="service_config:read_secret")
    make.permission(name="a:" + "b" * 98)
    assert make.count("permissions") == 3 + WELL_KNOWN_PERMISSIONS


def test_permissions_name_is_unique(make: Make) -> None:
    make.permission(name="deployment:create")
    with rejected("23505", "uq_permissions_name"):
        make.permission(name="deployment:create")
    make.permission(name="deployment:cancel")
    assert make.count("permissions") == 2 + WELL_KNOWN_PERMISSIONS


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("role_id", "fk_role_permissions_role_id_roles"),
        ("permission_id", "fk_role_permissions_permission_id_permissions"),
    ],
)
def test_role_permissions_role_and_permission_must_exist(make: Make, column: str, constraint: str) -> None:
    values = {"role_id": make.role(), "permission_id": make.permission()}
    with rejected("23503", constraint):
        make.insert("role_permissions", "role_id", **(values | {column: uuid.uuid4()}))
    assert make.count("role_permissions") == 0
    make.insert("role_permissions", "role_id", **values)
    assert make.count("role_permissions") == 1


def test_role_permissions_cascade_when_permission_is_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """fk_role_permissions_permission_id_permissions is ON DELETE CASCADE; the roles stay."""
    roles = [make.role(), make.role()]
    permission, kept = make.permission(), make.permission()
    for role in roles:
        make.insert("role_permissions", "role_id", role_id=role, permission_id=permission)
        make.insert("role_permissions", "role_id", role_id=role, permission_id=kept)
    conn.execute("DELETE FROM platform.permissions WHERE id = %s", (permission,))
    rows = conn.execute("SELECT DISTINCT permission_id FROM platform.role_permissions").fetchall()
    assert (rows, make.count("role_permissions"), make.count("roles")) == ([(kept,)], 2, 2)


def test_role_permissions_cascade_when_role_is_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    """fk_role_permissions_role_id_roles is ON DELETE CASCADE; the permissions stay."""
    role, other = make.role(), make.role()
    permissions = [make.permission(name="deployment:create"), make.permission(name="deployment:cancel")]
    for permission in permissions:
        make.insert("role_permissions", returning="role_id", role_id=role, permission_id=permission)
        make.insert("role_permissions", returning="role_id", role_id=other, permission_id=permission)
    conn.execute("DELETE FROM platform.roles WHERE id = %s", (role,))
    assert make.count("role_permissions") == 2
    assert make.count("permissions") == 2 + WELL_KNOWN_PERMISSIONS


# role grants ---------------------------------------------------------------------------------------------
def test_role_grants_are_unique_even_with_null_scopes(make: Make) -> None:
    """Two global grants of one role to one user are the same grant, though their scopes are NULL."""
    user, role = make.user(), make.role()
    make.grant(user, role)
    with rejected("23505", "uq_role_grants_grantee_role_scope"):
        make.grant(user, role)
    assert make.count("role_grants") == 1


def test_role_grants_scoped_and_global_grants_coexist(make: Make) -> None:
    user, role = make.user(), make.role()
    service, environment = make.service(), make.environment()
    make.grant(user, role)
    make.grant(user, role, service_id=service)
    make.grant(user, role, environment_id=environment)
    make.grant(user, role, service_id=service, environment_id=environment)
    with rejected("23505", "uq_role_grants_grantee_role_scope"):
        make.grant(user, role, service_id=service)
    with rejected("23505", "uq_role_grants_grantee_role_scope"):
        make.grant(user, role, environment_id=environment)
    assert make.count("role_grants") == 4


def test_role_grants_expires_after_created(conn: psycopg.Connection[Any], make: Make) -> None:
    user, role = make.user(), make.role()
    with rejected("23514", "ck_role_grants_expires_after_created"):
        make.grant(user, role, expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    with rejected("23514", "ck_role_grants_expires_after_created"):
        conn.execute(
            "INSERT INTO platform.role_grants (user_id, role_id, expires_at) VALUES (%s, %s, now())", (user, role)
        )
    assert make.count("role_grants") == 0
    conn.execute(
        "INSERT INTO platform.role_grants (user_id, role_id, expires_at) VALUES (%s, %s, now() + interval '1 day')",
        (user, role),
    )
    assert make.count("role_grants") == 1


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("user_id", "fk_role_grants_user_id_users"),
        ("role_id", "fk_role_grants_role_id_roles"),
        ("service_id", "fk_role_grants_service_id_services"),
        ("environment_id", "fk_role_grants_environment_id_environments"),
        ("granted_by", "fk_role_grants_granted_by_users"),
    ],
)
def test_role_grants_foreign_keys_are_named(make: Make, column: str, constraint: str) -> None:
    """A grant naming a row that does not exist is refused by the foreign key of that column."""
    values: dict[str, Any] = {"user_id": make.user(), "role_id": make.role()}
    with rejected("23503", constraint):
        make.insert("role_grants", **(values | {column: uuid.uuid4()}))
    assert make.count("role_grants") == 0
    make.insert("role_grants", **values)
    assert make.count("role_grants") == 1


def test_role_grants_cascade_when_role_is_deleted(conn: psycopg.Connection[Any], make: Make) -> None:
    user, role, other = make.user(), make.role(), make.role()
    make.grant(user, role)
    make.grant(user, role, service_id=make.service())
    make.grant(user, other)
    conn.execute("DELETE FROM platform.roles WHERE id = %s", (role,))
    assert make.count("role_grants") == 1


@pytest.mark.parametrize(
    ("column", "table", "constraint", "cascade"),
    [
        ("user_id", "users", "fk_role_grants_user_id_users", True),
        ("role_id", "roles", "fk_role_grants_role_id_roles", True),
        ("service_id", "services", "fk_role_grants_service_id_services", True),
        ("environment_id", "environments", "fk_role_grants_environment_id_environments", True),
        ("granted_by", "users", "fk_role_grants_granted_by_users", False),
    ],
)
def test_role_grants_on_delete(
    conn: psycopg.Connection[Any], make: Make, column: str, table: str, constraint: str, cascade: bool
) -> None:
    """A grant goes with its user, role, service or environment (ON DELETE CASCADE); the user who granted it
    cannot be deleted from under it (ON DELETE RESTRICT; users are never deleted anyway)."""
    factories = {"users": make.user, "roles": make.role, "services": make.service, "environments": make.environment}
    referenced = factories[table]()
    values: dict[str, Any] = {"user_id": make.user(), "role_id": make.role(), column: referenced}
    grant = make.insert("role_grants", **values)
    other = make.grant(make.user(), make.role())
    if cascade:
        delete_by_id(conn, table, referenced)
        assert conn.execute("SELECT id FROM platform.role_grants").fetchall() == [(other,)]
    else:
        with rejected(restrict_sqlstate(conn), constraint):
            delete_by_id(conn, table, referenced)
        assert {r[0] for r in conn.execute("SELECT id FROM platform.role_grants")} == {grant, other}


# ids and creation times are the database's ------------------------------------------------------------------
def new_identity_row(make: Make, table: str) -> dict[str, Any]:
    """Values of a valid new row of an identity table (its dependencies made)."""
    n = make.n()
    return {
        "users": lambda: {"email": f"new{n}@example.com", "display_name": "New", "password_hash": PASSWORD_HASH},
        "teams": lambda: {"name": f"new-{n}", "display_name": "New"},
        "team_memberships": lambda: {"team_id": make.team(), "user_id": make.user()},
        "roles": lambda: {"name": f"new-{n}"},
        "permissions": lambda: {"name": "thing:create"},
        "role_permissions": lambda: {"role_id": make.role(), "permission_id": make.permission()},
        "role_grants": lambda: {"user_id": make.user(), "role_id": make.role(), "granted_by": make.granter()},
    }[table]()


@pytest.mark.parametrize(
    ("table", "trigger"),
    [
        ("users", "trg_users_created_at"),
        ("teams", "trg_teams_created_at"),
        ("team_memberships", "trg_team_memberships_created_at"),
        ("roles", "trg_roles_created_at"),
        ("permissions", "trg_permissions_created_at"),
        ("role_permissions", "trg_role_permissions_created_at"),
        ("role_grants", "trg_role_grants_created_at"),
    ],
)
def test_identity_created_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """The identity service cannot backdate a row: its stamps become now(); the owner's are kept."""
    assert_created_at_trigger(conn, table, "platform_identity", new_identity_row(make, table), trigger)


@pytest.mark.parametrize(
    ("table", "trigger"),
    [
        ("users", "trg_users_keys_immutable"),
        ("teams", "trg_teams_keys_immutable"),
        ("team_memberships", "trg_team_memberships_keys_immutable"),
        ("roles", "trg_roles_keys_immutable"),
        ("permissions", "trg_permissions_keys_immutable"),
        ("role_grants", "trg_role_grants_keys_immutable"),
    ],
)
def test_identity_keys_immutable_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    """A row's id (a membership's team and user) never changes, even where no foreign key holds it."""
    values = new_identity_row(make, table)
    if table == "team_memberships":
        make.insert(table, "team_id", **values)
        where, params = "team_id = %s AND user_id = %s", (values["team_id"], values["user_id"])
        for change in ("user_id = gen_random_uuid()", "team_id = gen_random_uuid()"):
            assert_keys_trigger(conn, table, where, params, change, trigger)
        return
    row_id = make.insert(table, **values)
    assert_keys_trigger(conn, table, "id = %s", (row_id,), "id = gen_random_uuid()", trigger)


def test_users_validated_shows_no_value_of_a_rejected_row(make: Make) -> None:
    """trg_users_validated evaluates the CHECKs first: same SQLSTATE and name, and no hash or email in the error."""
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        make.user(email="not-an-address", password_hash=PASSWORD_HASH)
    err = info.value
    assert (err.sqlstate, err.diag.constraint_name) == ("23514", "ck_users_email_format")
    told = " ".join(str(x) for x in (err, err.diag.message_detail, err.diag.message_hint, err.diag.context))
    assert "not-an-address" not in told
    assert PASSWORD_HASH[30:60] not in told
    make.user(email="valid@example.com")
    assert make.count("users") == 1
