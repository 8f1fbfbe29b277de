"""Deployment stamps the database sets once; bounded configuration; secret references without credentials

Why: A security review found four ways a service could write what the schema promised it could not.
     (8) started_at/deployed_at took any value a writer gave, on any move or later (deployed_at = 'infinity' on
     a finished deployment), so the deployment and its status history could tell different times. Now
     trg_deployments_timestamps sets each stamp on its move only, by clock_timestamp(), and freezes it; the
     history row of a stamping move is recorded at that stamp. Backward compatibility, decided: a v0.1 writer
     that sets status without a stamp gets it stamped, as before; one that passes its own stamp keeps it if it
     lies within 30 s before to 5 s after the database clock (its clock, or its transaction's now()); further off
     (a backfill, a clock far out) or not finite, the move is refused (23514), not silently restamped, so a
     writer learns its stamp was not taken. A stamp given off its move, or a change to one already set, is
     refused (23000). Backfills of history (`platformdb demo`, `seed`) disable the trigger in their own
     transaction, as the table's owner.
     (9) A configuration value had no size limit (5 MB accepted): ck_configuration_versions_value_size bounds
     its JSON text at 64 KiB. A service could create any number of keys: trg_configurations_keys_per_service
     refuses the 1001st, counting under the service's row lock (FOR NO KEY UPDATE) so concurrent writers queue:
     exact under READ COMMITTED and SERIALIZABLE; a REPEATABLE READ writer counts from its snapshot.
     metric_series.labels keeps its 1 KiB bound (ck_metric_series_labels_object); audit_logs.before/after copy
     rows whose columns are bounded and are written only by the audit trigger.
     (12) secret_ref accepted any URI, credentials included (postgresql://admin:pw@host, ?token=...):
     ck_configuration_versions_secret_ref_format now allows the schemes vault, aws-sm, gcp-sm, azure-kv and k8s
     only, and no userinfo (@) or query string (?).
     (15) Under REPEATABLE READ the loser of a race for a key's next version numbered from its old snapshot and
     failed with 23505 on the primary key. The numbering trigger now takes the key's row lock with an UPDATE that
     changes nothing (a new row version; trg_configurations_immutable lets such an update pass when a trigger
     makes it), so that loser gets PostgreSQL's 40001 (retry); it reads the last version by key, newest first,
     from the primary key's index.
Locks: Catalog-only, in one transaction: CREATE TRIGGER takes SHARE ROW EXCLUSIVE on deployments and
       configurations, DROP TRIGGER and ADD CONSTRAINT ... NOT VALID a brief ACCESS EXCLUSIVE on configurations and
       configuration_versions: their writes wait for this revision's commit (milliseconds; lock_timeout bounds the
       wait). The new CHECKs hold for rows written from this commit on; revision 0019 validates older ones.
       CREATE OR REPLACE FUNCTION swaps the trigger functions atomically at commit. Runs before the code that uses
       it: services need no change (a stamp-less move, and a stamp close to the clock, are accepted as before);
       a writer that passed far-off stamps, a secret_ref outside the allow-list, a value over 64 KiB or a 1001st
       key is refused from this commit on.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCE_FORMAT = (
    "secret_ref ~ '^(vault|aws-sm|gcp-sm|azure-kv|k8s)://[^#?@]+(#[^#?@]+)?$' AND secret_ref ~ '^[!-~]+$'"
    " AND char_length(secret_ref) <= 1024"
)
OLD_REFERENCE_FORMAT = "secret_ref ~ '^[a-z][a-z0-9+.-]*://[!-~]+$' AND char_length(secret_ref) <= 1024"
FUNCTIONS = ("platform.deployment_timestamps_guard()", "platform.limit_configuration_keys()")

# (table, column, comment now, comment before)
COMMENTS = (
    (
        "deployments",
        "started_at",
        "When the rollout began: set by trigger trg_deployments_timestamps on entering in_progress (the database"
        " clock; a given stamp within 30 s before to 5 s after it is kept), then frozen.",
        "When the rollout began (set on entering in_progress if not given).",
    ),
    (
        "deployments",
        "deployed_at",
        "When the rollout finished, whatever its outcome: set by trigger trg_deployments_timestamps on leaving an"
        " active status (the database clock; a given stamp within 30 s before to 5 s after it is kept), then frozen.",
        "When the rollout finished, whatever its outcome (set on leaving an active status if not given).",
    ),
    (
        "configurations",
        "key",
        "Setting name, e.g. HTTP_TIMEOUT or db.pool.size; at most 1000 keys per service"
        " (trigger trg_configurations_keys_per_service).",
        "Setting name, e.g. HTTP_TIMEOUT or db.pool.size.",
    ),
    (
        "configuration_versions",
        "value",
        "The setting as JSON (string, number, object...), at most 64 KiB as text; only for kind plain.",
        "The setting as JSON (string, number, object...); only for kind plain.",
    ),
    (
        "configuration_versions",
        "secret_ref",
        "URI of the secret in a secret manager (vault, aws-sm, gcp-sm, azure-kv or k8s), e.g."
        " vault://kv/payments/db#password, with no credential in it (no user:password@, no ?query);"
        " only for kind secret.",
        "URI of the secret in a secret manager, e.g. vault://kv/payments/db#password; only for kind secret.",
    ),
)


def comment(table: str, column: str, text: str) -> None:
    quoted = text.replace("'", "''")
    op.execute(f"COMMENT ON COLUMN platform.{table}.{column} IS '{quoted}'")


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file ban-drop-constraint -- ck_configuration_versions_secret_ref_format is dropped and added"
        " back in the same statement with a stricter rule (NOT VALID until revision 0019): no client loses a guarantee"
    )
    # 8. deployment stamps
    op.execute(STATUS_GUARD)
    op.execute(TIMESTAMPS_GUARD)
    op.execute(RECORD_STATUS)
    # 9. sizes
    op.execute(
        "ALTER TABLE platform.configuration_versions ADD CONSTRAINT ck_configuration_versions_value_size"
        " CHECK (octet_length(value::text) <= 65536) NOT VALID"
    )
    op.execute(KEYS_LIMIT)
    # 12. secret references
    op.execute(
        "ALTER TABLE platform.configuration_versions DROP CONSTRAINT ck_configuration_versions_secret_ref_format,"
        f" ADD CONSTRAINT ck_configuration_versions_secret_ref_format CHECK ({REFERENCE_FORMAT}) NOT VALID"
    )
    # 15. numbering
    op.execute("DROP TRIGGER trg_configurations_immutable ON platform.configurations")
    op.execute(IMMUTABLE_KEYS)
    op.execute(NUMBERING)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    for table, column, text, _ in COMMENTS:
        comment(table, column, text)


def downgrade() -> None:
    for table, column, _, text in COMMENTS:
        comment(table, column, text)
    op.execute(OLD_NUMBERING)
    op.execute("DROP TRIGGER trg_configurations_immutable ON platform.configurations")
    op.execute(OLD_IMMUTABLE_KEYS)
    op.execute(
        "ALTER TABLE platform.configuration_versions DROP CONSTRAINT ck_configuration_versions_secret_ref_format,"
        f" ADD CONSTRAINT ck_configuration_versions_secret_ref_format CHECK ({OLD_REFERENCE_FORMAT})"
    )
    op.execute("DROP TRIGGER trg_configurations_keys_per_service ON platform.configurations")
    op.execute("DROP FUNCTION platform.limit_configuration_keys()")
    op.execute("ALTER TABLE platform.configuration_versions DROP CONSTRAINT ck_configuration_versions_value_size")
    op.execute(OLD_RECORD_STATUS)
    op.execute("DROP TRIGGER trg_deployments_timestamps ON platform.deployments")
    op.execute("DROP FUNCTION platform.deployment_timestamps_guard()")
    op.execute(OLD_STATUS_GUARD)


# Frozen copies of the database-side SQL as it was when this revision landed (see models/delivery.sql and
# models/configuration.sql for today's), then as revision 0007 and 0006 left it, restored by the downgrade.
STATUS_GUARD = r"""
CREATE OR REPLACE FUNCTION platform.deployment_status_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'pending' THEN
      RAISE EXCEPTION 'a deployment starts as pending, not %', NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    PERFORM FROM platform.deployment_status_transitions t
      WHERE t.from_status = OLD.status AND t.to_status = NEW.status;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'illegal deployment status transition % -> %', OLD.status, NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_status_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: enforces the status state machine (SQLSTATE 23514, constraint trg_deployments_status_transition).';
