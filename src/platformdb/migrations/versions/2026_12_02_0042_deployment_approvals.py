"""Who may deploy, protected environments and four-eyes approvals, enforced by the database

Why: Anyone with the delivery role could start a production rollout at any time, naming anybody or nobody as
     its deployer. Now: a named deployer must hold deployment:create for the service and environment when the
     deployment is created (trg_deployments_deployer_may_deploy; the table owner is exempt for backfills, as
     with trg_deployments_created_at); an environment with an approval rule in force is protected, and a
     deployment to it must name its deployer (trg_deployments_deployer_named). approval_rules (per environment,
     optionally per service or up to a service tier; approver permission, count, self-approval, rollbacks) are
     written by platform_identity (policy, beside the grants: the service that runs rollouts cannot move its
     gate). The rules that apply are captured into deployment_approval_requirements when the deployment is
     created (trg_deployments_capture_approval_rules), so a later change does not move an open rollout's
     goalposts. deployment_approvals is append-only, one decision per approver and deployment, relayed by
     platform_delivery: the deployment must be pending (trg_deployment_approvals_open, which locks its row FOR
     SHARE to commit), the deployer may not decide on their own rollout unless the rule allows it
     (trg_deployment_approvals_not_self), and the approver must hold the rule's permission for the service and
     environment at the time (trg_deployment_approvals_approver_authorized, through platform.may_user_do).
     trg_deployments_approved refuses pending -> in_progress until every captured rule has its approvals and
     nobody rejected; a rejection leaves cancel as the only move. An approval racing the start is counted or
     refused, never lost: both lock the deployment row. platform.rollout_blockers(uuid) says what blocks a
     rollout (approvals part). All rules 23514.
Locks: The three tables are new (no lock on existing data). CREATE TRIGGER takes SHARE ROW EXCLUSIVE on
       deployments until commit (reads go on; writes wait milliseconds). Runs before the code that uses it
       (pre-deploy): with no approval rule, no environment is protected and v1 writes that name no deployer
       keep working; v1 writes that name a deployer need that deployer to hold deployment:create (the rule
       the issue asks for: grant it before upgrading if deployers are named without grants).

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0042"
down_revision: str | Sequence[str] | None = "0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "platform.deployment_deployer_may_deploy()",
    "platform.deployment_deployer_named()",
    "platform.capture_approval_rules()",
    "platform.deployment_approval_open()",
    "platform.deployment_approval_not_self()",
    "platform.deployment_approval_authorized()",
    "platform.deployment_approved_guard()",
    "platform.rollout_blockers(uuid)",
)
DEPLOYMENT_TRIGGERS = (
    "trg_deployments_deployer_may_deploy",
    "trg_deployments_deployer_named",
    "trg_deployments_capture_approval_rules",
    "trg_deployments_approved",
)


ACTIVE_INDEX_SERVES = "delivery.active_deployments (the active rollouts, oldest first)"


def upgrade() -> None:
    op.execute("-- squawk-ignore-file prefer-bigint-over-smallint -- approvals are 1 to 10 and tiers 1 to 4 by CHECK")
    op.execute(TABLES)
    op.execute(DELIVERY)
    op.execute(
        "COMMENT ON INDEX platform.ix_deployments_created_at_active IS"
        f" 'Serves: {ACTIVE_INDEX_SERVES}; delivery.pending_approvals_of_approver (the pending rollouts)'"
    )
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(f"COMMENT ON INDEX platform.ix_deployments_created_at_active IS 'Serves: {ACTIVE_INDEX_SERVES}'")
    op.execute("REVOKE SELECT ON platform.permissions FROM platform_delivery")
    for trigger in reversed(DEPLOYMENT_TRIGGERS):
        op.execute(f"DROP TRIGGER {trigger} ON platform.deployments")
    op.execute("DROP TABLE platform.deployment_approvals")
    op.execute("DROP TABLE platform.deployment_approval_requirements")
    op.execute("DROP TABLE platform.approval_rules")
    for function in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")


GRANTS = """
GRANT SELECT, INSERT ON platform.deployment_approvals TO platform_delivery;
GRANT SELECT ON platform.approval_rules, platform.deployment_approval_requirements, platform.permissions
  TO platform_delivery;
