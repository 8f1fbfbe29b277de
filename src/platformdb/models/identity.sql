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

-- Rejected writes show no value of this table's secrets, hashes or personal data (trg_users_validated; see
-- platform.install_quiet_checks).
SELECT platform.install_quiet_checks('platform.users');

-- Read API (revision 0023): the authorization check every service's middleware runs. SECURITY DEFINER so that a
-- service reads the answer, not the grants: no service but identity (and read-only) may read role_grants.
-- Governance: identity (revisions 0030-0032). Team grants, nested teams, memberships that expire, service
-- accounts, API tokens; may_user_do counts team grants; no self-grant, no escalation.

-- Nested teams: no cycle, under concurrency. Every re-parenting takes one transaction-scoped advisory lock, so
-- two re-parentings run one after the other; each walks the new parent's ancestors (under READ COMMITTED every
-- statement of the walk sees what the other committed) and refuses to put a team under its own descendant.
-- Under REPEATABLE READ the walk locks the rows it reads (FOR KEY SHARE), which fails with 40001 on a row
-- another transaction re-parented after this one's snapshot: never a cycle.
CREATE FUNCTION platform.team_no_cycle() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_at uuid := NEW.parent_team_id;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('platformdb:teams.parent_team_id', 0));
  WHILE v_at IS NOT NULL LOOP
    IF v_at = NEW.id THEN
      RAISE EXCEPTION 'a team cannot be placed under itself or one of its descendants'
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              COLUMN = 'parent_team_id';
    END IF;
    SELECT t.parent_team_id INTO v_at FROM platform.teams t WHERE t.id = v_at FOR KEY SHARE;
  END LOOP;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.team_no_cycle() IS 'BEFORE UPDATE OF parent_team_id row trigger (trg_teams_no_cycle): refuses (23514) a parent that is the team itself or one of its descendants; re-parentings are serialized by a transaction-scoped advisory lock.';
CREATE TRIGGER trg_teams_no_cycle BEFORE UPDATE OF parent_team_id ON platform.teams
  FOR EACH ROW WHEN (NEW.parent_team_id IS NOT NULL AND NEW.parent_team_id IS DISTINCT FROM OLD.parent_team_id)
  EXECUTE FUNCTION platform.team_no_cycle();

-- No self-grant, no escalation. A grant names its granter, who must hold role:grant within the grant's scope
-- and every permission of the granted role within that scope, now (platform.may_user_do). Bootstrap: the
-- schema owner (the migrator, restores, the seed) is exempt and may write a grant without a granter; nobody
-- else may. A granter that does not exist is left to fk_role_grants_granted_by_users.
CREATE FUNCTION platform.role_grant_no_escalation() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_missing text;
BEGIN
  IF pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
    RETURN NEW;
  END IF;
  IF NEW.granted_by IS NULL THEN
    RAISE EXCEPTION 'a grant names its granter (granted_by): only the schema owner writes one without'
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'granted_by';
  END IF;
  IF NOT EXISTS (SELECT FROM platform.users u WHERE u.id = NEW.granted_by) THEN
    RETURN NEW;
  END IF;
  IF NOT platform.may_user_do(NEW.granted_by, 'role:grant', NEW.service_id, NEW.environment_id) THEN
    v_missing := 'role:grant';
  ELSE
    SELECT p.name INTO v_missing
      FROM platform.role_permissions rp JOIN platform.permissions p ON p.id = rp.permission_id
     WHERE rp.role_id = NEW.role_id
       AND NOT platform.may_user_do(NEW.granted_by, p.name, NEW.service_id, NEW.environment_id)
     ORDER BY p.name LIMIT 1;
  END IF;
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'the granter does not hold % within the scope of the grant', v_missing
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'granted_by';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.role_grant_no_escalation() IS 'BEFORE INSERT OR UPDATE row trigger of role_grants: outside the schema owner, a grant names its granter (trg_role_grants_granter_required, 42501), who holds role:grant and every permission of the role within the grant''s scope (trg_role_grants_no_escalation, 42501).';
CREATE TRIGGER trg_role_grants_granter_required BEFORE INSERT OR UPDATE ON platform.role_grants
  FOR EACH ROW WHEN (NEW.granted_by IS NULL) EXECUTE FUNCTION platform.role_grant_no_escalation();
