"""Deploy freezes and the promotion path (issue #12, revision 0050): every rule by SQLSTATE and name, the valid
write beside each refused one, and the whole flow through the delivery service's own role."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from platformdb.actor import set_actor
from tests.factories import (
    Make,
    assert_created_at_trigger,
    assert_keys_trigger,
    assert_updated_at_trigger,
    delete_by_id,
    rejected,
    restrict_sqlstate,
    triggers_disabled,
)


def start(conn: psycopg.Connection[Any], deployment: uuid.UUID, **extra: Any) -> None:
    """Enter in_progress (optionally giving more columns, e.g. started_at)."""
    sets = sql.SQL(", ").join(
        [sql.SQL("status = 'in_progress'")]
        + [sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder()) for k in extra]
    )
    conn.execute(
        sql.SQL("UPDATE platform.deployments SET {} WHERE id = %s").format(sets), (*extra.values(), deployment)
    )


def status(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> str:
    row = conn.execute("SELECT status FROM platform.deployments WHERE id = %s", (deployment,)).fetchone()
    assert row is not None
    return str(row[0])


def blockers(conn: psycopg.Connection[Any], deployment: uuid.UUID) -> list[tuple[str, str]]:
    return [
        (str(b), str(d))
        for b, d in conn.execute("SELECT * FROM platform.rollout_blockers(%s) ORDER BY 1, 2", (deployment,))
    ]


# --- freeze schedules -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cron",
    ["61 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "* * * *", "@daily", "*/0 * * * *",
     "0 18 * * FRI", "0  18 * * 5", "0 18 * * 5 2027", "a b c d e"],
)  # fmt: skip
def test_freeze_schedules_cron_format(conn: psycopg.Connection[Any], make: Make, cron: str) -> None:
    with rejected("23514", "ck_freeze_schedules_cron_format"):
        make.freeze_schedule(cron=cron)


@pytest.mark.parametrize(
    "cron", ["0 18 * * 5", "*/15 9-17 * * 1-5", "0 0 1,15 * *", "30 2 * 12 0,7", "0 0 31 1-12/2 *"]
)
def test_freeze_schedules_cron_format_accepts_five_fields(conn: psycopg.Connection[Any], make: Make, cron: str) -> None:
    make.freeze_schedule(cron=cron)


def test_freeze_schedules_time_zone(conn: psycopg.Connection[Any], make: Make) -> None:
    for zone in ("Mars/Olympus_Mons", "europe/berlin", "CEST+2", ""):
        with rejected("23514", "trg_freeze_schedules_time_zone"):
            make.freeze_schedule(time_zone=zone)
    schedule = make.freeze_schedule(time_zone="America/New_York")
    with rejected("23514", "trg_freeze_schedules_time_zone"):
        conn.execute("UPDATE platform.freeze_schedules SET time_zone = 'Nowhere/Land' WHERE id = %s", (schedule,))
    conn.execute("UPDATE platform.freeze_schedules SET time_zone = 'UTC' WHERE id = %s", (schedule,))


def test_freeze_schedules_time_zone_length(conn: psycopg.Connection[Any], make: Make) -> None:
    with rejected("23514", "ck_freeze_schedules_time_zone_length"):
        make.freeze_schedule(time_zone="Europe/" + "A" * 58)


@pytest.mark.parametrize("duration", [dt.timedelta(0), dt.timedelta(seconds=-1), dt.timedelta(days=14, seconds=1)])
def test_freeze_schedules_duration_bounded(conn: psycopg.Connection[Any], make: Make, duration: dt.timedelta) -> None:
    with rejected("23514", "ck_freeze_schedules_duration_bounded"):
        make.freeze_schedule(duration=duration)
    make.freeze_schedule(duration=dt.timedelta(days=14))


@pytest.mark.parametrize(
    ("table", "constraint"),
    [
        ("freeze_schedules", "ck_freeze_schedules_reason_visible"),
        ("freeze_periods", "ck_freeze_periods_reason_visible"),
        ("freeze_overrides", "ck_freeze_overrides_reason_visible"),
        ("promotion_overrides", "ck_promotion_overrides_reason_visible"),
    ],
)
@pytest.mark.parametrize("reason", ["", "   ", "\u00a0", "freeze\u200b", "line\nbreak", "x" * 1001])
def test_reasons_are_visible_text(
    conn: psycopg.Connection[Any], make: Make, table: str, constraint: str, reason: str
) -> None:
    def write(text: str) -> None:
        if table == "freeze_schedules":
            make.freeze_schedule(reason=text)
        elif table == "freeze_periods":
            make.freeze(reason=text)
        else:
            deployment = make.deployment(make.service(), make.environment())
            extra = {"freeze_period_id": make.freeze()} if table == "freeze_overrides" else {}
            permission = "freeze:override" if table == "freeze_overrides" else "promotion:override"
            make.override(table, deployment, permission, reason=text, **extra)

    with rejected("23514", constraint):
        write(reason)
    write("Black Friday: only fixes")


def test_freeze_manager(conn: psycopg.Connection[Any], make: Make) -> None:
    """A freeze or schedule that names its creator needs them to hold freeze:manage for its scope; a grant for
    one environment does not cover a freeze of every environment."""
    env = make.environment()
    nobody = make.user()
    manager = make.permit("freeze:manage", environment_id=env)
    for table, trigger in (("freeze_periods", "trg_freeze_periods_manager"),
                           ("freeze_schedules", "trg_freeze_schedules_manager")):  # fmt: skip
        write = make.freeze if table == "freeze_periods" else make.freeze_schedule
        with rejected("42501", trigger):
            write(environment_id=env, created_by=nobody)
        with rejected("42501", trigger):
            write(created_by=manager)  # every environment: beyond the grant
        row = write(environment_id=env, created_by=manager)
        with rejected("42501", trigger):
            conn.execute(f"UPDATE platform.{table} SET environment_id = NULL WHERE id = %s", (row,))
        write(environment_id=env)  # no creator named: the service's own


# --- freeze periods ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "during",
    ["empty", "[2026-12-01,)", "(,2026-12-01)", "(2026-12-01,2026-12-02)", "[2026-12-01,2026-12-02]",
     "[2026-12-02,2026-12-02)"],
)  # fmt: skip
def test_freeze_periods_during_bounded(conn: psycopg.Connection[Any], make: Make, during: str) -> None:
    with rejected("23514", "ck_freeze_periods_during_bounded"):
        make.freeze(during=during)
    make.freeze(during="[2026-12-01,2026-12-02)")


def test_freeze_periods_during_at_most_a_year(conn: psycopg.Connection[Any], make: Make) -> None:
    with rejected("23514", "ck_freeze_periods_during_at_most_a_year"):
        make.freeze(during="[2026-01-01,2027-01-02 00:00:00.000001)")
    make.freeze(during="[2026-01-01,2027-01-02)")  # 366 days


def test_freeze_periods_begun_fixed(conn: psycopg.Connection[Any], make: Make) -> None:
    """A freeze in force may be extended but not shortened, moved, narrowed, lifted for rollbacks or deleted;
    one still to come may change or go; the table owner may repair."""
    env = make.environment()
    begun = make.freeze(environment_id=env, freezes_rollbacks=True)
    for change in (
        "during = tstzrange(lower(during), upper(during) - interval '1 microsecond')",
        "during = tstzrange(lower(during) + interval '1 microsecond', upper(during))",
        "environment_id = NULL",
        f"service_id = '{make.service()}'",
        "freezes_rollbacks = false",
    ):
        with rejected("23000", "trg_freeze_periods_begun_fixed"), conn.transaction():
            conn.execute("SET LOCAL ROLE platform_delivery")
            conn.execute(f"UPDATE platform.freeze_periods SET {change} WHERE id = %s", (begun,))
    with rejected("23000", "trg_freeze_periods_begun_fixed"), conn.transaction():
        conn.execute("SET LOCAL ROLE platform_delivery")
        conn.execute("DELETE FROM platform.freeze_periods WHERE id = %s", (begun,))
    with conn.transaction():
        conn.execute("SET LOCAL ROLE platform_delivery")
        conn.execute(
            "UPDATE platform.freeze_periods SET during = tstzrange(lower(during), upper(during) + interval '1 day'),"
            " reason = 'Extended' WHERE id = %s",
            (begun,),
        )
        later = make.freeze("1 day", "2 days", environment_id=env)
        conn.execute("UPDATE platform.freeze_periods SET environment_id = NULL WHERE id = %s", (later,))
        conn.execute("DELETE FROM platform.freeze_periods WHERE id = %s", (later,))
    conn.execute("DELETE FROM platform.freeze_periods WHERE id = %s", (begun,))  # the owner repairs


def test_freeze_periods_schedule_unique_per_start(conn: psycopg.Connection[Any], make: Make) -> None:
    schedule = make.freeze_schedule()
    make.freeze(during="[2026-12-04 17:00Z,2026-12-07 08:00Z)", schedule_id=schedule)
    with rejected("23505", "uq_freeze_periods_schedule_id_lower_during"):
        make.freeze(during="[2026-12-04 17:00Z,2026-12-05 08:00Z)", schedule_id=schedule)
    make.freeze(during="[2026-12-04 17:00Z,2026-12-05 08:00Z)")  # a one-off beside it


def test_freeze_foreign_keys(conn: psycopg.Connection[Any], make: Make) -> None:
    """Scope and creator are restricted; deleting a schedule keeps the periods it made, unlinked."""
    env, service, user = make.environment(), make.service(), make.permit("freeze:manage")
    period = make.freeze("1 day", "2 days", environment_id=env, service_id=service, created_by=user)
    schedule = make.freeze_schedule(environment_id=env, service_id=service, created_by=user)
    for table, key, fks in (
        ("environments", env, ("fk_freeze_periods_environment_id_environments",
                               "fk_freeze_schedules_environment_id_environments")),
        ("services", service, ("fk_freeze_periods_service_id_services", "fk_freeze_schedules_service_id_services")),
        ("users", user, ("fk_freeze_periods_created_by_users", "fk_freeze_schedules_created_by_users")),
    ):  # fmt: skip
        with pytest.raises(psycopg.IntegrityError) as info:
            delete_by_id(conn, table, key)
        assert (info.value.sqlstate, info.value.diag.constraint_name) in {(restrict_sqlstate(conn), fk) for fk in fks}
    for fk, column in (("fk_freeze_periods_schedule_id_freeze_schedules", "schedule_id"),
                       ("fk_freeze_schedules_environment_id_environments", "environment_id")):  # fmt: skip
        table = fk.split("_")[1] + "_" + fk.split("_")[2]
        with rejected("23503", fk):
            conn.execute(f"UPDATE platform.{table} SET {column} = platform.uuidv7() WHERE id = %s",
                         (period if table == "freeze_periods" else schedule,))  # fmt: skip
    with rejected("23503", "fk_freeze_periods_service_id_services"):
        make.freeze(service_id=uuid.uuid4())
    with rejected("23503", "fk_freeze_periods_environment_id_environments"):
        make.freeze(environment_id=uuid.uuid4())
    with (
        triggers_disabled(conn, "freeze_periods", "trg_freeze_periods_manager"),
        rejected("23503", "fk_freeze_periods_created_by_users"),
    ):
        make.freeze(created_by=uuid.uuid4())  # the manager rule would refuse it first
    with rejected("23503", "fk_freeze_schedules_service_id_services"):
        make.freeze_schedule(service_id=uuid.uuid4())
    with (
        triggers_disabled(conn, "freeze_schedules", "trg_freeze_schedules_manager"),
        rejected("23503", "fk_freeze_schedules_created_by_users"),
    ):
        make.freeze_schedule(created_by=uuid.uuid4())
    linked = make.freeze("3 days", "4 days", schedule_id=schedule)
    conn.execute("DELETE FROM platform.freeze_schedules WHERE id = %s", (schedule,))
    assert conn.execute("SELECT schedule_id FROM platform.freeze_periods WHERE id = %s", (linked,)).fetchone() == (
        None,
    )


# --- the rule: no rollout starts during a freeze -----------------------------------------------------------------
def test_deployments_not_frozen(conn: psycopg.Connection[Any], make: Make) -> None:
    """A freeze of the environment (or of the service, or of everything) in force refuses the start; a freeze of
    another environment or service, or one past or to come, does not."""
    service, env, other = make.service(), make.environment(), make.environment()
    make.freeze(environment_id=other)
    make.freeze(service_id=make.service())
    make.freeze("-2 hours", "-1 hour", environment_id=env)
    make.freeze("1 hour", "2 hours", environment_id=env)
    free = make.deployment(service, env)
    start(conn, free)
    assert status(conn, free) == "in_progress"
    for scope in ("environment", "service", "both", "everything"):
        service, env = make.service(), make.environment()
        freeze = make.freeze(
            environment_id=env if scope in ("environment", "both") else None,
            service_id=service if scope in ("service", "both") else None,
        )
        deployment = make.deployment(service, env)
        with rejected("23514", "trg_deployments_not_frozen"):
            start(conn, deployment)
        assert blockers(conn, deployment)[0][0] == "freeze"
        make.override("freeze_overrides", deployment, "freeze:override", freeze_period_id=freeze)
        if scope != "everything":  # the freeze of everything made before still holds
            assert blockers(conn, deployment) == []
            start(conn, deployment)
            assert status(conn, deployment) == "in_progress"


def test_deployments_not_frozen_needs_an_override_of_every_freeze(conn: psycopg.Connection[Any], make: Make) -> None:
    service, env = make.service(), make.environment()
    first, second = make.freeze(environment_id=env), make.freeze(service_id=service, reason="Audit week")
    deployment = make.deployment(service, env)
    make.override("freeze_overrides", deployment, "freeze:override", freeze_period_id=first)
    with rejected("23514", "trg_deployments_not_frozen"):
        start(conn, deployment)
    assert [b for b, _ in blockers(conn, deployment)] == ["freeze"]
    assert "Audit week" in blockers(conn, deployment)[0][1]
    other = make.deployment(make.service(), env)  # an override is for its deployment only
    with rejected("23514", "trg_deployments_not_frozen"):
        start(conn, other)
    make.override("freeze_overrides", deployment, "freeze:override", freeze_period_id=second)
    start(conn, deployment)


def test_deployments_not_frozen_rollbacks_per_freeze(conn: psycopg.Connection[Any], make: Make) -> None:
    """Rollbacks start during a freeze unless the freeze freezes them too."""
    service, env = make.service(), make.environment()
    for version in ("1.0.0", "2.0.0"):
        make.set_status(make.deployment(service, env, version), "in_progress", "succeeded")
    bad = conn.execute(
        "SELECT id FROM platform.deployments WHERE service_id = %s AND version = '2.0.0'", (service,)
    ).fetchone()
    assert bad is not None
    make.freeze(environment_id=env)
    rollback = conn.execute("SELECT platform.start_rollback(%s)", (bad[0],)).fetchone()
    assert rollback is not None
    start(conn, rollback[0])
    make.set_status(rollback[0], "failed")
    make.freeze(environment_id=env, freezes_rollbacks=True)
    again = conn.execute("SELECT platform.start_rollback(%s, '1.0.0')", (bad[0],)).fetchone()
    assert again is not None
    with rejected("23514", "trg_deployments_not_frozen"):
        start(conn, again[0])


def test_deployments_not_frozen_checks_a_given_started_at(conn: psycopg.Connection[Any], make: Make) -> None:
    """A writer's started_at (kept within 30 s of the clock) is checked too: backdating into a freeze that just
    ended is refused like starting in it; a stamp outside any freeze goes through."""
    service, env = make.service(), make.environment()
    make.freeze("-1 minute", "-1 second", environment_id=env)
    deployment = make.deployment(service, env)
    now = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    with rejected("23514", "trg_deployments_not_frozen"):
        start(conn, deployment, started_at=now - dt.timedelta(seconds=20))
    start(conn, deployment, started_at=now)


# --- overrides --------------------------------------------------------------------------------------------------
OVERRIDE_RULES = {
    "freeze_overrides": ("ck_freeze_overrides_four_eyes", "trg_freeze_overrides_approver",
                         "trg_freeze_overrides_append_only"),
    "promotion_overrides": ("ck_promotion_overrides_four_eyes", "trg_promotion_overrides_approver",
                            "trg_promotion_overrides_append_only"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("table", "permission"), [("freeze_overrides", "freeze:override"), ("promotion_overrides", "promotion:override")]
)
def test_overrides_need_a_second_person(conn: psycopg.Connection[Any], make: Make, table: str, permission: str) -> None:
    """The approver is not the requester, not the deployer, and holds the override permission for the
    deployment's service and environment (a grant elsewhere does not count); overrides are append-only."""
    service, env = make.service(), make.environment()
    deployer = make.permit(permission)
    deployment = make.deployment(service, env, deployed_by=deployer)
    extra: dict[str, Any] = {"freeze_period_id": make.freeze()} if table == "freeze_overrides" else {}
    approver = make.permit(permission, service_id=service, environment_id=env)
    four_eyes, approver_rule, append_only = OVERRIDE_RULES[table]
    with rejected("23514", four_eyes):
        make.override(table, deployment, permission, requested_by=approver, approved_by=approver, **extra)
    with rejected("23514", approver_rule):
        make.override(table, deployment, permission, approved_by=deployer, **extra)
    for outsider in (make.user(), make.permit(permission, environment_id=make.environment()),
                     make.permit("deployment:create")):  # fmt: skip
        with rejected("42501", approver_rule):
            make.override(table, deployment, permission, approved_by=outsider, **extra)
    with rejected("42501", approver_rule), conn.transaction():  # the actor is someone else: not on their behalf
        set_actor(conn, deployer)
        make.override(table, deployment, permission, approved_by=approver, requested_by=deployer, **extra)
    with conn.transaction():
        set_actor(conn, approver)
        override = make.override(table, deployment, permission, approved_by=approver, requested_by=deployer, **extra)
    actor = conn.execute(
        f"SELECT actor_id FROM platform.audit_logs WHERE entity_type = '{table}' AND entity_id = %s", (str(override),)
    ).fetchone()
    assert actor == (approver,)
    unique = "uq_freeze_overrides_freeze_period_id_deployment_id" if extra else "uq_promotion_overrides_deployment_id"
    with rejected("23505", unique):
        make.override(table, deployment, permission, **extra)
    for statement in (f"UPDATE platform.{table} SET reason = 'Changed' WHERE id = %s",
                      f"DELETE FROM platform.{table} WHERE id = %s"):  # fmt: skip
        with rejected("23000", append_only):
            conn.execute(statement, (override,))


