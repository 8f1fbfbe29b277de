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

-- Ids and creation times are the database's (revision 0020): an INSERT by anyone but the table's owner gets
-- now() for created_at/updated_at (trg_<table>_created_at, on the tables a service inserts into); an UPDATE
-- of the primary key is refused (trg_<table>_keys_immutable, on the tables whose rows may be updated;
-- trg_<table>_updated_at already refuses one of created_at).
CREATE TRIGGER trg_users_created_at BEFORE INSERT ON platform.users
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_teams_created_at BEFORE INSERT ON platform.teams
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_team_memberships_created_at BEFORE INSERT ON platform.team_memberships
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_roles_created_at BEFORE INSERT ON platform.roles
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_permissions_created_at BEFORE INSERT ON platform.permissions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_role_permissions_created_at BEFORE INSERT ON platform.role_permissions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_role_grants_created_at BEFORE INSERT ON platform.role_grants
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_users_keys_immutable BEFORE UPDATE ON platform.users
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_teams_keys_immutable BEFORE UPDATE ON platform.teams
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_team_memberships_keys_immutable BEFORE UPDATE ON platform.team_memberships
  FOR EACH ROW WHEN ((OLD.team_id, OLD.user_id) IS DISTINCT FROM (NEW.team_id, NEW.user_id))
  EXECUTE FUNCTION platform.forbid_column_change('team_id', 'user_id');
CREATE TRIGGER trg_roles_keys_immutable BEFORE UPDATE ON platform.roles
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_permissions_keys_immutable BEFORE UPDATE ON platform.permissions
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_role_grants_keys_immutable BEFORE UPDATE ON platform.role_grants
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');

-- Rejected writes show no value of this table's secrets, hashes or personal data (see platform.check_quietly).
CREATE TRIGGER trg_users_validated BEFORE INSERT OR UPDATE ON platform.users
  FOR EACH ROW EXECUTE FUNCTION platform.check_quietly();

-- Read API (revision 0023): the authorization check every service's middleware runs. SECURITY DEFINER so that a
-- service reads the answer, not the grants: no service but identity (and read-only) may read role_grants.
CREATE FUNCTION platform.may_user_do(p_user_id uuid, p_permission text, p_service_id uuid, p_environment_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (
    SELECT
      FROM platform.role_grants g
      JOIN platform.users u ON u.id = g.user_id
      JOIN platform.role_permissions rp ON rp.role_id = g.role_id
      JOIN platform.permissions p ON p.id = rp.permission_id
     WHERE g.user_id = p_user_id
       AND u.deactivated_at IS NULL
       AND p.name = p_permission
       AND (g.service_id IS NULL OR g.service_id = p_service_id)
       AND (g.environment_id IS NULL OR g.environment_id = p_environment_id)
       AND (g.expires_at IS NULL OR g.expires_at > now()))
$$;
COMMENT ON FUNCTION platform.may_user_do(uuid, text, uuid, uuid) IS 'May this user use this permission on this service in this environment? A grant counts when its scope is NULL (any) or matches, it has not expired, and the user is active. SECURITY DEFINER: callers need EXECUTE, not SELECT on the grants.';