CREATE TRIGGER trg_role_grants_no_escalation BEFORE INSERT OR UPDATE ON platform.role_grants
  FOR EACH ROW WHEN (NEW.granted_by IS NOT NULL) EXECUTE FUNCTION platform.role_grant_no_escalation();

-- The authorization check counts the user's own grants and those of every team the user is an unexpired
-- member of, directly or through the team's ancestors; expired grants and deactivated users count for nothing.
-- (Revision 0030; its plan made index probes only in revision 0068.)
CREATE FUNCTION platform.may_user_do(p_user_id uuid, p_permission text, p_service_id uuid, p_environment_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  -- Per team, not per platform (revision 0068): each step up the walk is a scalar subquery, a lookup of one team
  -- by its key (planned as a join, the walk hashed a scan of every team), and the teams' grants are probed by
  -- ix_role_grants_team_id for the walk's teams (= ANY, not a merge join along the whole index).
  WITH RECURSIVE member_of (team_id) AS (
      SELECT m.team_id
        FROM platform.team_memberships m
       WHERE m.user_id = p_user_id
         AND (m.expires_at IS NULL OR m.expires_at > now())
    UNION
      SELECT (SELECT t.parent_team_id FROM platform.teams t WHERE t.id = member_of.team_id)
        FROM member_of
       WHERE member_of.team_id IS NOT NULL)
  SELECT EXISTS (SELECT FROM platform.users u WHERE u.id = p_user_id AND u.deactivated_at IS NULL)
     AND EXISTS (
    SELECT
      FROM (SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.user_id = p_user_id
            UNION ALL
            SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.team_id = ANY (ARRAY(SELECT member_of.team_id FROM member_of))) g
      JOIN platform.role_permissions rp ON rp.role_id = g.role_id
      JOIN platform.permissions p ON p.id = rp.permission_id
     WHERE p.name = p_permission
       AND (g.service_id IS NULL OR g.service_id = p_service_id)
       AND (g.environment_id IS NULL OR g.environment_id = p_environment_id)
       AND (g.expires_at IS NULL OR g.expires_at > now()))
$$;
COMMENT ON FUNCTION platform.may_user_do(uuid, text, uuid, uuid) IS 'May this user (or service account) use this permission on this service in this environment? Counts the user''s own grants and those of every team the user is an unexpired member of, directly or through the team''s ancestors. A grant counts when its scope is NULL (any) or matches and it has not expired; a deactivated user may do nothing. SECURITY DEFINER: callers need EXECUTE, not SELECT on the grants.';

-- API tokens. Every column but revoked_at and the last-used pair is fixed at issue; a revocation is final.
CREATE TRIGGER trg_api_tokens_updated_at BEFORE UPDATE ON platform.api_tokens
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_api_tokens_created_at BEFORE INSERT ON platform.api_tokens
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_api_tokens_immutable BEFORE UPDATE ON platform.api_tokens
  FOR EACH ROW WHEN ((OLD.id, OLD.user_id, OLD.name, OLD.selector, OLD.verifier, OLD.service_id, OLD.environment_id,
                      OLD.expires_at, OLD.rotated_from_id, OLD.created_by)
                     IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.name, NEW.selector, NEW.verifier, NEW.service_id,
                                       NEW.environment_id, NEW.expires_at, NEW.rotated_from_id, NEW.created_by))
  EXECUTE FUNCTION platform.forbid_column_change('id', 'user_id', 'name', 'selector', 'verifier', 'service_id',
                                                 'environment_id', 'expires_at', 'rotated_from_id', 'created_by');
