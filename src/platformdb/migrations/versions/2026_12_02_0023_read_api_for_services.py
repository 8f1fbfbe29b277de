"""The read API services are granted: authorization check, effective configuration, configuration at a deployment

Why: Documented catalog queries failed with 42501 for the roles meant to run them: every service but identity on
     the authorization check (role_grants), delivery and read-only on effective_configuration() (an invoker
     function over tables they may not read, or not the secret_ref column), delivery on the configuration at a
     deployment. They become SECURITY DEFINER SQL functions (owned by the schema owner, search_path pinned, bodies
     fully qualified, EXECUTE revoked from PUBLIC and granted to the roles the catalog names):
     platform.may_user_do(user, permission, service, environment), platform.effective_configuration(service,
     environment) (changed in place, not wrapped: it keeps its OID, its grants and its one definition, which the
     deployment capture trigger uses too) and platform.configuration_at_deployment(deployment). Secret references
     come back only to callers that may read them (platform.caller_reads_secret_refs(): configuration, which
     may SELECT the column, the owner, and delivery), NULL to read-only. The cost: a SECURITY DEFINER function is
     not inlined; its body is planned on its own (the plan checks EXPLAIN the body).
     Every other function in schema platform already has no EXECUTE for PUBLIC; the revision revokes it again
     for all (a guard, idempotent). Not ALTER DEFAULT PRIVILEGES: a per-schema default cannot take away
     PUBLIC's EXECUTE, and the database-wide one would also take it from every function the owner creates in
     other schemas (extensions); tests/security/test_query_grants.py fails on any function PUBLIC may execute.
Locks: none on tables: CREATE [OR REPLACE] FUNCTION, GRANT and REVOKE change catalog rows only (concurrent callers
       of effective_configuration finish with the old definition; the next statement plans the new one). Runs
       before the code that uses it (pre-deploy): catalog queries from this release call the new functions.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_GROUP = (
    "platform_identity, platform_catalog, platform_delivery, platform_configuration, platform_audit_reader, "
    "platform_metrics_writer, platform_readonly"
)
CONFIGURATION_READERS = "platform_configuration, platform_delivery, platform_readonly"


def upgrade() -> None:
    op.execute(CALLER_CHECK)
    op.execute(EFFECTIVE_CONFIGURATION)
    op.execute(CONFIGURATION_AT_DEPLOYMENT)
    op.execute(MAY_USER_DO)
    op.execute("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA platform FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION platform.may_user_do(uuid, text, uuid, uuid) TO {EVERY_GROUP}")
    op.execute(
        "GRANT EXECUTE ON FUNCTION platform.effective_configuration(uuid, uuid),"
        f" platform.configuration_at_deployment(uuid) TO {CONFIGURATION_READERS}"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION platform.may_user_do(uuid, text, uuid, uuid)")
    op.execute("DROP FUNCTION platform.configuration_at_deployment(uuid)")
    op.execute(EFFECTIVE_CONFIGURATION_0007)
    op.execute("DROP FUNCTION platform.caller_reads_secret_refs()")


# Frozen copies of the database-side SQL as it was when this revision landed (see models/configuration.sql and
# models/identity.sql for today's).
CALLER_CHECK = r"""
CREATE FUNCTION platform.caller_reads_secret_refs() RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT pg_has_role(c.name, 'platform_delivery', 'USAGE')
      OR has_column_privilege(c.name, 'platform.configuration_versions', 'secret_ref', 'SELECT')
    FROM (SELECT coalesce(nullif(current_setting('role'), 'none'), session_user) AS name) c
$$;
COMMENT ON FUNCTION platform.caller_reads_secret_refs() IS 'Whether the role the session acts as (SET ROLE, else the login) may read secret references: it may SELECT configuration_versions.secret_ref, or it is platform_delivery.';
"""

EFFECTIVE_CONFIGURATION = r"""
CREATE OR REPLACE FUNCTION platform.effective_configuration(p_service_id uuid, p_environment_id uuid)
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
"""

CONFIGURATION_AT_DEPLOYMENT = r"""
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
"""

MAY_USER_DO = r"""
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
"""

# As revision 0007 made it (SECURITY INVOKER, inlined), for the downgrade.
EFFECTIVE_CONFIGURATION_0007 = r"""
CREATE OR REPLACE FUNCTION platform.effective_configuration(p_service_id uuid, p_environment_id uuid)
RETURNS TABLE (configuration_id uuid, key text, version integer, kind text, value jsonb, secret_ref text)
LANGUAGE sql STABLE AS $$
  SELECT DISTINCT ON (c.key) c.id, c.key, v.version, v.kind, v.value, v.secret_ref
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
COMMENT ON FUNCTION platform.effective_configuration(uuid, uuid) IS 'The configuration in force for a service in an environment: per key, the live override, else the live default.';
"""
