-- Catalog: timestamps and audit capture.

CREATE TRIGGER trg_environments_updated_at BEFORE UPDATE ON platform.environments
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_environments_audit AFTER INSERT OR UPDATE OR DELETE ON platform.environments
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_services_updated_at BEFORE UPDATE ON platform.services
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_services_audit AFTER INSERT OR UPDATE OR DELETE ON platform.services
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_service_dependencies_immutable BEFORE UPDATE ON platform.service_dependencies
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('link rows are inserted and deleted, never updated');
CREATE TRIGGER trg_service_dependencies_audit AFTER INSERT OR UPDATE OR DELETE ON platform.service_dependencies
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('service_id,depends_on_service_id');

-- Ids and creation times are the database's (revision 0020): an INSERT by anyone but the table's owner gets
-- now() for created_at/updated_at (trg_<table>_created_at, on the tables a service inserts into); an UPDATE
-- of the primary key is refused (trg_<table>_keys_immutable, on the tables whose rows may be updated;
-- trg_<table>_updated_at already refuses one of created_at).
CREATE TRIGGER trg_environments_created_at BEFORE INSERT ON platform.environments
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_services_created_at BEFORE INSERT ON platform.services
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_service_dependencies_created_at BEFORE INSERT ON platform.service_dependencies
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_environments_keys_immutable BEFORE UPDATE ON platform.environments
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_services_keys_immutable BEFORE UPDATE ON platform.services
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');

-- Environment tiers (revision 0040). tier is the source of truth; is_production stays for v1 readers and agrees
-- with it (ck_environments_is_production_tier). A v1 writer that sends only is_production still works: this
-- trigger derives the tier it left out (production, else other), and a tier change carries is_production along.
CREATE FUNCTION platform.environment_tier_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.tier IS NULL THEN
      NEW.tier := CASE WHEN NEW.is_production THEN 'production' ELSE 'other' END;
    ELSIF NOT NEW.is_production THEN
      NEW.is_production := NEW.tier = 'production';
    END IF;
  ELSIF NEW.tier IS NULL OR (NEW.tier = OLD.tier AND NEW.is_production IS DISTINCT FROM OLD.is_production) THEN
    NEW.tier := CASE WHEN NEW.is_production THEN 'production'
                     WHEN OLD.tier = 'production' THEN 'other' ELSE OLD.tier END;
  ELSIF NEW.tier IS DISTINCT FROM OLD.tier AND NEW.is_production IS NOT DISTINCT FROM OLD.is_production THEN
    NEW.is_production := NEW.tier = 'production';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.environment_tier_sync() IS 'BEFORE INSERT/UPDATE trigger of environments (trg_environments_tier_sync): derives the tier a v1 writer left out from is_production (production, else other) and is_production from a tier given or changed; ck_environments_is_production_tier refuses the two disagreeing.';

CREATE TRIGGER trg_environments_tier_sync BEFORE INSERT OR UPDATE ON platform.environments
  FOR EACH ROW EXECUTE FUNCTION platform.environment_tier_sync();

-- Service lifecycle (revision 0040). Each rule locks the service row it reads (FOR SHARE) so that a retirement
-- and a deployment or dependency insert racing it serialize: the retirement's UPDATE waits for the insert's share
-- lock and then sees the new row, or the insert waits for the retirement and then reads the retired status.
-- SECURITY DEFINER: delivery may read services but not lock them (FOR SHARE needs UPDATE). The table's owner
-- (history replays and restores of rows made before a deprecation or retirement) is exempt, as with
-- trg_deployments_created_at; inside a SECURITY DEFINER function the writer is the role the session acts as.
CREATE FUNCTION platform.writer_owns(p_table oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT pg_has_role(coalesce(nullif(current_setting('role'), 'none'), session_user),
                     (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = p_table), 'USAGE')
$$;
COMMENT ON FUNCTION platform.writer_owns(oid) IS 'Whether the role the session acts as (SET ROLE, else the login) holds the privileges of the owner of the table: the lifecycle rules exempt the owner''s history replays and restores.';

CREATE FUNCTION platform.deployment_service_not_retired() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_status text;
BEGIN
  IF platform.writer_owns(TG_RELID) THEN
    RETURN NEW;
  END IF;
  SELECT s.status INTO v_status FROM platform.services s WHERE s.id = NEW.service_id FOR SHARE;
  IF v_status = 'retired' THEN
    RAISE EXCEPTION 'the service is retired: it takes no new deployment'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'trg_deployments_service_not_retired',
            SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'service_id';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_service_not_retired() IS 'BEFORE INSERT trigger of deployments: refuses a deployment of a retired service (SQLSTATE 23514, constraint trg_deployments_service_not_retired), the service row locked FOR SHARE; the table owner is exempt.';

CREATE FUNCTION platform.dependency_target_active() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_status text;
BEGIN
  IF platform.writer_owns(TG_RELID) THEN
    RETURN NEW;
  END IF;
  SELECT s.status INTO v_status FROM platform.services s WHERE s.id = NEW.depends_on_service_id FOR SHARE;
  IF v_status IN ('deprecated', 'retired') THEN
    RAISE EXCEPTION 'the service depended on is %: it takes no new dependents', v_status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'trg_service_dependencies_target_active',
            SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'depends_on_service_id';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.dependency_target_active() IS 'BEFORE INSERT trigger of service_dependencies: refuses a new dependency on a deprecated or retired service (SQLSTATE 23514, constraint trg_service_dependencies_target_active), the depended-on service locked FOR SHARE; the table owner is exempt.';

CREATE FUNCTION platform.service_retire_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT platform.writer_owns(TG_RELID)
     AND EXISTS (SELECT FROM platform.service_dependencies d JOIN platform.services s ON s.id = d.service_id
                  WHERE d.depends_on_service_id = NEW.id AND s.status <> 'retired') THEN
    RAISE EXCEPTION 'the service has dependents that are not retired: retire or re-point them first'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'trg_services_retire_without_dependents',
            SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'status';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.service_retire_guard() IS 'BEFORE UPDATE trigger of services: refuses retiring a service that a service not retired depends on (SQLSTATE 23514, constraint trg_services_retire_without_dependents); the table owner is exempt.';

CREATE TRIGGER trg_deployments_service_not_retired BEFORE INSERT ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_service_not_retired();
CREATE TRIGGER trg_service_dependencies_target_active BEFORE INSERT ON platform.service_dependencies
  FOR EACH ROW EXECUTE FUNCTION platform.dependency_target_active();
CREATE TRIGGER trg_services_retire_without_dependents BEFORE UPDATE OF status ON platform.services
  FOR EACH ROW WHEN (NEW.status = 'retired' AND OLD.status IS DISTINCT FROM 'retired')
  EXECUTE FUNCTION platform.service_retire_guard();
