"""Property tests of the identity and catalog text rules: generated valid values are accepted, generated invalid
ones are refused with SQLSTATE 23514 naming the rule's constraint, and a refused write leaves no row (not in
the table, not in the audit log).

Each rule has an oracle written from its specification (not from its regular expression where the two can
differ), a generator of valid values and mutations that break them; the oracle, not the generator, decides
what each generated value should do. Whitespace means Unicode's White_Space property.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.factories import PASSWORD_HASH, Make
from tests.reliability.report import Record
from tests.reliability.support import (
    ACCEPTED,
    DIGITS,
    LOWER,
    TEXT_CHAR,
    UPPER,
    WHITESPACE,
    Mutation,
    Outcome,
    PropertyLog,
    attempt,
    counts,
    example_scope,
    insert_at,
    insert_sql,
    prop_settings,
    valid_or_not,
)

ASCII_SWAPCASE = str.maketrans(LOWER + UPPER, UPPER + LOWER)


def insert_user(conn: psycopg.Connection[Any], **values: Any) -> Outcome:
    row = {"email": "someone@example.com", "display_name": "Someone", "password_hash": PASSWORD_HASH} | values
    outcome, _ = attempt(conn, insert_sql("users", row), list(row.values()))
    return outcome


# --- users.email ------------------------------------------------------------------------------------------
def email_format_ok(email: str) -> bool:
    """ck_users_email_format: one @, something without whitespace before it, a dotted domain after it; at
    most 254 characters (RFC 5321's path limit)."""
    local, at, domain = email.partition("@")
    return (
        len(email) <= 254
        and bool(at and local)
        and "@" not in domain
        and not any(c in WHITESPACE for c in email)
        and any(domain[i] == "." for i in range(1, len(domain) - 1))
    )


def email_rule(email: str) -> str | None:
    """The rule that refuses ``email``, None when it is valid. Besides its format an address is printable ASCII
    (ck_users_email_printable_ascii: '!' to '~', so no space, control or non-ASCII character: a domain goes in
    as punycode). PostgreSQL checks a table's CHECKs in name order, so a format error is the one reported."""
    if not email_format_ok(email):
        return "ck_users_email_format"
    if not all("!" <= c <= "~" for c in email):
        return "ck_users_email_printable_ascii"
    return None


EMAIL_CHAR = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="@")
NOT_PRINTABLE_ASCII = st.one_of(
    st.characters(min_codepoint=0x80, exclude_categories=("Cs",)),  # look-alikes, accents, invisibles
    st.characters(max_codepoint=0x1F, exclude_characters="\x00"),
    st.just("\x7f"),
    st.sampled_from(["\u0301", "\u200b", "\u200e", "\u202e", "\u2066", "\ufeff", "\u00ad", "\uff41"]),
)
VALID_EMAILS = st.one_of(
    st.emails(),
    st.builds(
        lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
        st.text(EMAIL_CHAR, min_size=1, max_size=20),
        st.lists(st.text(EMAIL_CHAR, min_size=1, max_size=10), min_size=1, max_size=3),
        st.text(EMAIL_CHAR, min_size=1, max_size=6),
    ),
    st.integers(235, 250).map(lambda n: "a" * n + "@example.com"),  # around the 254 limit
)
EMAIL_MUTATIONS: list[Mutation] = [
    lambda d, s: s.replace("@", "", 1),
    lambda d, s: insert_at(d, s, "@"),
    lambda d, s: insert_at(d, s, d(st.sampled_from(WHITESPACE))),
    lambda d, s: s.partition("@")[0] + "@" + s.partition("@")[2].replace(".", ""),
    lambda d, s: "@" + s.partition("@")[2],
    lambda d, s: s.partition("@")[0] + "@" + s.partition("@")[2].replace(".", "") + ".",
    lambda d, s: "x" * max(0, 255 - len(s)) + s,
    lambda d, s: s + "\n",
    lambda d, s: insert_at(d, s, d(NOT_PRINTABLE_ASCII)),
    lambda d, s: unicodedata.normalize("NFD", s.replace("e", "\u00e9", 1)),
]


