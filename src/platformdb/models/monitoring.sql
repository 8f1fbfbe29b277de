-- Monitoring: timestamps, audit of metric definitions, and the sample partitions.

CREATE TRIGGER trg_metrics_updated_at BEFORE UPDATE ON platform.metrics
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_metrics_audit AFTER INSERT OR UPDATE OR DELETE ON platform.metrics
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_metric_series_immutable BEFORE UPDATE ON platform.metric_series
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a series is identified by its metric, service, environment and labels');

CREATE TRIGGER trg_metric_samples_quarantine_immutable BEFORE UPDATE ON platform.metric_samples_quarantine
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a quarantined sample is kept as it was sent');

-- A sample names an existing series, and a series with samples stays (revision 0060). This was a foreign key, whose
-- check runs once per row; these triggers check once per statement, so COPY into a day's partition keeps its
-- multi-row inserts. AFTER INSERT, per statement, with the statement's rows as a transition table: the distinct
-- series of the batch are locked FOR KEY SHARE (as the foreign key's check locks each row's series), so a
-- concurrent DELETE of one waits for the batch's commit, and a series deleted meanwhile is missing from what
-- the lock returns (READ COMMITTED) or fails it with 40001 (REPEATABLE READ and SERIALIZABLE). A statement trigger
-- fires only for the table the statement names: the parent has one (INSERT and COPY routed through it) and so has
-- every partition (platform.ensure_partition copies the parent's statement-level triggers to each new one).
-- SECURITY DEFINER: FOR KEY SHARE needs more than the writers' SELECT on metric_series.
CREATE FUNCTION platform.metric_samples_series_exist() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_ids bigint[];
  v_locked bigint;
  v_missing bigint;
BEGIN
  SELECT array_agg(DISTINCT n.series_id) INTO v_ids FROM new_samples n;
  IF v_ids IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT count(*) INTO v_locked
    FROM (SELECT FROM platform.metric_series s WHERE s.id = ANY (v_ids) FOR KEY SHARE OF s) l;
  IF v_locked < cardinality(v_ids) THEN
    SELECT min(i) INTO v_missing FROM unnest(v_ids) i
     WHERE NOT EXISTS (SELECT FROM platform.metric_series s WHERE s.id = i);
    RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, TG_NAME
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (series_id)=(%s) is not present in table "metric_series".', v_missing);
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION platform.metric_samples_series_exist() IS 'AFTER INSERT statement trigger of metric_samples and each of its partitions (trg_metric_samples_series_exists): locks the distinct series of the inserted rows FOR KEY SHARE and raises 23503 naming the trigger when one does not exist.';

-- The other half: a series is not deleted (nor its id changed) while samples name it. The check reads the
-- samples after this row is locked, and the lock waits for any batch holding the series FOR KEY SHARE: under READ
-- COMMITTED each query sees what committed before it, so a batch that committed meanwhile is seen and the
-- delete refused, and a batch still to lock the series waits for this delete and then fails. A REPEATABLE READ
-- or SERIALIZABLE snapshot cannot see a batch that committed after it began (the foreign key's check used a
-- newer crosscheck snapshot, which no trigger can): when any transaction this snapshot does not see has
-- committed by now, the delete fails with 40001 (retry, or delete under READ COMMITTED). Same SQLSTATE as the
-- RESTRICT foreign key it replaces: 23001 since PostgreSQL 18, 23503 before.
CREATE FUNCTION platform.metric_series_samples_restrict() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_snapshot pg_snapshot;
  v_own xid8;
  v_xid bigint;
  v_newer boolean;
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.id IS NOT DISTINCT FROM NEW.id THEN
    RETURN NEW;
  END IF;
  IF EXISTS (SELECT FROM platform.metric_samples m WHERE m.series_id = OLD.id) THEN
    RAISE EXCEPTION 'update or delete on table "%" violates RESTRICT setting of foreign key constraint "%"',
          TG_TABLE_NAME, TG_NAME
      USING ERRCODE = CASE WHEN current_setting('server_version_num')::integer >= 180000 THEN '23001' ELSE '23503' END,
            CONSTRAINT = TG_NAME, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
            DETAIL = format('Key (id)=(%s) is referenced from table "metric_samples".', OLD.id);
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    -- Walk the ids from the snapshot's xmin up to the newest one assigned (pg_xact_status refuses an id in the
    -- future: the walk ends there), looking for one the snapshot does not see that has committed.
    v_snapshot := pg_current_snapshot();
    v_own := pg_current_xact_id();
    v_xid := pg_snapshot_xmin(v_snapshot)::text::bigint;
    BEGIN
      LOOP
        v_newer := v_xid - pg_snapshot_xmin(v_snapshot)::text::bigint > 100000
          OR (v_xid <> v_own::text::bigint AND NOT pg_visible_in_snapshot(v_xid::text::xid8, v_snapshot)
              AND pg_xact_status(v_xid::text::xid8) = 'committed');
        EXIT WHEN v_newer;
        v_xid := v_xid + 1;
      END LOOP;
    EXCEPTION WHEN invalid_parameter_value THEN
      v_newer := false;
    END;
    IF v_newer THEN
      RAISE EXCEPTION 'could not serialize access due to a transaction committed since this snapshot'
        USING ERRCODE = 'serialization_failure', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'Samples it wrote for the series would be invisible to the check.',
              HINT = 'Retry the transaction, or delete series under READ COMMITTED.';
    END IF;
  END IF;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION platform.metric_series_samples_restrict() IS 'BEFORE DELETE OR UPDATE OF id row trigger of metric_series (trg_metric_series_samples_restrict): raises 23001 (23503 before PostgreSQL 18) naming the trigger when samples name the series; under REPEATABLE READ or SERIALIZABLE, 40001 when a transaction committed since the snapshot.';

