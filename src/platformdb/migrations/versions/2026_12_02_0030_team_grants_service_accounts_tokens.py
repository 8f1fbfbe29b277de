"""Team grants, nested teams, expiring memberships, no escalation, service accounts and API tokens (expand)

Why: Issue #12 (Identity). A role could be granted only to a user, team membership conferred nothing, a CI bot
     had no identity, and granted_by was recorded but not checked. Now a grant goes to exactly one of a user or
     a team (role_grants.team_id, user_id nullable, ck_role_grants_one_grantee); teams nest
     (teams.parent_team_id, ck_teams_not_own_parent, trg_teams_no_cycle: re-parentings serialized by an
     advisory lock); memberships may expire (team_memberships.expires_at); platform.may_user_do counts the
     grants of every team the user is an unexpired member of, directly or through ancestors. A grant names a
     granter who holds role:grant and every permission of the role within the grant's scope
     (trg_role_grants_granter_required, trg_role_grants_no_escalation, ck_role_grants_not_self_granted); the
     schema owner is exempt (bootstrap of the first administrator, restores, the seed). users.kind tells humans
     from service accounts, which have an owner team and no password (ck_users_kind_allowed,
     ck_users_owner_team_by_kind, ck_users_password_by_kind). New tables api_tokens and api_token_scopes hold
     tokens as a selector and the SHA-256 of the secret, with mandatory expiry, revocation, rotation and
     last use; platform.verify_api_token checks one in a round trip. The well-known permissions role:grant
     and token:issue are inserted if missing.
Locks: ADD COLUMN (no default, or a constant one: no rewrite), DROP NOT NULL and ADD CONSTRAINT ... NOT VALID
       are catalog-only but take ACCESS EXCLUSIVE on teams, team_memberships, role_grants and users until this
       revision commits (milliseconds; lock_timeout bounds a wait behind a long reader). No scan: existing rows
       are checked by revision 0032. CREATE TRIGGER takes SHARE ROW EXCLUSIVE on the same tables; the new
       tables are empty. The two well-known permissions are inserted with trg_permissions_audit disabled inside
       this transaction (reference data, no audit row; no other session sees the trigger off): SHARE ROW
       EXCLUSIVE on permissions until the commit. The indexes on existing tables are built CONCURRENTLY by revision 0031. Runs before
       the code that uses it (pre-deploy): v1 writers keep working (they always send user_id and a password
       hash, and kind defaults to human), except a grant by a granter who does not hold what they grant: the
       defect this revision closes. A grant written without a granter (as every v0.2 identity service writes
       them) is refused by trg_role_grants_granter_required, which on a database that already holds grants is
       created DISABLED (expand); the contract step, once every identity service sends granted_by, is the
       owner's ALTER TABLE platform.role_grants ENABLE TRIGGER trg_role_grants_granter_required. A database
       without grants (a new one) has it enabled from the start.

Revision ID: 0030
Revises: 0028
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0030"
down_revision: str | Sequence[str] | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERVICES = "platform_identity, platform_catalog, platform_delivery, platform_configuration, platform_metrics_writer"
API_TOKEN_COLUMNS = (
    "id, user_id, name, selector, service_id, environment_id, expires_at, revoked_at, rotated_from_id, created_by,"  # noqa: S105 - column names
    " last_used_at, last_used_addr, created_at, updated_at"
)


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file ban-drop-not-null -- role_grants.user_id and users.password_hash become nullable on"
        " purpose (team grants, service accounts); v1 clients always send both, and CHECKs"
        " (ck_role_grants_one_grantee, ck_users_password_by_kind) keep them set where v1 set them"
    )
    op.execute(DDL)
    op.execute(RULES)
    # Expand/contract: on a database that already holds grants, v0.2 identity services write them without a
    # granter; the rule waits, disabled, for the owner's contract step (ENABLE TRIGGER) once they send one.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM platform.role_grants) THEN"
        " ALTER TABLE platform.role_grants DISABLE TRIGGER trg_role_grants_granter_required; END IF; END $$"
    )
    for function in ("team_no_cycle()", "role_grant_no_escalation()", "api_token_issuer()", "api_token_rotation()",
                     "api_token_scope_at_issue()", "revoke_api_token(text)",
                     "verify_api_token(text, bytea, text, uuid, uuid)"):  # fmt: skip
        op.execute(f"REVOKE ALL ON FUNCTION platform.{function} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION platform.verify_api_token(text, bytea, text, uuid, uuid) TO {SERVICES}")
    op.execute(f"GRANT SELECT ({API_TOKEN_COLUMNS}), INSERT ON platform.api_tokens TO platform_identity")
    op.execute("GRANT EXECUTE ON FUNCTION platform.revoke_api_token(text) TO platform_identity")
    op.execute("GRANT SELECT, INSERT, DELETE ON platform.api_token_scopes TO platform_identity")
    op.execute(f"GRANT SELECT ({API_TOKEN_COLUMNS}) ON platform.api_tokens TO platform_readonly")
    op.execute("GRANT SELECT ON platform.api_token_scopes TO platform_readonly")
    op.execute("GRANT SELECT (kind, owner_team_id) ON platform.users TO platform_readonly")


def downgrade() -> None:
    op.execute(
        """DO $$