"""

TIMESTAMPS_GUARD = r"""
CREATE FUNCTION platform.deployment_timestamps_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := clock_timestamp();
  v_old_status text;
  v_old_started timestamptz;
  v_old_deployed timestamptz;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    v_old_status := OLD.status;
    v_old_started := OLD.started_at;
    v_old_deployed := OLD.deployed_at;
  END IF;
  IF NEW.status = 'in_progress' AND v_old_status = 'pending' THEN
    IF NEW.started_at IS NULL OR NEW.started_at IS NOT DISTINCT FROM v_old_started THEN
      NEW.started_at := v_now;
    ELSIF NOT (NEW.started_at BETWEEN v_now - interval '30 seconds' AND v_now + interval '5 seconds') THEN
      RAISE EXCEPTION 'started_at is the database clock''s on entering in_progress: a given one must lie within 30 s before to 5 s after it'
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              COLUMN = 'started_at';
    END IF;
  ELSIF NEW.started_at IS DISTINCT FROM v_old_started THEN
    RAISE EXCEPTION 'started_at is set on entering in_progress only and never changes afterwards'
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'started_at';
  END IF;
  IF NEW.status NOT IN ('pending', 'in_progress') AND v_old_status IN ('pending', 'in_progress') THEN
    IF NEW.deployed_at IS NULL OR NEW.deployed_at IS NOT DISTINCT FROM v_old_deployed THEN
      NEW.deployed_at := v_now;
    ELSIF NOT (NEW.deployed_at BETWEEN v_now - interval '30 seconds' AND v_now + interval '5 seconds') THEN
      RAISE EXCEPTION 'deployed_at is the database clock''s on leaving an active status: a given one must lie within 30 s before to 5 s after it'
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              COLUMN = 'deployed_at';
    END IF;
  ELSIF NEW.deployed_at IS DISTINCT FROM v_old_deployed THEN
    RAISE EXCEPTION 'deployed_at is set on leaving an active status only and never changes afterwards'
      USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA,
            TABLE = TG_TABLE_NAME, COLUMN = 'deployed_at';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_timestamps_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: stamps started_at on entering in_progress and deployed_at on leaving the active statuses with clock_timestamp(); refuses a given stamp further than 30 s before or 5 s after it (23514), and a stamp given off its move or changed afterwards (23000); constraint trg_deployments_timestamps.';