CREATE TRIGGER trg_metric_samples_series_exists AFTER INSERT ON platform.metric_samples
  REFERENCING NEW TABLE AS new_samples FOR EACH STATEMENT EXECUTE FUNCTION platform.metric_samples_series_exist();
CREATE TRIGGER trg_metric_series_samples_restrict BEFORE DELETE OR UPDATE OF id ON platform.metric_series
  FOR EACH ROW EXECUTE FUNCTION platform.metric_series_samples_restrict();

CREATE TABLE platform.metric_samples_default PARTITION OF platform.metric_samples DEFAULT;
CREATE TRIGGER trg_metric_samples_series_exists AFTER INSERT ON platform.metric_samples_default
  REFERENCING NEW TABLE AS new_samples FOR EACH STATEMENT EXECUTE FUNCTION platform.metric_samples_series_exist();
SELECT platform.name_partition_indexes('platform.metric_samples');  -- pk_metric_samples_default, not metric_samples_default_pkey
-- Insert-only at high rate: vacuum by inserts, analyze often; every new partition copies these settings.
ALTER TABLE platform.metric_samples_default SET (autovacuum_vacuum_insert_threshold = 100000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_analyze_scale_factor = 0.05);
COMMENT ON TABLE platform.metric_samples_default IS 'Catch-all partition: holds samples whose day has no partition yet, so ingest never fails for want of one.';
SELECT platform.ensure_partitions('platform.metric_samples', 'day', now(), now() + interval '7 days');

-- Ids and creation times are the database's (revision 0020): an INSERT by anyone but the table's owner gets
-- now() for created_at/updated_at (trg_<table>_created_at, on the tables a service inserts into); an UPDATE
-- of the primary key is refused (trg_<table>_keys_immutable, on the tables whose rows may be updated;
-- trg_<table>_updated_at already refuses one of created_at).
CREATE TRIGGER trg_metrics_created_at BEFORE INSERT ON platform.metrics
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_metric_series_created_at BEFORE INSERT ON platform.metric_series
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_metrics_keys_immutable BEFORE UPDATE ON platform.metrics
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_metric_samples_keys_immutable BEFORE UPDATE ON platform.metric_samples
  FOR EACH ROW WHEN ((OLD.series_id, OLD.sampled_at) IS DISTINCT FROM (NEW.series_id, NEW.sampled_at))
  EXECUTE FUNCTION platform.forbid_column_change('series_id', 'sampled_at');

-- Retention per partitioned table, as data (revision 0025), seeded with the models' Partitioning.keep_days before
-- its audit trigger exists (the seed is the schema's, not a change). Only the owner writes it.
INSERT INTO platform.partition_retention (table_name, keep_days) VALUES ('audit_logs', 400), ('metric_samples', 35);
CREATE TRIGGER trg_partition_retention_updated_at BEFORE UPDATE ON platform.partition_retention
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_partition_retention_keys_immutable BEFORE UPDATE ON platform.partition_retention
  FOR EACH ROW WHEN (OLD.table_name IS DISTINCT FROM NEW.table_name)
  EXECUTE FUNCTION platform.forbid_column_change('table_name');
CREATE TRIGGER trg_partition_retention_audit AFTER INSERT OR UPDATE OR DELETE ON platform.partition_retention
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('table_name');
