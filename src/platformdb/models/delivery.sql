-- Delivery: the deployment state machine, its status history, and immutability of releases.

INSERT INTO platform.deployment_status_transitions (from_status, to_status) VALUES
  ('pending', 'in_progress'),
  ('pending', 'cancelled'),
  ('in_progress', 'succeeded'),
  ('in_progress', 'failed'),
  ('in_progress', 'cancelled'),
  ('succeeded', 'rolled_back'),
  ('failed', 'rolled_back');

CREATE TRIGGER trg_deployment_status_transitions_immutable
  BEFORE UPDATE ON platform.deployment_status_transitions
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('the state machine changes only by migration');

CREATE TRIGGER trg_releases_immutable BEFORE UPDATE ON platform.releases
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a release is immutable; register a new version');
CREATE TRIGGER trg_releases_audit AFTER INSERT OR UPDATE OR DELETE ON platform.releases
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

-- A deployment is born pending and moves only along platform.deployment_status_transitions.
CREATE FUNCTION platform.deployment_status_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'pending' THEN
      RAISE EXCEPTION 'a deployment starts as pending, not %', NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    PERFORM FROM platform.deployment_status_transitions t
      WHERE t.from_status = OLD.status AND t.to_status = NEW.status;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'illegal deployment status transition % -> %', OLD.status, NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_status_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: enforces the status state machine (SQLSTATE 23514, constraint trg_deployments_status_transition).';

-- The stamps are the database's: started_at is set on entering in_progress and deployed_at on leaving the active
-- statuses, each on that move only, by clock_timestamp() (not now(): a transaction that began before the rollout
-- started may finish it), and never change afterwards. A writer may still pass the stamp of its move, as v0.1
-- writers could, if it lies within 30 seconds before to 5 seconds after the database clock (a client's clock or
-- its transaction's now()); a stamp further off, or not finite, is refused (23514), and so is a stamp given
-- off its move or a change to a stamp already set (23000). Fires after trg_deployments_status_transition (name
-- order), so the move it sees is a legal one.
CREATE FUNCTION platform.deployment_timestamps_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := clock_timestamp();
  v_old_status text;
  v_old_started timestamptz;
  v_old_deployed timestamptz;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    v_old_status := OLD.status;
    v_old_started := OLD.started_at;
    v_old_deployed := OLD.deployed_at;
  END IF;
  IF NEW.status = 'in_progress' AND v_old_status = 'pending' THEN
    IF NEW.started_at IS NULL OR NEW.started_at IS NOT DISTINCT FROM v_old_started THEN
      NEW.started_at := v_now;
    ELSIF NOT (NEW.started_at BETWEEN v_now - interval '30 seconds' AND v_now + interval '5 seconds') THEN
      RAISE EXCEPTION 'started_at is the database clock''s on entering in_progress: a given one must lie within 30 s before to 5 s after it'
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              COLUMN = 'started_at';
    END IF;
  ELSIF NEW.started_at IS DISTINCT FROM v_old_started THEN
    RAISE EXCEPTION 'started_at is set on entering in_progress only and never changes afterwards'
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'started_at';
  END IF;
  IF NEW.status NOT IN ('pending', 'in_progress') AND v_old_status IN ('pending', 'in_progress') THEN
    IF NEW.deployed_at IS NULL OR NEW.deployed_at IS NOT DISTINCT FROM v_old_deployed THEN
      NEW.deployed_at := v_now;
    ELSIF NOT (NEW.deployed_at BETWEEN v_now - interval '30 seconds' AND v_now + interval '5 seconds') THEN
      RAISE EXCEPTION 'deployed_at is the database clock''s on leaving an active status: a given one must lie within 30 s before to 5 s after it'
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              COLUMN = 'deployed_at';
    END IF;
  ELSIF NEW.deployed_at IS DISTINCT FROM v_old_deployed THEN
    RAISE EXCEPTION 'deployed_at is set on leaving an active status only and never changes afterwards'
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'deployed_at';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_timestamps_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: stamps started_at on entering in_progress and deployed_at on leaving the active statuses with clock_timestamp(); refuses a given stamp further than 30 s before or 5 s after it (23514), and a stamp given off its move or changed afterwards (23000); constraint trg_deployments_timestamps.';

-- SECURITY DEFINER: services cannot write the history themselves, only through a status change. A move that
-- stamps the deployment is recorded at that stamp, so the history and the deployment tell one time.
CREATE FUNCTION platform.record_deployment_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status, created_at)
  VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status,
          coalesce(CASE WHEN NEW.status = 'in_progress' THEN NEW.started_at
                        WHEN TG_OP = 'UPDATE' AND OLD.status IN ('pending', 'in_progress') THEN NEW.deployed_at
                   END, now()));
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.record_deployment_status() IS 'AFTER trigger of deployments: appends each status entered to deployment_status_history, at the deployment''s stamp for the moves that stamp it (started_at, deployed_at).';

CREATE TRIGGER trg_deployments_status_transition BEFORE INSERT OR UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_status_guard();
CREATE TRIGGER trg_deployments_timestamps BEFORE INSERT OR UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_timestamps_guard();
CREATE TRIGGER trg_deployments_immutable_columns BEFORE UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_column_change(
    'service_id', 'version', 'environment_id', 'deployed_by', 'rollback_of_id', 'created_at');