def test_override_foreign_keys(conn: psycopg.Connection[Any], make: Make) -> None:
    deployment = make.deployment(make.service(), make.environment())
    for table, fk, column in (
        ("freeze_overrides", "fk_freeze_overrides_freeze_period_id_freeze_periods", "freeze_period_id"),
        ("freeze_overrides", "fk_freeze_overrides_deployment_id_deployments", "deployment_id"),
        ("freeze_overrides", "fk_freeze_overrides_requested_by_users", "requested_by"),
        ("freeze_overrides", "fk_freeze_overrides_approved_by_users", "approved_by"),
        ("promotion_overrides", "fk_promotion_overrides_deployment_id_deployments", "deployment_id"),
        ("promotion_overrides", "fk_promotion_overrides_requested_by_users", "requested_by"),
        ("promotion_overrides", "fk_promotion_overrides_approved_by_users", "approved_by"),
    ):
        permission = "freeze:override" if table == "freeze_overrides" else "promotion:override"
        extra: dict[str, Any] = {"freeze_period_id": make.freeze()} if table == "freeze_overrides" else {}
        values = extra | {column: uuid.uuid4()}
        target = values.pop("deployment_id", deployment)
        if column == "approved_by":  # the approver rule finds no such user holding the permission first
            with triggers_disabled(conn, table, f"trg_{table}_approver"), rejected("23503", fk):
                make.override(table, target, permission, **values)
            continue
        with rejected("23503", fk):
            make.override(table, target, permission, **values)
    freeze = make.freeze()
    override = make.override("freeze_overrides", deployment, "freeze:override", freeze_period_id=freeze)
    approver = conn.execute("SELECT approved_by FROM platform.freeze_overrides WHERE id = %s", (override,)).fetchone()
    with rejected(restrict_sqlstate(conn), "fk_freeze_overrides_approved_by_users"):
        delete_by_id(conn, "users", approver[0])  # type: ignore[index]
    with rejected(restrict_sqlstate(conn), "fk_freeze_overrides_freeze_period_id_freeze_periods"):
        conn.execute("DELETE FROM platform.freeze_periods WHERE id = %s", (freeze,))


