"""Property tests of configuration versions: every combination of kind, value and secret reference, and the
format of secret references.

The oracle evaluates each CHECK of configuration_versions as SQL would (a NULL result passes) and expects the
first violated one by name, which is the one PostgreSQL reports. A refused version consumes no version
number; an accepted secret's reference never reaches the audit log.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.factories import Make
from tests.reliability.report import Record
from tests.reliability.support import (
    DIGITS,
    TEXT_CHAR,
    UPPER,
    WHITESPACE,
    Mutation,
    PropertyLog,
    attempt,
    check_violation,
    counts,
    example_scope,
    insert_at,
    prop_settings,
    valid_or_not,
)

KINDS = ("plain", "secret", "deleted")
SQL_NULL = object()
"""A value that is SQL NULL (as opposed to the JSON null, which is a value)."""


SECRET_SCHEMES = ("vault", "aws-sm", "gcp-sm", "azure-kv", "k8s")


def secret_ref_ok(ref: str) -> bool:
    """ck_configuration_versions_secret_ref_format: scheme://path[#field], the scheme one of the allow-listed
    secret managers, path and field non-empty and free of '#', '?' and '@' (no query string, no userinfo: no
    credential), all of it printable ASCII without spaces (RFC 3986 has no other characters; anything else must
    be percent-encoded), at most 1024 characters."""
    scheme, sep, rest = ref.partition("://")
    path, hash_, field = rest.partition("#")
    return (
        len(ref) <= 1024
        and sep == "://"
        and scheme in SECRET_SCHEMES
        and path != ""
        and (hash_ == "" or field != "")
        and not any(c in "#?@" for c in path + field)
        and all("!" <= c <= "~" for c in rest)
    )


REF_CHAR = st.characters(min_codepoint=ord("!"), max_codepoint=ord("~")).filter(lambda c: c not in "#?@")
VALID_REFS = st.one_of(
    st.builds(
        lambda scheme, path, field: f"{scheme}://{path}" + (f"#{field}" if field else ""),
        st.sampled_from(SECRET_SCHEMES),
        st.text(REF_CHAR, min_size=1, max_size=60),
        st.text(REF_CHAR, max_size=12),
    ),
    st.sampled_from(["vault://kv/payments/db#password", "aws-sm://prod/db", "gcp-sm://projects/p/secrets/s"]),
    st.integers(1018, 1030).map(lambda n: "vault://" + "k" * (n - 8)),  # around the limit
)
REF_MUTATIONS: list[Mutation] = [  # the 5th inserts whitespace
    lambda d, s: s.replace("://", ":/", 1),
    lambda d, s: s.replace("://", "", 1),
    lambda d, s: s.partition("://")[0] + "://",
    lambda d, s: d(st.sampled_from(list(UPPER) + list(DIGITS) + ["+", "-", "", "é"])) + s,
    lambda d, s: insert_at(d, s, d(st.sampled_from(WHITESPACE))),
    lambda d, s: insert_at(d, s, d(st.sampled_from(["é", "\u200b", "\x7f", "\x1b", "€", "\U0001f511"]))),
    lambda d, s: s + "k" * max(0, 1025 - len(s)),
    lambda d, s: s + "\n",
    # a credential: userinfo, a query string; another scheme
    lambda d, s: s.replace("://", "://" + d(st.sampled_from(["admin:pw@", "s.hvsTOKEN@", ":pw@", "@"])), 1),
    lambda d, s: s.partition("#")[0] + d(st.sampled_from(["?token=s.hvsTOKEN", "?", "?a=1&b=2"])) + "#password",
    lambda d, s: (
        d(st.sampled_from(["postgresql", "https", "file", "aws+sm", "vault2", "k8"])) + s[s.index(":") :]
        if ":" in s
        else s
    ),
    lambda d, s: s + d(st.sampled_from(["#", "#a#b", "#pass@word", "#f?x"])),
]


def violated_checks(kind: str, value: Any, ref: str | None) -> set[str]:
    """The CHECK constraints of configuration_versions a row violates (SQL semantics: NULL passes)."""
    has_value = value is not SQL_NULL
    checks = {
        "kind_allowed": kind in KINDS,
        "secret_has_no_plaintext": kind != "secret" or not has_value,
        "value_matches_kind": (kind == "plain") == has_value
        and (kind == "secret") == (ref is not None)
        and (not has_value or value is not None),  # jsonb_typeof(value) IS DISTINCT FROM 'null'
        "secret_ref_format": ref is None or secret_ref_ok(ref),
        # value_size holds for every value drawn here (a few hundred bytes at most): tests/integration bounds it.
    }
    return {f"ck_configuration_versions_{name}" for name, ok in checks.items() if not ok}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT_CHAR, max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(TEXT_CHAR, max_size=8), children, max_size=3),
    max_leaves=6,
)  # fmt: skip
# Here only ASCII whitespace breaks a reference: Unicode whitespace is the business of the format test below.
ASCII_REF_MUTATIONS = [
    *REF_MUTATIONS[:4],
    lambda d, s: insert_at(d, s, d(st.sampled_from(" \t\n\r\x0b\x0c"))),
    *REF_MUTATIONS[5:],
]
WELL_FORMED = st.one_of(
    st.tuples(st.just("plain"), JSON.filter(lambda v: v is not None), st.none()),
    st.tuples(st.just("secret"), st.just(SQL_NULL), VALID_REFS),
    st.tuples(st.just("deleted"), st.just(SQL_NULL), st.none()),
)
ANY_COMBINATION = st.tuples(
    st.sampled_from([*KINDS, "Plain", "secret ", "other", ""]),
    st.one_of(st.just(SQL_NULL), JSON),  # JSON includes null (None), a value that is not SQL NULL
    st.one_of(st.none(), VALID_REFS, valid_or_not(VALID_REFS, ASCII_REF_MUTATIONS)),
)
PLAINTEXT_SECRET = st.tuples(st.just("secret"), JSON, st.one_of(st.none(), VALID_REFS))
VERSION = st.one_of(WELL_FORMED.map(lambda v: v), ANY_COMBINATION, PLAINTEXT_SECRET)


def show(version: tuple[str, Any, str | None]) -> str:
    kind, value, ref = version
    return f"(kind={kind!r}, value={'NULL' if value is SQL_NULL else json.dumps(value)[:40]}, secret_ref={ref!r:.60})"


def write(conn: psycopg.Connection[Any], configuration: Any, kind: str, value: Any, ref: str | None) -> tuple[Any, ...]:
    outcome, rows = attempt(
        conn,
        "INSERT INTO platform.configuration_versions (configuration_id, kind, value, secret_ref)"
        " VALUES (%s, %s, %s, %s) RETURNING version",
        (configuration, kind, None if value is SQL_NULL else Jsonb(value), ref),
    )
    return outcome, (rows[0][0] if rows else None)


def test_configuration_versions_kind_value_and_secret_ref(conn: psycopg.Connection[Any], reliability: Record) -> None:
    """Any sequence of writes of (kind, value, secret_ref) to one key: each is accepted or refused exactly as
    the CHECKs say; accepted ones are numbered 1, 2, 3... with no number used by a refused one; a secret's
    reference is redacted in the audit row."""
    make = Make(conn)
    configuration = make.configuration(make.service(), "DATABASE_PASSWORD")
    log = PropertyLog(reliability)

    @prop_settings(150)
    @given(versions=st.lists(VERSION, min_size=1, max_size=4))
    @example(versions=[("secret", None, "vault://kv/db#pw")])  # a secret with a JSON null value: still a value
    @example(versions=[("plain", None, None)])  # JSON null is not a setting
    @example(versions=[("deleted", SQL_NULL, None), ("plain", 5, None), ("secret", SQL_NULL, "vault://x")])
    def run(versions: list[tuple[str, Any, str | None]]) -> None:
        with example_scope(conn):
            number = 0
            for kind, value, ref in versions:
                violated = violated_checks(kind, value, ref)
                log.case("valid" if not violated else "invalid")
                for name in violated:
                    log.classes[name.removeprefix("ck_configuration_versions_")] += 1
                before = counts(conn, "configuration_versions", "audit_logs")
                got, version = write(conn, configuration, kind, value, ref)
                case = show((kind, value, ref))
                log.expect(case, check_violation(violated), got)
                delta = {"configuration_versions": 1, "audit_logs": 1} if got.accepted else {}
                log.expect_counts(case, before, counts(conn, *before), delta)
                if not got.accepted:
                    continue
                number += 1
                log.check(version == number, f"{case}: numbered {version}, expected {number}")
                if ref is not None:
                    audit = conn.execute(
                        "SELECT after ->> 'secret_ref', after::text FROM platform.audit_logs"
                        " WHERE entity_type = 'configuration_versions' ORDER BY id DESC LIMIT 1"
                    ).fetchone()
                    assert audit is not None
                    log.check(audit[0] == "[redacted]" and ref not in audit[1], f"{case}: secret_ref in the audit row")

    run()
    log.finish(
        require=(
            "valid",
            "invalid",
            "kind_allowed",
            "secret_has_no_plaintext",
            "value_matches_kind",
            "secret_ref_format",
        )
    )


def test_configuration_versions_secret_ref_format(conn: psycopg.Connection[Any], reliability: Record) -> None:
    make = Make(conn)
    configuration = make.configuration(make.service(), "API_TOKEN")
    log = PropertyLog(reliability)

    @prop_settings(150)
    @given(ref=valid_or_not(VALID_REFS, REF_MUTATIONS))
    @example(ref="vault://kv/payments/db#pass\u00a0word")  # NO-BREAK SPACE
    def run(ref: str) -> None:
        valid = secret_ref_ok(ref)
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, "configuration_versions", "audit_logs")
            got, _ = write(conn, configuration, "secret", SQL_NULL, ref)
            expected = check_violation(set() if valid else {"ck_configuration_versions_secret_ref_format"})
            log.expect(ref, expected, got)
            delta = {"configuration_versions": 1, "audit_logs": 1} if got.accepted else {}
            log.expect_counts(ref, before, counts(conn, *before), delta)

    run()
    log.finish(require=("valid", "invalid"))