CREATE TRIGGER trg_api_tokens_revocation_final BEFORE UPDATE ON platform.api_tokens
  FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at)
  EXECUTE FUNCTION platform.forbid_column_change('revoked_at');
-- The verifier is redacted in audit row images; an UPDATE of nothing but the last-used pair (and updated_at)
-- writes no audit row: the audit trigger is split by event, the UPDATE one with a WHEN clause.
CREATE TRIGGER trg_api_tokens_audit AFTER INSERT OR DELETE ON platform.api_tokens
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id', 'verifier');
CREATE TRIGGER trg_api_tokens_audit_update AFTER UPDATE ON platform.api_tokens
  FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
                     OR (OLD.id, OLD.user_id, OLD.name, OLD.selector, OLD.verifier, OLD.service_id, OLD.environment_id,
                         OLD.expires_at, OLD.rotated_from_id, OLD.created_by, OLD.created_at)
                        IS DISTINCT FROM (NEW.id, NEW.user_id, NEW.name, NEW.selector, NEW.verifier, NEW.service_id,
                                          NEW.environment_id, NEW.expires_at, NEW.rotated_from_id, NEW.created_by,
                                          NEW.created_at))
  EXECUTE FUNCTION platform.audit_capture('id', 'verifier');
SELECT platform.install_quiet_checks('platform.api_tokens');  -- trg_api_tokens_validated

-- Who may issue: outside the schema owner, a token names its issuer (created_by), who is its human owner or
-- holds token:issue within the token's scope.
CREATE FUNCTION platform.api_token_issuer() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
    RETURN NEW;
  END IF;
  IF NEW.created_by IS NULL
     OR NOT ((NEW.created_by = NEW.user_id
              AND EXISTS (SELECT FROM platform.users u
                           WHERE u.id = NEW.user_id AND u.kind = 'human' AND u.deactivated_at IS NULL))
             OR platform.may_user_do(NEW.created_by, 'token:issue', NEW.service_id, NEW.environment_id)) THEN
    RAISE EXCEPTION 'a token is issued by its own (human) owner or by a holder of token:issue within its scope'
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'created_by';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.api_token_issuer() IS 'BEFORE INSERT row trigger (trg_api_tokens_issuer): outside the schema owner, a token''s created_by is its active human owner or holds token:issue within the token''s scope (42501).';
CREATE TRIGGER trg_api_tokens_issuer BEFORE INSERT ON platform.api_tokens
  FOR EACH ROW EXECUTE FUNCTION platform.api_token_issuer();