GRANT SELECT, INSERT, UPDATE, DELETE ON platform.approval_rules TO platform_identity;
GRANT EXECUTE ON FUNCTION platform.rollout_blockers(uuid) TO platform_delivery, platform_readonly;
GRANT SELECT ON platform.approval_rules, platform.deployment_approval_requirements, platform.deployment_approvals
  TO platform_readonly;
"""

# Frozen copies of the tables and the database-side SQL as they were when this revision landed (see
# models/delivery.py and models/delivery.sql for today's).
TABLES = r"""
CREATE TABLE platform.approval_rules (
  id UUID DEFAULT platform.uuidv7() NOT NULL,
  environment_id UUID NOT NULL,
  service_id UUID,
  max_service_tier SMALLINT,
  approver_permission_id UUID NOT NULL,
  required_approvals SMALLINT NOT NULL,
  allow_self_approval BOOLEAN DEFAULT 'false' NOT NULL,
  applies_to_rollbacks BOOLEAN DEFAULT 'false' NOT NULL,
  disabled_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_approval_rules PRIMARY KEY (id),
  CONSTRAINT uq_approval_rules_scope UNIQUE NULLS NOT DISTINCT (environment_id, service_id, max_service_tier, approver_permission_id),
  CONSTRAINT ck_approval_rules_required_approvals_range CHECK (required_approvals BETWEEN 1 AND 10),
  CONSTRAINT ck_approval_rules_max_service_tier_range CHECK (max_service_tier BETWEEN 1 AND 4),
  CONSTRAINT ck_approval_rules_service_or_tier CHECK (service_id IS NULL OR max_service_tier IS NULL),
  CONSTRAINT ck_approval_rules_disabled_after_created CHECK (disabled_at >= created_at),
  CONSTRAINT fk_approval_rules_environment_id_environments FOREIGN KEY(environment_id) REFERENCES platform.environments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_approval_rules_service_id_services FOREIGN KEY(service_id) REFERENCES platform.services (id) ON DELETE CASCADE,
  CONSTRAINT fk_approval_rules_approver_permission_id_permissions FOREIGN KEY(approver_permission_id) REFERENCES platform.permissions (id) ON DELETE RESTRICT
);
COMMENT ON TABLE platform.approval_rules IS 'A four-eyes rule of an environment: deployments to it need approvals by holders of a permission.';
COMMENT ON COLUMN platform.approval_rules.id IS 'Rule id (UUIDv7).';
COMMENT ON COLUMN platform.approval_rules.environment_id IS 'The protected environment: one with a rule in force (created, not yet disabled) is deployed to by a named deployer only.';
COMMENT ON COLUMN platform.approval_rules.service_id IS 'Service the rule is limited to; NULL for every service.';
COMMENT ON COLUMN platform.approval_rules.max_service_tier IS 'Services of this tier or more critical (tier <= it) only; NULL for any tier. Not with service_id.';
COMMENT ON COLUMN platform.approval_rules.approver_permission_id IS 'Permission an approver must hold for the service and environment (platform.may_user_do), e.g. deployment:approve: the roles that carry it are the approver roles.';
COMMENT ON COLUMN platform.approval_rules.required_approvals IS 'Approvals needed, 1 to 10.';
COMMENT ON COLUMN platform.approval_rules.allow_self_approval IS 'Whether the deployer may approve their own rollout.';
COMMENT ON COLUMN platform.approval_rules.applies_to_rollbacks IS 'Whether rollbacks (rollback_of_id set) need the approvals too.';
COMMENT ON COLUMN platform.approval_rules.disabled_at IS 'When the rule stops applying to new deployments (a captured rule is disabled, not deleted).';
COMMENT ON COLUMN platform.approval_rules.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN platform.approval_rules.updated_at IS 'When the row was last changed; maintained by trigger trg_<table>_updated_at.';
CREATE INDEX ix_approval_rules_service_id ON platform.approval_rules (service_id) WHERE service_id IS NOT NULL;
COMMENT ON INDEX platform.ix_approval_rules_service_id IS 'Serves: FK approval_rules.service_id';
CREATE INDEX ix_approval_rules_approver_permission_id ON platform.approval_rules (approver_permission_id);
COMMENT ON INDEX platform.ix_approval_rules_approver_permission_id IS 'Serves: FK approval_rules.approver_permission_id';
CREATE TABLE platform.deployment_approval_requirements (
  deployment_id UUID NOT NULL,
  approval_rule_id UUID NOT NULL,
  approver_permission_id UUID NOT NULL,
  required_approvals SMALLINT NOT NULL,
  allow_self_approval BOOLEAN NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_deployment_approval_requirements PRIMARY KEY (deployment_id, approval_rule_id),
  CONSTRAINT ck_deployment_approval_requirements_required_approvals_range CHECK (required_approvals BETWEEN 1 AND 10),
  CONSTRAINT fk_deployment_approval_requirements_deployment_id_deployments FOREIGN KEY(deployment_id) REFERENCES platform.deployments (id) ON DELETE RESTRICT,
  CONSTRAINT fk_deployment_approval_requirements_approval_rule_id FOREIGN KEY(approval_rule_id) REFERENCES platform.approval_rules (id) ON DELETE RESTRICT,
  CONSTRAINT fk_deployment_approval_requirements_approver_permission_id FOREIGN KEY(approver_permission_id) REFERENCES platform.permissions (id) ON DELETE RESTRICT
);
COMMENT ON TABLE platform.deployment_approval_requirements IS 'An approval rule as it was when a deployment was created: the rollout''s goalposts, written by trigger.';
COMMENT ON COLUMN platform.deployment_approval_requirements.deployment_id IS 'The deployment.';
COMMENT ON COLUMN platform.deployment_approval_requirements.approval_rule_id IS 'The rule captured.';
COMMENT ON COLUMN platform.deployment_approval_requirements.approver_permission_id IS 'The rule''s approver permission, as captured.';
COMMENT ON COLUMN platform.deployment_approval_requirements.required_approvals IS 'Approvals needed, as captured.';
COMMENT ON COLUMN platform.deployment_approval_requirements.allow_self_approval IS 'Whether the deployer may approve, as captured.';
COMMENT ON COLUMN platform.deployment_approval_requirements.created_at IS 'When the row was inserted.';
CREATE INDEX ix_deployment_approval_requirements_approver_permission_id ON platform.deployment_approval_requirements (approver_permission_id);
COMMENT ON INDEX platform.ix_deployment_approval_requirements_approver_permission_id IS 'Serves: FK deployment_approval_requirements.approver_permission_id';
CREATE INDEX ix_deployment_approval_requirements_approval_rule_id ON platform.deployment_approval_requirements (approval_rule_id);
COMMENT ON INDEX platform.ix_deployment_approval_requirements_approval_rule_id IS 'Serves: FK deployment_approval_requirements.approval_rule_id';
CREATE TABLE platform.deployment_approvals (
  deployment_id UUID NOT NULL,
  approver_id UUID NOT NULL,
  approval_rule_id UUID NOT NULL,
  decision TEXT NOT NULL,
  comment TEXT DEFAULT '' NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
  CONSTRAINT pk_deployment_approvals PRIMARY KEY (deployment_id, approver_id),
  CONSTRAINT fk_deployment_approvals_requirement FOREIGN KEY(deployment_id, approval_rule_id) REFERENCES platform.deployment_approval_requirements (deployment_id, approval_rule_id) ON DELETE RESTRICT,
  CONSTRAINT ck_deployment_approvals_decision_allowed CHECK (decision IN ('approved', 'rejected')),
  CONSTRAINT ck_deployment_approvals_comment_length CHECK (char_length(comment) <= 1000),
  CONSTRAINT fk_deployment_approvals_approver_id_users FOREIGN KEY(approver_id) REFERENCES platform.users (id) ON DELETE RESTRICT
);
COMMENT ON TABLE platform.deployment_approvals IS 'An approver''s decision on a deployment, under one of its captured rules; append-only.';
COMMENT ON COLUMN platform.deployment_approvals.deployment_id IS 'The deployment decided on.';
COMMENT ON COLUMN platform.deployment_approvals.approver_id IS 'Who decided (one decision per approver and deployment); relayed by the delivery service.';
COMMENT ON COLUMN platform.deployment_approvals.approval_rule_id IS 'The captured rule the decision counts toward.';
COMMENT ON COLUMN platform.deployment_approvals.decision IS 'approved or rejected; a rejection leaves cancel as the only move.';
COMMENT ON COLUMN platform.deployment_approvals.comment IS 'Why, in the approver''s words.';
COMMENT ON COLUMN platform.deployment_approvals.created_at IS 'When the row was inserted.';
CREATE INDEX ix_deployment_approvals_deployment_id_approval_rule_id ON platform.deployment_approvals (deployment_id, approval_rule_id);
COMMENT ON INDEX platform.ix_deployment_approvals_deployment_id_approval_rule_id IS 'Serves: FK to deployment_approval_requirements; approvals counted per rule';
CREATE INDEX ix_deployment_approvals_approver_id ON platform.deployment_approvals (approver_id);
COMMENT ON INDEX platform.ix_deployment_approvals_approver_id IS 'Serves: FK deployment_approvals.approver_id; decisions of an approver';
"""

DELIVERY = r"""
-- Who may deploy, protected environments and four-eyes approvals (revision 0042).
CREATE TRIGGER trg_approval_rules_updated_at BEFORE UPDATE ON platform.approval_rules
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_approval_rules_created_at BEFORE INSERT ON platform.approval_rules
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_approval_rules_keys_immutable BEFORE UPDATE ON platform.approval_rules
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_approval_rules_audit AFTER INSERT OR UPDATE OR DELETE ON platform.approval_rules
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_deployment_approval_requirements_append_only
  BEFORE UPDATE OR DELETE ON platform.deployment_approval_requirements
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('the rules captured for a deployment never change');
CREATE TRIGGER trg_deployment_approval_requirements_audit AFTER INSERT OR UPDATE OR DELETE
  ON platform.deployment_approval_requirements
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('deployment_id,approval_rule_id');

