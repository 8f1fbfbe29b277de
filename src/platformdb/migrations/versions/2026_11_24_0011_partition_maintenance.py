"""Partition maintenance: ensure drains the DEFAULT partition, prune drops whole partitions, autovacuum tuned

Why: A write whose timestamp has no partition lands in the DEFAULT partition instead of failing; until now
     ensure_partitions then failed for that range. It now moves such rows into the partition it creates (built
     beside the table, filled, attached), so cron running `platformdb partitions ensure` late loses nothing.
     Retention drops or detaches whole partitions (prune_partitions), never a bulk DELETE. Autovacuum is tuned
     for the append-only logs (vacuum by inserts, frequent analyze: set on each DEFAULT partition and copied
     to every new one), the status churn of deployments, and the one-row audit chain head.
Locks: ALTER TABLE ... SET (storage parameters) takes SHARE UPDATE EXCLUSIVE on each table and partition:
       reads and writes continue.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOG_OPTIONS = (
    "autovacuum_vacuum_insert_threshold = 100000, autovacuum_vacuum_insert_scale_factor = 0, "
    "autovacuum_analyze_scale_factor = 0.05"
)
LOG_OPTION_NAMES = (
    "autovacuum_vacuum_insert_threshold, autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor"
)


def upgrade() -> None:
    op.execute(ENSURE)
    op.execute(PRUNE)
    op.execute("REVOKE ALL ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) FROM PUBLIC")
    for parent in ("platform.audit_logs", "platform.metric_samples"):
        op.execute(EACH_PARTITION.format(parent=parent, statement=f"ALTER TABLE %s SET ({LOG_OPTIONS})"))
    op.execute("ALTER TABLE platform.deployments SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.05)")
    op.execute(
        "ALTER TABLE platform.audit_chain SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE platform.audit_chain RESET (autovacuum_vacuum_threshold, autovacuum_vacuum_scale_factor)")
    op.execute("ALTER TABLE platform.deployments RESET (fillfactor, autovacuum_vacuum_scale_factor)")
    for parent in ("platform.audit_logs", "platform.metric_samples"):
        op.execute(EACH_PARTITION.format(parent=parent, statement=f"ALTER TABLE %s RESET ({LOG_OPTION_NAMES})"))
    op.execute("DROP FUNCTION platform.prune_partitions(regclass, timestamptz, boolean)")
    op.execute(OLD_ENSURE)


EACH_PARTITION = """
DO $$
DECLARE
  p regclass;
BEGIN
  FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = '{parent}'::regclass LOOP
    EXECUTE format('{statement}', p);
  END LOOP;
END
$$;
"""

# Frozen copies of the database-side SQL as it was when this revision landed (see models/base.sql for today's).
ENSURE = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partitions(
  p_parent regclass, p_granularity text, p_from timestamptz, p_to timestamptz
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval;
  v_format text;
  v_start timestamp;
  v_end timestamp := p_to AT TIME ZONE 'UTC';
  v_schema text;
  v_table text;
  v_key text;
  v_default regclass;
  v_options text[];
  v_name text;
  v_lo timestamptz;
  v_hi timestamptz;
  v_created integer := 0;
  v_moved bigint;
  v_trigger text;
BEGIN
  IF p_granularity = 'month' THEN
    v_step := interval '1 month'; v_format := 'YYYY_MM';
  ELSIF p_granularity = 'day' THEN
    v_step := interval '1 day'; v_format := 'YYYY_MM_DD';
  ELSE
    RAISE EXCEPTION 'granularity must be month or day, not %', p_granularity
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  SELECT a.attname INTO v_key
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = p_parent;
  SELECT c.oid::regclass, c.reloptions INTO v_default, v_options
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  v_start := date_trunc(p_granularity, p_from AT TIME ZONE 'UTC');
  WHILE v_start <= v_end LOOP
    v_name := v_table || '_p' || to_char(v_start, v_format);
    v_lo := v_start AT TIME ZONE 'UTC';
    v_hi := (v_start + v_step) AT TIME ZONE 'UTC';
    IF to_regclass(format('%I.%I', v_schema, v_name)) IS NULL THEN
      v_moved := 0;
      IF v_default IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %s WHERE %I >= %L AND %I < %L', v_default, v_key, v_lo, v_key, v_hi)
          INTO v_moved;
      END IF;
      IF v_moved > 0 THEN
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       v_schema, v_name, p_parent);
        -- The append-only guard is off for this move only, inside this transaction.
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', v_default);
        EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *)'
                       ' INSERT INTO %I.%I SELECT * FROM moved', v_default, v_key, v_lo, v_key, v_hi, v_schema, v_name);
        EXECUTE format('ALTER TABLE %s ENABLE TRIGGER USER', v_default);
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       p_parent, v_schema, v_name, v_lo, v_hi);
        RAISE NOTICE 'moved % rows from % into %.%', v_moved, v_default, v_schema, v_name;
      ELSE
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       v_schema, v_name, p_parent, v_lo, v_hi);
      END IF;
      EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_schema, v_name,
                     format('Partition of %s for %s (UTC).', p_parent, to_char(v_start, v_format)));
      IF v_options IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I.%I SET (%s)', v_schema, v_name, array_to_string(v_options, ', '));
      END IF;
      -- Statement-level TRUNCATE triggers are not inherited by partitions: copy the parent's.
      FOR v_trigger IN
        SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
         WHERE t.tgrelid = p_parent AND NOT t.tgisinternal AND (t.tgtype & 32) <> 0
      LOOP
        EXECUTE replace(v_trigger, format(' ON %s ', p_parent), format(' ON %I.%I ', v_schema, v_name));
      END LOOP;
      v_created := v_created + 1;
    END IF;
    v_start := v_start + v_step;
  END LOOP;
  RETURN v_created;
END
$$;
COMMENT ON FUNCTION platform.ensure_partitions(regclass, text, timestamptz, timestamptz) IS 'Creates the missing monthly or daily range partitions of a partitioned table covering [p_from, p_to], moving in any rows the DEFAULT partition holds for them, with the DEFAULT partition''s storage settings and the parent''s TRUNCATE triggers; returns how many it created. Idempotent.';
"""

