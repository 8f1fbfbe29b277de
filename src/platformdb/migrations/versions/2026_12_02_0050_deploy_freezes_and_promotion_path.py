"""Deploy freezes and the promotion path: freeze periods, schedules and overrides; promotion graph and overrides

Why: Anyone with the delivery role could start a production rollout at any time and skip staging (issue #12).
     New tables freeze_schedules (cron + IANA zone + duration, expanded by `platformdb freezes ensure`),
     freeze_periods (a [start, end) tstzrange, GiST-indexed), freeze_overrides (four-eyed), environment_promotions
     (an acyclic graph, trg_environment_promotions_acyclic) and promotion_overrides (break-glass, four-eyed).
     On entering in_progress, trg_deployments_not_frozen refuses a rollout during a matching freeze without an
     override (rollbacks only when the freeze says so), and trg_deployments_promoted one whose release has not
     succeeded in every environment before the target (rollbacks exempt). platform.rollout_blockers() (0042)
     now also says which freezes and which preceding environments hold a pending rollout back. The rules read
     the permissions freeze:manage, freeze:override and promotion:override, inserted here if missing (well-known
     rows, unaudited, as 0030's).
Locks: New tables take no lock on existing ones but their foreign keys' SHARE ROW EXCLUSIVE on environments,
       services, users, deployments while created (milliseconds; reads go on). CREATE TRIGGER on deployments takes
       SHARE ROW EXCLUSIVE until commit (writes wait for the commit). No table is rewritten; the indexes are on
       new, empty tables. Runs before the code that uses it (pre-deploy): with no freeze and no promotion edge
       declared, every v1 write path behaves as before.

Revision ID: 0050
Revises: 0042
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0050"
down_revision: str | Sequence[str] | None = "0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "platform.freeze_schedule_time_zone_guard()",
    "platform.freeze_manager_guard()",
    "platform.freeze_period_begun_guard()",
    "platform.freezes_in_force(uuid, uuid, timestamptz, boolean, uuid)",
    "platform.deployment_freeze_guard()",
    "platform.override_approver_guard()",
    "platform.environment_promotion_acyclic_guard()",
    "platform.promotion_missing(uuid, text, uuid)",
    "platform.deployment_promotion_guard()",
)
TABLES = ("promotion_overrides", "environment_promotions", "freeze_overrides", "freeze_periods", "freeze_schedules")


def upgrade() -> None:
    op.execute(TABLES_SQL)
    op.execute(RULES)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    op.execute(GRANTS)
    op.execute(WELL_KNOWN)


def downgrade() -> None:
    op.execute(ROLLOUT_BLOCKERS_0042)
    # The well-known permissions this revision wrote (its own description, nothing referring to them), without an
    # audit row, as they came.
    op.execute(
        """ALTER TABLE platform.permissions DISABLE TRIGGER trg_permissions_audit;
DELETE FROM platform.permissions p
 WHERE (p.name, p.description) IN (
         ('freeze:manage', 'Declare freeze periods and schedules for the environments and services within the scope held.'),
         ('freeze:override', 'Approve, as the second person, a rollout during a freeze within the scope held.'),
         ('promotion:override', 'Approve, as the second person, a rollout that skips the promotion path within the scope held.'))
   AND NOT EXISTS (SELECT FROM platform.role_permissions rp WHERE rp.permission_id = p.id)
   AND NOT EXISTS (SELECT FROM platform.api_token_scopes s WHERE s.permission_id = p.id)
   AND NOT EXISTS (SELECT FROM platform.approval_rules r WHERE r.approver_permission_id = p.id);
ALTER TABLE platform.permissions ENABLE TRIGGER trg_permissions_audit"""
    )
    op.execute("DROP TRIGGER trg_deployments_not_frozen ON platform.deployments")
    op.execute("DROP TRIGGER trg_deployments_promoted ON platform.deployments")
    # The set-returning helpers return the freeze_periods row type: gone before the table; the trigger
    # functions after the tables whose triggers use them.
    helpers = [f for f in FUNCTIONS if not f.endswith("_guard()")]
    for function in reversed(helpers):
        op.execute(f"DROP FUNCTION {function}")
    for table in TABLES:
        op.execute(f"DROP TABLE platform.{table}")
    for function in reversed(FUNCTIONS):
        if function not in helpers:
            op.execute(f"DROP FUNCTION {function}")


# Well-known permissions the rules above read: reference data the schema ships (like 0030's role:grant), written
# without an audit row; the trigger is off only inside this transaction.
WELL_KNOWN = """
ALTER TABLE platform.permissions DISABLE TRIGGER trg_permissions_audit;
INSERT INTO platform.permissions (name, description) VALUES
  ('freeze:manage', 'Declare freeze periods and schedules for the environments and services within the scope held.'),
  ('freeze:override', 'Approve, as the second person, a rollout during a freeze within the scope held.'),
  ('promotion:override', 'Approve, as the second person, a rollout that skips the promotion path within the scope held.')
ON CONFLICT (name) DO NOTHING;
ALTER TABLE platform.permissions ENABLE TRIGGER trg_permissions_audit;
"""

GRANTS = """
GRANT SELECT, INSERT, UPDATE, DELETE ON platform.freeze_schedules, platform.freeze_periods TO platform_delivery;
GRANT SELECT, INSERT ON platform.freeze_overrides, platform.promotion_overrides TO platform_delivery;
GRANT SELECT, INSERT, DELETE ON platform.environment_promotions TO platform_delivery;
GRANT EXECUTE ON FUNCTION platform.freezes_in_force(uuid, uuid, timestamptz, boolean, uuid),
  platform.promotion_missing(uuid, text, uuid) TO platform_delivery;