CREATE TRIGGER trg_deployment_approvals_append_only BEFORE UPDATE OR DELETE ON platform.deployment_approvals
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('an approval decision is final: deployment_approvals is append-only');
CREATE TRIGGER trg_deployment_approvals_created_at BEFORE INSERT ON platform.deployment_approvals
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_deployment_approvals_audit AFTER INSERT OR UPDATE OR DELETE ON platform.deployment_approvals
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('deployment_id,approver_id');

-- A deployment that names its deployer: the deployer holds deployment:create for its service and environment
-- when it is created. The table's owner is exempt (backfills and history replays, whose grants may since have
-- expired), as with trg_deployments_created_at.
CREATE FUNCTION platform.deployment_deployer_may_deploy() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
     AND NOT platform.may_user_do(NEW.deployed_by, 'deployment:create', NEW.service_id, NEW.environment_id)
  THEN
    RAISE EXCEPTION 'the deployer does not hold deployment:create for this service and environment'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'deployed_by';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_deployer_may_deploy() IS 'BEFORE INSERT trigger of deployments: a named deployer must hold deployment:create for the service and environment (platform.may_user_do) at creation (SQLSTATE 23514, constraint trg_deployments_deployer_may_deploy); the table owner is exempt.';

-- A protected environment (one with an approval rule in force when the deployment is created: made by then and
-- not yet disabled) is deployed to by a named deployer only. Fires after trg_deployments_created_at (name
-- order), so created_at is the database's for every writer but the owner's backfills.
CREATE FUNCTION platform.deployment_deployer_named() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM platform.approval_rules r
              WHERE r.environment_id = NEW.environment_id AND r.created_at <= NEW.created_at
                AND (r.disabled_at IS NULL OR r.disabled_at > NEW.created_at)) THEN
    RAISE EXCEPTION 'the environment is protected by approval rules: a deployment to it names its deployer'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'deployed_by';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_deployer_named() IS 'BEFORE INSERT trigger of deployments: a deployment to a protected environment (an approval rule in force at its creation) must name its deployer (SQLSTATE 23514, constraint trg_deployments_deployer_named).';

