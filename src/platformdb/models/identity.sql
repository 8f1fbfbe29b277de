-- Identity: timestamps, audit capture, and users are never deleted.

CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON platform.users
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_users_no_delete BEFORE DELETE ON platform.users
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('users are deactivated (deactivated_at), never deleted');
CREATE TRIGGER trg_users_audit AFTER INSERT OR UPDATE OR DELETE ON platform.users
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id', 'password_hash');

CREATE TRIGGER trg_teams_updated_at BEFORE UPDATE ON platform.teams
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_teams_audit AFTER INSERT OR UPDATE OR DELETE ON platform.teams
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_team_memberships_updated_at BEFORE UPDATE ON platform.team_memberships
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_team_memberships_audit AFTER INSERT OR UPDATE OR DELETE ON platform.team_memberships
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('team_id,user_id');

CREATE TRIGGER trg_roles_updated_at BEFORE UPDATE ON platform.roles
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_roles_audit AFTER INSERT OR UPDATE OR DELETE ON platform.roles
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_permissions_updated_at BEFORE UPDATE ON platform.permissions
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_permissions_audit AFTER INSERT OR UPDATE OR DELETE ON platform.permissions
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_role_permissions_immutable BEFORE UPDATE ON platform.role_permissions
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('link rows are inserted and deleted, never updated');
CREATE TRIGGER trg_role_permissions_audit AFTER INSERT OR UPDATE OR DELETE ON platform.role_permissions
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('role_id,permission_id');

CREATE TRIGGER trg_role_grants_updated_at BEFORE UPDATE ON platform.role_grants
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_role_grants_audit AFTER INSERT OR UPDATE OR DELETE ON platform.role_grants
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');
