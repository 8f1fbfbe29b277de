"""Rollbacks in the database: platform.start_rollback() starts one, its success marks the undone deployment

Why: A rollback was only a convention (a deployment with rollback_of_id, then an UPDATE of the undone one to
     rolled_back): any service could mark a deployment rolled_back with nothing rolled out, and the two writes
     could disagree. platform.start_rollback(deployment, version, deployed_by) creates the pending rollback
     deployment (of the version named, or the newest other version that succeeded before it in that service and
     environment); when the rollback reaches succeeded, trg_deployments_rolled_back_by_rollback moves the
     undone deployment (succeeded or failed) to rolled_back in the same transaction; and
     trg_deployments_rolled_back_has_rollback refuses rolled_back (23514) unless a rollback of the deployment
     succeeded. The table owner stays exempt (backfills, repairs), as with trg_deployments_created_at. EXECUTE on
     the function is platform_delivery's only.
Locks: CREATE TRIGGER takes SHARE ROW EXCLUSIVE on deployments until commit (reads go on, writes wait for the
       commit, milliseconds); CREATE FUNCTION and GRANT take no table lock. Runs before the code that uses it
       (pre-deploy): v0.1 services that mark rolled_back after their rollback succeeded keep working (the move is
       already made, their UPDATE changes no status); only a rolled_back without a succeeded rollback, the
       defect, is refused. New code then calls start_rollback() and drops its own UPDATE.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(ROLLBACKS)
    op.execute("REVOKE ALL ON FUNCTION platform.deployment_rolled_back_guard() FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION platform.mark_rolled_back() FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION platform.start_rollback(uuid, text, uuid) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION platform.start_rollback(uuid, text, uuid) TO platform_delivery")
    op.execute(f"COMMENT ON COLUMN platform.deployments.status IS '{STATUS_COMMENT}'")
    op.execute(f"COMMENT ON COLUMN platform.deployments.rollback_of_id IS '{ROLLBACK_OF_COMMENT}'")


def downgrade() -> None:
    op.execute(f"COMMENT ON COLUMN platform.deployments.rollback_of_id IS '{OLD_ROLLBACK_OF_COMMENT}'")
    op.execute(f"COMMENT ON COLUMN platform.deployments.status IS '{OLD_STATUS_COMMENT}'")
    op.execute("DROP TRIGGER trg_deployments_rolled_back_by_rollback ON platform.deployments")
    op.execute("DROP TRIGGER trg_deployments_rolled_back_has_rollback ON platform.deployments")
    op.execute("DROP FUNCTION platform.start_rollback(uuid, text, uuid)")
    op.execute("DROP FUNCTION platform.mark_rolled_back()")
    op.execute("DROP FUNCTION platform.deployment_rolled_back_guard()")


STATUS_COMMENT = (
    "pending, in_progress, succeeded, failed, cancelled or rolled_back; transitions are checked by trigger"
    " trg_deployments_status_transition; rolled_back is entered when a rollback of the deployment succeeds"
    " (trg_deployments_rolled_back_by_rollback), and only then."
)
OLD_STATUS_COMMENT = (
    "pending, in_progress, succeeded, failed, cancelled or rolled_back; transitions are checked by trigger"
    " trg_deployments_status_transition."
)
ROLLBACK_OF_COMMENT = (
    "The earlier deployment (same service and environment) that this one rolls back; see platform.start_rollback()."
)
OLD_ROLLBACK_OF_COMMENT = "The earlier deployment (same service and environment) that this one rolls back."

# Frozen copy of the database-side SQL as it was when this revision landed (see models/delivery.sql for today's).
ROLLBACKS = r"""
-- Rollbacks (revision 0024). A rollback is a deployment whose rollback_of_id names the one it undoes; when it
-- succeeds, the undone deployment (succeeded or failed) becomes rolled_back in the same transaction. A service
-- cannot mark rolled_back otherwise: only with a succeeded rollback of the deployment (23514); the table's owner
-- (backfills, repairs) may, as with trg_deployments_created_at. A v0.1 service that marks the deployment after
-- its rollback succeeded still may: the move is then already made and its UPDATE changes no status.
CREATE FUNCTION platform.deployment_rolled_back_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
     AND NOT EXISTS (SELECT FROM platform.deployments r
                      WHERE r.rollback_of_id = NEW.id AND r.service_id = NEW.service_id
                        AND r.environment_id = NEW.environment_id AND r.status = 'succeeded')
  THEN
    RAISE EXCEPTION 'a deployment becomes rolled_back when a rollback of it succeeds: start one with platform.start_rollback()'
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'status';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_rolled_back_guard() IS 'BEFORE UPDATE trigger of deployments: refuses a move to rolled_back unless a rollback of the deployment succeeded (SQLSTATE 23514, constraint trg_deployments_rolled_back_has_rollback); the table owner is exempt.';