BEGIN
  IF EXISTS (SELECT FROM platform.users WHERE kind <> 'human') THEN
    RAISE EXCEPTION 'service accounts exist: revision 0024 cannot hold them (users without a password hash)'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'deactivate them and give them a password hash first, or stay at revision 0030';
  END IF;
END
$$"""
    )
    op.execute("DELETE FROM platform.role_grants WHERE team_id IS NOT NULL")
    op.execute("DROP FUNCTION platform.verify_api_token(text, bytea, text, uuid, uuid)")
    op.execute("DROP FUNCTION platform.revoke_api_token(text)")
    op.execute("DROP TABLE platform.api_token_scopes")
    op.execute("DROP TABLE platform.api_tokens")
    # The well-known permissions this revision wrote (its own description, nothing holding them), without an
    # audit row, as they came: downgrade restores the rows of before.
    op.execute(
        """ALTER TABLE platform.permissions DISABLE TRIGGER trg_permissions_audit;
DELETE FROM platform.permissions p
 WHERE (p.name, p.description) IN (
         ('role:grant', 'Grant roles to users and teams, within the scope held (and only roles whose permissions are held there).'),
         ('token:issue', 'Issue API tokens for other principals (service accounts), within the scope held.'))
   AND NOT EXISTS (SELECT FROM platform.role_permissions rp WHERE rp.permission_id = p.id);
ALTER TABLE platform.permissions ENABLE TRIGGER trg_permissions_audit"""
    )
    op.execute("DROP FUNCTION platform.api_token_scope_at_issue()")
    op.execute("DROP FUNCTION platform.api_token_rotation()")
    op.execute("DROP FUNCTION platform.api_token_issuer()")
    op.execute(MAY_USER_DO_0023)
    op.execute("DROP TRIGGER trg_role_grants_no_escalation ON platform.role_grants")
    op.execute("DROP TRIGGER trg_role_grants_granter_required ON platform.role_grants")
    op.execute("DROP FUNCTION platform.role_grant_no_escalation()")
    op.execute("DROP TRIGGER trg_teams_no_cycle ON platform.teams")
    op.execute("DROP FUNCTION platform.team_no_cycle()")
    op.execute("REVOKE SELECT (kind, owner_team_id) ON platform.users FROM platform_readonly")
    op.execute(
        "ALTER TABLE platform.users DROP CONSTRAINT ck_users_password_by_kind,"
        " DROP CONSTRAINT ck_users_owner_team_by_kind, DROP CONSTRAINT ck_users_kind_allowed,"
        " DROP CONSTRAINT fk_users_owner_team_id_teams, DROP COLUMN owner_team_id, DROP COLUMN kind,"
        " ALTER COLUMN password_hash SET NOT NULL"
    )
    op.execute(f"COMMENT ON COLUMN platform.users.password_hash IS '{PASSWORD_HASH_COMMENT_0003}'")
    op.execute(
        "COMMENT ON TABLE platform.users IS 'A person or service account that signs in; deactivated rather than deleted.'"
    )
    op.execute(
        "ALTER TABLE platform.role_grants DROP CONSTRAINT ck_role_grants_not_self_granted,"
        " DROP CONSTRAINT ck_role_grants_one_grantee, DROP CONSTRAINT fk_role_grants_team_id_teams,"
        " DROP COLUMN team_id, ALTER COLUMN user_id SET NOT NULL"
    )
    op.execute("COMMENT ON COLUMN platform.role_grants.user_id IS 'The user who holds the role.'")
    op.execute(
        "COMMENT ON COLUMN platform.role_grants.granted_by IS"
        " 'User who made the grant; NULL for grants made by provisioning.'"
    )
    op.execute(
        "COMMENT ON TABLE platform.role_grants IS"
        " 'A role held by a user: globally, or scoped to a service and/or an environment.'"
    )
    op.execute(
        "ALTER TABLE platform.team_memberships DROP CONSTRAINT ck_team_memberships_expires_after_created,"
        " DROP COLUMN expires_at"
    )
    op.execute(
        "ALTER TABLE platform.teams DROP CONSTRAINT ck_teams_not_own_parent,"
        " DROP CONSTRAINT fk_teams_parent_team_id_teams, DROP COLUMN parent_team_id"
    )


PASSWORD_HASH_COMMENT_0003 = "PHC-format hash (argon2, bcrypt, scrypt or pbkdf2); never a plaintext password."  # noqa: S105 - a comment

# Frozen copies of the schema and the database-side SQL as they were when this revision landed (see
# models/identity.py, models/identity.sql and models/privileges.sql for today's).
DDL = r"""
ALTER TABLE platform.teams ADD COLUMN parent_team_id uuid;
COMMENT ON COLUMN platform.teams.parent_team_id IS 'The team this one is nested in; its members hold the grants of every ancestor team. NULL for a top-level team. No cycles (trg_teams_no_cycle).';
ALTER TABLE platform.teams ADD CONSTRAINT fk_teams_parent_team_id_teams FOREIGN KEY (parent_team_id)
  REFERENCES platform.teams (id) ON DELETE RESTRICT NOT VALID;
