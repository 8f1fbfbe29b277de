"""Look-alike addresses and invisible display names refused; ids and stamps the database's; no temp or large objects

Why: A security review found three ways to make rows that lie. (7) Addresses that display alike were distinct
     rows: NFC and NFD 'josé', 'ÉLODIE' and 'élodie' (lower() folds only ASCII under LC_CTYPE=C, and the
     embedded server has no ICU), and any address with a zero-width, bidi or control character in it; display
     names held the same invisible and control characters. Addresses must now be printable ASCII
     (ck_users_email_printable_ascii: an internationalized domain goes in as punycode, a non-ASCII local part is
     refused), so look-alikes are the same characters and uq_users_email_lower folds every letter they can
     hold, on any server; display names of users and teams refuse C0/C1 controls, DEL and the invisible format
     characters (ck_users_display_name_visible, ck_teams_display_name_visible; U+200D stays, for emoji).
     (14) A service could backdate a row's created_at/updated_at on INSERT and rewrite its id by UPDATE. Now
     trg_<table>_created_at (platform.set_created_at) gives now() to an INSERT's stamps on every table a
     service inserts into, unless the writer holds the table owner's privileges (migrations, restores and the
     seed replay history as the owner); trg_<table>_keys_immutable refuses an UPDATE of the primary key on
     every table whose rows may be updated (created_at there was already frozen by trg_<table>_updated_at;
     audit_chain, which has none, freezes it with its lane). Explicit ids on INSERT stay accepted. (10)
     platform_readonly could create temporary tables and large objects. PUBLIC's TEMPORARY on this database
     is revoked (no group gets it back) and so is EXECUTE on lo_create, lo_creat, lo_from_bytea and lo_import;
     each only when the migrating role may (owns the database / is a superuser), otherwise a NOTICE gives the
     statement a DBA runs. Existing v0.1 addresses and names stay valid unless they hold what the new rules
     refuse: revision 0021 validates the CHECKs and names the first such row's rule; fix those rows
     (SELECT id, email FROM platform.users WHERE email !~ '^[!-~]+$') and run it again.
Locks: ADD CONSTRAINT ... NOT VALID is catalog-only (no scan; ACCESS EXCLUSIVE on users and teams, held to
       this revision's commit): new and updated rows are checked from that commit on, existing ones by revision
       0021. CREATE TRIGGER takes SHARE ROW EXCLUSIVE on each of the 18 tables it guards, metric_samples'
       partitions included (writes wait, reads go on), until the commit (milliseconds; lock_timeout bounds a
       wait behind a long writer); audit_chain is among them, so every audited write waits for that commit
       too. GRANT/REVOKE update catalog rows only. Runs before the code that uses it: services change nothing
       (a stamp they gave is replaced, not refused; no service updates ids or writes temporary tables or large
       objects), and a non-ASCII address a service still sends is refused from this commit on.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the rules and the database-side SQL as they were when this revision landed (see
# models/identity.py, models/base.sql, models/<context>.sql and models/privileges.sql for today's).
INVISIBLE = (
    r"\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    r"\ufff9-\ufffb\U000e0000-\U000e007f"
)
CHECKS = (
    ("users", "ck_users_email_printable_ascii", r"email !~ '[^\u0021-\u007e]'"),
    ("users", "ck_users_display_name_visible", f"display_name !~ '[{INVISIBLE}]'"),
    ("teams", "ck_teams_display_name_visible", f"display_name !~ '[{INVISIBLE}]'"),
)
EMAIL_COMMENT = (
    "Sign-in address as entered, printable ASCII (a domain in punycode); unique case-insensitively through"
    " uq_users_email_lower."
)
OLD_EMAIL_COMMENT = "Sign-in address as entered; unique case-insensitively through uq_users_email_lower."
TRIGGERS = (
    ("trg_audit_chain_keys_immutable", "audit_chain"),
    ("trg_users_created_at", "users"),
    ("trg_teams_created_at", "teams"),
    ("trg_team_memberships_created_at", "team_memberships"),
    ("trg_roles_created_at", "roles"),
    ("trg_permissions_created_at", "permissions"),
    ("trg_role_permissions_created_at", "role_permissions"),
    ("trg_role_grants_created_at", "role_grants"),
    ("trg_users_keys_immutable", "users"),
    ("trg_teams_keys_immutable", "teams"),
    ("trg_team_memberships_keys_immutable", "team_memberships"),
    ("trg_roles_keys_immutable", "roles"),
    ("trg_permissions_keys_immutable", "permissions"),
    ("trg_role_grants_keys_immutable", "role_grants"),
    ("trg_environments_created_at", "environments"),
    ("trg_services_created_at", "services"),
    ("trg_service_dependencies_created_at", "service_dependencies"),
    ("trg_environments_keys_immutable", "environments"),
    ("trg_services_keys_immutable", "services"),
    ("trg_releases_created_at", "releases"),
    ("trg_deployments_created_at", "deployments"),
    ("trg_deployments_keys_immutable", "deployments"),
    ("trg_configurations_created_at", "configurations"),
    ("trg_configuration_versions_created_at", "configuration_versions"),
    ("trg_metrics_created_at", "metrics"),
    ("trg_metric_series_created_at", "metric_series"),
    ("trg_metrics_keys_immutable", "metrics"),
    ("trg_metric_samples_keys_immutable", "metric_samples"),
)


def upgrade() -> None:
    for table, name, rule in CHECKS:
        op.execute(f"ALTER TABLE platform.{table} ADD CONSTRAINT {name} CHECK ({rule}) NOT VALID")
    op.execute(SET_CREATED_AT)
    op.execute("REVOKE ALL ON FUNCTION platform.set_created_at() FROM PUBLIC")
    op.execute(TRIGGER_SQL)
    op.execute(NO_TEMP_NO_LARGE_OBJECTS)
    op.execute(f"COMMENT ON COLUMN platform.users.email IS '{EMAIL_COMMENT}'")


def downgrade() -> None:
    op.execute(f"COMMENT ON COLUMN platform.users.email IS '{OLD_EMAIL_COMMENT}'")
    op.execute(TEMP_AND_LARGE_OBJECTS_BACK)
    for name, table in reversed(TRIGGERS):
        op.execute(f"DROP TRIGGER {name} ON platform.{table}")
    op.execute("DROP FUNCTION platform.set_created_at()")
    for table, name, _ in reversed(CHECKS):
        op.execute(f"ALTER TABLE platform.{table} DROP CONSTRAINT {name}")


SET_CREATED_AT = r"""
CREATE FUNCTION platform.set_created_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE')
  THEN
    NEW := jsonb_populate_record(NEW, jsonb_build_object('created_at', now(), 'updated_at', now()));
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION platform.set_created_at() IS 'BEFORE INSERT row trigger (trg_<table>_created_at): a created_at or updated_at other than now() becomes now(), unless the writer holds the table owner''s privileges.';
"""

TRIGGER_SQL = r"""
CREATE TRIGGER trg_audit_chain_keys_immutable BEFORE UPDATE ON platform.audit_chain
  FOR EACH ROW WHEN ((OLD.lane, OLD.created_at) IS DISTINCT FROM (NEW.lane, NEW.created_at))
  EXECUTE FUNCTION platform.forbid_column_change('lane', 'created_at');