-- Runs as the writer of the rollback's success (no SECURITY DEFINER): the move is audited as theirs, and passes
-- trg_deployments_rolled_back_has_rollback because the rollback's new status is visible to it.
CREATE FUNCTION platform.mark_rolled_back() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE platform.deployments d SET status = 'rolled_back'
   WHERE d.id = NEW.rollback_of_id AND d.status IN ('succeeded', 'failed');
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.mark_rolled_back() IS 'AFTER UPDATE trigger of deployments (trg_deployments_rolled_back_by_rollback): when a rollback succeeds, the deployment it undoes (succeeded or failed) becomes rolled_back in the same transaction.';

CREATE TRIGGER trg_deployments_rolled_back_has_rollback BEFORE UPDATE ON platform.deployments
  FOR EACH ROW WHEN (NEW.status = 'rolled_back' AND OLD.status IN ('succeeded', 'failed'))
  EXECUTE FUNCTION platform.deployment_rolled_back_guard();
CREATE TRIGGER trg_deployments_rolled_back_by_rollback AFTER UPDATE OF status ON platform.deployments
  FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status IS DISTINCT FROM 'succeeded'
                     AND NEW.rollback_of_id IS NOT NULL)
  EXECUTE FUNCTION platform.mark_rolled_back();

-- Starts a rollback: a pending deployment of the same service and environment, of p_version or else of the
-- newest other version that succeeded there before the deployment was made. The deployment's row is locked
-- (FOR NO KEY UPDATE, to commit) so two rollbacks of it queue; a second active rollout of the service in the
-- environment is refused by uq_deployments_active_service_id_environment_id (23505). Runs as the caller.
CREATE FUNCTION platform.start_rollback(p_deployment_id uuid, p_version text DEFAULT NULL,
                                        p_deployed_by uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d platform.deployments;
  v_version text := p_version;
  v_id uuid;
BEGIN
  SELECT * INTO d FROM platform.deployments WHERE id = p_deployment_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no deployment %', p_deployment_id USING ERRCODE = 'no_data_found';
  END IF;
  IF d.status NOT IN ('succeeded', 'failed') THEN
    RAISE EXCEPTION 'only a succeeded or failed deployment is rolled back, not a % one', d.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF v_version IS NULL THEN
    SELECT e.version INTO v_version
      FROM platform.deployments e
     WHERE e.service_id = d.service_id AND e.environment_id = d.environment_id AND e.status = 'succeeded'
       AND e.version <> d.version AND e.created_at <= d.created_at AND e.id <> d.id
     ORDER BY e.deployed_at DESC, e.id DESC
     LIMIT 1;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no earlier succeeded version to roll back to: name one'
        USING ERRCODE = 'no_data_found';
    END IF;
  END IF;
  INSERT INTO platform.deployments (service_id, version, environment_id, deployed_by, rollback_of_id)
  VALUES (d.service_id, v_version, d.environment_id, p_deployed_by, d.id)
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION platform.start_rollback(uuid, text, uuid) IS 'Starts a rollback of a succeeded or failed deployment: inserts the pending rollback deployment (p_version, else the newest other version that succeeded before it in that service and environment) and returns its id; when it succeeds the undone deployment becomes rolled_back. 55000 for a deployment not finished, P0002 for none to go back to.';
"""
