-- Least privilege: one NOLOGIN group role per microservice, plus read-only, with grants for exactly what each
-- owns and reads. Nothing is granted to PUBLIC. Logins are made per service instance with
-- `platformdb roles grant-login NAME --role ROLE`; no service logs in as the schema owner.
-- Roles are cluster-wide: created if missing, shared by every platformdb database on the cluster.

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['platform_identity', 'platform_catalog', 'platform_delivery', 'platform_configuration',
                           'platform_audit_reader', 'platform_metrics_writer', 'platform_readonly'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
END
$$;
COMMENT ON ROLE platform_identity IS 'platformdb group role: the identity service (users, teams, roles, grants).';
COMMENT ON ROLE platform_catalog IS 'platformdb group role: the catalog service (services, environments, dependencies).';
COMMENT ON ROLE platform_delivery IS 'platformdb group role: the delivery service (releases, deployments).';
COMMENT ON ROLE platform_configuration IS 'platformdb group role: the configuration service (keys and versions).';
COMMENT ON ROLE platform_audit_reader IS 'platformdb group role: reads the audit log.';
COMMENT ON ROLE platform_metrics_writer IS 'platformdb group role: writes metric definitions, series and samples.';
COMMENT ON ROLE platform_readonly IS 'platformdb group role: reads everything but password hashes and secret references.';

REVOKE ALL ON SCHEMA platform FROM PUBLIC;
REVOKE ALL ON SCHEMA platform_archive FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA platform FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA platform FROM PUBLIC;
GRANT USAGE ON SCHEMA platform TO platform_identity, platform_catalog, platform_delivery, platform_configuration,
  platform_audit_reader, platform_metrics_writer, platform_readonly;
-- Key defaults call uuidv7(). The read API (revision 0023) is SECURITY DEFINER: its callers (the roles of the
-- catalog queries that call it, platformdb.queries) need EXECUTE, not the tables. No function is PUBLIC's.
GRANT EXECUTE ON FUNCTION platform.uuidv7() TO platform_identity, platform_catalog, platform_delivery,
  platform_configuration, platform_metrics_writer;
GRANT EXECUTE ON FUNCTION platform.may_user_do(uuid, text, uuid, uuid) TO platform_identity, platform_catalog,
  platform_delivery, platform_configuration, platform_audit_reader, platform_metrics_writer, platform_readonly;
GRANT EXECUTE ON FUNCTION platform.effective_configuration(uuid, uuid),
  platform.configuration_at_deployment(uuid) TO platform_configuration, platform_delivery, platform_readonly;
-- The token check (revision 0030): every service authenticates API requests; it records last use, so not
-- read-only. No role reads a verifier.
GRANT EXECUTE ON FUNCTION platform.verify_api_token(text, bytea, text, uuid, uuid) TO platform_identity,
  platform_catalog, platform_delivery, platform_configuration, platform_metrics_writer;

-- identity: owns users (never deleted), teams, memberships, roles, permissions, grants.
GRANT SELECT, INSERT, UPDATE ON platform.users TO platform_identity;
GRANT SELECT, INSERT, UPDATE, DELETE ON platform.teams, platform.team_memberships, platform.roles,
  platform.permissions, platform.role_permissions, platform.role_grants TO platform_identity;
GRANT SELECT ON platform.services, platform.environments TO platform_identity;
-- identity issues and lists API tokens (never reading a verifier) and revokes them through
-- platform.revoke_api_token (no UPDATE: no row locks on tokens); scopes are set at issue.
GRANT SELECT (id, user_id, name, selector, service_id, environment_id, expires_at, revoked_at, rotated_from_id,
  created_by, last_used_at, last_used_addr, created_at, updated_at), INSERT ON platform.api_tokens TO platform_identity;
GRANT EXECUTE ON FUNCTION platform.revoke_api_token(text) TO platform_identity;
GRANT SELECT, INSERT, DELETE ON platform.api_token_scopes TO platform_identity;

-- catalog: owns services, environments and dependencies; reads teams (owners).
GRANT SELECT, INSERT, UPDATE, DELETE ON platform.services, platform.environments, platform.service_dependencies
  TO platform_catalog;
GRANT SELECT ON platform.teams TO platform_catalog;

-- delivery: registers releases, runs deployments; history is written by triggers only.
GRANT SELECT, INSERT ON platform.releases TO platform_delivery;
GRANT SELECT, INSERT, UPDATE ON platform.deployments TO platform_delivery;
GRANT SELECT ON platform.deployment_status_transitions, platform.deployment_status_history,
  platform.deployment_configurations, platform.services, platform.environments TO platform_delivery;
GRANT EXECUTE ON FUNCTION platform.start_rollback(uuid, text, uuid) TO platform_delivery;
-- Four-eyes (revision 0042): delivery relays each approver's decision (the approver is data, checked by the
-- rules) and reads the rules; the captured rules are written by trigger only. The rules themselves are policy,
-- written by the identity service beside the grants: the service that runs rollouts cannot move their gate.
GRANT SELECT, INSERT ON platform.deployment_approvals TO platform_delivery;
GRANT SELECT ON platform.approval_rules, platform.deployment_approval_requirements, platform.permissions
  TO platform_delivery;
GRANT SELECT, INSERT, UPDATE, DELETE ON platform.approval_rules TO platform_identity;
GRANT EXECUTE ON FUNCTION platform.rollout_blockers(uuid) TO platform_delivery, platform_readonly;
GRANT EXECUTE ON FUNCTION platform.pending_approvals_of(uuid) TO platform_delivery, platform_readonly;