# --- the promotion path ------------------------------------------------------------------------------------------
def promote(make: Make, source: uuid.UUID, target: uuid.UUID) -> None:
    make.insert("environment_promotions", "from_environment_id", from_environment_id=source, to_environment_id=target)


def test_environment_promotions_acyclic(conn: psycopg.Connection[Any], make: Make) -> None:
    dev, staging, prod = make.environment(), make.environment(), make.environment()
    with rejected("23514", "ck_environment_promotions_not_self"):
        promote(make, dev, dev)
    promote(make, dev, staging)
    promote(make, staging, prod)
    for source, target in ((prod, dev), (staging, dev), (prod, staging)):
        with rejected("23514", "trg_environment_promotions_acyclic"):
            promote(make, source, target)
    promote(make, dev, prod)  # a shortcut is no cycle
    with rejected("23505", "pk_environment_promotions"):
        promote(make, dev, prod)
    with rejected("23000", "trg_environment_promotions_immutable"):
        conn.execute("UPDATE platform.environment_promotions SET to_environment_id = %s WHERE to_environment_id = %s",
                     (dev, prod))  # fmt: skip
    with rejected("23503", "fk_environment_promotions_from_environment_id_environments"):
        promote(make, uuid.uuid4(), dev)
    with rejected("23503", "fk_environment_promotions_to_environment_id_environments"):
        promote(make, dev, uuid.uuid4())
    with rejected(restrict_sqlstate(conn), "fk_environment_promotions_from_environment_id_environments"):
        conn.execute("DELETE FROM platform.environments WHERE id = %s", (dev,))