def test_users_email_format(conn: psycopg.Connection[Any], reliability: Record) -> None:
    """Valid addresses are stored (and a case-swapped twin is a duplicate); invalid ones are refused by the rule
    the oracle names."""
    log = PropertyLog(reliability)

    @prop_settings(150)
    @given(email=valid_or_not(VALID_EMAILS, EMAIL_MUTATIONS))
    @example(email="alice\u00a0smith@example.com")  # NO-BREAK SPACE is whitespace too
    @example(email="bob@example.com\u202f")  # NARROW NO-BREAK SPACE
    @example(email="jos\u00e9@example.com")  # not ASCII: its NFD twin and its upper case would not collide
    @example(email="al\u200bice@example.com")  # ZERO WIDTH SPACE
    def run(email: str) -> None:
        rule = email_rule(email)
        valid = rule is None
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, "users", "audit_logs")
            got = insert_user(conn, email=email)
            log.expect(email, ACCEPTED if rule is None else Outcome("23514", rule), got)
            log.expect_counts(
                email, before, counts(conn, *before), {"users": 1, "audit_logs": 1} if got.accepted else {}
            )
            if got.accepted:
                twin = email.translate(ASCII_SWAPCASE)
                log.expect(twin, Outcome("23505", "uq_users_email_lower"), insert_user(conn, email=twin))

    run()
    log.finish(require=("valid", "invalid"))


# --- users.password_hash ---------------------------------------------------------------------------------
PHC = re.compile(
    r"\$(argon2(id|i|d)\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+|2[aby]\$[0-9]{2}"
    r"|scrypt\$ln=[0-9]+,r=[0-9]+,p=[0-9]+|pbkdf2-sha(256|512)\$[0-9]+)\$[A-Za-z0-9./+=$-]+"
)


def password_hash_ok(value: str) -> bool:
    """ck_users_password_hash_format: a PHC string of argon2, bcrypt, scrypt or pbkdf2, at most 512 characters.
    fullmatch, because the rule anchors at the very end (PostgreSQL's $ does not match before a newline)."""
    return len(value) <= 512 and PHC.fullmatch(value) is not None


B64 = LOWER + UPPER + DIGITS + "+/"
AB64 = LOWER + UPPER + DIGITS + "./"
NUM = st.integers(0, 10**7).map(str)
VALID_HASHES = st.one_of(
    st.builds(
        lambda var, v, m, t, p, salt, digest: f"$argon2{var}$v={v}$m={m},t={t},p={p}${salt}${digest}",
        st.sampled_from(["id", "i", "d"]), NUM, NUM, NUM, NUM,
        st.text(B64, min_size=1, max_size=30), st.text(B64, min_size=1, max_size=90),
    ),
    st.builds(
        lambda var, cost, rest: f"$2{var}${cost:02d}${rest}",
        st.sampled_from("aby"), st.integers(4, 31), st.text(AB64, min_size=53, max_size=53),
    ),
    st.builds(
        lambda ln, r, p, salt, digest: f"$scrypt$ln={ln},r={r},p={p}${salt}${digest}",
        NUM, NUM, NUM, st.text(B64, min_size=1, max_size=30), st.text(B64, min_size=1, max_size=90),
    ),
    st.builds(
        lambda bits, rounds, salt, digest: f"$pbkdf2-sha{bits}${rounds}${salt}${digest}",
        st.sampled_from(["256", "512"]), NUM, st.text(AB64, min_size=1, max_size=30),
        st.text(AB64, min_size=1, max_size=90),
    ),
)  # fmt: skip
HASH_MUTATIONS: list[Mutation] = [
    lambda d, s: d(st.text(TEXT_CHAR, max_size=64)),  # a plaintext password
    lambda d, s: s[1:],
    lambda d, s: s[: s.index("$", 1)].upper() + s[s.index("$", 1) :],
    lambda d, s: d(st.sampled_from(["$md5", "$6", "$sha512", "$argon2x", "$2c", "$bcrypt"])) + s[s.index("$", 1) :],
    lambda d, s: s[: s.rindex("$")],
    lambda d, s: s[: s.rindex("$") + 1],
    lambda d, s: insert_at(d, s, d(st.sampled_from(list(" #!:%*\n\t'\"\\é") + list(WHITESPACE)))),
    lambda d, s: s + "A" * max(0, 513 - len(s)),
    lambda d, s: s + "\n",
]


def test_users_password_hash_format(conn: psycopg.Connection[Any], reliability: Record) -> None:
    log = PropertyLog(reliability)

    @prop_settings(150)
    @given(value=valid_or_not(VALID_HASHES, HASH_MUTATIONS))
    @example(value="hunter2")
    @example(value=PASSWORD_HASH + "\n")
    def run(value: str) -> None:
        valid = password_hash_ok(value)
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, "users", "audit_logs")
            got = insert_user(conn, password_hash=value)
            log.expect(value, ACCEPTED if valid else Outcome("23514", "ck_users_password_hash_format"), got)
            log.expect_counts(
                value, before, counts(conn, *before), {"users": 1, "audit_logs": 1} if got.accepted else {}
            )

    run()
    log.finish(require=("valid", "invalid"))