ALTER TABLE platform.teams ADD CONSTRAINT ck_teams_not_own_parent CHECK (parent_team_id <> id) NOT VALID;

ALTER TABLE platform.team_memberships ADD COLUMN expires_at timestamptz;
COMMENT ON COLUMN platform.team_memberships.expires_at IS 'When the membership stops counting (temporary elevation, contractors); NULL for a lasting one.';
ALTER TABLE platform.team_memberships ADD CONSTRAINT ck_team_memberships_expires_after_created
  CHECK (expires_at IS NULL OR expires_at > created_at) NOT VALID;

ALTER TABLE platform.role_grants ADD COLUMN team_id uuid;
COMMENT ON COLUMN platform.role_grants.team_id IS 'The team that holds the role (its members and the members of its descendant teams); NULL for a grant to a user.';
ALTER TABLE platform.role_grants ALTER COLUMN user_id DROP NOT NULL;
COMMENT ON COLUMN platform.role_grants.user_id IS 'The user who holds the role; NULL for a grant to a team (exactly one of user_id and team_id).';
COMMENT ON COLUMN platform.role_grants.granted_by IS 'User who made the grant; must hold role:grant and every permission of the role within the grant''s scope (trg_role_grants_no_escalation). NULL only for grants the schema owner writes (bootstrap, provisioning).';
ALTER TABLE platform.role_grants ADD CONSTRAINT fk_role_grants_team_id_teams FOREIGN KEY (team_id)
  REFERENCES platform.teams (id) ON DELETE CASCADE NOT VALID;
ALTER TABLE platform.role_grants ADD CONSTRAINT ck_role_grants_one_grantee
  CHECK (num_nonnulls(user_id, team_id) = 1) NOT VALID;
ALTER TABLE platform.role_grants ADD CONSTRAINT ck_role_grants_not_self_granted
  CHECK (granted_by <> user_id) NOT VALID;
COMMENT ON TABLE platform.role_grants IS 'A role held by a user or a team: globally, or scoped to a service and/or an environment.';

ALTER TABLE platform.users ADD COLUMN kind text NOT NULL DEFAULT 'human';
COMMENT ON COLUMN platform.users.kind IS 'human (signs in with a password) or service_account (a CI system or bot: no password, owned by a team, acts through API tokens).';
ALTER TABLE platform.users ADD COLUMN owner_team_id uuid;
COMMENT ON COLUMN platform.users.owner_team_id IS 'The team that owns a service account; NULL for a human.';
ALTER TABLE platform.users ALTER COLUMN password_hash DROP NOT NULL;
COMMENT ON COLUMN platform.users.password_hash IS 'PHC-format hash (argon2, bcrypt, scrypt or pbkdf2); never a plaintext password. NULL for a service account, which cannot sign in with a password.';
ALTER TABLE platform.users ADD CONSTRAINT fk_users_owner_team_id_teams FOREIGN KEY (owner_team_id)
  REFERENCES platform.teams (id) ON DELETE RESTRICT NOT VALID;
ALTER TABLE platform.users ADD CONSTRAINT ck_users_kind_allowed CHECK (kind IN ('human', 'service_account')) NOT VALID;
ALTER TABLE platform.users ADD CONSTRAINT ck_users_owner_team_by_kind
  CHECK ((kind = 'service_account') = (owner_team_id IS NOT NULL)) NOT VALID;
