"""Rejected writes show no value whichever rule refuses them; retention per table, an archive, named partition indexes

Why: On users and configuration_versions (secrets, secret references, password hashes, emails, names) a NOT NULL
     violation still printed the row ("Failing row contains ..."), a unique violation the key ("Key
     (lower(email))=(...)") and a foreign key violation its key, to the client and the server log. The
     trg_<table>_validated trigger (platform.check_quietly(), revision 0022) now also checks NOT NULL, unique
     (but the primary key, whose ids the database makes) and foreign key constraints, in PostgreSQL's order, and
     raises the same SQLSTATE and name with a DETAIL that shows nothing; a unique key is checked under an advisory
     lock on (index, key), so concurrent writers of one key get the quiet error too (READ COMMITTED) or 40001
     (REPEATABLE READ, SERIALIZABLE). It becomes SECURITY DEFINER (a foreign key may point at a table the writer
     cannot read). trg_configuration_versions_number's refusal of a stale expected version gets a JSON DETAIL
     {configuration_id, current_version, expected_version} and a HINT, the same under every isolation level.
     Partition maintenance (issue #11 point 6): retention is data, one row per partitioned table in the new
     platform.partition_retention (seeded with the models' keep_days: audit_logs 400, metric_samples 35), so
     `partitions prune` never applies the metrics' retention to the audit log (which it prunes only when named);
     detached partitions move to the new schema platform_archive (owner only; lint and services never see them),
     and a stale detached table left in schema platform is archived by ensure_partition, which then makes the
     period again; a new partition's indexes are named <parent index>_p<period> (pk_metric_samples_p2026_12_01),
     and the existing partitions' indexes are renamed so (<parent index>_default for DEFAULT partitions), so a
     duplicate names its rule as a stable prefix.
     Service logins (issue #11 point 6): the group roles are cluster-wide, so a login made for one platformdb
     database could connect to another and write there with the same group; PUBLIC loses CONNECT on the
     database, on a database in use the logins that are group members keep it (granted by name), and grant-login
     grants it per database.
Locks: CREATE OR REPLACE FUNCTION locks only the functions' catalog rows. CREATE SCHEMA and CREATE TABLE lock
       nothing in use. ALTER TABLE ... SET SCHEMA takes ACCESS EXCLUSIVE on each stale detached partition (tables no
       service reads through the parent). ALTER INDEX ... RENAME takes ACCESS EXCLUSIVE on each partition index for
       a moment (one statement each, inside this revision's transaction: writers to that partition wait until the
       commit, about the time of one catalog update per index; run it off-peak on a database with many partitions).
       REVOKE/GRANT CONNECT on the database take no lock on a table; sessions already connected stay.
       Runs before the code that uses it (pre-deploy): `platformdb partitions` of this release needs
       partition_retention; clients matching SQLSTATE and constraint name see no change, but a client that matched
       <partition>_pkey must now match the prefix pk_<table>.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PARTITIONED = ("audit_logs", "metric_samples")


def upgrade() -> None:
    op.execute(CHECK_QUIETLY)
    op.execute(NUMBER_CONFIGURATION_VERSION)
    op.execute(ARCHIVE_SCHEMA)
    op.execute(PARTITION_RETENTION)
    op.execute(ARCHIVE_TABLE)
    op.execute(NAME_PARTITION_INDEXES)
    op.execute(
        "REVOKE ALL ON FUNCTION platform.archive_table(regclass), platform.name_partition_indexes(regclass) FROM PUBLIC"
    )
    op.execute(ENSURE_PARTITION)
    op.execute(PRUNE_PARTITIONS)
    for table in PARTITIONED:
        op.execute(ARCHIVE_DETACHED.replace(":table", table))
        op.execute(f"SELECT platform.name_partition_indexes('platform.{table}')")
    op.execute(CONNECT_PER_LOGIN)


def downgrade() -> None:
    op.execute(CONNECT_FOR_PUBLIC)
    for table in PARTITIONED:
        op.execute(RENAME_PARTITION_INDEXES_BACK.replace(":table", table))
    op.execute(PRUNE_PARTITIONS_0022)
    op.execute(ENSURE_PARTITION_0022)
    op.execute("DROP FUNCTION platform.archive_table(regclass), platform.name_partition_indexes(regclass)")
    op.execute("DROP TABLE platform.partition_retention")
    op.execute("DROP SCHEMA platform_archive")  # refused while it holds archived partitions: move or drop them first
    op.execute(CHECK_QUIETLY_0022)
    op.execute(NUMBER_CONFIGURATION_VERSION_0022)


CONNECT_PER_LOGIN = r"""
-- As models/privileges.sql does, and on a database in use (it has audit rows) the logins that are members of a
-- platformdb group keep connecting: CONNECT is granted to them by name, since which database each was made for is
-- not recorded (`platformdb roles revoke` takes it from those that belong elsewhere). A fresh database grants
-- nobody: its logins come from grant-login.
DO $$
DECLARE
  v_login text;
  v_sql text := '';
