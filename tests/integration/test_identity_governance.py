"""Identity governance (issue #12, revisions 0030-0032): team grants, nested teams, expiring memberships, no
self-grant or escalation, service accounts, API tokens. Each rule: the violating write refused by name, the
valid one accepted, through the identity service's own role where a service writes it."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from platformdb import tokens
from platformdb.actor import set_actor
from tests.factories import (
    PASSWORD_HASH,
    Make,
    assert_updated_at_trigger,
    rejected,
    replica_mode,
    triggers_disabled,
)

IDENTITY = "platform_identity"
SA_EMAIL = "ci-bot@example.com"


@contextmanager
def acting_as(conn: psycopg.Connection[Any], role: str) -> Iterator[None]:
    """The block runs as ``role`` (SET ROLE); in a transaction that failed, its rollback undoes the SET."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        yield
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute("RESET ROLE")


def may(conn: psycopg.Connection[Any], user: uuid.UUID, permission: str, service: Any = None, env: Any = None) -> bool:
    row = conn.execute("SELECT platform.may_user_do(%s, %s, %s, %s)", (user, permission, service, env)).fetchone()
    assert row is not None
    return bool(row[0])


def service_account(make: Make, **kw: Any) -> uuid.UUID:
    values = {"kind": "service_account", "owner_team_id": make.team(), "password_hash": None}
    return make.user(**(values | kw))