CREATE TRIGGER trg_deployments_updated_at BEFORE UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_deployments_status_history_insert AFTER INSERT ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.record_deployment_status();
CREATE TRIGGER trg_deployments_status_history_update AFTER UPDATE OF status ON platform.deployments
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION platform.record_deployment_status();
CREATE TRIGGER trg_deployments_audit AFTER INSERT OR UPDATE OR DELETE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_deployment_status_history_append_only
  BEFORE UPDATE OR DELETE ON platform.deployment_status_history
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('deployment_status_history is append-only');

-- Ids and creation times are the database's (revision 0020): an INSERT by anyone but the table's owner gets
-- now() for created_at/updated_at (trg_<table>_created_at, on the tables a service inserts into); an UPDATE
-- of the primary key is refused (trg_<table>_keys_immutable, on the tables whose rows may be updated;
-- trg_<table>_updated_at already refuses one of created_at).
CREATE TRIGGER trg_releases_created_at BEFORE INSERT ON platform.releases
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_deployments_created_at BEFORE INSERT ON platform.deployments
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_deployments_keys_immutable BEFORE UPDATE ON platform.deployments
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');

-- Rollbacks (revision 0024). A rollback is a deployment whose rollback_of_id names the one it undoes; when it
-- succeeds, the undone deployment (succeeded or failed) becomes rolled_back in the same transaction. A service
-- cannot mark rolled_back otherwise: only with a succeeded rollback of the deployment (23514); the table's owner
-- (backfills, repairs) may, as with trg_deployments_created_at. A v0.1 service that marks the deployment after
-- its rollback succeeded still may: the move is then already made and its UPDATE changes no status.
CREATE FUNCTION platform.deployment_rolled_back_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
     AND NOT EXISTS (SELECT FROM platform.deployments r
                      WHERE r.rollback_of_id = NEW.id AND r.service_id = NEW.service_id
                        AND r.environment_id = NEW.environment_id AND r.status = 'succeeded')
  THEN
    RAISE EXCEPTION 'a deployment becomes rolled_back when a rollback of it succeeds: start one with platform.start_rollback()'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'status';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_rolled_back_guard() IS 'BEFORE UPDATE trigger of deployments: refuses a move to rolled_back unless a rollback of the deployment succeeded (SQLSTATE 23514, constraint trg_deployments_rolled_back_has_rollback); the table owner is exempt.';

-- Runs as the writer of the rollback's success (no SECURITY DEFINER): the move is audited as theirs, and passes
-- trg_deployments_rolled_back_has_rollback because the rollback's new status is visible to it.
CREATE FUNCTION platform.mark_rolled_back() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE platform.deployments d SET status = 'rolled_back'
   WHERE d.id = NEW.rollback_of_id AND d.status IN ('succeeded', 'failed');
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.mark_rolled_back() IS 'AFTER UPDATE trigger of deployments (trg_deployments_rolled_back_by_rollback): when a rollback succeeds, the deployment it undoes (succeeded or failed) becomes rolled_back in the same transaction.';

CREATE TRIGGER trg_deployments_rolled_back_has_rollback BEFORE UPDATE ON platform.deployments
  FOR EACH ROW WHEN (NEW.status = 'rolled_back' AND OLD.status IN ('succeeded', 'failed'))
  EXECUTE FUNCTION platform.deployment_rolled_back_guard();
CREATE TRIGGER trg_deployments_rolled_back_by_rollback AFTER UPDATE OF status ON platform.deployments
  FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status IS DISTINCT FROM 'succeeded'
                     AND NEW.rollback_of_id IS NOT NULL)
  EXECUTE FUNCTION platform.mark_rolled_back();

-- Starts a rollback: a pending deployment of the same service and environment, of p_version or else of the
-- newest other version that succeeded there before the deployment was made. The deployment's row is locked
-- (FOR NO KEY UPDATE, to commit) so two rollbacks of it queue; a second active rollout of the service in the
-- environment is refused by uq_deployments_active_service_id_environment_id (23505). Runs as the caller.
CREATE FUNCTION platform.start_rollback(p_deployment_id uuid, p_version text DEFAULT NULL,
                                        p_deployed_by uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d platform.deployments;
  v_version text := p_version;
  v_id uuid;
BEGIN
  SELECT * INTO d FROM platform.deployments WHERE id = p_deployment_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no deployment %', p_deployment_id USING ERRCODE = 'no_data_found';
  END IF;
  IF d.status NOT IN ('succeeded', 'failed') THEN
    RAISE EXCEPTION 'only a succeeded or failed deployment is rolled back, not a % one', d.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF v_version IS NULL THEN
    SELECT e.version INTO v_version
      FROM platform.deployments e
     WHERE e.service_id = d.service_id AND e.environment_id = d.environment_id AND e.status = 'succeeded'
       AND e.version <> d.version AND e.created_at <= d.created_at AND e.id <> d.id
     ORDER BY e.deployed_at DESC, e.id DESC
     LIMIT 1;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no earlier succeeded version to roll back to: name one'
        USING ERRCODE = 'no_data_found';
    END IF;
  END IF;
  INSERT INTO platform.deployments (service_id, version, environment_id, deployed_by, rollback_of_id)
  VALUES (d.service_id, v_version, d.environment_id, p_deployed_by, d.id)
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION platform.start_rollback(uuid, text, uuid) IS 'Starts a rollback of a succeeded or failed deployment: inserts the pending rollback deployment (p_version, else the newest other version that succeeded before it in that service and environment) and returns its id; when it succeeds the undone deployment becomes rolled_back. 55000 for a deployment not finished, P0002 for none to go back to.';

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
