"""Rollbacks undo what runs: trg_deployments_rollback_target, start_rollback fails during a rollout, pinned paths

Why: A security review (as a delivery login) found revision 0024's rollbacks could still mark a deployment
     rolled_back without a real rollback: nothing checked what a rollback deploys or undoes, and rollback_of_id
     is set by a plain INSERT too (v0.2's documented write path, kept). trg_deployments_rollback_target
     (BEFORE INSERT, rollback_of_id set) refuses (23514), for every caller but the table owner, a rollback whose
     target is not succeeded or failed, is not the latest finished (succeeded, failed or rolled_back; a failed
     rollout counts, a cancelled one does not) deployment of its service and environment or has a rollout there
     under way, or whose version is the target's own or one that no succeeded deployment there runs.
     platform.start_rollback() now fails at once (55000) while a rollout of the service in the environment is
     under way, instead of waiting with the deployment locked on that rollout's transaction (it deadlocked with
     the rollout's success, which locks the rollout and then the deployment it undoes). 0024's trigger functions
     get the pinned search_path start_rollback already had.
Locks: CREATE TRIGGER takes SHARE ROW EXCLUSIVE on deployments until commit (reads go on, writes wait for the
       commit, milliseconds); CREATE OR REPLACE FUNCTION and ALTER FUNCTION take no table lock. Runs before the
       code that uses it (pre-deploy): no code changes with it; a service's valid rollbacks (start_rollback or
       its own INSERT undoing the latest finished deployment, to a good version) keep working, and only the
       defects are refused.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0028"
down_revision: str | Sequence[str] | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PINNED = ("platform.deployment_rolled_back_guard()", "platform.mark_rolled_back()")


def upgrade() -> None:
    op.execute(ROLLBACK_TARGET)
    op.execute("REVOKE ALL ON FUNCTION platform.deployment_rollback_guard() FROM PUBLIC")
    op.execute(START_ROLLBACK)
    for function in PINNED:
        op.execute(f"ALTER FUNCTION {function} SET search_path = pg_catalog, pg_temp")


def downgrade() -> None:
    for function in PINNED:
        op.execute(f"ALTER FUNCTION {function} RESET search_path")
    op.execute(START_ROLLBACK_0024)
    op.execute("DROP TRIGGER trg_deployments_rollback_target ON platform.deployments")
    op.execute("DROP FUNCTION platform.deployment_rollback_guard()")


# Frozen copies of the database-side SQL as it was when this revision landed (see models/delivery.sql for today's).
ROLLBACK_TARGET = r"""
-- A rollback undoes what runs (revision 0028). The deployment a rollback names must be succeeded or failed and
-- the latest finished deployment of its service and environment (finished: succeeded, failed or rolled_back; a
-- failed rollout counts, it may have changed what runs and is what a rollback of it undoes; a cancelled one does
-- not, it is no longer what runs), with no rollout of them under way; and the rollback deploys another version,
-- one that a succeeded deployment there runs (a version rolled back since was undone as bad and does not count).
-- This holds for start_rollback() and for a plain INSERT with rollback_of_id alike (v0.2's documented write
-- path); the table owner is exempt (backfills, the seed's history), as with trg_deployments_rolled_back_has_rollback.
CREATE FUNCTION platform.deployment_rollback_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t platform.deployments;
  v_why text;
BEGIN
  IF pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
    RETURN NEW;
  END IF;
  SELECT * INTO t FROM platform.deployments
   WHERE id = NEW.rollback_of_id AND service_id = NEW.service_id AND environment_id = NEW.environment_id;
  IF NOT FOUND THEN
    RETURN NEW;  -- fk_deployments_rollback_of_id_deployments refuses it
  END IF;
  IF t.status NOT IN ('succeeded', 'failed') THEN
    v_why := format('the deployment it rolls back is %s, not succeeded or failed', t.status);
  ELSIF EXISTS (SELECT FROM platform.deployments a
                 WHERE a.service_id = t.service_id AND a.environment_id = t.environment_id
                   AND a.status IN ('pending', 'in_progress')) THEN
    v_why := 'a rollout of the service in the environment is under way';
  ELSIF EXISTS (SELECT FROM platform.deployments f
                 WHERE f.service_id = t.service_id AND f.environment_id = t.environment_id AND f.id <> t.id
                   AND f.status IN ('succeeded', 'failed', 'rolled_back')
                   AND (f.deployed_at, f.created_at, f.id) > (t.deployed_at, t.created_at, t.id)) THEN
    v_why := 'the deployment it rolls back is not the latest finished one of its service and environment';
  ELSIF NEW.version = t.version THEN
    v_why := 'it deploys the version of the deployment it rolls back';
  ELSIF NOT EXISTS (SELECT FROM platform.deployments e
                     WHERE e.service_id = t.service_id AND e.environment_id = t.environment_id
                       AND e.version = NEW.version AND e.status = 'succeeded') THEN
    v_why := 'it deploys a version that no succeeded deployment of the service runs in the environment';
  END IF;
  IF v_why IS NOT NULL THEN
    RAISE EXCEPTION 'not a rollback: %', v_why
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            COLUMN = 'rollback_of_id',
            HINT = 'a rollback undoes the latest finished deployment, to a version that succeeded before it';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_rollback_guard() IS 'BEFORE INSERT trigger of deployments (trg_deployments_rollback_target): a rollback undoes the latest finished (succeeded, failed or rolled_back) deployment of its service and environment, which is succeeded or failed, while no rollout there is under way, to another version that a succeeded deployment there runs (SQLSTATE 23514); the table owner is exempt.';
CREATE TRIGGER trg_deployments_rollback_target BEFORE INSERT ON platform.deployments
  FOR EACH ROW WHEN (NEW.rollback_of_id IS NOT NULL)
  EXECUTE FUNCTION platform.deployment_rollback_guard();
"""

START_ROLLBACK = r"""
-- Starts a rollback: a pending deployment of the same service and environment, of p_version or else of the
-- newest other version that succeeded there before the deployment was made. The deployment's row is locked
-- (FOR NO KEY UPDATE, to commit) so two rollbacks of it queue; while a rollout of the service in the environment
-- is under way it fails at once (55000, revision 0028); trg_deployments_rollback_target checks what the rollback
-- undoes and deploys (23514). Runs as the caller: a service may insert the same row itself (v0.2's write path),
-- so definer rights would guard nothing the trigger does not.
CREATE OR REPLACE FUNCTION platform.start_rollback(p_deployment_id uuid, p_version text DEFAULT NULL,
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
  -- Fail at once rather than wait, with the deployment locked, for the rollout's transaction on
  -- uq_deployments_active_service_id_environment_id: a rollback's success locks itself, then the deployment it
  -- undoes (trg_deployments_rolled_back_by_rollback), so that wait could deadlock.
  PERFORM FROM platform.deployments a
   WHERE a.service_id = d.service_id AND a.environment_id = d.environment_id AND a.status IN ('pending', 'in_progress');
  IF FOUND THEN
    RAISE EXCEPTION 'a rollout of the service in the environment is under way: finish or cancel it before a rollback'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO platform.deployments (service_id, version, environment_id, deployed_by, rollback_of_id)
  VALUES (d.service_id, v_version, d.environment_id, p_deployed_by, d.id)
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION platform.start_rollback(uuid, text, uuid) IS 'Starts a rollback of a succeeded or failed deployment: inserts the pending rollback deployment (p_version, else the newest other version that succeeded before it in that service and environment) and returns its id; when it succeeds the undone deployment becomes rolled_back. 55000 for a deployment not finished or while a rollout of the service in the environment is under way, P0002 for none to go back to; trg_deployments_rollback_target checks the rest (23514).';
"""

# Revision 0024's start_rollback, restored by the downgrade.
START_ROLLBACK_0024 = r"""
CREATE OR REPLACE FUNCTION platform.start_rollback(p_deployment_id uuid, p_version text DEFAULT NULL,
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