# --- teams --------------------------------------------------------------------------------------------------
def test_teams_not_own_parent(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_teams_no_cycle refuses it first; the CHECK holds where triggers do not fire (replication, restores)."""
    team = make.team()
    with rejected("23514", "trg_teams_no_cycle"):
        conn.execute("UPDATE platform.teams SET parent_team_id = id WHERE id = %s", (team,))
    with rejected("23514", "ck_teams_not_own_parent"), replica_mode(conn):
        conn.execute("UPDATE platform.teams SET parent_team_id = id WHERE id = %s", (team,))
    conn.execute("UPDATE platform.teams SET parent_team_id = %s WHERE id = %s", (make.team(), team))


def test_teams_no_cycle(conn: psycopg.Connection[Any], make: Make) -> None:
    """a <- b <- c: putting a under c (its grandchild) or under b (its child) is refused; under a new team, not."""
    a = make.team()
    b = make.team(parent_team_id=a)
    c = make.team(parent_team_id=b)
    with acting_as(conn, IDENTITY):
        for descendant in (c, b):
            with rejected("23514", "trg_teams_no_cycle"):
                conn.execute("UPDATE platform.teams SET parent_team_id = %s WHERE id = %s", (descendant, a))
        top = conn.execute("INSERT INTO platform.teams (name, display_name) VALUES ('top', 'Top') RETURNING id")
        conn.execute("UPDATE platform.teams SET parent_team_id = %s WHERE id = %s", (top.fetchone()[0], a))  # type: ignore[index]


def test_teams_parent_foreign_key_restricts(conn: psycopg.Connection[Any], make: Make) -> None:
    parent = make.team()
    make.team(parent_team_id=parent)
    with pytest.raises(psycopg.errors.IntegrityError) as info:
        conn.execute("DELETE FROM platform.teams WHERE id = %s", (parent,))
    assert info.value.diag.constraint_name == "fk_teams_parent_team_id_teams"


def test_team_memberships_expires_after_created(conn: psycopg.Connection[Any], make: Make) -> None:
    team, user = make.team(), make.user()
    with rejected("23514", "ck_team_memberships_expires_after_created"), acting_as(conn, IDENTITY):
        make.insert(
            "team_memberships",
            returning="user_id",
            team_id=team,
            user_id=user,
            expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        )
    with acting_as(conn, IDENTITY):
        make.insert("team_memberships", returning="user_id", team_id=team, user_id=user,
                    expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))  # fmt: skip


# --- grants to teams, may_user_do ---------------------------------------------------------------------------
def test_role_grants_one_grantee(conn: psycopg.Connection[Any], make: Make) -> None:
    user, team, role = make.user(), make.team(), make.role()
    with rejected("23514", "ck_role_grants_one_grantee"):
        make.insert("role_grants", user_id=user, team_id=team, role_id=role)
    with rejected("23514", "ck_role_grants_one_grantee"):
        make.insert("role_grants", role_id=role)
    make.insert("role_grants", team_id=team, role_id=role)
    make.insert("role_grants", user_id=user, role_id=role)


def test_role_grants_unique_per_team_and_user(make: Make) -> None:
    """Two teams may hold one role in one scope (the old key would have collided on user_id NULL); one team
    may not hold it twice."""
    role, env = make.role(), make.environment()
    first, second = make.team(), make.team()
    make.insert("role_grants", team_id=first, role_id=role, environment_id=env)
    make.insert("role_grants", team_id=second, role_id=role, environment_id=env)
    with rejected("23505", "uq_role_grants_grantee_role_scope"):
        make.insert("role_grants", team_id=first, role_id=role, environment_id=env)


def test_role_grants_team_foreign_key(make: Make) -> None:
    with rejected("23503", "fk_role_grants_team_id_teams"):
        make.insert("role_grants", team_id=uuid.uuid4(), role_id=make.role())


def test_may_user_do_counts_team_grants_through_ancestors(conn: psycopg.Connection[Any], make: Make) -> None:
    """A member of a nested team holds the grants of every ancestor team; an expired membership, a
    deactivated user and an expired team grant count for nothing."""
    parent = make.team()
    child = make.team(parent_team_id=parent)
    user, other = make.user(), make.user()
    env = make.environment()
    make.insert("team_memberships", returning="user_id", team_id=child, user_id=user)
    make.insert("role_grants", team_id=parent, role_id=make.role_with("deployment:create"), environment_id=env)
    assert may(conn, user, "deployment:create", make.service(), env)
    assert not may(conn, user, "deployment:create", None, make.environment())
    assert not may(conn, other, "deployment:create", None, env)

    make.insert("team_memberships", returning="user_id", team_id=child, user_id=other,
                expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))  # fmt: skip
    assert may(conn, other, "deployment:create", None, env)
    late = make.user()  # a membership that ran out an hour ago (written as the owner, who may backdate)
    make.insert("team_memberships", returning="user_id", team_id=child, user_id=late,
                created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))  # fmt: skip
    assert not may(conn, late, "deployment:create", None, env)

    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (user,))
    assert not may(conn, user, "deployment:create", None, env)


# --- no self-grant, no escalation ---------------------------------------------------------------------------
def test_role_grants_not_self_granted(conn: psycopg.Connection[Any], make: Make) -> None:
    user = make.granter("deployment:create")
    role = make.role_with("deployment:create")
    with rejected("23514", "ck_role_grants_not_self_granted"):
        make.grant(user, role, granted_by=user)
    make.grant(make.user(), role, granted_by=user)


def test_role_grants_granter_required(conn: psycopg.Connection[Any], make: Make) -> None:
    """Only the schema owner writes a grant without a granter (the bootstrap path); the identity service not."""
    user, role = make.user(), make.role()
    with rejected("42501", "trg_role_grants_granter_required"), acting_as(conn, IDENTITY):
        make.grant(user, role)
    make.grant(user, role)  # as the owner: the first administrator's grant


def test_role_grants_no_escalation(conn: psycopg.Connection[Any], make: Make) -> None:
    """The granter holds role:grant within the grant's scope and every permission of the granted role there."""
    env, other_env = make.environment(), make.environment()
    deployer = make.role_with("deployment:create")
    admin = make.role_with("deployment:create", "secret:read")
    granter = make.granter("deployment:create", environment_id=env)  # role:grant + deploy, in env only
    plain = make.user()
    make.grant(plain, make.role_with("deployment:create"))  # may deploy, may not grant
    with acting_as(conn, IDENTITY):
        for values in (
            {"role_id": admin, "environment_id": env},  # secret:read is not the granter's
            {"role_id": deployer, "environment_id": other_env},  # outside the granter's scope
            {"role_id": deployer},  # global: wider than the granter's scope
        ):
            with rejected("42501", "trg_role_grants_no_escalation"):
                make.insert("role_grants", user_id=make.user(), granted_by=granter, **values)
        with rejected("42501", "trg_role_grants_no_escalation"):
            make.insert("role_grants", user_id=make.user(), granted_by=plain, role_id=deployer)
        target = make.user()
        grant = make.insert("role_grants", user_id=target, granted_by=granter, role_id=deployer, environment_id=env)
        make.insert("role_grants", team_id=make.team(), granted_by=granter, role_id=deployer, environment_id=env)
        with rejected("42501", "trg_role_grants_no_escalation"):  # an UPDATE cannot widen it either
            conn.execute("UPDATE platform.role_grants SET environment_id = NULL WHERE id = %s", (grant,))
    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (granter,))
    with rejected("42501", "trg_role_grants_no_escalation"), acting_as(conn, IDENTITY):
        make.insert("role_grants", user_id=make.user(), granted_by=granter, role_id=deployer, environment_id=env)