-- The rules in force when the deployment is created (made by then, not yet disabled) are captured: a later
-- change or disabling of a rule does not move an open rollout's goalposts. SECURITY DEFINER: no service writes the captured rules.
CREATE FUNCTION platform.capture_approval_rules() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO platform.deployment_approval_requirements
    (deployment_id, approval_rule_id, approver_permission_id, required_approvals, allow_self_approval)
  SELECT NEW.id, r.id, r.approver_permission_id, r.required_approvals, r.allow_self_approval
    FROM platform.approval_rules r
    JOIN platform.services s ON s.id = NEW.service_id
   WHERE r.environment_id = NEW.environment_id AND r.created_at <= NEW.created_at
     AND (r.disabled_at IS NULL OR r.disabled_at > NEW.created_at)
     AND (r.service_id IS NULL OR r.service_id = NEW.service_id)
     AND (r.max_service_tier IS NULL OR s.tier <= r.max_service_tier)
     AND (NEW.rollback_of_id IS NULL OR r.applies_to_rollbacks);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.capture_approval_rules() IS 'AFTER INSERT trigger of deployments (trg_deployments_capture_approval_rules): copies the approval rules in force at its creation that apply (environment, service or tier, rollbacks only if the rule says so) into deployment_approval_requirements.';

-- A decision is taken while the deployment is pending, its row locked FOR SHARE to commit: a start racing it
-- (an UPDATE, which locks the row FOR NO KEY UPDATE before trg_deployments_approved reads the approvals) waits
-- for the decision and then counts it, or runs first and the decision then finds the rollout started (refused).
CREATE FUNCTION platform.deployment_approval_open() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_status text;
BEGIN
  SELECT d.status INTO v_status FROM platform.deployments d WHERE d.id = NEW.deployment_id FOR SHARE;
  IF v_status IS DISTINCT FROM 'pending' THEN
    RAISE EXCEPTION 'approvals are given while the deployment is pending, not %', coalesce(v_status, 'missing')
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'deployment_id';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_approval_open() IS 'BEFORE INSERT trigger of deployment_approvals: the deployment is pending, its row locked FOR SHARE until commit (SQLSTATE 23514, constraint trg_deployment_approvals_open).';

