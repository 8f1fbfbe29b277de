-- Configuration: gap-free version numbers, immutable history, effective configuration, and the
-- configuration captured at each deployment.

-- An UPDATE that changes nothing, made by a trigger, passes: the numbering trigger below takes the key's row
-- lock that way. Any other UPDATE is refused.
CREATE TRIGGER trg_configurations_immutable BEFORE UPDATE ON platform.configurations
  FOR EACH ROW WHEN (pg_trigger_depth() = 0 OR OLD.* IS DISTINCT FROM NEW.*)
  EXECUTE FUNCTION platform.forbid_change('a configuration key is immutable; add a version instead');

-- At most 1000 keys per service (defaults and environment overrides together). The service's row is locked
-- (FOR NO KEY UPDATE, held to commit; inserts that reference the service are not blocked) before counting, so
-- concurrent writers of one service's keys queue, and under READ COMMITTED each counts what the one before it
-- committed (SERIALIZABLE detects the conflict itself). SECURITY DEFINER: the lock needs UPDATE on services.
CREATE FUNCTION platform.limit_configuration_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_keys integer;
BEGIN
  PERFORM FROM platform.services s WHERE s.id = NEW.service_id FOR NO KEY UPDATE;
  SELECT count(*) INTO v_keys
    FROM (SELECT FROM platform.configurations c WHERE c.service_id = NEW.service_id LIMIT 1000) k;
  IF v_keys >= 1000 THEN
    RAISE EXCEPTION 'a service has at most 1000 configuration keys'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'key';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.limit_configuration_keys() IS 'BEFORE INSERT trigger of configurations: refuses a service''s 1001st key (SQLSTATE 23514, constraint trg_configurations_keys_per_service), counting under the service''s row lock.';

CREATE TRIGGER trg_configurations_keys_per_service BEFORE INSERT ON platform.configurations
  FOR EACH ROW EXECUTE FUNCTION platform.limit_configuration_keys();
CREATE TRIGGER trg_configurations_audit AFTER INSERT OR UPDATE OR DELETE ON platform.configurations
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

-- Numbers a new version last+1 while holding the key's row lock, so concurrent edits serialize, versions
-- stay contiguous and the last to commit wins. The lock is taken by an UPDATE that changes nothing (a new row
-- version): under READ COMMITTED a writer waits for the one before it and then numbers after its version; under
-- REPEATABLE READ or SERIALIZABLE a writer whose snapshot cannot see a version committed since gets PostgreSQL's
-- serialization failure (40001: retry the transaction) instead of numbering from that snapshot. The last version
-- is read by key, newest first, from the primary key's index. A writer may pass the version it expects to create
-- (optimistic concurrency): any other number is refused (23514) with a JSON DETAIL {configuration_id,
-- current_version, expected_version}, under every isolation level; a REPEATABLE READ or SERIALIZABLE writer whose
-- snapshot predates a concurrent version gets 40001 first, and its retry (a new transaction) this refusal.
-- SECURITY DEFINER: locking the key's row needs UPDATE on configurations, which writers do not hold.
CREATE FUNCTION platform.number_configuration_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_next integer;
BEGIN
  UPDATE platform.configurations c SET key = c.key WHERE c.id = NEW.configuration_id;
  SELECT v.version + 1 INTO v_next
    FROM platform.configuration_versions v WHERE v.configuration_id = NEW.configuration_id
   ORDER BY v.version DESC LIMIT 1;
  v_next := coalesce(v_next, 1);
  IF NEW.version IS NOT NULL AND NEW.version <> v_next THEN
    RAISE EXCEPTION 'configuration % is at version %, cannot write version %',
          NEW.configuration_id, v_next - 1, NEW.version
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'version',
            DETAIL = json_build_object('configuration_id', NEW.configuration_id, 'current_version', v_next - 1,
                                       'expected_version', NEW.version)::text,
            HINT = 'Read the current version, then write current_version + 1 (or no version, to append).';
  END IF;
  NEW.version := v_next;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.number_configuration_version() IS 'BEFORE INSERT trigger of configuration_versions: assigns the next gap-free version under the key''s row lock; refuses a stale expected version (SQLSTATE 23514, DETAIL {configuration_id, current_version, expected_version} as JSON); a REPEATABLE READ or SERIALIZABLE writer behind a concurrent version gets 40001 (retry the transaction).';

CREATE TRIGGER trg_configuration_versions_number BEFORE INSERT ON platform.configuration_versions
  FOR EACH ROW EXECUTE FUNCTION platform.number_configuration_version();
CREATE TRIGGER trg_configuration_versions_append_only
  BEFORE UPDATE OR DELETE ON platform.configuration_versions
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('configuration versions are immutable');
CREATE TRIGGER trg_configuration_versions_audit AFTER INSERT OR UPDATE OR DELETE ON platform.configuration_versions
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('configuration_id,version', 'secret_ref');