# --- service accounts ---------------------------------------------------------------------------------------
def test_users_kind_allowed(make: Make) -> None:
    with rejected("23514", "ck_users_kind_allowed"):
        make.user(kind="robot")
    assert make.count("users") == 0
    assert service_account(make)


def test_users_owner_team_by_kind(make: Make) -> None:
    with rejected("23514", "ck_users_owner_team_by_kind"):
        make.user(kind="service_account", password_hash=None)
    with rejected("23514", "ck_users_owner_team_by_kind"):
        make.user(owner_team_id=make.team())
    service_account(make)


def test_users_password_by_kind(conn: psycopg.Connection[Any], make: Make) -> None:
    """A service account cannot sign in with a password; a human keeps needing one (v1). The refusal shows no
    hash (check_quietly)."""
    with rejected("23514", "ck_users_password_by_kind"), acting_as(conn, IDENTITY):
        service_account(make, password_hash=PASSWORD_HASH)
    with rejected("23514", "ck_users_password_by_kind"), acting_as(conn, IDENTITY):
        make.user(password_hash=None)
    with acting_as(conn, IDENTITY):
        service_account(make)
        make.user()


def test_users_owner_team_foreign_key(make: Make) -> None:
    with rejected("23503", "fk_users_owner_team_id_teams"):
        make.user(kind="service_account", owner_team_id=uuid.uuid4(), password_hash=None)


