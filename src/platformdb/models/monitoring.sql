-- Monitoring: timestamps, audit of metric definitions, and the sample partitions.

CREATE TRIGGER trg_metrics_updated_at BEFORE UPDATE ON platform.metrics
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_metrics_audit AFTER INSERT OR UPDATE OR DELETE ON platform.metrics
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('id');

CREATE TRIGGER trg_metric_series_immutable BEFORE UPDATE ON platform.metric_series
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a series is identified by its metric, service, environment and labels');

CREATE TRIGGER trg_metric_samples_quarantine_immutable BEFORE UPDATE ON platform.metric_samples_quarantine
  FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a quarantined sample is kept as it was sent');

CREATE TABLE platform.metric_samples_default PARTITION OF platform.metric_samples DEFAULT;
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