def test_environment_promotions_acyclic_refuses_repeatable_read(conn: psycopg.Connection[Any], make: Make) -> None:
    """A REPEATABLE READ snapshot would miss an edge committed while the writer waited: such writers are told."""
    source, target = make.environment(), make.environment()
    with rejected("25000", "trg_environment_promotions_acyclic"), conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        promote(make, source, target)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        promote(make, source, target)


def test_deployments_promoted(conn: psycopg.Connection[Any], make: Make) -> None:
    """dev -> staging -> prod: a release starts in prod only after succeeding in staging and in dev (every
    environment before it); a release that failed or was rolled back upstream does not count; other services'
    successes do not count; environments off the path are free."""
    dev, staging, prod, lab = (make.environment() for _ in range(4))
    promote(make, dev, staging)
    promote(make, staging, prod)
    service = make.service()
    free = make.deployment(service, lab)
    start(conn, free)
    make.set_status(free, "failed")
    other = make.service()
    make.set_status(make.deployment(other, dev), "in_progress", "succeeded")
    make.set_status(make.deployment(other, staging), "in_progress", "succeeded")
    first = make.deployment(service, dev)
    start(conn, first)  # dev precedes nothing
    make.set_status(first, "failed")
    to_staging = make.deployment(service, staging)
    with rejected("23514", "trg_deployments_promoted"):
        start(conn, to_staging)
    assert [b for b, _ in blockers(conn, to_staging)] == ["promotion"]
    make.set_status(make.deployment(service, dev), "in_progress", "succeeded")
    assert blockers(conn, to_staging) == []
    start(conn, to_staging)
    make.set_status(to_staging, "succeeded")
    make.set_status(make.deployment(service, dev, "2.0.0"), "in_progress", "succeeded")
    make.set_status(make.deployment(service, staging, "2.0.0"), "in_progress", "succeeded")
    to_prod = make.deployment(service, prod)
    start(conn, to_prod)
    make.set_status(to_prod, "succeeded")
    # 1.1.0 skipped dev: succeeding in staging (by override) is not enough for prod.
    skipped = make.deployment(service, staging, "1.1.0")
    make.override("promotion_overrides", skipped, "promotion:override")
    make.set_status(skipped, "in_progress", "succeeded")
    prod_skip = make.deployment(service, prod, "1.1.0")
    with rejected("23514", "trg_deployments_promoted"):
        start(conn, prod_skip)
    assert len(blockers(conn, prod_skip)) == 1
    assert blockers(conn, prod_skip)[0][1].startswith("release 1.1.0")