CREATE TRIGGER trg_deployments_timestamps BEFORE INSERT OR UPDATE ON platform.deployments
  FOR EACH ROW EXECUTE FUNCTION platform.deployment_timestamps_guard();
"""

RECORD_STATUS = r"""
CREATE OR REPLACE FUNCTION platform.record_deployment_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status, created_at)
  VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status,
          coalesce(CASE WHEN NEW.status = 'in_progress' THEN NEW.started_at
                        WHEN TG_OP = 'UPDATE' AND OLD.status IN ('pending', 'in_progress') THEN NEW.deployed_at
                   END, now()));
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.record_deployment_status() IS 'AFTER trigger of deployments: appends each status entered to deployment_status_history, at the deployment''s stamp for the moves that stamp it (started_at, deployed_at).';
"""

KEYS_LIMIT = r"""
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
"""

IMMUTABLE_KEYS = r"""
CREATE TRIGGER trg_configurations_immutable BEFORE UPDATE ON platform.configurations
  FOR EACH ROW WHEN (pg_trigger_depth() = 0 OR OLD.* IS DISTINCT FROM NEW.*)
  EXECUTE FUNCTION platform.forbid_change('a configuration key is immutable; add a version instead');
"""

NUMBERING = r"""
CREATE OR REPLACE FUNCTION platform.number_configuration_version() RETURNS trigger
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
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
  END IF;
  NEW.version := v_next;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.number_configuration_version() IS 'BEFORE INSERT trigger of configuration_versions: assigns the next gap-free version under the key''s row lock; refuses a stale expected version (SQLSTATE 23514); a REPEATABLE READ writer behind a concurrent version gets 40001.';
"""

# As revision 0006 left them.
OLD_STATUS_GUARD = r"""
CREATE OR REPLACE FUNCTION platform.deployment_status_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status <> 'pending' THEN
      RAISE EXCEPTION 'a deployment starts as pending, not %', NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    PERFORM FROM platform.deployment_status_transitions t
      WHERE t.from_status = OLD.status AND t.to_status = NEW.status;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'illegal deployment status transition % -> %', OLD.status, NEW.status
        USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
  END IF;
  IF NEW.status = 'in_progress' AND NEW.started_at IS NULL THEN
    NEW.started_at := clock_timestamp();
  END IF;
  IF NEW.status NOT IN ('pending', 'in_progress') AND NEW.deployed_at IS NULL THEN
    NEW.deployed_at := clock_timestamp();
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.deployment_status_guard() IS 'BEFORE INSERT/UPDATE trigger of deployments: enforces the status state machine (SQLSTATE 23514, constraint trg_deployments_status_transition) and stamps started_at/deployed_at.';
"""

OLD_RECORD_STATUS = r"""
CREATE OR REPLACE FUNCTION platform.record_deployment_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO platform.deployment_status_history (deployment_id, from_status, to_status)
  VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.record_deployment_status() IS 'AFTER trigger of deployments: appends each status entered to deployment_status_history.';
"""

OLD_IMMUTABLE_KEYS = r"""
CREATE TRIGGER trg_configurations_immutable BEFORE UPDATE ON platform.configurations
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a configuration key is immutable; add a version instead');
"""

OLD_NUMBERING = r"""
CREATE OR REPLACE FUNCTION platform.number_configuration_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_next integer;
BEGIN
  PERFORM FROM platform.configurations c WHERE c.id = NEW.configuration_id FOR NO KEY UPDATE;
  SELECT coalesce(max(v.version), 0) + 1 INTO v_next
    FROM platform.configuration_versions v WHERE v.configuration_id = NEW.configuration_id;
  IF NEW.version IS NOT NULL AND NEW.version <> v_next THEN
    RAISE EXCEPTION 'configuration % is at version %, cannot write version %',
          NEW.configuration_id, v_next - 1, NEW.version
      USING ERRCODE = 'check_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
  END IF;
  NEW.version := v_next;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.number_configuration_version() IS 'BEFORE INSERT trigger of configuration_versions: assigns the next gap-free version under the key''s row lock; refuses a stale expected version (SQLSTATE 23514).';
"""