-- Rotation: inserting a successor (rotated_from_id) locks the predecessor, refuses one that is revoked, expired
-- or another principal's, and revokes it in the same statement. Two rotations of one token at once: the second
-- waits for the first's lock, then finds the predecessor revoked and is refused by name; uq_api_tokens_rotated_from_id
-- keeps one successor per token even with the trigger bypassed. SECURITY DEFINER: the identity service revokes only
-- through this trigger and platform.revoke_api_token, so it holds no UPDATE on the table (and no row lock on it).
CREATE FUNCTION platform.api_token_rotation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_old record;
BEGIN
  IF NEW.created_at <> now()
     AND pg_has_role(coalesce(nullif(current_setting('role'), 'none'), session_user)::name,
                     (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
    RETURN NEW;  -- history written by the schema owner: restores and the seed load chains whose links are revoked
  END IF;
  SELECT t.user_id, t.revoked_at, t.expires_at INTO v_old
    FROM platform.api_tokens t WHERE t.id = NEW.rotated_from_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NEW;  -- fk_api_tokens_rotated_from_id_api_tokens reports it
  END IF;
  IF v_old.revoked_at IS NOT NULL OR v_old.expires_at <= now() OR v_old.user_id <> NEW.user_id THEN
    RAISE EXCEPTION 'only a live token is rotated, into a token of the same owner'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'rotated_from_id';
  END IF;
  UPDATE platform.api_tokens SET revoked_at = now() WHERE id = NEW.rotated_from_id;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.api_token_rotation() IS 'BEFORE INSERT row trigger (trg_api_tokens_rotation) of a successor token: the predecessor must be live and of the same owner (23514), and is revoked in the same statement; only a backdated row of the schema owner (a restore, the seed) is exempt.';
CREATE TRIGGER trg_api_tokens_rotation BEFORE INSERT ON platform.api_tokens
  FOR EACH ROW WHEN (NEW.rotated_from_id IS NOT NULL) EXECUTE FUNCTION platform.api_token_rotation();

-- Revocation, the identity service's only change to a token (it has no UPDATE on the table, so it cannot lock
-- token rows a rotation or a token check needs). True if the token was live.
CREATE FUNCTION platform.revoke_api_token(p_selector text) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH revoked AS (
    UPDATE platform.api_tokens SET revoked_at = now() WHERE selector = p_selector AND revoked_at IS NULL RETURNING id)
  SELECT EXISTS (SELECT FROM revoked)
$$;
COMMENT ON FUNCTION platform.revoke_api_token(text) IS 'Revoke the token with this selector at once; true if it was live. SECURITY DEFINER: EXECUTE for platform_identity, which has no UPDATE on api_tokens.';

-- Scopes are the token's at issue: added in the transaction that issued it (the token's created_at, which the
-- database sets, is this transaction's start) and before its first use, never later (a later scope would widen
-- a token already handed out); removing one only narrows it.
CREATE FUNCTION platform.api_token_scope_at_issue() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
    RETURN NEW;  -- the schema owner: restores and the seed load scopes of tokens issued long ago
  END IF;
  IF NOT EXISTS (SELECT FROM platform.api_tokens t
                  WHERE t.id = NEW.token_id AND t.created_at = now() AND t.last_used_at IS NULL) THEN
    IF NOT EXISTS (SELECT FROM platform.api_tokens t WHERE t.id = NEW.token_id) THEN
      RETURN NEW;  -- fk_api_token_scopes_token_id_api_tokens reports it
    END IF;
    RAISE EXCEPTION 'a token''s scopes are set in the transaction that issues it'
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.api_token_scope_at_issue() IS 'BEFORE INSERT row trigger (trg_api_token_scopes_at_issue): outside the schema owner, a scope is added only in the transaction that inserted its token, before its first use (23000).';
CREATE TRIGGER trg_api_token_scopes_at_issue BEFORE INSERT ON platform.api_token_scopes
  FOR EACH ROW EXECUTE FUNCTION platform.api_token_scope_at_issue();
CREATE TRIGGER trg_api_token_scopes_immutable BEFORE UPDATE ON platform.api_token_scopes
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('link rows are inserted and deleted, never updated');
CREATE TRIGGER trg_api_token_scopes_created_at BEFORE INSERT ON platform.api_token_scopes
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_api_token_scopes_audit AFTER INSERT OR UPDATE OR DELETE ON platform.api_token_scopes
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('token_id,permission_id');

