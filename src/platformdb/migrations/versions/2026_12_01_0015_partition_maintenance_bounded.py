"""Partition maintenance that no reader stalls and no sample breaks: finite times, a bounded window, quarantine

Why: A security review showed two ways a service could stop maintenance or, through it, every writer. A
     read-only login idle in a transaction after reading audit_logs made `partitions ensure` queue for ACCESS
     EXCLUSIVE on the parent (CREATE TABLE ... PARTITION OF), and every audited write queued behind it. One sample
     dated 2000-01-01 made every later ensure try to create ~9,800 partitions in one transaction ("out of shared
     memory"); one dated -infinity failed it with a DataError. Now: a partition is built apart and then attached
     (platform.ensure_partition: SHARE UPDATE EXCLUSIVE on the parent, so readers and writers go on; ACCESS
     EXCLUSIVE only on the DEFAULT partition, which the command's lock_timeout and retries bound);
     ensure_partitions refuses ranges that are not finite or longer than 1000 days; metric_samples rejects
     non-finite times (ck_metric_samples_sampled_at_finite); and rows the DEFAULT partition holds outside the
     window maintenance keeps move to metric_samples_quarantine (platform.quarantine_default_rows), where no
     partition scan reads them again and the report names them.
Locks: ADD CONSTRAINT ... NOT VALID is catalog-only (a brief ACCESS EXCLUSIVE on metric_samples and its
       partitions): new samples are checked from this commit on, existing ones by revision 0016. The new table
       and functions take no lock on existing data. Runs before the code that uses it (the new ensure is only
       called by `platformdb partitions`, shipped with it; the old command keeps working against the new
       functions).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "platform.ensure_partition(regclass, text, timestamptz)",
    "platform.quarantine_default_rows(regclass, timestamptz, timestamptz)",
)


def upgrade() -> None:
    op.execute(
        "ALTER TABLE platform.metric_samples ADD CONSTRAINT ck_metric_samples_sampled_at_finite"
        " CHECK (isfinite(sampled_at)) NOT VALID"
    )
    op.create_table(
        "metric_samples_quarantine",
        sa.Column("series_id", sa.BigInteger(), nullable=False, comment="The series observed."),
        sa.Column(
            "sampled_at",
            postgresql.TIMESTAMP(timezone=True),
            nullable=False,
            comment="When the value was observed, as sent.",
        ),
        sa.Column("value", sa.Double(), nullable=False, comment="The observed value."),
        sa.Column(
            "created_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When the row was inserted.",
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["platform.metric_series.id"],
            name=op.f("fk_metric_samples_quarantine_series_id_metric_series"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("series_id", "sampled_at", name=op.f("pk_metric_samples_quarantine")),
        schema="platform",
        comment="A sample that partition maintenance set aside: its time lay outside the window partitions are "
        "kept for.",
    )
    op.execute(
        "CREATE TRIGGER trg_metric_samples_quarantine_immutable BEFORE UPDATE ON platform.metric_samples_quarantine"
        " FOR EACH ROW EXECUTE FUNCTION platform.forbid_change('a quarantined sample is kept as it was sent')"
    )
    op.execute("GRANT SELECT ON platform.metric_samples_quarantine TO platform_metrics_writer, platform_readonly")
    op.execute(ENSURE_ONE)
    op.execute(ENSURE_RANGE)
    op.execute(QUARANTINE)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")


def downgrade() -> None:
    op.execute(OLD_ENSURE_RANGE)
    for function in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_table("metric_samples_quarantine", schema="platform")
    op.execute("ALTER TABLE platform.metric_samples DROP CONSTRAINT ck_metric_samples_sampled_at_finite")


# Frozen copies of the database-side SQL as it was when this revision landed (see models/base.sql for today's).
ENSURE_ONE = r"""
CREATE FUNCTION platform.ensure_partition(p_parent regclass, p_granularity text, p_at timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval;
  v_format text;
  v_start timestamp;
  v_schema text;
  v_table text;
  v_key text;
  v_default regclass;
  v_options text[];
  v_name text;
  v_lo timestamptz;
  v_hi timestamptz;
  v_moved bigint := 0;
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
  IF NOT isfinite(p_at) THEN
    RAISE EXCEPTION 'a partition needs a finite time, not %', p_at USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  v_start := date_trunc(p_granularity, p_at AT TIME ZONE 'UTC');
  v_name := v_table || '_p' || to_char(v_start, v_format);
  IF to_regclass(format('%I.%I', v_schema, v_name)) IS NOT NULL THEN
    RETURN false;
  END IF;
  v_lo := v_start AT TIME ZONE 'UTC';
  v_hi := (v_start + v_step) AT TIME ZONE 'UTC';
  SELECT a.attname INTO v_key
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = p_parent;
  SELECT c.oid::regclass, c.reloptions INTO v_default, v_options
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', v_schema, v_name, p_parent);
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
  IF v_default IS NOT NULL THEN
    EXECUTE format('SELECT count(*) FROM %s WHERE %I >= %L AND %I < %L', v_default, v_key, v_lo, v_key, v_hi)
      INTO v_moved;
  END IF;
  IF v_moved > 0 THEN
    -- The append-only guard is off for this move only, inside this transaction.
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', v_default);
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *)'
                   ' INSERT INTO %I.%I SELECT * FROM moved', v_default, v_key, v_lo, v_key, v_hi, v_schema, v_name);
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER USER', v_default);
    RAISE NOTICE 'moved % rows from % into %.%', v_moved, v_default, v_schema, v_name;
  END IF;
  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                 p_parent, v_schema, v_name, v_lo, v_hi);
  RETURN true;
