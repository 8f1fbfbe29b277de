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
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
-- (FOR NO KEY UPDATE, to commit) so two rollbacks of it queue; while a rollout of the service in the environment
-- is under way it fails at once (55000, revision 0028); trg_deployments_rollback_target checks what the rollback
-- undoes and deploys (23514). Runs as the caller: a service may insert the same row itself (v0.2's write path),
-- so definer rights would guard nothing the trigger does not.
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
  -- Fail at once rather than wait, with the deployment locked, for the rollout's transaction on
  -- uq_deployments_active_service_id_environment_id: a rollback's success locks itself, then the deployment it
  -- undoes (trg_deployments_rolled_back_by_rollback), so that wait could deadlock.
  PERFORM FROM platform.deployments a
   WHERE a.service_id = d.service_id AND a.environment_id = d.environment_id AND a.status IN ('pending', 'in_progress');
  IF FOUND THEN
    RAISE EXCEPTION 'a rollout of the service in the environment is under way: finish or cancel it before a rollback'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO platform.deployments (service_id, version, environment_id, deployed_by, rollback_of_id)
  VALUES (d.service_id, v_version, d.environment_id, p_deployed_by, d.id)
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION platform.start_rollback(uuid, text, uuid) IS 'Starts a rollback of a succeeded or failed deployment: inserts the pending rollback deployment (p_version, else the newest other version that succeeded before it in that service and environment) and returns its id; when it succeeds the undone deployment becomes rolled_back. 55000 for a deployment not finished or while a rollout of the service in the environment is under way, P0002 for none to go back to; trg_deployments_rollback_target checks the rest (23514).';

-- A rollback undoes what runs (revision 0028). The deployment a rollback names must be succeeded or failed and
-- the latest finished deployment of its service and environment (finished: succeeded, failed or rolled_back; a
-- failed rollout counts, it may have changed what runs and is what a rollback of it undoes; a cancelled one does
-- not, it is no longer what runs), with no rollout of them under way; and the rollback deploys another version,
-- one that a succeeded deployment there runs (a version rolled back since was undone as bad and does not count).
-- This holds for start_rollback() and for a plain INSERT with rollback_of_id alike (v0.2's documented write
-- path); the table owner is exempt (backfills, the seed's history), as with trg_deployments_rolled_back_has_rollback.
CREATE FUNCTION platform.deployment_rollback_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t platform.deployments;
  v_why text;
BEGIN
  IF pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
    RETURN NEW;
  END IF;
  SELECT * INTO t FROM platform.deployments
   WHERE id = NEW.rollback_of_id AND service_id = NEW.service_id AND environment_id = NEW.environment_id;
  IF NOT FOUND THEN
    RETURN NEW;  -- fk_deployments_rollback_of_id_deployments refuses it
  END IF;
  IF t.status NOT IN ('succeeded', 'failed') THEN
    v_why := format('the deployment it rolls back is %s, not succeeded or failed', t.status);
  ELSIF EXISTS (SELECT FROM platform.deployments a
                 WHERE a.service_id = t.service_id AND a.environment_id = t.environment_id
                   AND a.status IN ('pending', 'in_progress')) THEN
    v_why := 'a rollout of the service in the environment is under way';
  ELSIF EXISTS (SELECT FROM platform.deployments f
                 WHERE f.service_id = t.service_id AND f.environment_id = t.environment_id AND f.id <> t.id
                   AND f.status IN ('succeeded', 'failed', 'rolled_back')
                   AND (f.deployed_at, f.created_at, f.id) > (t.deployed_at, t.created_at, t.id)) THEN
    v_why := 'the deployment it rolls back is not the latest finished one of its service and environment';
  ELSIF NEW.version = t.version THEN
    v_why := 'it deploys the version of the deployment it rolls back';
  ELSIF NOT EXISTS (SELECT FROM platform.deployments e
                     WHERE e.service_id = t.service_id AND e.environment_id = t.environment_id
                       AND e.version = NEW.version AND e.status = 'succeeded') THEN
    v_why := 'it deploys a version that no succeeded deployment of the service runs in the environment';
  END IF;
  IF v_why IS NOT NULL THEN
    RAISE EXCEPTION 'not a rollback: %', v_why
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'rollback_of_id',
            HINT = 'a rollback undoes the latest finished deployment, to a version that succeeded before it';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_rollback_guard() IS 'BEFORE INSERT trigger of deployments (trg_deployments_rollback_target): a rollback undoes the latest finished (succeeded, failed or rolled_back) deployment of its service and environment, which is succeeded or failed, while no rollout there is under way, to another version that a succeeded deployment there runs (SQLSTATE 23514); the table owner is exempt.';
CREATE TRIGGER trg_deployments_rollback_target BEFORE INSERT ON platform.deployments
  FOR EACH ROW WHEN (NEW.rollback_of_id IS NOT NULL)
  EXECUTE FUNCTION platform.deployment_rollback_guard();

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

-- What blocks this rollout (approvals in revision 0042; freezes and the promotion path added in 0050): a row per
-- reason a pending deployment cannot start. SECURITY DEFINER: a caller needs EXECUTE, not the tables. No format()
-- here: the catalog's plan checks run this body with the query's parameters in place, and a '%s' would read as one.
CREATE FUNCTION platform.rollout_blockers(p_deployment_id uuid)
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

-- The approvals inbox (revision 0066): the pending rollouts this person may approve and has not decided on,
-- found from the approver's grants rather than by asking may_user_do about every pending rollout (issue #13:
-- 19,160 buffers per call at scale 100). The approver's live grants (their own and their teams', as
-- may_user_do counts them) become scopes once; a scope naming a service reaches that service's pending rollouts
-- through the active-rollout key, one of every service (an administrator's) reaches them all. SECURITY DEFINER:
-- a caller needs EXECUTE, not the grants.
CREATE FUNCTION platform.pending_approvals_of(p_approver_id uuid)
RETURNS TABLE (deployment_id uuid, service_id uuid, environment_id uuid, version text, deployed_by uuid,
               created_at timestamptz, approval_rule_id uuid, required_approvals smallint, approved bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- One statement, no helper functions: the catalog's plan checks see every table it reads. The scopes say what
  -- platform.may_user_do checks, walking the teams the same way (index probes per team); a test holds the two to
  -- the same answers.
  WITH RECURSIVE member_of (team_id) AS (
      SELECT m.team_id
        FROM platform.team_memberships m
       WHERE m.user_id = p_approver_id
         AND (m.expires_at IS NULL OR m.expires_at > now())
    UNION
      SELECT (SELECT t.parent_team_id FROM platform.teams t WHERE t.id = member_of.team_id)
        FROM member_of
       WHERE member_of.team_id IS NOT NULL),
  scopes AS MATERIALIZED (
    SELECT DISTINCT rp.permission_id, g.service_id, g.environment_id
      FROM (SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.user_id = p_approver_id
            UNION ALL
            SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.team_id = ANY (ARRAY(SELECT member_of.team_id FROM member_of))) g
      JOIN platform.role_permissions rp ON rp.role_id = g.role_id
     WHERE (g.expires_at IS NULL OR g.expires_at > now())
       AND EXISTS (SELECT FROM platform.users u WHERE u.id = p_approver_id AND u.deactivated_at IS NULL)),
  candidates AS (
    -- Every pending rollout, when the approver holds on every service a permission an approval rule names
    -- (the rules, a small table, say which permissions approve; not every captured requirement).
    SELECT d.id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at
      FROM platform.deployments d
     WHERE d.status = 'pending'
       AND EXISTS (SELECT FROM scopes s JOIN platform.approval_rules r ON r.approver_permission_id = s.permission_id
                    WHERE s.service_id IS NULL)
    UNION
    -- The pending rollouts of each service a grant names, by the active-rollout key.
    SELECT d.id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at
      FROM (SELECT DISTINCT s.service_id FROM scopes s WHERE s.service_id IS NOT NULL) s
      JOIN platform.deployments d ON d.service_id = s.service_id AND d.status = 'pending')
  SELECT d.id, d.service_id, d.environment_id, d.version, d.deployed_by, d.created_at,
         q.approval_rule_id, q.required_approvals, n.approved
    FROM candidates d
    JOIN platform.deployment_approval_requirements q ON q.deployment_id = d.id
    CROSS JOIN LATERAL (
      SELECT count(*) AS approved
        FROM platform.deployment_approvals a
       WHERE a.deployment_id = q.deployment_id AND a.approval_rule_id = q.approval_rule_id
         AND a.decision = 'approved') n
   WHERE n.approved < q.required_approvals
     AND (d.deployed_by IS DISTINCT FROM p_approver_id OR q.allow_self_approval)
     AND NOT EXISTS (SELECT FROM platform.deployment_approvals a
                      WHERE a.deployment_id = d.id AND (a.approver_id = p_approver_id OR a.decision = 'rejected'))
     AND EXISTS (SELECT FROM scopes s
                  WHERE s.permission_id = q.approver_permission_id
                    AND (s.service_id IS NULL OR s.service_id = d.service_id)
                    AND (s.environment_id IS NULL OR s.environment_id = d.environment_id))
   ORDER BY d.created_at, d.id, q.approval_rule_id
$$;
COMMENT ON FUNCTION platform.pending_approvals_of(uuid) IS 'The approvals inbox: the pending rollouts this person may approve (a live grant of the captured rule''s permission in its scope, their own or a team''s, as platform.may_user_do counts them) and has not decided on, a row per rule short of its approvals, oldest first; a rollout someone rejected awaits cancellation and is not listed, nor is the approver''s own rollout unless the rule allows self-approval. One difference from asking may_user_do per rollout: a rollout that captured a permission no approval rule names any more (the rule was since changed) is listed for the holders of that permission on its service, not for those who hold it on every service.';