-- delivery: deploy freezes, their schedules and overrides, the promotion graph and its overrides (revision 0050).
-- Overrides are append-only; edges are inserted or deleted. The helpers the triggers call run as the writer.
GRANT SELECT, INSERT, UPDATE, DELETE ON platform.freeze_schedules, platform.freeze_periods TO platform_delivery;
GRANT SELECT, INSERT ON platform.freeze_overrides, platform.promotion_overrides TO platform_delivery;
GRANT SELECT, INSERT, DELETE ON platform.environment_promotions TO platform_delivery;
GRANT EXECUTE ON FUNCTION platform.freezes_in_force(uuid, uuid, timestamptz, boolean, uuid),
  platform.promotion_missing(uuid, text, uuid) TO platform_delivery;
GRANT SELECT ON platform.freeze_schedules, platform.freeze_periods, platform.freeze_overrides,
  platform.environment_promotions, platform.promotion_overrides TO platform_readonly;

-- configuration: owns keys and versions (versions are append-only; numbering is the trigger's).
GRANT SELECT, INSERT, DELETE ON platform.configurations TO platform_configuration;
GRANT SELECT, INSERT ON platform.configuration_versions TO platform_configuration;
GRANT SELECT ON platform.deployment_configurations, platform.services, platform.environments
  TO platform_configuration;

-- audit: rows are inserted only by the SECURITY DEFINER capture trigger; readers read.
GRANT SELECT ON platform.audit_logs TO platform_audit_reader;

-- monitoring: definitions, series and samples.
GRANT SELECT, INSERT, UPDATE ON platform.metrics TO platform_metrics_writer;
GRANT SELECT, INSERT ON platform.metric_series, platform.metric_samples TO platform_metrics_writer;
GRANT SELECT ON platform.metric_samples_quarantine TO platform_metrics_writer;
GRANT SELECT ON platform.services, platform.environments TO platform_metrics_writer;

-- read-only: every table, but not the columns that hold password hashes, token verifiers or secret references.
GRANT SELECT ON platform.teams, platform.team_memberships, platform.roles, platform.permissions,
  platform.role_permissions, platform.role_grants, platform.environments, platform.services,
  platform.service_dependencies, platform.releases, platform.deployments, platform.deployment_status_transitions,
  platform.deployment_status_history, platform.configurations, platform.deployment_configurations,
  platform.audit_logs, platform.metrics, platform.metric_series, platform.metric_samples,
  platform.metric_samples_quarantine, platform.partition_retention, platform.approval_rules,
  platform.deployment_approval_requirements, platform.deployment_approvals, platform.api_token_scopes
  TO platform_readonly;
GRANT SELECT (id, email, display_name, deactivated_at, created_at, updated_at, kind, owner_team_id) ON platform.users
  TO platform_readonly;
GRANT SELECT (id, user_id, name, selector, service_id, environment_id, expires_at, revoked_at, rotated_from_id,
  created_by, last_used_at, last_used_addr, created_at, updated_at) ON platform.api_tokens TO platform_readonly;
GRANT SELECT (configuration_id, version, kind, value, created_by, created_at) ON platform.configuration_versions
  TO platform_readonly;

-- The audit chain's head: auditors (and read-only) may read it, to anchor it outside the database.
GRANT SELECT ON platform.audit_chain TO platform_audit_reader, platform_readonly;
GRANT EXECUTE ON FUNCTION platform.audit_row_hash(platform.audit_logs) TO platform_audit_reader;

-- Nothing a login writes outlives its work but rows in the tables above (revision 0020): no temporary tables
-- (PUBLIC's TEMPORARY on the database is revoked; none of the groups needs one) and no large objects (the
-- functions that create one are EXECUTEable by PUBLIC in pg_catalog). Both are per database: a database made
-- by CREATE DATABASE ... TEMPLATE does not inherit the database-level revoke (run this block there again).
-- The large-object functions belong to the bootstrap superuser: an owner that is not a superuser cannot
-- revoke them and is told, with the statement a DBA runs instead.
DO $$
DECLARE
  v_lo text := 'pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer), pg_catalog.lo_from_bytea(oid, bytea), '
                'pg_catalog.lo_import(text), pg_catalog.lo_import(text, oid)';
BEGIN
  IF pg_has_role(current_user, (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')
  THEN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
  ELSE
    RAISE NOTICE 'platformdb: % does not own database %, so PUBLIC keeps TEMPORARY on it', current_user,
      current_database() USING HINT = format('a DBA runs: REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC;',
      current_database());
  END IF;
  IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
    EXECUTE 'REVOKE EXECUTE ON FUNCTION ' || v_lo || ' FROM PUBLIC';
  ELSE
    RAISE NOTICE 'platformdb: % is not a superuser, so PUBLIC keeps EXECUTE on the large-object functions',
      current_user USING HINT = format('a superuser runs in database %I: REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;',
      current_database(), v_lo);
  END IF;
END
$$;

-- A platformdb database is for its own logins (revision 0025). The group roles are cluster-wide: with PUBLIC's
-- CONNECT, a login made for one platformdb database could connect to another of the same cluster and use the same
-- group's privileges there. PUBLIC loses CONNECT here, and `platformdb roles grant-login` grants it per login on
-- the database it is made for. An owner that does not own the database gets a NOTICE with the statement for its DBA.
DO $$
BEGIN
  IF pg_has_role(current_user, (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')
  THEN
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database());
  ELSE
    RAISE NOTICE 'platformdb: % does not own database %, so PUBLIC keeps CONNECT on it', current_user,
      current_database() USING HINT = format('a DBA runs: REVOKE CONNECT ON DATABASE %I FROM PUBLIC;',
      current_database());
  END IF;
END
$$;