CREATE FUNCTION platform.deployment_approval_not_self() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM platform.deployments d
               JOIN platform.deployment_approval_requirements q
                 ON q.deployment_id = d.id AND q.approval_rule_id = NEW.approval_rule_id
              WHERE d.id = NEW.deployment_id AND d.deployed_by = NEW.approver_id AND NOT q.allow_self_approval) THEN
    RAISE EXCEPTION 'the deployer may not decide on their own rollout under this rule'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'approver_id';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_approval_not_self() IS 'BEFORE INSERT trigger of deployment_approvals: the deployer decides on their own rollout only under a rule that allows self-approval (SQLSTATE 23514, constraint trg_deployment_approvals_not_self).';

-- The approver holds the captured rule's permission for the deployment's service and environment now, through
-- platform.may_user_do (live, unexpired grants of an active user). A decision under a rule the deployment did not
-- capture is left to fk_deployment_approvals_requirement.
CREATE FUNCTION platform.deployment_approval_authorized() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_permission text;
  v_service uuid;
  v_environment uuid;
BEGIN
  SELECT p.name, d.service_id, d.environment_id INTO v_permission, v_service, v_environment
    FROM platform.deployment_approval_requirements q
    JOIN platform.deployments d ON d.id = q.deployment_id
    JOIN platform.permissions p ON p.id = q.approver_permission_id
   WHERE q.deployment_id = NEW.deployment_id AND q.approval_rule_id = NEW.approval_rule_id;
  IF FOUND AND NOT platform.may_user_do(NEW.approver_id, v_permission, v_service, v_environment) THEN
    RAISE EXCEPTION 'the approver does not hold % for this service and environment', v_permission
      USING ERRCODE = 'check_violation', CONSTRAINT = 'trg_deployment_approvals_approver_authorized',
            SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'approver_id';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_approval_authorized() IS 'BEFORE INSERT trigger of deployment_approvals: the approver holds the captured rule''s permission for the service and environment at the time (platform.may_user_do; SQLSTATE 23514, constraint trg_deployment_approvals_approver_authorized).';