END
$$;
COMMENT ON FUNCTION platform.ensure_partition(regclass, text, timestamptz) IS 'Creates the monthly or daily range partition of a partitioned table holding p_at (built apart, then attached: SHARE UPDATE EXCLUSIVE on the parent), moving in any rows the DEFAULT partition holds for it; returns whether it created one. Idempotent.';
"""

ENSURE_RANGE = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partitions(
  p_parent regclass, p_granularity text, p_from timestamptz, p_to timestamptz
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_step interval := CASE p_granularity WHEN 'month' THEN interval '1 month' ELSE interval '1 day' END;
  v_at timestamptz := p_from;
  v_created integer := 0;
BEGIN
  IF NOT (isfinite(p_from) AND isfinite(p_to)) OR p_to - p_from > interval '1000 days' THEN
    RAISE EXCEPTION 'partitions are made for a finite range of at most 1000 days, not [%, %]', p_from, p_to
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  WHILE date_trunc(p_granularity, v_at AT TIME ZONE 'UTC') <= p_to AT TIME ZONE 'UTC' LOOP
    IF platform.ensure_partition(p_parent, p_granularity, v_at) THEN
      v_created := v_created + 1;
    END IF;
    v_at := v_at + v_step;
  END LOOP;
  RETURN v_created;
END
$$;
COMMENT ON FUNCTION platform.ensure_partitions(regclass, text, timestamptz, timestamptz) IS 'Creates the missing monthly or daily range partitions of a partitioned table covering [p_from, p_to] (at most 1000 days), one platform.ensure_partition each; returns how many it created. Idempotent.';
"""

QUARANTINE = r"""
CREATE FUNCTION platform.quarantine_default_rows(p_parent regclass, p_keep_from timestamptz, p_keep_until timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_schema text;
  v_table text;
  v_key text;
  v_default regclass;
  v_moved bigint;
BEGIN
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  IF to_regclass(format('%I.%I', v_schema, v_table || '_quarantine')) IS NULL THEN
    RETURN 0;
  END IF;
  SELECT a.attname INTO v_key
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = p_parent;
  SELECT c.oid::regclass INTO v_default FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I < %L OR %I >= %L RETURNING *)'
                 ' INSERT INTO %I.%I SELECT * FROM moved', v_default, v_key, p_keep_from, v_key, p_keep_until,
                 v_schema, v_table || '_quarantine');
  GET DIAGNOSTICS v_moved = ROW_COUNT;
  RETURN v_moved;
END
$$;
COMMENT ON FUNCTION platform.quarantine_default_rows(regclass, timestamptz, timestamptz) IS 'Moves the rows of a partitioned table''s DEFAULT partition whose key lies outside [p_keep_from, p_keep_until) into <table>_quarantine, when the table has one; returns how many moved.';
"""

# ensure_partitions as revision 0011 left it, restored by the downgrade.
OLD_ENSURE_RANGE = r"""
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