-- Who may read secret references through the read API below (revision 0023): whoever may read the column
-- (configuration, the owner) and delivery, which hands them to what it deploys. Those functions run as their
-- owner, so the caller is the role the session acts as: SET ROLE's, else the login (a SECURITY DEFINER function
-- cannot SET ROLE, so neither can be changed from inside one). Not pinned to a search_path, so that it inlines:
-- it runs inside functions that pin theirs.
CREATE FUNCTION platform.caller_reads_secret_refs() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT pg_has_role(c.name, 'platform_delivery', 'USAGE')
      OR has_column_privilege(c.name, 'platform.configuration_versions', 'secret_ref', 'SELECT')
    FROM (SELECT coalesce(nullif(current_setting('role'), 'none'), session_user) AS name) c
$$;
COMMENT ON FUNCTION platform.caller_reads_secret_refs() IS 'Whether the role the session acts as (SET ROLE, else the login) may read secret references: it may SELECT configuration_versions.secret_ref, or it is platform_delivery.';

-- For each key of the service: the environment override if it has a live (not deleted) latest version,
-- else the service-wide default's live latest version; keys whose only live versions are deleted vanish.
-- SECURITY DEFINER (revision 0023): delivery and read-only call it without reading the tables; secret
-- references only for platform.caller_reads_secret_refs(). Not inlined: its body is planned on its own.
CREATE FUNCTION platform.effective_configuration(p_service_id uuid, p_environment_id uuid)
RETURNS TABLE (configuration_id uuid, key text, version integer, kind text, value jsonb, secret_ref text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT DISTINCT ON (c.key) c.id, c.key, v.version, v.kind, v.value,
         CASE WHEN (SELECT platform.caller_reads_secret_refs()) THEN v.secret_ref END
    FROM platform.configurations c
    CROSS JOIN LATERAL (
      SELECT cv.version, cv.kind, cv.value, cv.secret_ref
        FROM platform.configuration_versions cv
       WHERE cv.configuration_id = c.id
       ORDER BY cv.version DESC
       LIMIT 1) v
   WHERE c.service_id = p_service_id
     AND (c.environment_id = p_environment_id OR c.environment_id IS NULL)
     AND v.kind <> 'deleted'
   ORDER BY c.key, c.environment_id NULLS LAST
$$;
COMMENT ON FUNCTION platform.effective_configuration(uuid, uuid) IS 'The configuration in force for a service in an environment: per key, the live override, else the live default. Secret references only for callers that may read them (platform.caller_reads_secret_refs), else NULL.';

-- The exact configuration versions in force when a deployment was created (trg_deployments_capture_configuration
-- recorded them): each recorded key looked up by primary key, its slot and its version. OFFSET 0 keeps that plan
-- at every size (on tables of a few pages the planner would rather hash them whole, which does not scale).
CREATE FUNCTION platform.configuration_at_deployment(p_deployment_id uuid)
RETURNS TABLE (key text, environment_id uuid, version integer, kind text, value jsonb, secret_ref text,
               created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT x.key, x.environment_id, dc.version, x.kind, x.value,
         CASE WHEN (SELECT platform.caller_reads_secret_refs()) THEN x.secret_ref END, x.created_at
    FROM platform.deployment_configurations dc
    CROSS JOIN LATERAL (
      SELECT c.key, c.environment_id, v.kind, v.value, v.secret_ref, v.created_at
        FROM platform.configurations c
        JOIN platform.configuration_versions v ON v.configuration_id = c.id
       WHERE c.id = dc.configuration_id
         AND v.version = dc.version
      OFFSET 0) x
   WHERE dc.deployment_id = p_deployment_id
$$;
COMMENT ON FUNCTION platform.configuration_at_deployment(uuid) IS 'The configuration versions in force when a deployment was created (as recorded by trg_deployments_capture_configuration), in no order. Secret references only for callers that may read them (platform.caller_reads_secret_refs), else NULL.';

-- SECURITY DEFINER: deployment_configurations is written only by this trigger.
CREATE FUNCTION platform.capture_deployment_configuration() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO platform.deployment_configurations (deployment_id, configuration_id, version)
  SELECT NEW.id, e.configuration_id, e.version
    FROM platform.effective_configuration(NEW.service_id, NEW.environment_id) e;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.capture_deployment_configuration() IS 'AFTER INSERT trigger of deployments: records the configuration version in force for each key.';

CREATE TRIGGER trg_deployments_capture_configuration AFTER INSERT ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.capture_deployment_configuration();
CREATE TRIGGER trg_deployment_configurations_append_only
  BEFORE UPDATE OR DELETE ON platform.deployment_configurations
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('what was in force at a deployment is history');

-- Creation times are the database's (revision 0020): an INSERT by anyone but the table's owner gets now() for
-- created_at (trg_<table>_created_at). Keys and versions are never updated, so their keys need no guard.
CREATE TRIGGER trg_configurations_created_at BEFORE INSERT ON platform.configurations
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_configuration_versions_created_at BEFORE INSERT ON platform.configuration_versions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();

-- Rejected writes show no value of this table's secrets, hashes or personal data (trg_configuration_versions_validated;
-- see platform.install_quiet_checks).
SELECT platform.install_quiet_checks('platform.configuration_versions');