BEGIN
  IF EXISTS (SELECT FROM platform.audit_logs) THEN
    FOR v_login IN
      SELECT DISTINCT r.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
        JOIN pg_roles r ON r.oid = m.member
       WHERE r.rolcanlogin AND g.rolname IN ('platform_identity', 'platform_catalog', 'platform_delivery',
             'platform_configuration', 'platform_audit_reader', 'platform_metrics_writer', 'platform_readonly')
       ORDER BY 1
    LOOP
      v_sql := v_sql || format('GRANT CONNECT ON DATABASE %I TO %I; ', current_database(), v_login);
    END LOOP;
  END IF;
  v_sql := v_sql || format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC;', current_database());
  IF pg_has_role(current_user, (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')
  THEN
    EXECUTE v_sql;
  ELSE
    RAISE NOTICE 'platformdb: % does not own database %, so PUBLIC keeps CONNECT on it', current_user,
      current_database() USING HINT = format('a DBA runs: %s', v_sql);
  END IF;
END
$$;
"""

CONNECT_FOR_PUBLIC = r"""
DO $$
BEGIN
  IF pg_has_role(current_user, (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')
  THEN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO PUBLIC', current_database());
  END IF;
END
$$;
"""

ARCHIVE_SCHEMA = """
CREATE SCHEMA platform_archive;
COMMENT ON SCHEMA platform_archive IS 'platformdb: partitions detached by retention, kept as plain tables to archive; no service has access.';
REVOKE ALL ON SCHEMA platform_archive FROM PUBLIC;
"""

PARTITION_RETENTION = r"""
CREATE TABLE platform.partition_retention (
  table_name text NOT NULL,
  keep_days bigint NOT NULL,
  created_at timestamp with time zone DEFAULT now() NOT NULL,
  updated_at timestamp with time zone DEFAULT now() NOT NULL,
  CONSTRAINT pk_partition_retention PRIMARY KEY (table_name),
  CONSTRAINT ck_partition_retention_table_name_format
    CHECK (table_name ~ '^[a-z][a-z0-9_]*$' AND char_length(table_name) <= 63),
  CONSTRAINT ck_partition_retention_keep_days_range CHECK (keep_days BETWEEN 1 AND 36500)
);
COMMENT ON TABLE platform.partition_retention IS 'How many days of a time-partitioned table partition maintenance keeps (platformdb partitions prune).';
COMMENT ON COLUMN platform.partition_retention.table_name IS 'The partitioned table of schema platform.';
COMMENT ON COLUMN platform.partition_retention.keep_days IS 'Partitions that end more than this many days ago are pruned; 1 to 36500.';
COMMENT ON COLUMN platform.partition_retention.created_at IS 'When the row was inserted.';
COMMENT ON COLUMN platform.partition_retention.updated_at IS 'When the row was last changed; maintained by trigger trg_<table>_updated_at.';
INSERT INTO platform.partition_retention (table_name, keep_days) VALUES ('audit_logs', 400), ('metric_samples', 35);
CREATE TRIGGER trg_partition_retention_updated_at BEFORE UPDATE ON platform.partition_retention
  FOR EACH ROW EXECUTE FUNCTION platform.set_updated_at();
CREATE TRIGGER trg_partition_retention_keys_immutable BEFORE UPDATE ON platform.partition_retention
  FOR EACH ROW WHEN (OLD.table_name IS DISTINCT FROM NEW.table_name)
  EXECUTE FUNCTION platform.forbid_column_change('table_name');
CREATE TRIGGER trg_partition_retention_audit AFTER INSERT OR UPDATE OR DELETE ON platform.partition_retention
  FOR EACH ROW EXECUTE FUNCTION platform.audit_capture('table_name');
REVOKE ALL ON platform.partition_retention FROM PUBLIC;
GRANT SELECT ON platform.partition_retention TO platform_readonly;
"""

# Tables left in schema platform by a DETACH before this revision: named like a dated partition, no parent.
ARCHIVE_DETACHED = r"""
SELECT platform.archive_table(c.oid::regclass)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'platform' AND c.relkind = 'r' AND c.relname ~ '^:table_p[0-9]{4}_[0-9]{2}(_[0-9]{2})?$'
   AND NOT c.relispartition
"""

# Back to PostgreSQL's names: <partition>_pkey for a primary key, <partition>_<columns>_idx otherwise.
RENAME_PARTITION_INDEXES_BACK = r"""
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT ci.oid::regclass AS idx, pc.relname AS part, x.indisprimary AS pk,
           (SELECT string_agg(a.attname, '_' ORDER BY k.n) FROM unnest(x.indkey) WITH ORDINALITY k(att, n)
              JOIN pg_attribute a ON a.attrelid = pc.oid AND a.attnum = k.att) AS cols
      FROM pg_inherits ih JOIN pg_class pc ON pc.oid = ih.inhrelid
      JOIN pg_index x ON x.indrelid = pc.oid JOIN pg_class ci ON ci.oid = x.indexrelid
     WHERE ih.inhparent = 'platform.:table'::regclass
  LOOP
    EXECUTE format('ALTER INDEX %s RENAME TO %I', r.idx,
                   left(r.part || CASE WHEN r.pk THEN '_pkey' ELSE '_' || r.cols || '_idx' END, 63));
  END LOOP;
END
$$;
"""


# Frozen copies of the database-side SQL as it was when this revision landed (see models/*.sql for today's).
CHECK_QUIETLY = r"""
CREATE OR REPLACE FUNCTION platform.check_quietly() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c record;
  v_ok boolean;
  v_sql text;
  v_failed text;
  v_key text;
  v_old_key text;
BEGIN
  -- NOT NULL (by column order), then CHECK (by name), in one statement: the first rule the row breaks.
  SELECT 'SELECT CASE ' || string_agg(w, ' ' ORDER BY o) || ' END FROM (SELECT ($1).*) AS t' INTO v_sql
    FROM (SELECT format('WHEN t.%I IS NULL THEN %L', a.attname, 'n' || a.attname) AS w, to_char(a.attnum, 'FM00000') AS o
            FROM pg_attribute a WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
          UNION ALL
          SELECT format('WHEN (%s) IS FALSE THEN %L', pg_get_expr(k.conbin, k.conrelid), 'c' || k.conname), 'z' || k.conname
            FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'c') rules;
  IF v_sql IS NOT NULL THEN
    EXECUTE v_sql INTO v_failed USING NEW;
    IF left(v_failed, 1) = 'n' THEN
      RAISE EXCEPTION 'null value in column "%" of relation "%" violates not-null constraint', substr(v_failed, 2),
            TG_TABLE_NAME
        USING ERRCODE = 'not_null_violation', COLUMN = substr(v_failed, 2), SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    ELSIF left(v_failed, 1) = 'c' THEN
      RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, substr(v_failed, 2)
        USING ERRCODE = 'check_violation', CONSTRAINT = substr(v_failed, 2), SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END IF;
  IF TG_OP = 'UPDATE' OR current_query() !~* '\mon\s+conflict\M' THEN
    FOR c IN
      SELECT x.relname AS name, coalesce(pg_get_expr(i.indpred, i.indrelid, true), 'true') AS pred,
             (SELECT string_agg(pg_get_indexdef(i.indexrelid, n, true), ', ' ORDER BY n)
                FROM generate_series(1, i.indnkeyatts::int) n) AS cols
        FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
       WHERE i.indrelid = TG_RELID AND i.indisunique AND NOT i.indisprimary AND i.indisvalid ORDER BY x.relname
    LOOP
      -- The key as text, or NULL when the row is not in the index's scope or the key has a NULL (never equal).
      v_sql := format('SELECT CASE WHEN (%s) AND num_nulls(%s) = 0 THEN ROW(%s)::text END FROM (SELECT ($1).*) AS t',
                      c.pred, c.cols, c.cols);
      IF TG_OP = 'UPDATE' THEN
        EXECUTE v_sql INTO v_old_key USING OLD;
      END IF;
      EXECUTE v_sql INTO v_key USING NEW;
      CONTINUE WHEN v_key IS NULL OR v_key IS NOT DISTINCT FROM v_old_key;
      IF NOT pg_try_advisory_xact_lock(hashtext(c.name), hashtext(v_key)) THEN
        PERFORM pg_advisory_xact_lock(hashtext(c.name), hashtext(v_key));
        IF current_setting('transaction_isolation') <> 'read committed' THEN
          RAISE EXCEPTION 'could not serialize access due to a concurrent write of the same key of "%"', c.name
            USING ERRCODE = 'serialization_failure', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  HINT = 'Retry the transaction.';
        END IF;
      END IF;
      -- Inner names resolve to the new row (t), the outer ones to the table's rows (o).
      EXECUTE format('SELECT EXISTS (SELECT FROM %s o WHERE (%s) AND (%s) = (SELECT %s FROM (SELECT ($1).*) AS t))',
                     TG_RELID::regclass, c.pred, c.cols, c.cols)
        INTO v_ok USING NEW;
      IF v_ok THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "%"', c.name
          USING ERRCODE = 'unique_violation', CONSTRAINT = c.name, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                DETAIL = 'The key is not shown: this table holds secrets, password hashes or personal data.';
      END IF;
    END LOOP;
  END IF;
  -- Foreign keys: one statement each, true when the key has a NULL (MATCH SIMPLE) or its row exists.
  FOR c IN
    SELECT k.conname, k.confrelid::regclass AS ref,
           (SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.conkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.att) AS cols,
           (SELECT string_agg(format('r.%I', a.attname), ', ' ORDER BY u.n) FROM unnest(k.confkey) WITH ORDINALITY u(att, n)
              JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.att) AS ref_cols
      FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'f' ORDER BY k.conname
  LOOP
    EXECUTE format('SELECT num_nulls(%s) > 0 OR EXISTS (SELECT FROM %s r WHERE (%s) = (%s)) FROM (SELECT ($1).*) AS t',
                   c.cols, c.ref, c.ref_cols, c.cols)
      INTO v_ok USING NEW;
    IF NOT v_ok THEN
      RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, c.conname
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = c.conname, SCHEMA = TG_TABLE_SCHEMA,
              TABLE = TG_TABLE_NAME,
              DETAIL = 'The key is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.check_quietly() IS 'BEFORE INSERT OR UPDATE row trigger of tables holding secrets, hashes or personal data: checks the row''s NOT NULL, CHECK, unique (but the primary key) and foreign key constraints, in PostgreSQL''s order, and raises the violation (23502, 23514, 23505, 23503, with the constraint''s name) with a DETAIL that shows no value.';
"""

NUMBER_CONFIGURATION_VERSION = r"""
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
"""

# What 0022 (and 0018) left, for the downgrade.
CHECK_QUIETLY_0022 = r"""
CREATE OR REPLACE FUNCTION platform.check_quietly() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  c record;
  v_ok boolean;
BEGIN
  FOR c IN
    SELECT k.conname, pg_get_expr(k.conbin, k.conrelid) AS expr
      FROM pg_constraint k WHERE k.conrelid = TG_RELID AND k.contype = 'c' ORDER BY k.conname
  LOOP
    EXECUTE format('SELECT %s FROM (SELECT ($1).*) AS t', c.expr) INTO v_ok USING NEW;
    IF v_ok IS FALSE THEN
      RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, c.conname
        USING ERRCODE = 'check_violation', CONSTRAINT = c.conname, SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'The row is not shown: this table holds secrets, password hashes or personal data.';
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.check_quietly() IS 'BEFORE INSERT OR UPDATE row trigger of tables holding secrets, hashes or personal data: evaluates the table''s CHECK constraints and raises a violation (23514, the constraint''s name) whose DETAIL shows no value.';
"""

NUMBER_CONFIGURATION_VERSION_0022 = r"""
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

ARCHIVE_TABLE = r"""
CREATE FUNCTION platform.archive_table(p_table regclass) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_name text := (SELECT c.relname FROM pg_class c WHERE c.oid = p_table);
BEGIN
  IF to_regclass(format('platform_archive.%I', v_name)) IS NOT NULL THEN
    v_name := v_name || to_char(clock_timestamp() AT TIME ZONE 'UTC', '"_"YYYYMMDD"T"HH24MISSUS');
    EXECUTE format('ALTER TABLE %s RENAME TO %I', p_table, v_name);
  END IF;
  EXECUTE format('ALTER TABLE %s SET SCHEMA platform_archive', p_table);
  RETURN format('platform_archive.%I', v_name);
END
$$;
COMMENT ON FUNCTION platform.archive_table(regclass) IS 'Moves a detached partition into schema platform_archive (renamed with a _<UTC time> suffix if the name is taken there); returns its new name.';
"""

ENSURE_PARTITION = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partition(p_parent regclass, p_granularity text, p_at timestamptz) RETURNS boolean
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
  v_existing regclass;
  v_index record;
  v_index_name text;
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
  v_existing := to_regclass(format('%I.%I', v_schema, v_name));
  IF v_existing IS NOT NULL THEN
    IF EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = v_existing AND i.inhparent = p_parent) THEN
      RETURN false;
    END IF;
    -- A partition detached before revision 0025 stayed here under the name: archive it and make the day again.
    RAISE NOTICE 'archived detached % as % to make its partition again', v_existing, platform.archive_table(v_existing);
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
  -- The partition's indexes are made here, named <parent's index>_p<period> (pk_metric_samples_p2026_12_01), so
  -- that an error naming one starts with the rule's name; ATTACH adopts them instead of making <partition>_pkey.
  FOR v_index IN
    SELECT x.relname AS name, k.oid AS con, pg_get_constraintdef(k.oid) AS condef, pg_get_indexdef(i.indexrelid) AS def
      FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
      LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = p_parent AND k.contype IN ('p', 'u')
     WHERE i.indrelid = p_parent ORDER BY x.relname
  LOOP
    v_index_name := v_index.name || substring(v_name FROM char_length(v_table) + 1);
    IF octet_length(v_index_name) > 63 THEN
      RAISE EXCEPTION 'index name % of partition % would be longer than 63 bytes', v_index_name, v_name
        USING ERRCODE = 'name_too_long';
    END IF;
    IF v_index.con IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', v_schema, v_name, v_index_name, v_index.condef);
    ELSE
      EXECUTE regexp_replace(v_index.def, ' INDEX \S+ ON ONLY \S+ ',
                             format(' INDEX %I ON %I.%I ', v_index_name, v_schema, v_name));
    END IF;
  END LOOP;
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
COMMENT ON FUNCTION platform.ensure_partition(regclass, text, timestamptz) IS 'Creates the monthly or daily range partition of a partitioned table holding p_at (built apart with indexes named <parent index>_p<period>, then attached: SHARE UPDATE EXCLUSIVE on the parent), moving in any rows the DEFAULT partition holds for it; a detached table left under its name is archived first; returns whether it created one. Idempotent.';
"""

PRUNE_PARTITIONS = r"""
CREATE OR REPLACE FUNCTION platform.prune_partitions(
  p_parent regclass, p_older_than timestamptz, p_detach boolean DEFAULT false
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_name text;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS part, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent ORDER BY c.relname
  LOOP
    CONTINUE WHEN r.bound = 'DEFAULT';
    IF substring(r.bound FROM 'TO \(''([^'']+)''\)')::timestamptz <= p_older_than THEN
      v_name := r.part::text;  -- before the drop, after which the name no longer resolves
      IF p_parent = 'platform.audit_logs'::regclass THEN
        -- What retention removes is recorded with it: each lane's oldest remaining row must link to the
        -- newest one removed, so rows removed any other way are evident to `audit verify`.
        EXECUTE format(
          'UPDATE platform.audit_chain c SET pruned_through_id = p.id, pruned_through_hash = p.row_hash'
          '  FROM (SELECT DISTINCT ON (chain_lane) chain_lane, id, row_hash FROM %s ORDER BY chain_lane, id DESC) p'
          ' WHERE c.lane = p.chain_lane AND (c.pruned_through_id IS NULL OR c.pruned_through_id < p.id)', r.part);
      END IF;
      IF p_detach THEN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, r.part);
        v_name := platform.archive_table(r.part);
      ELSE
        EXECUTE format('DROP TABLE %s', r.part);
      END IF;
      RETURN NEXT v_name;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) IS 'Drops (or detaches into schema platform_archive) the range partitions of a partitioned table that end at or before p_older_than, recording for audit_logs each lane''s newest removed row in audit_chain; returns their names (the archived names when detached). Idempotent.';
"""

ENSURE_PARTITION_0022 = r"""
CREATE OR REPLACE FUNCTION platform.ensure_partition(p_parent regclass, p_granularity text, p_at timestamptz) RETURNS boolean
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

PRUNE_PARTITIONS_0022 = r"""
CREATE OR REPLACE FUNCTION platform.prune_partitions(
  p_parent regclass, p_older_than timestamptz, p_detach boolean DEFAULT false
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_name text;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS part, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = p_parent ORDER BY c.relname
  LOOP
    CONTINUE WHEN r.bound = 'DEFAULT';
    IF substring(r.bound FROM 'TO \(''([^'']+)''\)')::timestamptz <= p_older_than THEN
      v_name := r.part::text;  -- before the drop, after which the name no longer resolves
      IF p_parent = 'platform.audit_logs'::regclass THEN
        -- What retention removes is recorded with it: each lane's oldest remaining row must link to the
        -- newest one removed, so rows removed any other way are evident to `audit verify`.
        EXECUTE format(
          'UPDATE platform.audit_chain c SET pruned_through_id = p.id, pruned_through_hash = p.row_hash'
          '  FROM (SELECT DISTINCT ON (chain_lane) chain_lane, id, row_hash FROM %s ORDER BY chain_lane, id DESC) p'
          ' WHERE c.lane = p.chain_lane AND (c.pruned_through_id IS NULL OR c.pruned_through_id < p.id)', r.part);
      END IF;
      IF p_detach THEN
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', p_parent, r.part);
      ELSE
        EXECUTE format('DROP TABLE %s', r.part);
      END IF;
      RETURN NEXT v_name;
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION platform.prune_partitions(regclass, timestamptz, boolean) IS 'Drops (or detaches) the range partitions of a partitioned table that end at or before p_older_than, recording for audit_logs each lane''s newest removed row in audit_chain; returns their names. Idempotent.';
"""

NAME_PARTITION_INDEXES = r"""
CREATE FUNCTION platform.name_partition_indexes(p_parent regclass) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_renamed integer := 0;
BEGIN
  FOR r IN
    SELECT ci.oid::regclass AS idx, ci.relname AS name,
           pi.relname || substring(pc.relname FROM char_length(pp.relname) + 1) AS new_name
      FROM pg_inherits ih JOIN pg_class pc ON pc.oid = ih.inhrelid JOIN pg_class pp ON pp.oid = ih.inhparent
      JOIN pg_index x ON x.indrelid = pc.oid JOIN pg_class ci ON ci.oid = x.indexrelid
      JOIN pg_inherits ii ON ii.inhrelid = ci.oid JOIN pg_class pi ON pi.oid = ii.inhparent
     WHERE ih.inhparent = p_parent ORDER BY 2
  LOOP
    CONTINUE WHEN r.name = r.new_name;
    EXECUTE format('ALTER INDEX %s RENAME TO %I', r.idx, r.new_name);
    v_renamed := v_renamed + 1;
  END LOOP;
  RETURN v_renamed;
END
$$;
COMMENT ON FUNCTION platform.name_partition_indexes(regclass) IS 'Renames the indexes of a partitioned table''s partitions to <parent index>_p<period> (or _default); returns how many it renamed. Idempotent.';
"""