CREATE TRIGGER trg_users_created_at BEFORE INSERT ON platform.users
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_teams_created_at BEFORE INSERT ON platform.teams
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_team_memberships_created_at BEFORE INSERT ON platform.team_memberships
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_roles_created_at BEFORE INSERT ON platform.roles
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_permissions_created_at BEFORE INSERT ON platform.permissions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_role_permissions_created_at BEFORE INSERT ON platform.role_permissions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_role_grants_created_at BEFORE INSERT ON platform.role_grants
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_users_keys_immutable BEFORE UPDATE ON platform.users
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_teams_keys_immutable BEFORE UPDATE ON platform.teams
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_team_memberships_keys_immutable BEFORE UPDATE ON platform.team_memberships
  FOR EACH ROW WHEN ((OLD.team_id, OLD.user_id) IS DISTINCT FROM (NEW.team_id, NEW.user_id))
  EXECUTE FUNCTION platform.forbid_column_change('team_id', 'user_id');
CREATE TRIGGER trg_roles_keys_immutable BEFORE UPDATE ON platform.roles
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_permissions_keys_immutable BEFORE UPDATE ON platform.permissions
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_role_grants_keys_immutable BEFORE UPDATE ON platform.role_grants
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_environments_created_at BEFORE INSERT ON platform.environments
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_services_created_at BEFORE INSERT ON platform.services
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_service_dependencies_created_at BEFORE INSERT ON platform.service_dependencies
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_environments_keys_immutable BEFORE UPDATE ON platform.environments
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_services_keys_immutable BEFORE UPDATE ON platform.services
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_releases_created_at BEFORE INSERT ON platform.releases
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_deployments_created_at BEFORE INSERT ON platform.deployments
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now() OR NEW.updated_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_deployments_keys_immutable BEFORE UPDATE ON platform.deployments
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION platform.forbid_column_change('id');
CREATE TRIGGER trg_configurations_created_at BEFORE INSERT ON platform.configurations
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
CREATE TRIGGER trg_configuration_versions_created_at BEFORE INSERT ON platform.configuration_versions
  FOR EACH ROW WHEN (NEW.created_at IS DISTINCT FROM now())
  EXECUTE FUNCTION platform.set_created_at();
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
"""

NO_TEMP_NO_LARGE_OBJECTS = r"""
DO $$
DECLARE
  v_lo text := 'pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer), pg_catalog.lo_from_bytea(oid, bytea), '
                'pg_catalog.lo_import(text), pg_catalog.lo_import(text, oid)';
BEGIN
  IF pg_has_role(current_user, (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')
  THEN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
  ELSE
    RAISE NOTICE 'platformdb: % does not own database %, so PUBLIC keeps TEMPORARY on it', current_user,
      current_database() USING HINT = format('a DBA runs: REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC;',
      current_database());
  END IF;
  IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
    EXECUTE 'REVOKE EXECUTE ON FUNCTION ' || v_lo || ' FROM PUBLIC';
  ELSE
    RAISE NOTICE 'platformdb: % is not a superuser, so PUBLIC keeps EXECUTE on the large-object functions',
      current_user USING HINT = format('a superuser runs in database %I: REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;',
      current_database(), v_lo);
  END IF;
END
$$;
"""

# PostgreSQL's defaults, restored where this role may: TEMPORARY for PUBLIC, EXECUTE on the large-object
# creators for PUBLIC (server-side lo_import is not PUBLIC's by default, so it is not granted back).
TEMP_AND_LARGE_OBJECTS_BACK = r"""
DO $$
BEGIN
  IF pg_has_role(current_user, (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'USAGE')
  THEN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
  END IF;
  IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
    GRANT EXECUTE ON FUNCTION pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer),
      pg_catalog.lo_from_bytea(oid, bytea) TO PUBLIC;
  END IF;
END
$$;
"""