PRUNE = r"""
-- Retention: whole partitions whose range ends at or before p_older_than are dropped (or detached, to archive
-- them) -- never a bulk DELETE, which would lock and bloat the table.
CREATE FUNCTION platform.prune_partitions(
  p_parent regclass, p_older_than timestamptz, p_detach boolean DEFAULT false
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS part, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent ORDER BY c.relname
  LOOP
    CONTINUE WHEN r.bound = 'DEFAULT';
    IF substring(r.bound FROM 'TO \(''([^'']+)''\)')::timestamptz <= p_older_than THEN
      IF p_detach THEN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, r.part);
      ELSE
        EXECUTE format('DROP TABLE %s', r.part);
      END IF;
      RETURN NEXT r.part::text;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) IS 'Drops (or detaches) the range partitions of a partitioned table that end at or before p_older_than; returns their names. Idempotent.';
"""

OLD_ENSURE = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partitions(
  p_parent regclass, p_granularity text, p_from timestamptz, p_to timestamptz
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval;
  v_format text;
  v_start timestamp;
  v_end timestamp := p_to AT TIME ZONE 'UTC';
  v_schema text;
  v_table text;
  v_name text;
  v_created integer := 0;
  v_trigger text;
BEGIN
  IF p_granularity = 'month' THEN
    v_step := interval '1 month'; v_format := 'YYYY_MM';
  ELSIF p_granularity = 'day' THEN
    v_step := interval '1 day'; v_format := 'YYYY_MM_DD';
  ELSE
    RAISE EXCEPTION 'granularity must be month or day, not %', p_granularity
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  v_start := date_trunc(p_granularity, p_from AT TIME ZONE 'UTC');
  WHILE v_start <= v_end LOOP
    v_name := v_table || '_p' || to_char(v_start, v_format);
    IF to_regclass(format('%I.%I', v_schema, v_name)) IS NULL THEN
      EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                     v_schema, v_name, p_parent,
                     v_start::text || '+00', (v_start + v_step)::text || '+00');
      EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_schema, v_name,
                     format('Partition of %s for %s (UTC).', p_parent, to_char(v_start, v_format)));
      -- Statement-level TRUNCATE triggers are not inherited by partitions: copy the parent's.
      FOR v_trigger IN
        SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
         WHERE t.tgrelid = p_parent AND NOT t.tgisinternal AND (t.tgtype & 32) <> 0
      LOOP
        EXECUTE replace(v_trigger, format(' ON %s ', p_parent), format(' ON %I.%I ', v_schema, v_name));
      END LOOP;
      v_created := v_created + 1;
    END IF;
    v_start := v_start + v_step;
  END LOOP;
  RETURN v_created;
END
$$;
COMMENT ON FUNCTION platform.ensure_partitions(regclass, text, timestamptz, timestamptz) IS 'Creates the missing monthly or daily range partitions of a partitioned table covering [p_from, p_to], with the parent''s TRUNCATE triggers; returns how many it created. Idempotent.';
"""
