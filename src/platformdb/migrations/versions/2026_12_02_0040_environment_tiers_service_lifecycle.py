"""Environment tiers and a service lifecycle with effect: tier beside is_production, retired and deprecated mean something

Why: is_production was a boolean no rule used, and services.status drove nothing: a retired service could be
     deployed and depended on. environments.tier (production, staging, testing, development, other) is added;
     is_production stays for v1 readers and agrees with it (ck_environments_is_production_tier), kept in step by
     trg_environments_tier_sync, which derives the tier a v1 writer leaves out (is_production true: production,
     else other), so v1 writers that send only is_production keep working. Existing rows are backfilled the same
     way. Lifecycle rules, each locking the service row it reads FOR SHARE (a retirement racing an insert waits
     for it, or makes it wait and then read the new status): trg_deployments_service_not_retired (no new
     deployment of a retired service), trg_service_dependencies_target_active (no new dependency on a
     deprecated or retired service), trg_services_retire_without_dependents (no retiring a service that a
     service not retired depends on). All 23514. The table owner is exempt (history replays and restores of
     rows made before a deprecation or retirement), as with trg_deployments_created_at.
Locks: ADD COLUMN without a default and ADD CONSTRAINT ... NOT VALID are catalog-only (a brief ACCESS EXCLUSIVE
       on environments, no scan, no rewrite); CREATE TRIGGER takes SHARE ROW EXCLUSIVE on environments,
       services, deployments and service_dependencies until commit (reads go on, writes wait milliseconds). The
       backfill UPDATEs every environment row (a reference table: tens of rows) with its audit and updated_at
       triggers off (it fills a new column, it changes no environment), inside the revision's transaction. Revision 0041
       validates the two checks and makes tier NOT NULL (post-deploy). Runs before the code that uses it
       (pre-deploy): v1 code keeps writing is_production only.

Revision ID: 0040
Revises: 0032
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0040"
down_revision: str | Sequence[str] | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "platform.environment_tier_sync()",
    "platform.writer_owns(oid)",
    "platform.deployment_service_not_retired()",
    "platform.dependency_target_active()",
    "platform.service_retire_guard()",
)
BACKFILL_QUIET = ("trg_environments_audit", "trg_environments_updated_at")
TIERS = "('production', 'staging', 'testing', 'development', 'other')"


def upgrade() -> None:
    op.execute("ALTER TABLE platform.environments ADD COLUMN tier text")
    op.execute(f"COMMENT ON COLUMN platform.environments.tier IS '{TIER_COMMENT}'")
    op.execute(f"COMMENT ON COLUMN platform.environments.is_production IS '{IS_PRODUCTION_COMMENT}'")
    op.execute(
        f"ALTER TABLE platform.environments ADD CONSTRAINT ck_environments_tier_allowed CHECK (tier IN {TIERS}) NOT VALID"
    )
    op.execute(CATALOG)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    # The backfill fills a new column, it changes no environment: no audit row, no updated_at bump.
    for trigger in BACKFILL_QUIET:
        op.execute(f"ALTER TABLE platform.environments DISABLE TRIGGER {trigger}")
    op.execute(
        "UPDATE platform.environments SET tier = CASE WHEN is_production THEN 'production' ELSE 'other' END"
        " WHERE tier IS NULL"
    )
    for trigger in BACKFILL_QUIET:
        op.execute(f"ALTER TABLE platform.environments ENABLE TRIGGER {trigger}")
    op.execute(
        "ALTER TABLE platform.environments ADD CONSTRAINT ck_environments_is_production_tier"
        " CHECK (is_production = (tier = 'production')) NOT VALID"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_services_retire_without_dependents ON platform.services")
    op.execute("DROP TRIGGER trg_service_dependencies_target_active ON platform.service_dependencies")
    op.execute("DROP TRIGGER trg_deployments_service_not_retired ON platform.deployments")
    op.execute("DROP TRIGGER trg_environments_tier_sync ON platform.environments")
    for function in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")
    op.execute("ALTER TABLE platform.environments DROP CONSTRAINT ck_environments_is_production_tier")
    op.execute("ALTER TABLE platform.environments DROP CONSTRAINT ck_environments_tier_allowed")
    op.execute(f"COMMENT ON COLUMN platform.environments.is_production IS '{OLD_IS_PRODUCTION_COMMENT}'")
    op.execute("ALTER TABLE platform.environments DROP COLUMN tier")


TIER_COMMENT = (
    "production, staging, testing, development or other; left out by a v1 writer, derived from is_production"
    " (production, else other) by trigger trg_environments_tier_sync."
)
IS_PRODUCTION_COMMENT = (
    "Whether the environment serves production traffic: tier = production (kept for v1 readers and writers;"
    " trigger trg_environments_tier_sync keeps the two in step)."
)
OLD_IS_PRODUCTION_COMMENT = "Whether the environment serves production traffic."

# Frozen copy of the database-side SQL as it was when this revision landed (see models/catalog.sql for today's).
CATALOG = r"""
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
"""