def test_deployments_promoted_rolled_back_upstream_does_not_count(conn: psycopg.Connection[Any], make: Make) -> None:
    staging, prod = make.environment(), make.environment()
    promote(make, staging, prod)
    service = make.service()
    make.set_status(make.deployment(service, staging, "1.0.0"), "in_progress", "succeeded")
    bad = make.deployment(service, staging, "2.0.0")
    make.set_status(bad, "in_progress", "succeeded")
    rollback = conn.execute("SELECT platform.start_rollback(%s)", (bad,)).fetchone()
    make.set_status(rollback[0], "in_progress", "succeeded")  # type: ignore[index]
    assert status(conn, bad) == "rolled_back"
    with rejected("23514", "trg_deployments_promoted"):
        start(conn, make.deployment(service, prod, "2.0.0"))


def test_deployments_promoted_exempts_rollbacks_and_break_glass(conn: psycopg.Connection[Any], make: Make) -> None:
    staging, prod = make.environment(), make.environment()
    service = make.service()
    for version in ("1.0.0", "2.0.0"):
        make.set_status(make.deployment(service, prod, version), "in_progress", "succeeded")
    promote(make, staging, prod)  # declared after both went out without it
    latest = conn.execute(
        "SELECT id FROM platform.deployments WHERE service_id = %s AND version = '2.0.0'", (service,)
    ).fetchone()
    rollback = conn.execute("SELECT platform.start_rollback(%s)", (latest[0],)).fetchone()  # type: ignore[index]
    start(conn, rollback[0])  # type: ignore[index]
    make.set_status(rollback[0], "succeeded")  # type: ignore[index]
    hotfix = make.deployment(service, prod, "2.0.1")
    with rejected("23514", "trg_deployments_promoted"):
        start(conn, hotfix)
    make.override("promotion_overrides", hotfix, "promotion:override")
    assert blockers(conn, hotfix) == []
    start(conn, hotfix)
    audit = conn.execute("SELECT action FROM platform.audit_logs WHERE entity_type = 'promotion_overrides'").fetchall()
    assert audit == [("insert",)]