# --- display names ------------------------------------------------------------------------------------------
INVISIBLE = frozenset(
    chr(c)
    for c in (
        *range(0x01, 0x20),  # C0 controls
        *range(0x7F, 0xA0),  # DEL and C1 controls
        0xAD,  # SOFT HYPHEN
        0x61C,  # ARABIC LETTER MARK
        0x180E,  # MONGOLIAN VOWEL SEPARATOR
        0x200B, 0x200C, 0x200E, 0x200F,  # zero width space and non-joiner, LRM, RLM (not U+200D ZWJ)
        *range(0x2028, 0x202F),  # line and paragraph separators, bidi embeddings and overrides
        *range(0x2060, 0x2070),  # word joiner, invisible operators, bidi isolates, deprecated format controls
        0xFEFF,  # BOM
        *range(0xFFF9, 0xFFFC),  # interlinear annotation
        *range(0xE0000, 0xE0080),  # tags
    )
)  # fmt: skip
"""What ck_<table>_display_name_visible refuses anywhere in a display name, from the rule's specification."""


def display_name_rule(name: str, table: str) -> str | None:
    """The rule that refuses ``name``, None when it is valid: ck_<table>_display_name_length (1 to 200
    characters, no whitespace at either end), then (CHECKs are checked in name order)
    ck_<table>_display_name_visible (no control or invisible character anywhere)."""
    if not (1 <= len(name) <= 200 and name[0] not in WHITESPACE and name[-1] not in WHITESPACE):
        return f"ck_{table}_display_name_length"
    if any(c in INVISIBLE for c in name):
        return f"ck_{table}_display_name_visible"
    return None


VALID_DISPLAY_NAMES = st.one_of(
    st.text(TEXT_CHAR, min_size=1, max_size=200).map(
        lambda s: "".join(c for c in s if c not in INVISIBLE).strip(WHITESPACE)
    ),
    st.integers(195, 205).map(lambda n: "N" * n),
)
DISPLAY_NAME_MUTATIONS: list[Mutation] = [
    lambda d, s: d(st.sampled_from(WHITESPACE)) + s,
    lambda d, s: s + d(st.sampled_from(WHITESPACE)),
    lambda d, s: "",
    lambda d, s: s + "x" * max(0, 201 - len(s)),
    lambda d, s: insert_at(d, s, d(st.sampled_from(sorted(INVISIBLE)))),
]


@pytest.mark.parametrize("table", ["users", "teams"])
def test_display_name_length_and_trimmed(conn: psycopg.Connection[Any], reliability: Record, table: str) -> None:
    log = PropertyLog(reliability)

    @prop_settings(100)
    @given(name=valid_or_not(VALID_DISPLAY_NAMES, DISPLAY_NAME_MUTATIONS))
    @example(name="\u00a0Alice")  # NO-BREAK SPACE: looks exactly like "Alice" in an audit trail
    @example(name="Bob\u2007")  # FIGURE SPACE
    @example(name="\u0085Carol")  # NEXT LINE
    @example(name="Ali\u200bce")  # ZERO WIDTH SPACE
    @example(name="Bob \u202eevil")  # RIGHT-TO-LEFT OVERRIDE
    @example(name="Family \U0001f468\u200d\U0001f469")  # ZWJ stays: emoji sequences use it
    def run(name: str) -> None:
        rule = display_name_rule(name, table)
        valid = rule is None
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, table, "audit_logs")
            if table == "users":
                got = insert_user(conn, display_name=name)
            else:
                got, _ = attempt(conn, insert_sql("teams", {"name": "a-team", "display_name": name}), ("a-team", name))
            expected = ACCEPTED if rule is None else Outcome("23514", rule)
            log.expect(name, expected, got)
            log.expect_counts(name, before, counts(conn, *before), {table: 1, "audit_logs": 1} if got.accepted else {})

    run()
    log.finish(require=("valid", "invalid"))


# --- kebab-case names -------------------------------------------------------------------------------------
def kebab_ok(name: str) -> bool:
    """ck_<table>_name_format: lower-case letters and digits in hyphen-separated words, starting with a letter,
    at most 63 characters (a DNS label)."""
    return (
        0 < len(name) <= 63
        and name[0] in LOWER
        and all(c in LOWER + DIGITS + "-" for c in name)
        and "--" not in name
        and not name.endswith("-")
    )