-- The token check, in one round trip. The caller sends the selector and SHA-256 of the secret, never the
-- token. The verifiers are compared as SHA-256 of each with a fresh random salt, so the time the comparison
-- takes says nothing about how much of the stored verifier a guess matched (constant-time in effect), and the
-- caller never reads a verifier. Effective permission = the token's scopes intersected with its owner's
-- effective permissions now, within the token's service/environment. A live token that matched records its use
-- (at most once a minute per address): an UPDATE of the last-used pair only, which writes no audit row.
CREATE FUNCTION platform.verify_api_token(p_selector text, p_verifier bytea, p_permission text, p_service uuid, p_env uuid)
RETURNS TABLE (principal_id uuid, principal_kind text, refusal text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH salt AS (SELECT uuid_send(gen_random_uuid()) AS s),
  checked AS (
    SELECT t.id, t.user_id, u.kind, t.last_used_at, t.last_used_addr,
           CASE
             WHEN sha256(t.verifier || salt.s) IS DISTINCT FROM sha256(p_verifier || salt.s) THEN 'unknown_token'
             WHEN t.revoked_at IS NOT NULL THEN 'revoked'
             WHEN t.expires_at <= now() THEN 'expired'
             WHEN u.deactivated_at IS NOT NULL THEN 'owner_deactivated'
             WHEN (t.service_id IS NOT NULL AND t.service_id IS DISTINCT FROM p_service)
               OR (t.environment_id IS NOT NULL AND t.environment_id IS DISTINCT FROM p_env) THEN 'out_of_token_scope'
             WHEN NOT EXISTS (SELECT FROM platform.api_token_scopes s
                                JOIN platform.permissions p ON p.id = s.permission_id
                               WHERE s.token_id = t.id AND p.name = p_permission) THEN 'not_in_token_scopes'
             WHEN NOT platform.may_user_do(t.user_id, p_permission, p_service, p_env) THEN 'owner_not_permitted'
           END AS refusal
      FROM platform.api_tokens t
      JOIN platform.users u ON u.id = t.user_id
     CROSS JOIN salt
     WHERE t.selector = p_selector),
  addr AS (SELECT coalesce(nullif(current_setting('platformdb.client_addr', true), '')::inet, inet_client_addr()) AS a),
  used AS (
    UPDATE platform.api_tokens x SET last_used_at = now(), last_used_addr = addr.a
      FROM checked, addr
     WHERE x.id = checked.id
       AND (checked.refusal IS NULL
            OR checked.refusal IN ('out_of_token_scope', 'not_in_token_scopes', 'owner_not_permitted'))
       AND (checked.last_used_at IS NULL OR checked.last_used_at < now() - interval '1 minute'
            OR checked.last_used_addr IS DISTINCT FROM addr.a)
    RETURNING x.id)
  SELECT CASE WHEN checked.refusal IS NULL THEN checked.user_id END,
         CASE WHEN checked.refusal IS NULL THEN checked.kind END,
         coalesce(checked.refusal, CASE WHEN checked.id IS NULL THEN 'unknown_token' END)
    FROM (SELECT) AS one
    LEFT JOIN checked ON true
$$;
COMMENT ON FUNCTION platform.verify_api_token(text, bytea, text, uuid, uuid) IS 'The token check: the principal a presented token (selector, SHA-256 of its secret) acts as for this permission on this service and environment, or why not (refusal: unknown_token, revoked, expired, owner_deactivated, out_of_token_scope, not_in_token_scopes, owner_not_permitted). Records the use of a live token. SECURITY DEFINER: no caller reads a verifier.';

-- Well-known permissions the database's rules name (role:grant and token:issue by revision 0030, the freeze and
-- promotion ones by 0050; deployment:create is v1 vocabulary the identity service has always written): reference
-- data the schema ships, like the deployment status transitions, written without an audit row (a new database's
-- audit log starts empty). The trigger is off only inside this transaction: no other session ever sees it off.
ALTER TABLE platform.permissions DISABLE TRIGGER trg_permissions_audit;
INSERT INTO platform.permissions (name, description) VALUES
  ('role:grant', 'Grant roles to users and teams, within the scope held (and only roles whose permissions are held there).'),
  ('token:issue', 'Issue API tokens for other principals (service accounts), within the scope held.'),
  ('freeze:manage', 'Declare freeze periods and schedules for the environments and services within the scope held.'),
  ('freeze:override', 'Approve, as the second person, a rollout during a freeze within the scope held.'),
  ('promotion:override', 'Approve, as the second person, a rollout that skips the promotion path within the scope held.')
ON CONFLICT (name) DO NOTHING;
ALTER TABLE platform.permissions ENABLE TRIGGER trg_permissions_audit;