# --- what blocks a rollout -----------------------------------------------------------------------------------------
def test_rollout_blockers_lists_freezes_and_promotion(conn: psycopg.Connection[Any], make: Make) -> None:
    staging, prod = make.environment(name="staging-x"), make.environment()
    promote(make, staging, prod)
    service = make.service()
    make.freeze(environment_id=prod, reason="Year-end close")
    deployment = make.deployment(service, prod)
    got = blockers(conn, deployment)
    assert [b for b, _ in got] == ["freeze", "promotion"]
    assert "Year-end close" in got[0][1]
    assert "staging-x" in got[1][1]
    with conn.transaction():
        conn.execute("SET LOCAL ROLE platform_readonly")
        assert len(blockers(conn, deployment)) == 2
    make.set_status(deployment, "cancelled")
    assert blockers(conn, deployment) == []  # only a pending rollout is held back


def test_rollout_blockers_answer_approvals_freezes_and_promotion_at_once(
    conn: psycopg.Connection[Any], make: Make
) -> None:
    """One function says everything that holds a pending rollout back, whichever revision added the rule."""
    staging, prod = make.environment(name="staging-y"), make.environment(tier="production")
    promote(make, staging, prod)
    service = make.service()
    make.release(service, "1.0.0")
    rule = make.approval_rule(prod, required_approvals=1)
    deployer = make.holder("deployment:create", service_id=service, environment_id=prod)
    make.freeze(environment_id=prod, reason="Quarter close")
    deployment = make.insert("deployments", service_id=service, version="1.0.0", environment_id=prod,
                             deployed_by=deployer)  # fmt: skip
    got = blockers(conn, deployment)
    assert [b for b, _ in got] == ["approvals_missing", "freeze", "promotion"]
    assert got[0][1].startswith(f"rule {rule}: 0 of 1")
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        start(conn, deployment)
    assert refused.value.diag.constraint_name in {"trg_deployments_approved", "trg_deployments_not_frozen",
                                                  "trg_deployments_promoted"}  # fmt: skip


