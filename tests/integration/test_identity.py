"""Identity rules: one test per rule, the violating write rejected by name, the valid one accepted."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.factories import PASSWORD_HASH, Make, rejected


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
