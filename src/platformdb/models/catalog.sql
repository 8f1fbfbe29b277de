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