def test_rollout_blockers_agree_with_what_the_start_triggers_check(conn: psycopg.Connection[Any], make: Make) -> None:
    """rollout_blockers() repeats the freeze and promotion predicates inline (so plan checks see its tables):
    for each pending deployment its freeze rows are exactly platform.freezes_in_force() at that instant and its
    promotion rows exactly platform.promotion_missing(), and a start is refused by name iff it lists a reason."""
    dev, staging, prod = make.environment(name="dev-z"), make.environment(name="staging-z"), make.environment()
    promote(make, dev, staging)
    promote(make, staging, prod)
    service, other = make.service(), make.service()
    make.set_status(make.deployment(service, dev, "1.0.0"), "in_progress", "succeeded")
    for version in ("2.0.0", "3.0.0"):
        make.set_status(make.deployment(other, dev, version), "in_progress", "succeeded")
    make.freeze(environment_id=prod, reason="all of production")
    make.freeze(environment_id=staging, service_id=other, reason="only the other service")
    make.freeze(environment_id=dev, freezes_rollbacks=True, reason="rollbacks too")
    bad = conn.execute("SELECT id FROM platform.deployments WHERE service_id = %s AND version = '3.0.0'", (other,))
    row = bad.fetchone()
    assert row is not None
    pending = [make.deployment(service, e, "1.0.0") for e in (staging, prod)]
    pending += [make.deployment(other, e, "3.0.0") for e in (staging, prod)]
    rollback = conn.execute("SELECT platform.start_rollback(%s)", (row[0],)).fetchone()
    assert rollback is not None
    pending.append(rollback[0])
    for deployment in pending:
        at = conn.execute(
            "SELECT service_id, version, environment_id, rollback_of_id IS NOT NULL FROM platform.deployments"
            " WHERE id = %s",
            (deployment,),
        ).fetchone()
        assert at is not None
        service_id, version, env, is_rollback = at
        in_force = "SELECT id FROM platform.freezes_in_force(%s, %s, clock_timestamp(), %s, %s)"
        frozen = {str(r[0]) for r in conn.execute(in_force, (service_id, env, is_rollback, deployment))}
        missing_sql = "SELECT m FROM platform.promotion_missing(%s, %s, %s) m"
        missing = set() if is_rollback else {str(r[0]) for r in conn.execute(missing_sql, (service_id, version, env))}
        got = blockers(conn, deployment)
        assert {d.split()[1] for b, d in got if b == "freeze"} == frozen
        assert {d.rsplit("(", 1)[1].rstrip(")") for b, d in got if b == "promotion"} == missing
        refused = None
        try:
            with conn.transaction(force_rollback=True):  # try the start, keep nothing
                start(conn, deployment)
        except psycopg.errors.CheckViolation as exc:
            refused = exc.diag.constraint_name
        assert (refused is not None) == bool(got), (deployment, got, refused)