-- The gate: pending -> in_progress only when every captured rule has its approvals and nobody rejected. The
-- UPDATE holds the row lock before this runs, and each query here reads the approvals committed by then.
CREATE FUNCTION platform.deployment_approved_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_missing int;
BEGIN
  IF EXISTS (SELECT FROM platform.deployment_approvals a
              WHERE a.deployment_id = NEW.id AND a.decision = 'rejected') THEN
    RAISE EXCEPTION 'the deployment was rejected: cancel it'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'status';
  END IF;
  SELECT count(*) INTO v_missing
    FROM platform.deployment_approval_requirements q
   WHERE q.deployment_id = NEW.id
     AND q.required_approvals > (SELECT count(*) FROM platform.deployment_approvals a
                                  WHERE a.deployment_id = q.deployment_id AND a.approval_rule_id = q.approval_rule_id
                                    AND a.decision = 'approved');
  IF v_missing > 0 THEN
    RAISE EXCEPTION 'the deployment lacks approvals under % of its rules: see platform.rollout_blockers()', v_missing
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'status';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_approved_guard() IS 'BEFORE UPDATE trigger of deployments: refuses pending -> in_progress unless every captured approval rule has its approvals and no approver rejected (SQLSTATE 23514, constraint trg_deployments_approved).';

CREATE TRIGGER trg_deployments_deployer_may_deploy BEFORE INSERT ON platform.deployments
  FOR EACH ROW WHEN (NEW.deployed_by IS NOT NULL)
  EXECUTE FUNCTION platform.deployment_deployer_may_deploy();
CREATE TRIGGER trg_deployments_deployer_named BEFORE INSERT ON platform.deployments
  FOR EACH ROW WHEN (NEW.deployed_by IS NULL)
  EXECUTE FUNCTION platform.deployment_deployer_named();
CREATE TRIGGER trg_deployments_capture_approval_rules AFTER INSERT ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.capture_approval_rules();
CREATE TRIGGER trg_deployments_approved BEFORE UPDATE ON platform.deployments
  FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status = 'in_progress')
  EXECUTE FUNCTION platform.deployment_approved_guard();
CREATE TRIGGER trg_deployment_approvals_open BEFORE INSERT ON platform.deployment_approvals
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_approval_open();
CREATE TRIGGER trg_deployment_approvals_not_self BEFORE INSERT ON platform.deployment_approvals
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_approval_not_self();
CREATE TRIGGER trg_deployment_approvals_approver_authorized BEFORE INSERT ON platform.deployment_approvals
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_approval_authorized();

-- What blocks this rollout (approvals part): a row per reason a pending deployment cannot start. SECURITY
-- DEFINER: a caller needs EXECUTE, not the tables. No format() here: the catalog's plan checks run this body
-- with the query's parameters in place, and a '%s' would read as one.
CREATE FUNCTION platform.rollout_blockers(p_deployment_id uuid)
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
