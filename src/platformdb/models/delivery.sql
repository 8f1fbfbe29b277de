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
