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

-- A deployment is born pending and moves only along platform.deployment_status_transitions. Entering
-- in_progress stamps started_at, leaving the active statuses stamps deployed_at, unless the writer gave them.
-- Stamps use clock_timestamp(), not now(): a transaction that began before the rollout started may finish it.
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
  IF NEW.status = 'in_progress' AND NEW.started_at IS NULL THEN
    NEW.started_at := clock_timestamp();
  END IF;
  IF NEW.status NOT IN ('pending', 'in_progress') AND NEW.deployed_at IS NULL THEN
    NEW.deployed_at := clock_timestamp();
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_status_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: enforces the status state machine (SQLSTATE 23514, constraint trg_deployments_status_transition) and stamps started_at/deployed_at.';

-- SECURITY DEFINER: services cannot write the history themselves, only through a status change.
CREATE FUNCTION platform.record_deployment_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status)
  VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.record_deployment_status() IS 'AFTER trigger of deployments: appends each status entered to deployment_status_history.';

CREATE TRIGGER trg_deployments_status_transition BEFORE INSERT OR UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_status_guard();
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