GRANT SELECT ON platform.freeze_schedules, platform.freeze_periods, platform.freeze_overrides,
  platform.environment_promotions, platform.promotion_overrides TO platform_readonly;
"""

TABLES_SQL = r"""
CREATE TABLE platform.freeze_schedules (
  id UUID DEFAULT platform.uuidv7() NOT NULL,
  environment_id UUID,
  service_id UUID,
  cron TEXT NOT NULL,
  time_zone TEXT NOT NULL,
  duration INTERVAL NOT NULL,
  reason TEXT NOT NULL,
  freezes_rollbacks BOOLEAN DEFAULT false NOT NULL,
  created_by UUID,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_freeze_schedules PRIMARY KEY (id),
  CONSTRAINT ck_freeze_schedules_cron_format CHECK (cron ~ '^(\*|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]?)?(,(\*|([0-5]?[0-9])(-([0-5]?[0-9]))?)(/[1-9][0-9]?)?)* (\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?(,(\*|([01]?[0-9]|2[0-3])(-([01]?[0-9]|2[0-3]))?)(/[1-9][0-9]?)?)* (\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?(,(\*|(0?[1-9]|[12][0-9]|3[01])(-(0?[1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]?)?)* (\*|(0?[1-9]|1[0-2])(-(0?[1-9]|1[0-2]))?)(/[1-9][0-9]?)?(,(\*|(0?[1-9]|1[0-2])(-(0?[1-9]|1[0-2]))?)(/[1-9][0-9]?)?)* (\*|[0-7](-[0-7])?)(/[1-9][0-9]?)?(,(\*|[0-7](-[0-7])?)(/[1-9][0-9]?)?)*$'),
  CONSTRAINT ck_freeze_schedules_time_zone_length CHECK (char_length(time_zone) BETWEEN 1 AND 64),
  CONSTRAINT ck_freeze_schedules_duration_bounded CHECK (duration > interval '0' AND duration <= interval '14 days'),
  CONSTRAINT ck_freeze_schedules_reason_visible CHECK (char_length(reason) BETWEEN 1 AND 1000 AND reason ~ '[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]' AND reason !~ '[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]'),
  CONSTRAINT fk_freeze_schedules_environment_id_environments FOREIGN KEY(environment_id) REFERENCES platform.environments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_schedules_service_id_services FOREIGN KEY(service_id) REFERENCES platform.services (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_schedules_created_by_users FOREIGN KEY(created_by) REFERENCES platform.users (id) ON DELETE RESTRICT
);
CREATE INDEX ix_freeze_schedules_created_by ON platform.freeze_schedules (created_by);
CREATE INDEX ix_freeze_schedules_environment_id ON platform.freeze_schedules (environment_id);
CREATE INDEX ix_freeze_schedules_service_id ON platform.freeze_schedules (service_id);
COMMENT ON TABLE platform.freeze_schedules IS 'A recurring deploy freeze: a cron expression in an IANA time zone, each firing starting a freeze of the given duration; expanded into freeze_periods ahead of time by `platformdb freezes ensure`.';
COMMENT ON COLUMN platform.freeze_schedules.id IS 'Schedule id (UUIDv7).';
COMMENT ON COLUMN platform.freeze_schedules.environment_id IS 'Environment frozen; NULL for every one.';
COMMENT ON COLUMN platform.freeze_schedules.service_id IS 'Service frozen; NULL for every one.';
COMMENT ON COLUMN platform.freeze_schedules.cron IS 'Five-field cron expression (numbers, *, ranges, lists, steps) of the freeze starts.';
COMMENT ON COLUMN platform.freeze_schedules.time_zone IS 'IANA time zone the cron expression is read in (checked against pg_timezone_names by trigger trg_freeze_schedules_time_zone); starts follow its daylight-saving changes.';
COMMENT ON COLUMN platform.freeze_schedules.duration IS 'How long each freeze lasts (at most 14 days).';
COMMENT ON COLUMN platform.freeze_schedules.reason IS 'Why deployments are frozen: shown to whoever is refused.';
COMMENT ON COLUMN platform.freeze_schedules.freezes_rollbacks IS 'Whether rollbacks are frozen too (by default they are not).';
COMMENT ON COLUMN platform.freeze_schedules.created_by IS 'Who made the schedule; when set, holds freeze:manage in its scope (trg_freeze_schedules_manager).';
COMMENT ON COLUMN platform.freeze_schedules.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN platform.freeze_schedules.updated_at IS 'When the row was last changed; maintained by trigger trg_<table>_updated_at.';
COMMENT ON INDEX platform.ix_freeze_schedules_created_by IS 'Serves: FK';
COMMENT ON INDEX platform.ix_freeze_schedules_environment_id IS 'Serves: FK';
COMMENT ON INDEX platform.ix_freeze_schedules_service_id IS 'Serves: FK';

CREATE TABLE platform.freeze_periods (
  id UUID DEFAULT platform.uuidv7() NOT NULL,
  environment_id UUID,
  service_id UUID,
  during TSTZRANGE NOT NULL,
  reason TEXT NOT NULL,
  freezes_rollbacks BOOLEAN DEFAULT false NOT NULL,
  created_by UUID,
  schedule_id UUID,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_freeze_periods PRIMARY KEY (id),
  CONSTRAINT ck_freeze_periods_during_bounded CHECK (NOT isempty(during) AND NOT lower_inf(during) AND NOT upper_inf(during) AND lower_inc(during) AND NOT upper_inc(during)),
  CONSTRAINT ck_freeze_periods_during_at_most_a_year CHECK (upper(during) - lower(during) <= interval '366 days'),
  CONSTRAINT ck_freeze_periods_reason_visible CHECK (char_length(reason) BETWEEN 1 AND 1000 AND reason ~ '[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]' AND reason !~ '[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]'),
  CONSTRAINT fk_freeze_periods_environment_id_environments FOREIGN KEY(environment_id) REFERENCES platform.environments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_periods_service_id_services FOREIGN KEY(service_id) REFERENCES platform.services (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_periods_created_by_users FOREIGN KEY(created_by) REFERENCES platform.users (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_periods_schedule_id_freeze_schedules FOREIGN KEY(schedule_id) REFERENCES platform.freeze_schedules (id) ON DELETE SET NULL
);
CREATE INDEX ix_freeze_periods_created_by ON platform.freeze_periods (created_by);
CREATE INDEX ix_freeze_periods_during ON platform.freeze_periods USING gist (during);
CREATE INDEX ix_freeze_periods_environment_id ON platform.freeze_periods (environment_id);
CREATE INDEX ix_freeze_periods_service_id ON platform.freeze_periods (service_id);
CREATE UNIQUE INDEX uq_freeze_periods_schedule_id_lower_during ON platform.freeze_periods (schedule_id, lower(during)) NULLS NOT DISTINCT WHERE schedule_id IS NOT NULL;
COMMENT ON TABLE platform.freeze_periods IS 'A concrete deploy freeze: no rollout of a matching deployment starts during it without an override.';
COMMENT ON COLUMN platform.freeze_periods.id IS 'Freeze id (UUIDv7).';
COMMENT ON COLUMN platform.freeze_periods.environment_id IS 'Environment frozen; NULL for every one.';
COMMENT ON COLUMN platform.freeze_periods.service_id IS 'Service frozen; NULL for every one.';
COMMENT ON COLUMN platform.freeze_periods.during IS 'When the freeze holds: [start, end), both finite; a rollout starting at the end instant is not frozen. Fixed once begun (trg_freeze_periods_begun_fixed).';
COMMENT ON COLUMN platform.freeze_periods.reason IS 'Why deployments are frozen: shown to whoever is refused.';
COMMENT ON COLUMN platform.freeze_periods.freezes_rollbacks IS 'Whether rollbacks are frozen too (by default they are not).';
COMMENT ON COLUMN platform.freeze_periods.created_by IS 'Who declared the freeze; when set, holds freeze:manage in its scope (trg_freeze_periods_manager).';
COMMENT ON COLUMN platform.freeze_periods.schedule_id IS 'The schedule this period was expanded from; NULL for a one-off freeze (or a deleted schedule).';
COMMENT ON COLUMN platform.freeze_periods.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN platform.freeze_periods.updated_at IS 'When the row was last changed; maintained by trigger trg_<table>_updated_at.';
COMMENT ON INDEX platform.ix_freeze_periods_created_by IS 'Serves: FK';
COMMENT ON INDEX platform.ix_freeze_periods_during IS 'Serves: trg_deployments_not_frozen; delivery.freeze_calendar (range overlap)';
COMMENT ON INDEX platform.ix_freeze_periods_environment_id IS 'Serves: FK';
COMMENT ON INDEX platform.ix_freeze_periods_service_id IS 'Serves: FK';
COMMENT ON INDEX platform.uq_freeze_periods_schedule_id_lower_during IS 'Serves: rule: freezes ensure makes one period per schedule firing (idempotent); FK';

CREATE TABLE platform.freeze_overrides (
  id UUID DEFAULT platform.uuidv7() NOT NULL,
  freeze_period_id UUID NOT NULL,
  deployment_id UUID NOT NULL,
  requested_by UUID NOT NULL,
  approved_by UUID NOT NULL,
  reason TEXT NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_freeze_overrides PRIMARY KEY (id),
  CONSTRAINT uq_freeze_overrides_freeze_period_id_deployment_id UNIQUE (freeze_period_id, deployment_id),
  CONSTRAINT ck_freeze_overrides_four_eyes CHECK (approved_by <> requested_by),
  CONSTRAINT ck_freeze_overrides_reason_visible CHECK (char_length(reason) BETWEEN 1 AND 1000 AND reason ~ '[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]' AND reason !~ '[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]'),
  CONSTRAINT fk_freeze_overrides_freeze_period_id_freeze_periods FOREIGN KEY(freeze_period_id) REFERENCES platform.freeze_periods (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_overrides_deployment_id_deployments FOREIGN KEY(deployment_id) REFERENCES platform.deployments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_overrides_requested_by_users FOREIGN KEY(requested_by) REFERENCES platform.users (id) ON DELETE RESTRICT,
  CONSTRAINT fk_freeze_overrides_approved_by_users FOREIGN KEY(approved_by) REFERENCES platform.users (id) ON DELETE RESTRICT
);
CREATE INDEX ix_freeze_overrides_approved_by ON platform.freeze_overrides (approved_by);
CREATE INDEX ix_freeze_overrides_deployment_id ON platform.freeze_overrides (deployment_id);
CREATE INDEX ix_freeze_overrides_requested_by ON platform.freeze_overrides (requested_by);
COMMENT ON TABLE platform.freeze_overrides IS 'Permission for one deployment to start during one freeze, approved by a second person; append-only.';
COMMENT ON COLUMN platform.freeze_overrides.id IS 'Override id (UUIDv7).';
COMMENT ON COLUMN platform.freeze_overrides.freeze_period_id IS 'The freeze lifted.';
COMMENT ON COLUMN platform.freeze_overrides.deployment_id IS 'The deployment allowed to start during it.';
COMMENT ON COLUMN platform.freeze_overrides.requested_by IS 'Who asked for the override.';
COMMENT ON COLUMN platform.freeze_overrides.approved_by IS 'Who approved it: not the requester, not the deployer, and holding freeze:override for the deployment''s service and environment at the time (trg_freeze_overrides_approver).';
COMMENT ON COLUMN platform.freeze_overrides.reason IS 'Why the freeze is lifted for this deployment.';
COMMENT ON COLUMN platform.freeze_overrides.created_at IS 'When the row was inserted.';
COMMENT ON INDEX platform.ix_freeze_overrides_approved_by IS 'Serves: FK';
COMMENT ON INDEX platform.ix_freeze_overrides_deployment_id IS 'Serves: FK; overrides of a rollout';
COMMENT ON INDEX platform.ix_freeze_overrides_requested_by IS 'Serves: FK';

CREATE TABLE platform.environment_promotions (
  from_environment_id UUID NOT NULL,
  to_environment_id UUID NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_environment_promotions PRIMARY KEY (from_environment_id, to_environment_id),
  CONSTRAINT ck_environment_promotions_not_self CHECK (from_environment_id <> to_environment_id),
  CONSTRAINT fk_environment_promotions_from_environment_id_environments FOREIGN KEY(from_environment_id) REFERENCES platform.environments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_environment_promotions_to_environment_id_environments FOREIGN KEY(to_environment_id) REFERENCES platform.environments (id) ON DELETE RESTRICT
);
CREATE INDEX ix_environment_promotions_to_environment_id ON platform.environment_promotions (to_environment_id);
COMMENT ON TABLE platform.environment_promotions IS 'An edge of the promotion graph: a release reaches to_environment only after succeeding in from_environment (and in every environment before that); the graph is acyclic.';
COMMENT ON COLUMN platform.environment_promotions.from_environment_id IS 'The environment a release must succeed in first.';
COMMENT ON COLUMN platform.environment_promotions.to_environment_id IS 'The environment it is promoted to; no edge may close a cycle (trg_environment_promotions_acyclic).';
COMMENT ON COLUMN platform.environment_promotions.created_at IS 'When the row was inserted.';
COMMENT ON INDEX platform.ix_environment_promotions_to_environment_id IS 'Serves: FK; trg_deployments_promoted (predecessors of an environment)';

CREATE TABLE platform.promotion_overrides (
  id UUID DEFAULT platform.uuidv7() NOT NULL,
  deployment_id UUID NOT NULL,
  requested_by UUID NOT NULL,
  approved_by UUID NOT NULL,
  reason TEXT NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_promotion_overrides PRIMARY KEY (id),
  CONSTRAINT uq_promotion_overrides_deployment_id UNIQUE (deployment_id),
  CONSTRAINT ck_promotion_overrides_four_eyes CHECK (approved_by <> requested_by),
  CONSTRAINT ck_promotion_overrides_reason_visible CHECK (char_length(reason) BETWEEN 1 AND 1000 AND reason ~ '[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]' AND reason !~ '[\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]'),
  CONSTRAINT fk_promotion_overrides_deployment_id_deployments FOREIGN KEY(deployment_id) REFERENCES platform.deployments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_promotion_overrides_requested_by_users FOREIGN KEY(requested_by) REFERENCES platform.users (id) ON DELETE RESTRICT,
  CONSTRAINT fk_promotion_overrides_approved_by_users FOREIGN KEY(approved_by) REFERENCES platform.users (id) ON DELETE RESTRICT
);
CREATE INDEX ix_promotion_overrides_approved_by ON platform.promotion_overrides (approved_by);
CREATE INDEX ix_promotion_overrides_requested_by ON platform.promotion_overrides (requested_by);
COMMENT ON TABLE platform.promotion_overrides IS 'Break-glass: one deployment may start without the promotion path''s prior successes, approved by a second person; append-only and audited.';
COMMENT ON COLUMN platform.promotion_overrides.id IS 'Override id (UUIDv7).';
COMMENT ON COLUMN platform.promotion_overrides.deployment_id IS 'The deployment exempted from the promotion path.';
COMMENT ON COLUMN platform.promotion_overrides.requested_by IS 'Who asked for the override.';
COMMENT ON COLUMN platform.promotion_overrides.approved_by IS 'Who approved it: not the requester, not the deployer, and holding promotion:override for the deployment''s service and environment at the time (trg_promotion_overrides_approver).';
COMMENT ON COLUMN platform.promotion_overrides.reason IS 'Why the promotion path is bypassed for this deployment.';
COMMENT ON COLUMN platform.promotion_overrides.created_at IS 'When the row was inserted.';
COMMENT ON INDEX platform.ix_promotion_overrides_approved_by IS 'Serves: FK';
COMMENT ON INDEX platform.ix_promotion_overrides_requested_by IS 'Serves: FK';

"""

# Frozen copy of the database-side SQL as it was when this revision landed (see models/delivery.sql for today's).
RULES = r"""
-- Deploy freezes and the promotion path (issue #12, revision 0050). Written by the delivery service; every rule
-- is here, so no write path (a service, a script, psql) starts a frozen or unpromoted rollout. The rules name
-- the permissions freeze:manage, freeze:override and promotion:override; like deployment:create, the identity
-- service creates them (the demo does) and grants them through roles.

-- A CHECK must be immutable and the time-zone database is not: the name is checked against it on write.
CREATE FUNCTION platform.freeze_schedule_time_zone_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- A name too long for any zone is left to ck_freeze_schedules_time_zone_length.
  IF char_length(NEW.time_zone) <= 64
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_names z WHERE z.name = NEW.time_zone) THEN
    RAISE EXCEPTION 'time_zone must be an IANA time zone name the server knows, such as Europe/Berlin'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'time_zone';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.freeze_schedule_time_zone_guard() IS 'BEFORE INSERT/UPDATE trigger of freeze_schedules: the time zone is one pg_timezone_names lists (SQLSTATE 23514, constraint trg_freeze_schedules_time_zone).';

-- Whoever a freeze or schedule names as its creator holds freeze:manage for its scope (a NULL scope asks for a
-- grant that covers every service or environment). A row that names no creator (ensure's expansions, v1-style
-- automation) is the writing service's.
CREATE FUNCTION platform.freeze_manager_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.created_by IS NOT NULL
     AND NOT platform.may_user_do(NEW.created_by, 'freeze:manage', NEW.service_id, NEW.environment_id) THEN
    RAISE EXCEPTION 'the creator of a freeze holds freeze:manage for its service and environment'
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'created_by';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.freeze_manager_guard() IS 'BEFORE INSERT/UPDATE trigger of freeze_periods and freeze_schedules: created_by, when set, holds freeze:manage in the row''s scope (SQLSTATE 42501, constraint trg_<table>_manager).';

-- A freeze that has begun is history and a promise: it may be extended (a later end, rollbacks frozen too) but
-- not shortened, moved, narrowed or deleted, or lifting it would bypass the override's second person. One not
-- yet begun may change freely. The table owner (repairs) is exempt. The link to a schedule may change (a
-- deleted schedule sets it NULL).
CREATE FUNCTION platform.freeze_period_begun_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF lower(OLD.during) <= clock_timestamp()
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
     AND (TG_OP = 'DELETE'
          OR lower(NEW.during) <> lower(OLD.during) OR upper(NEW.during) < upper(OLD.during)
          OR NEW.environment_id IS DISTINCT FROM OLD.environment_id
          OR NEW.service_id IS DISTINCT FROM OLD.service_id
          OR (OLD.freezes_rollbacks AND NOT NEW.freezes_rollbacks))
  THEN
    RAISE EXCEPTION 'a freeze that has begun may only be extended, not shortened, moved, narrowed or deleted: override it for a deployment instead'
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME;
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION platform.freeze_period_begun_guard() IS 'BEFORE UPDATE/DELETE trigger of freeze_periods: a freeze that has begun may be extended only (SQLSTATE 23000, constraint trg_freeze_periods_begun_fixed); the table owner is exempt.';

-- The freezes that hold a rollout of (service, environment) back at an instant: in force then ([start, end)),
-- matching its scope, freezing rollbacks if it is one, and not overridden for that deployment.
CREATE FUNCTION platform.freezes_in_force(p_service_id uuid, p_environment_id uuid, p_at timestamptz,
                                          p_rollback boolean, p_deployment_id uuid)
RETURNS SETOF platform.freeze_periods
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT f.*
    FROM platform.freeze_periods f
   WHERE f.during @> p_at
     AND (f.environment_id IS NULL OR f.environment_id = p_environment_id)
     AND (f.service_id IS NULL OR f.service_id = p_service_id)
     AND (NOT p_rollback OR f.freezes_rollbacks)
     AND NOT EXISTS (SELECT FROM platform.freeze_overrides o
                      WHERE o.freeze_period_id = f.id AND o.deployment_id = p_deployment_id)
   ORDER BY upper(f.during) DESC, f.id
$$;
COMMENT ON FUNCTION platform.freezes_in_force(uuid, uuid, timestamptz, boolean, uuid) IS 'The freezes holding a rollout of the service in the environment back at an instant: in force ([start, end)), in scope, freezing rollbacks when p_rollback, not overridden for the deployment; latest end first.';

-- Entering in_progress during a freeze is refused. The instant checked is the database clock's, and also the
-- started_at a writer gives (kept by trg_deployments_timestamps when within 30 s before to 5 s after the clock),
-- so a backdated stamp does not slip in before a freeze either.
CREATE FUNCTION platform.deployment_freeze_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_clock timestamptz := clock_timestamp();
  f platform.freeze_periods;
BEGIN
  SELECT * INTO f
    FROM platform.freezes_in_force(NEW.service_id, NEW.environment_id, v_clock, NEW.rollback_of_id IS NOT NULL,
                                   NEW.id)
   LIMIT 1;
  IF NOT FOUND AND NEW.started_at IS NOT NULL AND NEW.started_at IS DISTINCT FROM OLD.started_at THEN
    SELECT * INTO f
      FROM platform.freezes_in_force(NEW.service_id, NEW.environment_id, NEW.started_at,
                                     NEW.rollback_of_id IS NOT NULL, NEW.id)
     LIMIT 1;
  END IF;
  IF FOUND THEN
    RAISE EXCEPTION 'deployments are frozen until % by freeze %', upper(f.during), f.id
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'status', DETAIL = f.reason,
            HINT = 'a second person holding freeze:override may approve an override in platform.freeze_overrides';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_freeze_guard() IS 'BEFORE UPDATE trigger of deployments: refuses entering in_progress while a matching freeze without an override for the deployment is in force (SQLSTATE 23514, constraint trg_deployments_not_frozen); rollbacks only when the freeze freezes them.';

-- An override's approver is a second person: not its requester (ck_<table>_four_eyes), not the deployment's
-- deployer, and holding the override permission for the deployment's service and environment at the time.
-- Shared by freeze_overrides (freeze:override) and promotion_overrides (promotion:override): TG_ARGV[0].
-- A transaction that names its actor (platformdb.actor_id, set_actor) writes an override only as its approver:
-- a service does not approve on someone else's behalf, and the audit row names who approved.
CREATE FUNCTION platform.override_approver_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  d record;
  v_actor text := nullif(current_setting('platformdb.actor_id', true), '');
BEGIN
  IF v_actor IS NOT NULL AND v_actor IS DISTINCT FROM NEW.approved_by::text THEN
    RAISE EXCEPTION 'an override is written by its approver: the transaction''s actor is another user'
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'approved_by';
  END IF;
  SELECT service_id, environment_id, deployed_by INTO d FROM platform.deployments WHERE id = NEW.deployment_id;
  IF FOUND AND NEW.approved_by = d.deployed_by THEN
    RAISE EXCEPTION 'the deployer of a deployment cannot approve its override'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'approved_by';
  END IF;
  IF FOUND AND NOT platform.may_user_do(NEW.approved_by, TG_ARGV[0], d.service_id, d.environment_id) THEN
    RAISE EXCEPTION 'the approver of an override holds % for the deployment''s service and environment', TG_ARGV[0]
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'approved_by';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.override_approver_guard() IS 'BEFORE INSERT trigger of freeze_overrides and promotion_overrides: the approver is not the deployer (23514), holds the permission named by the trigger argument for the deployment''s service and environment, and is the transaction''s actor when one is set (42501); constraint trg_<table>_approver.';

-- The promotion graph stays acyclic. Concurrent inserts are serialized by a transaction advisory lock, after
-- which (READ COMMITTED: each statement takes a new snapshot) the check sees every committed edge; SERIALIZABLE
-- transactions are kept apart by SSI as well. A REPEATABLE READ snapshot would not see an edge committed while
-- it waited, so edges are not written at that level.
CREATE FUNCTION platform.environment_promotion_acyclic_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('transaction_isolation') = 'repeatable read' THEN
    RAISE EXCEPTION 'promotion edges are written at READ COMMITTED or SERIALIZABLE, not REPEATABLE READ'
      USING ERRCODE = 'invalid_transaction_state', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME;
  END IF;
  PERFORM pg_advisory_xact_lock(7265736565700050);  -- one key for the table's writers, held to commit
  -- A self-edge is left to ck_environment_promotions_not_self.
  IF NEW.from_environment_id <> NEW.to_environment_id AND EXISTS (WITH RECURSIVE reach(environment_id) AS (
               SELECT NEW.to_environment_id
               UNION
               SELECT p.to_environment_id FROM platform.environment_promotions p
                 JOIN reach r ON p.from_environment_id = r.environment_id)
             SELECT FROM reach WHERE environment_id = NEW.from_environment_id) THEN
    RAISE EXCEPTION 'this promotion would close a cycle: the target already precedes the source'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.environment_promotion_acyclic_guard() IS 'BEFORE INSERT trigger of environment_promotions: refuses an edge that closes a cycle (SQLSTATE 23514, constraint trg_environment_promotions_acyclic), serialized by an advisory lock; refuses REPEATABLE READ writers (25000).';

-- The environments before p_environment_id on the promotion path (all ancestors) in which the release
-- (p_service_id, p_version) has no succeeded deployment.
CREATE FUNCTION platform.promotion_missing(p_service_id uuid, p_version text, p_environment_id uuid)
RETURNS SETOF uuid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE before(environment_id) AS (
    SELECT p.from_environment_id FROM platform.environment_promotions p WHERE p.to_environment_id = p_environment_id
    UNION
    SELECT p.from_environment_id FROM platform.environment_promotions p
      JOIN before b ON p.to_environment_id = b.environment_id)
  SELECT b.environment_id
    FROM before b
   WHERE NOT EXISTS (SELECT FROM platform.deployments e
                      WHERE e.service_id = p_service_id AND e.version = p_version
                        AND e.environment_id = b.environment_id AND e.status = 'succeeded')
   ORDER BY b.environment_id
$$;
COMMENT ON FUNCTION platform.promotion_missing(uuid, text, uuid) IS 'The environments preceding an environment on the promotion path (every ancestor) without a succeeded deployment of the release.';

-- Entering in_progress needs the release to have succeeded in every environment before this one (a rollback is
-- exempt; so is a deployment with a break-glass promotion override). Checked at the start of the rollout, like
-- approvals and freezes, so a deployment may be queued while its release is still being proven upstream.
CREATE FUNCTION platform.deployment_promotion_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_missing uuid;
BEGIN
  IF NOT EXISTS (SELECT FROM platform.promotion_overrides o WHERE o.deployment_id = NEW.id) THEN
    SELECT m INTO v_missing FROM platform.promotion_missing(NEW.service_id, NEW.version, NEW.environment_id) m
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'release % has not succeeded in environment %, which precedes this one', NEW.version, v_missing
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              COLUMN = 'status',
              HINT = 'deploy it there first, or a second person holding promotion:override approves a promotion override';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_promotion_guard() IS 'BEFORE UPDATE trigger of deployments: refuses entering in_progress unless the release succeeded in every environment preceding the target on the promotion path or a promotion override exists (SQLSTATE 23514, constraint trg_deployments_promoted); rollbacks are exempt.';

-- What blocks this rollout now also says freezes and the promotion path (same function, same shape: callers of
-- 0042's version keep working). SECURITY DEFINER; no format(), see 0042.
CREATE OR REPLACE FUNCTION platform.rollout_blockers(p_deployment_id uuid)
RETURNS TABLE (blocker text, detail text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- One statement, no helper functions: the catalog's plan checks see every table it reads. The freeze and
  -- promotion parts say what trg_deployments_not_frozen (platform.freezes_in_force) and
  -- trg_deployments_promoted (platform.promotion_missing) check; the tests hold the two to the same answers.
  WITH RECURSIVE d AS (
      SELECT x.id, x.service_id, x.version, x.environment_id, x.rollback_of_id
        FROM platform.deployments x
       WHERE x.id = p_deployment_id AND x.status = 'pending'),
    before (environment_id) AS (
      SELECT p.from_environment_id
        FROM d JOIN platform.environment_promotions p ON p.to_environment_id = d.environment_id
       WHERE d.rollback_of_id IS NULL
      UNION
      SELECT p.from_environment_id
        FROM before b JOIN platform.environment_promotions p ON p.to_environment_id = b.environment_id)
  SELECT 'rejected', 'rejected by approver ' || a.approver_id::text
    FROM d JOIN platform.deployment_approvals a ON a.deployment_id = d.id AND a.decision = 'rejected'
  UNION ALL
  SELECT 'approvals_missing', concat('rule ', q.approval_rule_id, ': ', n.approved, ' of ', q.required_approvals,
                                     ' approvals by holders of ', p.name)
    FROM d
    JOIN platform.deployment_approval_requirements q ON q.deployment_id = d.id
    JOIN platform.permissions p ON p.id = q.approver_permission_id
    CROSS JOIN LATERAL (SELECT count(*) AS approved FROM platform.deployment_approvals a
                         WHERE a.deployment_id = q.deployment_id AND a.approval_rule_id = q.approval_rule_id
                           AND a.decision = 'approved') n
   WHERE n.approved < q.required_approvals
  UNION ALL
  SELECT 'freeze', concat('freeze ', f.id, ' until ', upper(f.during), ': ', f.reason)
    FROM d JOIN platform.freeze_periods f
      ON f.during @> clock_timestamp()
     AND (f.environment_id IS NULL OR f.environment_id = d.environment_id)
     AND (f.service_id IS NULL OR f.service_id = d.service_id)
     AND (d.rollback_of_id IS NULL OR f.freezes_rollbacks)
   WHERE NOT EXISTS (SELECT FROM platform.freeze_overrides o WHERE o.freeze_period_id = f.id AND o.deployment_id = d.id)
  UNION ALL
  SELECT 'promotion', concat('release ', d.version, ' has not succeeded in environment ', e.name, ' (', e.id, ')')
    FROM d CROSS JOIN before b
    JOIN platform.environments e ON e.id = b.environment_id
   WHERE NOT EXISTS (SELECT FROM platform.deployments s
                      WHERE s.service_id = d.service_id AND s.version = d.version
                        AND s.environment_id = b.environment_id AND s.status = 'succeeded')
     AND NOT EXISTS (SELECT FROM platform.promotion_overrides o WHERE o.deployment_id = d.id)
$$;
COMMENT ON FUNCTION platform.rollout_blockers(uuid) IS 'What blocks this rollout: for a pending deployment, a row per rejection (rejected), per captured approval rule short of its approvals (approvals_missing), per freeze in force now without an override (freeze) and per environment before this one on the promotion path where the release has not succeeded (promotion); no rows when it may start.';

CREATE TRIGGER trg_freeze_schedules_time_zone BEFORE INSERT OR UPDATE OF time_zone ON platform.freeze_schedules
  FOR EACH ROW EXECUTE FUNCTION platform.freeze_schedule_time_zone_guard();
CREATE TRIGGER trg_freeze_schedules_manager
  BEFORE INSERT OR UPDATE OF created_by, service_id, environment_id ON platform.freeze_schedules
  FOR EACH ROW EXECUTE FUNCTION platform.freeze_manager_guard();
CREATE TRIGGER trg_freeze_periods_manager
  BEFORE INSERT OR UPDATE OF created_by, service_id, environment_id ON platform.freeze_periods
  FOR EACH ROW EXECUTE FUNCTION platform.freeze_manager_guard();
CREATE TRIGGER trg_freeze_periods_begun_fixed BEFORE UPDATE OR DELETE ON platform.freeze_periods
  FOR EACH ROW EXECUTE FUNCTION platform.freeze_period_begun_guard();
CREATE TRIGGER trg_freeze_overrides_approver BEFORE INSERT ON platform.freeze_overrides
  FOR EACH ROW EXECUTE FUNCTION platform.override_approver_guard('freeze:override');
CREATE TRIGGER trg_promotion_overrides_approver BEFORE INSERT ON platform.promotion_overrides
  FOR EACH ROW EXECUTE FUNCTION platform.override_approver_guard('promotion:override');
CREATE TRIGGER trg_environment_promotions_acyclic BEFORE INSERT ON platform.environment_promotions
  FOR EACH ROW EXECUTE FUNCTION platform.environment_promotion_acyclic_guard();
CREATE TRIGGER trg_deployments_not_frozen BEFORE UPDATE OF status ON platform.deployments
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status = 'in_progress')
  EXECUTE FUNCTION platform.deployment_freeze_guard();
CREATE TRIGGER trg_deployments_promoted BEFORE UPDATE OF status ON platform.deployments
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status = 'in_progress' AND NEW.rollback_of_id IS NULL)
  EXECUTE FUNCTION platform.deployment_promotion_guard();

CREATE TRIGGER trg_freeze_overrides_append_only BEFORE UPDATE OR DELETE ON platform.freeze_overrides
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('an override is append-only');
CREATE TRIGGER trg_promotion_overrides_append_only BEFORE UPDATE OR DELETE ON platform.promotion_overrides
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('an override is append-only');
CREATE TRIGGER trg_environment_promotions_immutable BEFORE UPDATE ON platform.environment_promotions
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('delete the edge and insert another');

CREATE TRIGGER trg_freeze_schedules_updated_at BEFORE UPDATE ON platform.freeze_schedules
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_freeze_periods_updated_at BEFORE UPDATE ON platform.freeze_periods
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_freeze_schedules_created_at BEFORE INSERT ON platform.freeze_schedules
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_freeze_periods_created_at BEFORE INSERT ON platform.freeze_periods
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_freeze_overrides_created_at BEFORE INSERT ON platform.freeze_overrides
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_promotion_overrides_created_at BEFORE INSERT ON platform.promotion_overrides
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_environment_promotions_created_at BEFORE INSERT ON platform.environment_promotions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_freeze_schedules_keys_immutable BEFORE UPDATE ON platform.freeze_schedules
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_freeze_periods_keys_immutable BEFORE UPDATE ON platform.freeze_periods
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');

CREATE TRIGGER trg_freeze_schedules_audit AFTER INSERT OR UPDATE OR DELETE ON platform.freeze_schedules
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');
CREATE TRIGGER trg_freeze_periods_audit AFTER INSERT OR UPDATE OR DELETE ON platform.freeze_periods
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');
CREATE TRIGGER trg_freeze_overrides_audit AFTER INSERT OR UPDATE OR DELETE ON platform.freeze_overrides
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');
CREATE TRIGGER trg_promotion_overrides_audit AFTER INSERT OR UPDATE OR DELETE ON platform.promotion_overrides
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');
CREATE TRIGGER trg_environment_promotions_audit AFTER INSERT OR UPDATE OR DELETE ON platform.environment_promotions
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('from_environment_id,to_environment_id');
"""


# 0042's body, restored on downgrade (frozen here: 0042 itself is history, not a module to import).
ROLLOUT_BLOCKERS_0042 = """
CREATE OR REPLACE FUNCTION platform.rollout_blockers(p_deployment_id uuid)
RETURNS TABLE (blocker text, detail text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'rejected', 'rejected by approver ' || a.approver_id::text
    FROM platform.deployments d
    JOIN platform.deployment_approvals a ON a.deployment_id = d.id AND a.decision = 'rejected'
   WHERE d.id = p_deployment_id AND d.status = 'pending'
  UNION ALL
  SELECT 'approvals_missing', concat('rule ', q.approval_rule_id, ': ', n.approved, ' of ', q.required_approvals,
                                     ' approvals by holders of ', p.name)
    FROM platform.deployments d
    JOIN platform.deployment_approval_requirements q ON q.deployment_id = d.id
    JOIN platform.permissions p ON p.id = q.approver_permission_id
    CROSS JOIN LATERAL (SELECT count(*) AS approved FROM platform.deployment_approvals a
                         WHERE a.deployment_id = q.deployment_id AND a.approval_rule_id = q.approval_rule_id
                           AND a.decision = 'approved') n
   WHERE d.id = p_deployment_id AND d.status = 'pending' AND n.approved < q.required_approvals
$$;
COMMENT ON FUNCTION platform.rollout_blockers(uuid) IS 'What blocks this rollout (approvals): for a pending deployment, a row per rejection (blocker rejected) and per captured rule short of its approvals (blocker approvals_missing); no rows when nothing does.';
"""
