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