# --- the delivery service's own role -------------------------------------------------------------------------------
def test_delivery_service_runs_freezes_and_promotions(conn: psycopg.Connection[Any], make: Make) -> None:
    """The whole flow as platform_delivery: it declares a freeze and an edge, its start is refused by both rules,
    overrides lift them, and a freeze cannot be deleted under it."""
    staging, prod, service = make.environment(), make.environment(), make.service()
    manager = make.permit("freeze:manage", environment_id=prod)
    requester, approver = make.user(), make.permit("freeze:override", environment_id=prod)
    breaker = make.permit("promotion:override", service_id=service)
    make.release(service, "3.0.0")
    conn.execute("SET ROLE platform_delivery")
    try:
        promote(make, staging, prod)
        with rejected("23514", "trg_environment_promotions_acyclic"):
            promote(make, prod, staging)
        deployment = make.insert("deployments", service_id=service, version="3.0.0", environment_id=prod)
        with rejected("23514", "trg_deployments_promoted"):
            start(conn, deployment)
        make.override("promotion_overrides", deployment, "x", requested_by=requester, approved_by=breaker)
        freeze = make.freeze(environment_id=prod, created_by=manager)
        schedule = make.freeze_schedule(environment_id=prod, created_by=manager)
        with rejected("42501", "trg_freeze_schedules_manager"):
            make.freeze_schedule(created_by=manager)
        with rejected("23514", "trg_deployments_not_frozen"):
            start(conn, deployment)
        with rejected("42501", "trg_freeze_overrides_approver"):
            make.override("freeze_overrides", deployment, "x", freeze_period_id=freeze, requested_by=requester,
                          approved_by=breaker)  # fmt: skip
        make.override("freeze_overrides", deployment, "x", freeze_period_id=freeze, requested_by=requester,
                      approved_by=approver)  # fmt: skip
        start(conn, deployment)
        with rejected("23000", "trg_freeze_periods_begun_fixed"):
            conn.execute("DELETE FROM platform.freeze_periods WHERE id = %s", (freeze,))
        conn.execute("DELETE FROM platform.freeze_schedules WHERE id = %s", (schedule,))
        conn.execute("DELETE FROM platform.environment_promotions")
    finally:
        conn.execute("RESET ROLE")
    assert status(conn, deployment) == "in_progress"


# --- stamps and keys -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "trigger"),
    [
        ("freeze_schedules", "trg_freeze_schedules_created_at"),
        ("freeze_periods", "trg_freeze_periods_created_at"),
        ("freeze_overrides", "trg_freeze_overrides_created_at"),
        ("environment_promotions", "trg_environment_promotions_created_at"),
        ("promotion_overrides", "trg_promotion_overrides_created_at"),
    ],
)
def test_governance_created_at_triggers(conn: psycopg.Connection[Any], make: Make, table: str, trigger: str) -> None:
    deployment = make.deployment(make.service(), make.environment())
    approver = {"freeze_overrides": "freeze:override", "promotion_overrides": "promotion:override"}.get(table)
    values: dict[str, Any] = {
        "freeze_schedules": {"cron": "0 0 * * *", "time_zone": "UTC", "duration": dt.timedelta(hours=1),
                             "reason": "Nightly"},
        "freeze_periods": {"during": "[2026-12-24,2026-12-27)", "reason": "Holidays"},
        "freeze_overrides": {"freeze_period_id": make.freeze()},
        "environment_promotions": {"from_environment_id": make.environment(), "to_environment_id": make.environment()},
        "promotion_overrides": {},
    }[table]  # fmt: skip
    if approver:
        values |= {"deployment_id": deployment, "requested_by": make.user(), "approved_by": make.permit(approver),
                   "reason": "Outage"}  # fmt: skip
    assert_created_at_trigger(conn, table, "platform_delivery", values, trigger)


@pytest.mark.parametrize(
    ("table", "updated_at", "keys"),
    [
        ("freeze_schedules", "trg_freeze_schedules_updated_at", "trg_freeze_schedules_keys_immutable"),
        ("freeze_periods", "trg_freeze_periods_updated_at", "trg_freeze_periods_keys_immutable"),
    ],
)
def test_governance_updated_at_and_keys(
    conn: psycopg.Connection[Any], make: Make, table: str, updated_at: str, keys: str
) -> None:
    values: dict[str, Any] = {"created_at": "2026-01-01", "updated_at": "2026-01-01"}
    row = make.freeze_schedule(**values) if table == "freeze_schedules" else make.freeze("1 day", "2 days", **values)
    assert_updated_at_trigger(conn, table, "id = %s", (row,), "reason = 'Changed'", updated_at)
    assert_keys_trigger(conn, table, "id = %s", (row,), "id = gen_random_uuid()", keys)


def test_demo_shows_a_freeze_and_the_promotion_path_holding_a_rollout_back(db: Any) -> None:
    from rich.console import Console

    from platformdb.workbench import demo

    assert demo.load(db)
    console = Console(width=200, record=True)
    console.print(demo.summary(db, freshly_loaded=True))
    text = console.export_text()
    assert "What blocks the open rollouts (delivery.rollout_blockers)" in text
    assert "approvals_missing" in text
    assert "payments 2.0.0 -> production" in text
    assert "Card network migration" in text
    assert "has not succeeded in environment development" in text
    assert "has not succeeded in environment staging" in text
    assert not demo.load(db)