ALTER TABLE platform.users ADD CONSTRAINT ck_users_password_by_kind
  CHECK ((kind = 'human') = (password_hash IS NOT NULL)) NOT VALID;
COMMENT ON TABLE platform.users IS 'A person or a service account; deactivated rather than deleted.';

CREATE TABLE platform.api_tokens (
  id uuid NOT NULL DEFAULT platform.uuidv7(),
  user_id uuid NOT NULL,
  name text NOT NULL,
  selector text NOT NULL,
  verifier bytea NOT NULL,
  service_id uuid,
  environment_id uuid,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  rotated_from_id uuid,
  created_by uuid,
  last_used_at timestamptz,
  last_used_addr inet,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pk_api_tokens PRIMARY KEY (id),
  CONSTRAINT fk_api_tokens_user_id_users FOREIGN KEY (user_id) REFERENCES platform.users (id) ON DELETE RESTRICT,
  CONSTRAINT fk_api_tokens_service_id_services FOREIGN KEY (service_id) REFERENCES platform.services (id)
    ON DELETE CASCADE,
  CONSTRAINT fk_api_tokens_environment_id_environments FOREIGN KEY (environment_id)
    REFERENCES platform.environments (id) ON DELETE CASCADE,
  CONSTRAINT fk_api_tokens_rotated_from_id_api_tokens FOREIGN KEY (rotated_from_id) REFERENCES platform.api_tokens (id)
    ON DELETE RESTRICT,
  CONSTRAINT fk_api_tokens_created_by_users FOREIGN KEY (created_by) REFERENCES platform.users (id) ON DELETE RESTRICT,
  CONSTRAINT uq_api_tokens_selector UNIQUE (selector),
  CONSTRAINT ck_api_tokens_name_format CHECK (name ~ '^[ -~]{1,100}$'),
  CONSTRAINT ck_api_tokens_selector_format CHECK (selector ~ '^[a-z0-9]{16}$'),
  CONSTRAINT ck_api_tokens_verifier_sha256 CHECK (octet_length(verifier) = 32),
  CONSTRAINT ck_api_tokens_expiry_within_a_year
    CHECK (expires_at > created_at AND expires_at - created_at <= interval '366 days'),
  CONSTRAINT ck_api_tokens_revoked_after_created CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
COMMENT ON TABLE platform.api_tokens IS 'An API token of a user or service account: a public selector and the SHA-256 of its secret, never the token; scoped, expiring, revocable, rotatable.';
COMMENT ON COLUMN platform.api_tokens.id IS 'Token id (UUIDv7).';
COMMENT ON COLUMN platform.api_tokens.user_id IS 'The principal the token acts as (a human or a service account).';
COMMENT ON COLUMN platform.api_tokens.name IS 'What the token is for, e.g. ci-releases (printable ASCII, 1 to 100 characters).';
COMMENT ON COLUMN platform.api_tokens.selector IS 'Public part of the token (16 characters of [a-z0-9]), by which it is looked up.';
COMMENT ON COLUMN platform.api_tokens.verifier IS 'SHA-256 of the token''s secret (32 bytes); never the secret. Readable by no service role; redacted in audit rows.';
COMMENT ON COLUMN platform.api_tokens.service_id IS 'Service the token is limited to; NULL means every service.';
COMMENT ON COLUMN platform.api_tokens.environment_id IS 'Environment the token is limited to; NULL means every environment.';
COMMENT ON COLUMN platform.api_tokens.expires_at IS 'When the token stops working: mandatory, at most 366 days after it was issued.';
COMMENT ON COLUMN platform.api_tokens.revoked_at IS 'When the token was revoked (or rotated); final once set. NULL while live.';
COMMENT ON COLUMN platform.api_tokens.rotated_from_id IS 'The token this one replaced; inserting it revoked that one (trg_api_tokens_rotation). At most one successor per token.';
COMMENT ON COLUMN platform.api_tokens.created_by IS 'Who issued the token: its human owner, or a holder of token:issue (trg_api_tokens_issuer). NULL only for tokens the schema owner writes.';
COMMENT ON COLUMN platform.api_tokens.last_used_at IS 'When the token last passed platform.verify_api_token (recorded at most once a minute per address).';
COMMENT ON COLUMN platform.api_tokens.last_used_addr IS 'Client address of that use (platformdb.client_addr, else the connection''s).';
COMMENT ON COLUMN platform.api_tokens.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN platform.api_tokens.updated_at IS 'When the row was last changed; maintained by trigger trg_<table>_updated_at.';
CREATE UNIQUE INDEX uq_api_tokens_rotated_from_id ON platform.api_tokens (rotated_from_id)
  WHERE rotated_from_id IS NOT NULL;
COMMENT ON INDEX platform.uq_api_tokens_rotated_from_id IS 'Serves: rotation: at most one successor per token; FK';
CREATE INDEX ix_api_tokens_user_id_created_at ON platform.api_tokens (user_id, created_at);
COMMENT ON INDEX platform.ix_api_tokens_user_id_created_at IS 'Serves: identity.tokens_of_user (newest first); FK';
CREATE INDEX ix_api_tokens_service_id ON platform.api_tokens (service_id) WHERE service_id IS NOT NULL;
COMMENT ON INDEX platform.ix_api_tokens_service_id IS 'Serves: FK api_tokens.service_id';
CREATE INDEX ix_api_tokens_environment_id ON platform.api_tokens (environment_id) WHERE environment_id IS NOT NULL;
COMMENT ON INDEX platform.ix_api_tokens_environment_id IS 'Serves: FK api_tokens.environment_id';
CREATE INDEX ix_api_tokens_created_by ON platform.api_tokens (created_by) WHERE created_by IS NOT NULL;
COMMENT ON INDEX platform.ix_api_tokens_created_by IS 'Serves: FK api_tokens.created_by';

CREATE TABLE platform.api_token_scopes (
  token_id uuid NOT NULL,
  permission_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pk_api_token_scopes PRIMARY KEY (token_id, permission_id),
  CONSTRAINT fk_api_token_scopes_token_id_api_tokens FOREIGN KEY (token_id) REFERENCES platform.api_tokens (id)
    ON DELETE CASCADE,
  CONSTRAINT fk_api_token_scopes_permission_id_permissions FOREIGN KEY (permission_id)
    REFERENCES platform.permissions (id) ON DELETE CASCADE
);
COMMENT ON TABLE platform.api_token_scopes IS 'A permission a token may use (its owner must also hold it when the token is used).';
COMMENT ON COLUMN platform.api_token_scopes.token_id IS 'The token.';
COMMENT ON COLUMN platform.api_token_scopes.permission_id IS 'The permission it may use.';
COMMENT ON COLUMN platform.api_token_scopes.created_at IS 'When the row was inserted.';
CREATE INDEX ix_api_token_scopes_permission_id ON platform.api_token_scopes (permission_id);
COMMENT ON INDEX platform.ix_api_token_scopes_permission_id IS 'Serves: FK api_token_scopes.permission_id';

-- Well-known permissions the database's rules name (revision 0030): reference data the schema ships, like the
-- deployment status transitions, written without an audit row (a new database's audit log starts empty). The
-- trigger is off only inside this transaction: no other session ever sees it disabled.
ALTER TABLE platform.permissions DISABLE TRIGGER trg_permissions_audit;
INSERT INTO platform.permissions (name, description) VALUES
  ('role:grant', 'Grant roles to users and teams, within the scope held (and only roles whose permissions are held there).'),
  ('token:issue', 'Issue API tokens for other principals (service accounts), within the scope held.')
ON CONFLICT (name) DO NOTHING;
ALTER TABLE platform.permissions ENABLE TRIGGER trg_permissions_audit;
"""

RULES = r"""
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
CREATE OR REPLACE FUNCTION platform.may_user_do(p_user_id uuid, p_permission text, p_service_id uuid, p_environment_id uuid)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE member_of (team_id) AS (
      SELECT m.team_id
        FROM platform.team_memberships m
       WHERE m.user_id = p_user_id
         AND (m.expires_at IS NULL OR m.expires_at > now())
    UNION
      SELECT t.parent_team_id
        FROM member_of
        JOIN platform.teams t ON t.id = member_of.team_id
       WHERE t.parent_team_id IS NOT NULL)
  SELECT EXISTS (SELECT FROM platform.users u WHERE u.id = p_user_id AND u.deactivated_at IS NULL)
     AND EXISTS (
    SELECT
      FROM (SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM platform.role_grants g
             WHERE g.user_id = p_user_id
            UNION ALL
            SELECT g.role_id, g.service_id, g.environment_id, g.expires_at
              FROM member_of
              JOIN platform.role_grants g ON g.team_id = member_of.team_id) g
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
CREATE TRIGGER trg_api_tokens_validated BEFORE INSERT OR UPDATE ON platform.api_tokens
  FOR EACH ROW EXECUTE FUNCTION platform.check_quietly();

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
"""

MAY_USER_DO_0023 = r"""
CREATE OR REPLACE FUNCTION platform.may_user_do(p_user_id uuid, p_permission text, p_service_id uuid, p_environment_id uuid)
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
"""
