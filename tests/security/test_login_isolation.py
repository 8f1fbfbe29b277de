"""Issue #11 point 6: group roles are cluster-wide, so a login made for one platformdb database must not be able
to use its group in another database of the same cluster. CONNECT is what keeps them apart: PUBLIC has none on a
platformdb database, and ``grant-login`` grants it per login on the database it is made for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import URL

from platformdb.db import libpq_dsn
from platformdb.errors import UserError
from platformdb.ops.roles import grant_login, list_logins, revoke_login
from tests.factories import COMMIT_SHA, DIGEST, Make
from tests.pg import Server
from tests.security.test_hostile_rules import Logins, login

__all__ = ["login"]  # the fixture, used by name


@pytest.fixture
def other_db(server: Server, template: str) -> Iterator[URL]:
    """A second platformdb database on the same server (a clone of the migrated template, as ``db`` is)."""
    name = server.create_database(template, prefix="other")
    yield server.url(name)
    server.drop_database(name)


def connect_as(url: URL, name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(libpq_dsn(url.set(username=name, password=None)), autocommit=True)


def refused_connection(url: URL, name: str) -> str:
    """The error a connection of ``name`` to ``url`` gets ('' when it connects)."""
    try:
        connect_as(url, name).close()
    except psycopg.OperationalError as exc:
        return str(exc)
    return ""


def insert_release(c: psycopg.Connection[Any], service: Any, version: str) -> None:
    c.execute(
        "INSERT INTO platform.releases (service_id, version, commit_sha, artifact_digest) VALUES (%s, %s, %s, %s)",
        (service, version, COMMIT_SHA, DIGEST),
    )


def test_a_login_of_one_database_cannot_connect_to_another_of_the_cluster(
    db: URL, other_db: URL, conn: psycopg.Connection[Any], make: Make, login: Logins
) -> None:
    """A delivery login granted for database A could connect to database B (PUBLIC had CONNECT) and write
    releases there with the same cluster-wide group. Now B refuses the connection (42501, "permission denied for
    database"), and the login's writes in A work."""
    delivery = login("delivery")
    name = str(delivery.info.user)
    assert "permission denied for database" in refused_connection(other_db, name)
    with psycopg.connect(libpq_dsn(other_db), autocommit=True) as b:
        public = b.execute("SELECT has_database_privilege('public', current_database(), 'CONNECT')").fetchone()
        assert public == (False,)
    insert_release(delivery, make.service(), "1.0.0")  # the valid write, in its own database
    assert make.count("releases") == 1


def test_roles_list_and_revoke(db: URL, other_db: URL, conn: psycopg.Connection[Any], login: Logins) -> None:
    """``roles list`` shows this database's logins (group, limit, timeouts); ``roles revoke`` takes CONNECT here
    and the group unless another database still grants the login CONNECT; an unknown login is one plain error."""
    here = login("delivery")
    name = str(here.info.user)
    both = login("readonly")
    both_name = str(both.info.user)
    grant_login(other_db, both_name, "readonly")  # the same login, made for the other database too
    listed = {entry.name: entry for entry in list_logins(db)}
    assert set(listed) >= {name, both_name}
    assert listed[name].groups == ("platform_delivery",)
    assert listed[name].connection_limit == 20
    assert listed[name].settings["lock_timeout"] == "5s"
    assert name not in {entry.name for entry in list_logins(other_db)}

    assert revoke_login(db, name).startswith(f"revoked login {name}")
    assert "permission denied for database" in refused_connection(db, name)
    member = conn.execute(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s", (name,)
    ).fetchone()
    assert member == (0,)
    assert name not in {entry.name for entry in list_logins(db)}

    assert "keeps its groups" in revoke_login(db, both_name)
    connect_as(other_db, both_name).close()  # still a login of the other database
    with pytest.raises(UserError, match="no service login"):
        revoke_login(db, name)  # already revoked
    with pytest.raises(UserError, match="no service login"):
        revoke_login(db, "nobody_here")
