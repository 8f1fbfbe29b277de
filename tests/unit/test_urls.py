"""Database URLs: every form users paste is normalized, everything else is refused plainly, passwords stay hidden.

No database is needed: libpq's own parser (``psycopg.conninfo.conninfo_to_dict``) stands in for a
connection when checking that :func:`platformdb.db.libpq_dsn` says what the user meant.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from platformdb.db import ENV_URL, display, given_url, libpq_dsn, parse_url, redact
from platformdb.errors import UserError

PASSWORD = "sekret"
DRIVER = "postgresql+psycopg"
TCP = {"username": "alice", "password": "s3cret", "host": "db.example.com", "port": 5433, "database": "platform"}
SOCKET = {"username": "alice", "password": None, "host": None, "port": None, "database": "platform"}


def fields(raw: str) -> dict[str, Any]:
    url = parse_url(raw)
    return {
        "username": url.username,
        "password": url.password,
        "host": url.host,
        "port": url.port,
        "database": url.database,
    }


# --- accepted forms ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "postgres+psycopg"]
)
def test_tcp_url_in_every_accepted_scheme(scheme: str) -> None:
    raw = f"{scheme}://alice:s3cret@db.example.com:5433/platform"
    assert parse_url(raw).drivername == DRIVER
    assert fields(raw) == TCP
    assert dict(parse_url(raw).query) == {}


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_socket_url_keeps_the_socket_directory(scheme: str) -> None:
    url = parse_url(f"{scheme}://alice@/platform?host=/run/postgresql")
    assert url.drivername == DRIVER
    assert fields(url.render_as_string(hide_password=False)) == SOCKET
    assert dict(url.query) == {"host": "/run/postgresql"}


def test_socket_url_with_port_in_the_query() -> None:
    """The form the embedded server and the test clusters print."""
    url = parse_url("postgresql://postgres@/platformdb?host=/srv/platformdb-x/pgdata&port=5432")
    assert url.drivername == DRIVER
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "postgres",
        None,
        None,
        None,
        "platformdb",
    )
    assert dict(url.query) == {"host": "/srv/platformdb-x/pgdata", "port": "5432"}


def test_surrounding_whitespace_is_ignored() -> None:
    assert fields("  postgresql://alice:s3cret@db.example.com:5433/platform\n") == TCP


def test_percent_encoded_credentials_are_decoded() -> None:
    url = parse_url("postgresql://al%40ice:p%40ss%2Fw%3Ard@localhost/platform")
    assert (url.username, url.password, url.host, url.port) == ("al@ice", "p@ss/w:rd", "localhost", None)


def test_no_port_and_no_password() -> None:
    url = parse_url("postgres://alice@localhost/platform")
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        DRIVER,
        "alice",
        None,
        "localhost",
        None,
        "platform",
    )


# --- refused forms -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("mysql://alice@db/platform", "not a PostgreSQL URL", id="mysql"),
        pytest.param("sqlite:///platform.db", "not a PostgreSQL URL", id="sqlite"),
        pytest.param("postgresql+asyncpg://alice@db/platform", "not a PostgreSQL URL", id="other-driver"),
        pytest.param("db.example.com:5432/platform", "not a PostgreSQL URL", id="no-scheme"),
        pytest.param("", "not a PostgreSQL URL", id="empty"),
        pytest.param("postgresql://", "names no database", id="bare-scheme"),
        pytest.param("postgresql://alice@db:5432", "names no database", id="no-path"),
        pytest.param("postgres://alice@db:5432/", "names no database", id="empty-path"),
        pytest.param("postgresql://alice@/?host=/run/postgresql", "names no database", id="socket-no-database"),
        pytest.param("postgresql://alice@db:99999/platform", "port 99999 out of range", id="port-too-big"),
        pytest.param("postgresql://alice@db:0/platform", "port 0 out of range", id="port-zero"),
        pytest.param("postgresql://alice@db:abc/platform", "port", id="port-not-a-number"),
    ],
)
def test_refused_with_a_plain_message(raw: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        parse_url(raw)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(f"mysql://alice:{PASSWORD}@db/platform", id="wrong-scheme"),
        pytest.param(f"postgresql://alice:{PASSWORD}@db:5432/", id="no-database"),
        pytest.param(f"postgresql://alice:{PASSWORD}@db:99999/platform", id="port-out-of-range"),
        pytest.param(f"postgresql://alice:{PASSWORD}@db:abc/platform", id="port-not-a-number"),
        pytest.param(f"postgres://alice:{PASSWORD}@[::1/platform", id="broken-ipv6"),
    ],
)
def test_refusal_never_shows_the_password(raw: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_url(raw)
    assert PASSWORD not in str(caught.value)


# --- redact --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f"postgresql://alice:{PASSWORD}@db:5432/platform", "postgresql://alice:***@db:5432/platform"),
        (f"postgres://alice:{PASSWORD}@db/platform", "postgres://alice:***@db/platform"),
        (
            f"postgresql+psycopg://alice:{PASSWORD}@/platform?host=/s",
            "postgresql+psycopg://alice:***@/platform?host=/s",
        ),
        ("postgresql://alice@db/platform", "postgresql://alice@db/platform"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_redact(raw: str, expected: str) -> None:
    assert redact(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(f"postgresql://alice:{PASSWORD}@db:abc/platform", id="port-not-a-number"),
        pytest.param(f"postgresql://alice:{PASSWORD}@[::1/platform", id="broken-ipv6"),
    ],
)
def test_redact_hides_the_password_of_a_malformed_url(raw: str) -> None:
    assert PASSWORD not in redact(raw)


@pytest.mark.parametrize("key", ["password", "sslpassword", "PASSWORD"])
def test_a_password_in_the_query_string_is_hidden_too(key: str) -> None:
    """libpq takes ``?password=`` as well as ``user:password@``; messages and the target line hide both."""
    raw = f"postgresql://alice@/platform?host=/s&{key}={PASSWORD}&port=5432"
    assert PASSWORD not in redact(raw)
    assert PASSWORD not in display(parse_url(raw))
    assert "host=/s" in display(parse_url(raw))


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_database_url_variable_is_an_error_not_the_embedded_server(
    blank: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deploy script whose URL variable expanded to nothing must not fall back to a local embedded server."""
    monkeypatch.setenv(ENV_URL, blank)
    with pytest.raises(UserError, match=f"{ENV_URL} is set but empty"):
        given_url()


