"""Property test of no-escalation granting (trg_role_grants_no_escalation): a granter with generated grants
tries to grant a generated role in a generated scope, as the identity service. The oracle, written from the
rule's specification, decides: the grant goes through exactly when, for role:grant and for every permission of
the granted role, the granter holds a grant of it whose scope covers the new grant's (a NULL service or
environment covers any; a NULL in the new grant is covered only by a NULL)."""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import Make
from tests.reliability.report import Record
from tests.reliability.support import ACCEPTED, Outcome, PropertyLog, attempt, example_scope, insert_sql, prop_settings

PERMISSIONS = ("role:grant", "deployment:create", "secret:read", "service:read")
SCOPE = st.sampled_from([None, 0, 1])
GRANT = st.tuples(st.frozensets(st.sampled_from(PERMISSIONS), min_size=1), SCOPE, SCOPE)


def covers(held: int | None, wanted: int | None) -> bool:
    return held is None or held == wanted


def allowed(grants: list[tuple[frozenset[str], int | None, int | None]], role: frozenset[str],
            service: int | None, env: int | None) -> bool:  # fmt: skip
    return all(
        any(p in perms and covers(s, service) and covers(e, env) for perms, s, e in grants)
        for p in {"role:grant", *role}
    )


def test_no_escalation(conn: psycopg.Connection[Any], reliability: Record) -> None:
    make = Make(conn)
    ids = {name: make.permission_id(name) for name in PERMISSIONS}
    services, envs = [make.service(), make.service()], [make.environment(), make.environment()]
    log = PropertyLog(reliability)

    def role_of(perms: frozenset[str]) -> Any:
        role = make.role()
        for p in perms:
            make.insert("role_permissions", returning="role_id", role_id=role, permission_id=ids[p])
        return role

    @prop_settings(120)
    @given(held=st.lists(GRANT, max_size=4), wanted=st.frozensets(st.sampled_from(PERMISSIONS[1:])), service=SCOPE,
           env=SCOPE)  # fmt: skip
    def run(held: list[tuple[frozenset[str], int | None, int | None]], wanted: frozenset[str], service: int | None,
            env: int | None) -> None:  # fmt: skip
        expected = (
            ACCEPTED if allowed(held, wanted, service, env) else Outcome("42501", "trg_role_grants_no_escalation")
        )
        log.case("allowed" if expected.accepted else "escalation")
        with example_scope(conn):
            granter = make.user()
            for perms, s, e in held:  # written as the owner (bootstrap): no granter needed
                make.grant(granter, role_of(perms), service_id=None if s is None else services[s],
                           environment_id=None if e is None else envs[e])  # fmt: skip
            row = {"user_id": make.user(), "role_id": role_of(wanted), "granted_by": granter,
                   "service_id": None if service is None else services[service],
                   "environment_id": None if env is None else envs[env]}  # fmt: skip
            conn.execute("SET ROLE platform_identity")
            got, _ = attempt(conn, insert_sql("role_grants", row), list(row.values()))
            conn.execute("RESET ROLE")
            log.expect((held, sorted(wanted), service, env), expected, got)

    run()
    log.finish(require=("allowed", "escalation"))