def test_actor_can_be_a_service_account(conn: psycopg.Connection[Any], make: Make) -> None:
    """set_actor takes a service account's id; the release it registers names it, and so does the audit row."""
    bot = service_account(make, email=SA_EMAIL)
    service = make.service()
    conn.execute("SET ROLE platform_delivery")
    with conn.transaction():
        set_actor(conn, bot)
        conn.execute(
            "INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest, created_by)"
            " VALUES (%s, '9.9.9', %s, %s, %s)",
            (service, "a" * 40, "sha256:" + "b" * 64, bot),
        )
    conn.execute("RESET ROLE")
    row = conn.execute(
        "SELECT actor_id, actor_name FROM platform.audit_logs WHERE entity_type = 'releases' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row == (bot, SA_EMAIL)


# --- API tokens ---------------------------------------------------------------------------------------------
def token_row(make: Make, owner: uuid.UUID, **kw: Any) -> tuple[uuid.UUID, tokens.NewToken]:
    new = tokens.generate()
    values = {"user_id": owner, "name": "ci", "selector": new.selector, "verifier": new.verifier,
              "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=30)}  # fmt: skip
    return make.insert("api_tokens", **(values | kw)), new


def scope(make: Make, token: uuid.UUID, *permissions: str) -> None:
    for name in permissions:
        make.insert("api_token_scopes", returning="token_id", token_id=token, permission_id=make.permission_id(name))


def issued(make: Make, owner: uuid.UUID, *permissions: str, **kw: Any) -> tuple[uuid.UUID, tokens.NewToken]:
    """A token with its scopes, in one transaction (scopes are set at issue)."""
    ids = [make.permission_id(name) for name in permissions]
    with make.conn.transaction():
        token, new = token_row(make, owner, **kw)
        for permission_id in ids:
            make.insert("api_token_scopes", returning="token_id", token_id=token, permission_id=permission_id)
    return token, new


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"name": ""}, "ck_api_tokens_name_format"),
        ({"name": "bad\nname"}, "ck_api_tokens_name_format"),
        ({"selector": "UPPER0123456789A"}, "ck_api_tokens_selector_format"),
        ({"selector": "short"}, "ck_api_tokens_selector_format"),
        ({"verifier": b"\x00" * 31}, "ck_api_tokens_verifier_sha256"),
        ({"expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=367)}, "ck_api_tokens_expiry_within_a_year"),
        ({"expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}, "ck_api_tokens_expiry_within_a_year"),
        ({"revoked_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}, "ck_api_tokens_revoked_after_created"),
    ],
)
def test_api_tokens_checks(conn: psycopg.Connection[Any], make: Make, values: dict[str, Any], constraint: str) -> None:
    owner = make.user()
    with rejected("23514", constraint), acting_as(conn, IDENTITY):
        token_row(make, owner, created_by=owner, **values)
    with acting_as(conn, IDENTITY):
        token_row(make, owner, created_by=owner, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=366))


def test_api_tokens_refusal_shows_no_verifier(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_api_tokens_validated evaluates the CHECKs first: the refusal names the rule and shows no value."""
    owner = make.user()
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        token_row(make, owner, verifier=b"\xab" * 31)
    assert "abab" not in str(info.value)
    assert "abab" not in (info.value.diag.message_detail or "")


def test_api_tokens_selector_unique(make: Make) -> None:
    owner = make.user()
    _, new = token_row(make, owner)
    with rejected("23505", "uq_api_tokens_selector"):
        token_row(make, owner, selector=new.selector)


def test_api_tokens_issuer(conn: psycopg.Connection[Any], make: Make) -> None:
    """A token is issued by its own human owner or by a holder of token:issue; never without an issuer by a
    service; a service account cannot issue its own."""
    human, bot, stranger = make.user(), service_account(make), make.user()
    issuer = make.user()
    make.grant(issuer, make.role_with("token:issue"))
    with acting_as(conn, IDENTITY):
        for owner, by in ((human, None), (bot, None), (bot, bot), (human, stranger)):
            with rejected("42501", "trg_api_tokens_issuer"):
                token_row(make, owner, created_by=by)
        token_row(make, human, created_by=human)
        token_row(make, bot, created_by=issuer)


def test_api_tokens_immutable_and_revocation_final(conn: psycopg.Connection[Any], make: Make) -> None:
    token, _ = token_row(make, make.user())
    with rejected("23000", "trg_api_tokens_immutable"):
        conn.execute(
            "UPDATE platform.api_tokens SET expires_at = expires_at + interval '1 day' WHERE id = %s", (token,)
        )
    selector = conn.execute("SELECT selector FROM platform.api_tokens WHERE id = %s", (token,)).fetchone()
    with acting_as(conn, IDENTITY):  # identity revokes through platform.revoke_api_token, and only so
        assert conn.execute("SELECT platform.revoke_api_token(%s)", selector).fetchone() == (True,)
        assert conn.execute("SELECT platform.revoke_api_token(%s)", selector).fetchone() == (False,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE platform.api_tokens SET revoked_at = now() WHERE id = %s", (token,))
    with rejected("23000", "trg_api_tokens_revocation_final"):
        conn.execute("UPDATE platform.api_tokens SET revoked_at = NULL WHERE id = %s", (token,))


def test_api_tokens_rotation(conn: psycopg.Connection[Any], make: Make) -> None:
    """A successor revokes its predecessor in the same statement; a revoked token, or another owner's, is not
    rotated; one successor per token."""
    owner = make.user()
    old, _ = token_row(make, owner)
    with acting_as(conn, IDENTITY):
        stranger = make.user()
        with rejected("23514", "trg_api_tokens_rotation"):
            token_row(make, stranger, rotated_from_id=old, created_by=stranger)
        token_row(make, owner, rotated_from_id=old, created_by=owner)
        revoked = conn.execute("SELECT revoked_at IS NOT NULL FROM platform.api_tokens WHERE id = %s", (old,))
        assert revoked.fetchone() == (True,)
        with rejected("23514", "trg_api_tokens_rotation"):
            token_row(make, owner, rotated_from_id=old, created_by=owner)
    with (
        rejected("23505", "uq_api_tokens_rotated_from_id"),
        triggers_disabled(conn, "api_tokens", "trg_api_tokens_rotation"),
    ):
        token_row(make, owner, rotated_from_id=old)  # the key holds with the trigger out of the way


def test_api_token_scopes_at_issue(conn: psycopg.Connection[Any], make: Make) -> None:
    """Scopes are set in the transaction that issues the token, never added later."""
    owner = make.user()
    with conn.transaction(), acting_as(conn, IDENTITY):
        token, _ = token_row(make, owner, created_by=owner)
        scope(make, token, "service:read")
    with rejected("23000", "trg_api_token_scopes_at_issue"), conn.transaction(), acting_as(conn, IDENTITY):
        scope(make, token, "secret:read")
    with rejected("23000", "trg_api_token_scopes_immutable"):
        conn.execute("UPDATE platform.api_token_scopes SET created_at = created_at WHERE token_id = %s", (token,))


# --- the token check ----------------------------------------------------------------------------------------
def verify(conn: psycopg.Connection[Any], token: str, permission: str, service: Any = None, env: Any = None) -> Any:
    with acting_as(conn, "platform_delivery"):
        return tokens.verify(conn, token, permission, service, env)


def test_verify_api_token(conn: psycopg.Connection[Any], make: Make) -> None:
    """Effective permission = the token's scopes intersected with the owner's permissions at the time of use,
    within the token's service; a wrong secret, a revoked or expired token and a deactivated owner are refused."""
    bot = service_account(make)
    service = make.service()
    grant = make.grant(bot, make.role_with("deployment:create", "service:read"))
    token, new = issued(make, bot, "deployment:create", "secret:read", service_id=service)
    assert verify(conn, new.token, "deployment:create", service) == tokens.Principal(bot, "service_account")
    assert verify(conn, new.token, "service:read", service) == tokens.Refusal("not_in_token_scopes")
    assert verify(conn, new.token, "secret:read", service) == tokens.Refusal("owner_not_permitted")
    assert verify(conn, new.token, "deployment:create", make.service()) == tokens.Refusal("out_of_token_scope")
    wrong = f"pdb_{new.selector}_{'A' * 43}"
    assert verify(conn, wrong, "deployment:create", service) == tokens.Refusal("unknown_token")
    assert verify(conn, "pdb_" + "z" * 16 + "_" + "A" * 43, "deployment:create") == tokens.Refusal("unknown_token")
    assert verify(conn, "not a token", "deployment:create") == tokens.Refusal("malformed_token")
    conn.execute("DELETE FROM platform.role_grants WHERE id = %s", (grant,))  # the owner loses it: so does the token
    assert verify(conn, new.token, "deployment:create", service) == tokens.Refusal("owner_not_permitted")
    make.grant(bot, make.role_with("deployment:create"))
    conn.execute("UPDATE platform.users SET deactivated_at = now() WHERE id = %s", (bot,))
    assert verify(conn, new.token, "deployment:create", service) == tokens.Refusal("owner_deactivated")
    conn.execute("UPDATE platform.users SET deactivated_at = NULL WHERE id = %s", (bot,))
    conn.execute("UPDATE platform.api_tokens SET revoked_at = now() WHERE id = %s", (token,))
    assert verify(conn, new.token, "deployment:create", service) == tokens.Refusal("revoked")


def test_verify_records_use_without_an_audit_row_and_redacts_the_verifier(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """trg_api_tokens_audit records the insert with the verifier redacted; trg_api_tokens_audit_update writes
    nothing for an update of the last-used pair only, and a row for a revocation."""
    owner = make.user()
    make.grant(owner, make.role_with("service:read"))
    token, new = issued(make, owner, "service:read")
    audited = conn.execute(
        "SELECT after ->> 'verifier' FROM platform.audit_logs WHERE entity_type = 'api_tokens' AND entity_id = %s",
        (str(token),),
    ).fetchall()
    assert audited == [("[redacted]",)]
    conn.execute("SELECT set_config('platformdb.client_addr', '203.0.113.7', false)")  # as set_actor(local=False)
    assert verify(conn, new.token, "service:read") == tokens.Principal(owner, "human")
    used = conn.execute("SELECT last_used_at IS NOT NULL, host(last_used_addr) FROM platform.api_tokens WHERE id = %s",
                        (token,)).fetchone()  # fmt: skip
    assert used == (True, "203.0.113.7")
    rows = conn.execute(
        "SELECT count(*) FROM platform.audit_logs WHERE entity_type = 'api_tokens' AND entity_id = %s", (str(token),)
    ).fetchone()
    assert rows == (1,)  # the insert only: the last-used update wrote none
    conn.execute("UPDATE platform.api_tokens SET revoked_at = now() WHERE id = %s", (token,))
    rows = conn.execute(
        "SELECT count(*) FROM platform.audit_logs WHERE entity_type = 'api_tokens' AND entity_id = %s", (str(token),)
    ).fetchone()
    assert rows == (2,)  # a revocation is audited


def test_no_service_role_reads_a_verifier(conn: psycopg.Connection[Any]) -> None:
    for role in ("platform_identity", "platform_delivery", "platform_readonly"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction(), acting_as(conn, role):
            conn.execute("SELECT verifier FROM platform.api_tokens LIMIT 0")


def test_token_helpers_never_show_a_token() -> None:
    new = tokens.generate()
    assert new.token not in repr(new)
    assert new.verifier == hashlib.sha256(new.token.split("_", 2)[2].encode()).digest()
    with pytest.raises(tokens.InvalidTokenError) as info:
        tokens.parse(new.token.replace("pdb_", "xyz_"))
    assert new.token.split("_", 2)[2] not in str(info.value)
    assert tokens.parse(new.token) == (new.selector, new.verifier)


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("user_id", "fk_api_tokens_user_id_users"),
        ("created_by", "fk_api_tokens_created_by_users"),
        ("service_id", "fk_api_tokens_service_id_services"),
        ("environment_id", "fk_api_tokens_environment_id_environments"),
        ("rotated_from_id", "fk_api_tokens_rotated_from_id_api_tokens"),
    ],
)
def test_api_tokens_foreign_keys_are_named(make: Make, column: str, constraint: str) -> None:
    owner = make.user()
    with rejected("23503", constraint):
        token_row(make, owner, **{column: uuid.uuid4()})
    token_row(make, owner)


@pytest.mark.parametrize(
    ("column", "constraint"),
    [("token_id", "fk_api_token_scopes_token_id_api_tokens"),
     ("permission_id", "fk_api_token_scopes_permission_id_permissions")],
)  # fmt: skip
def test_api_token_scopes_foreign_keys_are_named(conn: psycopg.Connection[Any], make: Make, column: str,
                                                 constraint: str) -> None:  # fmt: skip
    with conn.transaction():
        token, _ = token_row(make, make.user())
        values = {"token_id": token, "permission_id": make.permission_id("service:read")}
        with rejected("23503", constraint), conn.transaction():
            make.insert("api_token_scopes", returning="token_id", **(values | {column: uuid.uuid4()}))
        make.insert("api_token_scopes", returning="token_id", **values)


def test_api_tokens_stamps_are_the_databases(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_api_tokens_created_at and trg_api_token_scopes_created_at give a service's INSERT now() whatever it
    sent; trg_api_tokens_updated_at stamps an UPDATE and refuses a rewrite of created_at."""
    owner = make.user()
    backdated = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with conn.transaction(), acting_as(conn, IDENTITY):
        token, _ = token_row(make, owner, created_by=owner, created_at=backdated, updated_at=backdated)
        make.insert("api_token_scopes", returning="token_id", token_id=token,
                    permission_id=make.permission_id("service:read"), created_at=backdated)  # fmt: skip
        stamps = conn.execute(
            "SELECT t.created_at = now(), t.updated_at = now(), s.created_at = now() FROM platform.api_tokens t"
            " JOIN platform.api_token_scopes s ON s.token_id = t.id WHERE t.id = %s",
            (token,),
        ).fetchone()
    assert stamps == (True, True, True)
    old, _ = token_row(make, owner, created_at=backdated, updated_at=backdated)  # the owner may backdate
    assert_updated_at_trigger(
        conn, "api_tokens", "id = %s", (old,), "last_used_at = now()", "trg_api_tokens_updated_at"
    )


def test_api_token_scopes_are_audited(conn: psycopg.Connection[Any], make: Make) -> None:
    """trg_api_token_scopes_audit records a scope's insert and delete."""
    token, _ = issued(make, make.user(), "service:read")
    conn.execute("DELETE FROM platform.api_token_scopes WHERE token_id = %s", (token,))
    rows = conn.execute(
        "SELECT action FROM platform.audit_logs WHERE entity_type = 'api_token_scopes' AND entity_id LIKE %s"
        " ORDER BY id",
        (f"{token},%",),
    ).fetchall()
    assert rows == [("insert",), ("delete",)]


# --- the permissions the rules read ----------------------------------------------------------------------------
V1_VOCABULARY = {"deployment:create"}
"""Permission names a rule reads that v1 identity services already write themselves (the schema does not)."""


def test_every_permission_a_rule_reads_ships_with_the_schema(conn: psycopg.Connection[Any]) -> None:
    """A rule naming a permission nobody can create would refuse everyone: the schema ships each name its
    functions and triggers read (may_user_do's literal, or a trigger's argument), unless v1 data has it."""
    bodies = conn.execute(
        "SELECT string_agg(prosrc, ' ') FROM pg_proc WHERE pronamespace = 'platform'::regnamespace"
    ).fetchone()
    args = conn.execute(
        "SELECT string_agg(encode(tgargs, 'escape'), ' ') FROM pg_trigger"
        " WHERE tgrelid::regclass::text LIKE 'platform.%' AND tgnargs > 0"
    ).fetchone()
    assert bodies is not None
    assert args is not None
    read = set(re.findall(r"may_user_do\([^,]+,\s*'([a-z_]+:[a-z_]+)'", bodies[0]))
    read |= set(re.findall(r"\b([a-z_]+:[a-z_]+)\\000", args[0]))
    assert read == {"role:grant", "token:issue", "deployment:create", "freeze:manage", "freeze:override",
                    "promotion:override"}  # fmt: skip
    shipped = {r[0] for r in conn.execute("SELECT name FROM platform.permissions")}
    assert read - V1_VOCABULARY == shipped