def test_rendering_a_parsed_url_hides_the_password() -> None:
    url = parse_url(f"postgres://alice:{PASSWORD}@db/platform")
    assert PASSWORD not in str(url)
    assert PASSWORD not in repr(url)


# --- libpq_dsn -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "libpq"),
    [
        pytest.param(
            "postgres://alice:s3cret@db.example.com:5433/platform",
            {"user": "alice", "password": "s3cret", "host": "db.example.com", "port": "5433", "dbname": "platform"},
            id="tcp",
        ),
        pytest.param(
            "postgresql+psycopg://alice@/platform?host=/run/postgresql&port=5432",
            {"user": "alice", "host": "/run/postgresql", "port": "5432", "dbname": "platform"},
            id="socket",
        ),
        pytest.param(
            "postgresql://alice@db/platform?sslmode=require&application_name=ops",
            {"user": "alice", "host": "db", "dbname": "platform", "sslmode": "require", "application_name": "ops"},
            id="options",
        ),
    ],
)
def test_libpq_dsn_round_trips(raw: str, libpq: dict[str, str]) -> None:
    url = parse_url(raw)
    dsn = libpq_dsn(url)
    assert dsn.startswith("postgresql://"), dsn
    assert parse_url(dsn) == url
    assert conninfo_to_dict(dsn) == libpq


@pytest.mark.parametrize(
    "password", ["p@ss", "a/b", "a:b", "a#b", "p%w", "x?y", "a&b", "a=b", "a+b", "é", "a'b", "a b", " padded "]
)
def test_libpq_dsn_keeps_any_password(password: str) -> None:
    url = parse_url(f"postgresql://alice:{quote(password, safe='')}@db/platform")
    assert url.password == password
    assert conninfo_to_dict(libpq_dsn(url))["password"] == password


@pytest.mark.parametrize("socket_dir", ["/srv/with space/pgdata", "/srv/a+b/pgdata", "/home/zoë/pgdata"])
def test_libpq_dsn_keeps_any_socket_directory(socket_dir: str) -> None:
    """A PLATFORMDB_HOME with a space (or a plus) in it still gives a usable socket URL."""
    url = parse_url(f"postgresql://postgres@/platformdb?host={quote(socket_dir, safe='/')}&port=5432")
    assert url.query["host"] == socket_dir
    assert conninfo_to_dict(libpq_dsn(url))["host"] == socket_dir


# Anything but NUL (which no C string can hold) and lone surrogates (which are no characters at all).
CREDENTIAL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1)


@given(password=CREDENTIAL, user=CREDENTIAL)
def test_libpq_dsn_keeps_any_credentials(password: str, user: str) -> None:
    raw = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@db:5432/platform"
    url = parse_url(raw)
    assert (url.username, url.password) == (user, password)
    libpq = conninfo_to_dict(libpq_dsn(url))
    assert (libpq["user"], libpq["password"]) == (user, password)