VALID_KEBAB = st.one_of(
    st.builds(
        lambda first, rest, words: first + rest + "".join("-" + w for w in words),
        st.sampled_from(LOWER),
        st.text(LOWER + DIGITS, max_size=20),
        st.lists(st.text(LOWER + DIGITS, min_size=1, max_size=12), max_size=5),
    ),
    st.integers(58, 68).map(lambda n: ("ab-" * n)[:n].rstrip("-") + "z"),  # around the 63 limit
)
KEBAB_MUTATIONS: list[Mutation] = [
    lambda d, s: insert_at(d, s, d(st.sampled_from(list(UPPER) + list("_. é@/") + ["--"]))),
    lambda d, s: d(st.sampled_from([*list(DIGITS), "-"])) + s,
    lambda d, s: s + "-",
    lambda d, s: s.upper(),
    lambda d, s: "",
    lambda d, s: s + "x" * max(0, 64 - len(s)),
    lambda d, s: s + "\n",
]


@pytest.mark.parametrize("table", ["teams", "services", "environments", "roles"])
def test_names_are_kebab_case(conn: psycopg.Connection[Any], reliability: Record, table: str) -> None:
    make = Make(conn)
    extra: dict[str, Any] = {}
    if table == "teams":
        extra["display_name"] = "A team"
    if table == "services":
        extra["owner_team_id"] = make.team()
    log = PropertyLog(reliability)

    @prop_settings(100)
    @given(name=valid_or_not(VALID_KEBAB, KEBAB_MUTATIONS))
    def run(name: str) -> None:
        valid = kebab_ok(name)
        log.case("valid" if valid else "invalid")
        row = {"name": name, **extra}
        with example_scope(conn):
            before = counts(conn, table, "audit_logs")
            got, _ = attempt(conn, insert_sql(table, row), list(row.values()))
            log.expect(name, ACCEPTED if valid else Outcome("23514", f"ck_{table}_name_format"), got)
            log.expect_counts(name, before, counts(conn, *before), {table: 1, "audit_logs": 1} if got.accepted else {})
            if got.accepted:
                again, _ = attempt(conn, insert_sql(table, row), list(row.values()))
                log.expect(("again", name), Outcome("23505", f"uq_{table}_name"), again)

    run()
    log.finish(require=("valid", "invalid"))


# --- permission names -------------------------------------------------------------------------------------
def permission_ok(name: str) -> bool:
    """ck_permissions_name_format: resource:action, each lower-case letters and underscores starting with a
    letter; at most 100 characters."""
    parts = name.split(":")
    return (
        len(name) <= 100
        and len(parts) == 2
        and all(p and p[0] in LOWER and all(c in LOWER + "_" for c in p) for p in parts)
    )


WORD = st.builds(lambda first, rest: first + rest, st.sampled_from(LOWER), st.text(LOWER + "_", max_size=30))
VALID_PERMISSIONS = st.one_of(
    st.builds(lambda resource, action: f"{resource}:{action}", WORD, WORD),
    st.integers(97, 103).map(lambda n: "a" * (n // 2) + ":" + "b" * (n - n // 2 - 1)),  # around the limit
)
PERMISSION_MUTATIONS: list[Mutation] = [
    lambda d, s: insert_at(d, s, d(st.sampled_from(list(UPPER) + list(DIGITS) + list("-. é:")))),
    lambda d, s: s.replace(":", "", 1),
    lambda d, s: s.replace(":", ":_", 1),
    lambda d, s: "_" + s,
    lambda d, s: s.partition(":")[0] + ":",
    lambda d, s: s + ":" + s,
    lambda d, s: "a" * max(0, 101 - len(s)) + s,
    lambda d, s: s + "\n",
]


def test_permission_names_are_resource_colon_action(conn: psycopg.Connection[Any], reliability: Record) -> None:
    log = PropertyLog(reliability)

    @prop_settings(120)
    @given(name=valid_or_not(VALID_PERMISSIONS, PERMISSION_MUTATIONS))
    def run(name: str) -> None:
        valid = permission_ok(name)
        log.case("valid" if valid else "invalid")
        with example_scope(conn):
            before = counts(conn, "permissions", "audit_logs")
            got, _ = attempt(conn, insert_sql("permissions", {"name": name}), (name,))
            log.expect(name, ACCEPTED if valid else Outcome("23514", "ck_permissions_name_format"), got)
            delta = {"permissions": 1, "audit_logs": 1} if got.accepted else {}
            log.expect_counts(name, before, counts(conn, *before), delta)
            if got.accepted:
                again, _ = attempt(conn, insert_sql("permissions", {"name": name}), (name,))
                log.expect(("again", name), Outcome("23505", "uq_permissions_name"), again)

    run()
    log.finish(require=("valid", "invalid"))
