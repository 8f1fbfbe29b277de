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
