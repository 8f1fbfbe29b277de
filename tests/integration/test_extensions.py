"""Extending platformdb without forking it (issue #11 point 2), end to end with the sample extension.

The sample, ``examples/acme_incidents``, is registered the way ``pip install`` registers it: a distribution on
``sys.path`` whose ``platformdb.extensions`` entry points are the ones its pyproject.toml declares (so a fresh
clone's ``make test`` needs no extra install step, and nothing outside these tests sees the extension).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from platformdb import migrate
from platformdb.db import libpq_dsn
from platformdb.errors import NotMigratedError, UserError
from platformdb.models import metadata
from platformdb.ops.audit_chain import verify
from platformdb.review import docs, lint
from platformdb.review.introspect import read_schema
from platformdb.review.snapshot import snapshot
from tests.factories import Make, rejected

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "acme_incidents"


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """The example installed: its package and a dist-info carrying its declared entry points on sys.path."""
    site = tmp_path_factory.mktemp("site")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = site / f"acme_incidents-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, points in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{name} = {value}" for name, value in points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    paths = [str(site), str(EXAMPLE / "src")]
    sys.path[:0] = paths
    importlib.invalidate_caches()
    yield paths
    for path in paths:
        sys.path.remove(path)
    for name in [m for m in sys.modules if m == "acme_incidents" or m.startswith("acme_incidents.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _platformdb(url: URL, *args: str, site: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PLATFORMDB_DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join([*site, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    dsn = url.render_as_string(hide_password=False)
    return subprocess.run(
        [sys.executable, "-m", "platformdb.cli", "--database-url", dsn, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _diff(conn: psycopg.Connection[Any], target: Any, include: Any) -> list[Any]:
    """What Alembic's autogenerate would propose for ``target``, with the environment's options."""
    opts = {"include_schemas": True, "include_name": include, "compare_type": True, "compare_server_default": True}
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), target))


# --- revisions: a branch label and registered version locations -------------------------------------------------


def test_platformdb_revisions_carry_the_platformdb_branch_label() -> None:
    sd = migrate.script_directory()
    assert sd.get_revision("platformdb@head").revision == migrate.head()
    unlabelled = [rev for rev, _, _ in migrate.history() if "platformdb" not in sd.get_revision(rev).branch_labels]
    assert unlabelled == []


def test_an_extension_registers_its_revisions_by_entry_point(acme_site: list[str]) -> None:
    from platformdb import extensions

    assert extensions.registered() == {"acme": "acme_incidents:versions"}
    assert migrate.version_locations() == ["platformdb:migrations/versions", "acme_incidents:versions"]
    assert migrate.heads() == sorted([migrate.head(), "acme_0001"])
    sd = migrate.script_directory()
    assert sd.get_revision("acme@head").revision == "acme_0001"
    assert sd.get_revision("acme_0001").dependencies == "0027"  # an id of platformdb's, not a down_revision


def _one_revision_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, header: str) -> None:
    """Registers extension ``name`` (package ``<name>_extension``) with one empty revision ``<name>_0001`` whose
    module-level assignments are ``header``, the way an installed distribution's entry point would."""
    package = tmp_path / f"{name}_extension"
    (package / "versions").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "versions" / f"{name}_0001.py").write_text(
        f'"""{name}"""\nrevision = "{name}_0001"\n{header}\n\n\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    info = tmp_path / f"{name}_extension-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-extension\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[platformdb.extensions]\n{name} = {name}_extension:versions\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_an_extension_that_branches_off_platformdb_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A down_revision into platformdb's lineage would make it a branch point and split the platformdb label."""
    _one_revision_extension(
        tmp_path, monkeypatch, "bad", 'down_revision = "0027"\nbranch_labels = None\ndepends_on = None'
    )
    with pytest.raises(UserError, match=r"^extension revision bad_0001 has platformdb's 0027 as down_revision"):
        migrate.heads()
    monkeypatch.delitem(sys.modules, "bad_extension", raising=False)


def test_extension_migrates_lints_audits_and_downgrades_with_platformdb(empty_db: URL, acme_site: list[str]) -> None:
    migrate.upgrade(empty_db)  # both heads
    # the version table keeps acme_0001, which implies the 0027 it depends on, and platformdb's later head
    assert "acme_0001" in migrate.current_heads(empty_db)
    assert "0027" not in migrate.current_heads(empty_db)
    assert migrate.current(empty_db) == migrate.head()
    assert set(migrate.heads()) <= migrate.applied(empty_db)
    migrate.require_head(empty_db)
    # The command too, in a fresh process that finds the extension the same way (was: "Can't locate revision").
    done = _platformdb(empty_db, "upgrade", site=acme_site)
    assert done.returncode == 0, done.stderr
    done = _platformdb(empty_db, "current", site=acme_site)
    assert done.returncode == 0, done.stderr
    assert "acme_0001" in done.stdout, done.stdout

    # Without the extension installed, its revision in the version table is one plain line, not a traceback.
    for step in ("upgrade", "current"):
        done = _platformdb(empty_db, step, site=[])
        assert done.returncode == 1, done.stdout
        assert done.stderr.startswith("platformdb: error:"), done.stderr
        assert "acme_0001" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    import acme_incidents

    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        platform_before = snapshot(conn)
        # lint: platformdb's schema clean and untouched; the extension's on request, with the same rules
        for name in ("platform", "acme"):
            found = read_schema(conn, name)
            assert found is not None
            assert lint.lint(found, lint.load_exceptions())[0] == [], name
        assert lint.not_platformdbs(read_schema(conn) or pytest.fail("no platform schema")) == []
        # an audited write by the service's login role, captured with its schema, in a chain that verifies
        make = Make(conn)
        service = make.service()
        deployment = make.deployment(service, environment_id=make.environment())
        conn.execute("SET ROLE platform_delivery")
        with rejected("23514", "ck_incidents_severity_range"):
            conn.execute("INSERT INTO acme.incidents (service_id, severity, title) VALUES (%s, 9, 'down')", (service,))
        incident = conn.execute(
            "INSERT INTO acme.incidents (service_id, deployment_id, severity, title) VALUES (%s, %s, 1, 'down')"
            " RETURNING id",
            (service, deployment),
        ).fetchone()
        conn.execute("RESET ROLE")
        assert incident is not None
        row = conn.execute(
            "SELECT entity_schema, entity_type, action, hash_version, db_role FROM platform.audit_logs"
            " WHERE entity_id = %s",
            (str(incident[0]),),
        ).fetchone()
        assert row is not None
        assert row[:4] == ("acme", "incidents", "insert", 3)
        platform_rows = conn.execute(
            "SELECT DISTINCT entity_schema FROM platform.audit_logs WHERE entity_type = 'services'"
        ).fetchall()
        assert platform_rows == [("platform",)]
        verdict = verify(conn)
        assert verdict.ok, str(verdict)
        with rejected("23000", "trg_incidents_no_truncate"):
            conn.execute("TRUNCATE acme.incidents")
        # the extension's capture trigger is one the verifier holds to be on
        conn.execute("ALTER TABLE acme.incidents DISABLE TRIGGER trg_incidents_audit")
        assert verify(conn).problem == "trigger trg_incidents_audit on acme.incidents is disabled"
        conn.execute("ALTER TABLE acme.incidents ENABLE TRIGGER trg_incidents_audit")
        conn.execute("DELETE FROM acme.incidents")

    # autogenerate: no difference for platformdb's models, nor for the extension's
    eng = create_engine(empty_db)
    try:
        with eng.connect() as sa_conn:
            assert _diff(sa_conn, metadata, migrate.include_name) == []
            include_acme = migrate.include_name_for(acme_incidents.SCHEMA, acme_incidents.metadata)
            assert _diff(sa_conn, acme_incidents.metadata, include_acme) == []
    finally:
        eng.dispose()

    migrate.downgrade(empty_db, "acme@base")
    assert migrate.current_heads(empty_db) == [migrate.head()]
    with pytest.raises(NotMigratedError):  # platformdb alone is not every head while the extension is registered
        migrate.require_head(empty_db)
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        assert conn.execute("SELECT to_regnamespace('acme')").fetchone() == (None,)
        assert snapshot(conn) == platform_before
        assert verify(conn).ok
    migrate.downgrade(empty_db, "base")
    assert migrate.current_heads(empty_db) == []


def test_plain_alembic_command_applies_platformdb_and_the_extension(empty_db: URL, acme_site: list[str]) -> None:
    cfg = Config(str(EXAMPLE / "alembic.ini"))
    cfg.attributes["url"] = empty_db
    command.upgrade(cfg, "heads")
    assert "acme_0001" in migrate.current_heads(empty_db)
    assert migrate.current(empty_db) == migrate.head()
    command.downgrade(cfg, "base")
    assert migrate.current_heads(empty_db) == []


# --- ownership: lint, docs and autogenerate leave what is not platformdb's alone ---------------------------------


def test_a_table_put_into_schema_platform_is_reported_as_not_platformdbs(db: URL, tmp_path: Path) -> None:
    with psycopg.connect(libpq_dsn(db), autocommit=True) as conn:
        conn.execute("CREATE TABLE platform.acme_notes (note text)")
        schema = read_schema(conn)
        assert schema is not None
    findings, _ = lint.lint(schema, lint.load_exceptions())
    assert findings == []
    assert lint.not_platformdbs(schema) == ["acme_notes"]
    done = _platformdb(db, "lint", site=[])
    assert done.returncode == 0, done.stdout + done.stderr
    noted = [line for line in done.stdout.splitlines() if "acme_notes" in line]
    assert noted == ["acme_notes: not platformdb's (no platformdb model); move it to the extension's own schema"]
    docs.generate(schema, tmp_path)
    assert not (tmp_path / "tables" / "acme_notes.md").exists()
    eng = create_engine(db)
    try:
        with eng.connect() as sa_conn:
            assert _diff(sa_conn, metadata, migrate.include_name) == []
    finally:
        eng.dispose()


# --- stable foreign-key targets ------------------------------------------------------------------------------------


def test_every_stable_reference_is_a_key_of_its_table(conn: psycopg.Connection[Any]) -> None:
    from platformdb.extensions import STABLE_REFERENCES

    schema = read_schema(conn)
    assert schema is not None
    assert {"services", "deployments"} <= set(STABLE_REFERENCES)
    for table, columns in STABLE_REFERENCES.items():
        keys = {c.columns for c in schema.tables[table].constraints if c.kind in ("p", "u")}
        assert columns in keys, (table, columns)
    readme = (ROOT / "docs" / "schema" / "README.md").read_text()
    for table, columns in STABLE_REFERENCES.items():
        assert f"`platform.{table}({', '.join(columns)})`" in readme


# --- audit capture for an extension's table: platform.enable_audit ---------------------------------------------------


def test_enable_audit_captures_an_extension_table_naming_its_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA team_x")
    conn.execute("CREATE TABLE team_x.notes (id bigint PRIMARY KEY, body text, token text)")
    conn.execute("SELECT platform.enable_audit('team_x.notes', ARRAY['token'])")
    conn.execute("SELECT platform.enable_audit('team_x.notes', ARRAY['token'])")  # idempotent
    conn.execute("INSERT INTO team_x.notes VALUES (1, 'hello', 's3cret')")
    row = conn.execute(
        "SELECT entity_schema, entity_type, entity_id, after ->> 'token', hash_version FROM platform.audit_logs"
        " WHERE entity_type = 'notes'"
    ).fetchone()
    assert row == ("team_x", "notes", "1", "[redacted]", 3)
    assert verify(conn).ok
    # entity_schema is hashed (hash_version 3): changing it breaks the row
    conn.execute("ALTER TABLE platform.audit_logs DISABLE TRIGGER trg_audit_logs_append_only")
    conn.execute("UPDATE platform.audit_logs SET entity_schema = 'platform' WHERE entity_type = 'notes'")
    conn.execute("ALTER TABLE platform.audit_logs ENABLE TRIGGER trg_audit_logs_append_only")
    assert verify(conn).problem == "row content does not match its row_hash"


def test_enable_audit_refuses_what_it_cannot_capture(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA team_y")
    conn.execute("CREATE TABLE team_y.keyless (body text)")
    conn.execute('CREATE TABLE team_y."Notes" (id bigint PRIMARY KEY)')
    conn.execute("CREATE TABLE team_y.notes (id bigint PRIMARY KEY)")
    with pytest.raises(psycopg.errors.InvalidTableDefinition, match="has no primary key"):
        conn.execute("SELECT platform.enable_audit('team_y.keyless')")
    with pytest.raises(psycopg.errors.InvalidName, match="lower-case"):
        conn.execute("""SELECT platform.enable_audit('team_y."Notes"')""")
    with pytest.raises(psycopg.errors.UndefinedColumn, match="nothing"):
        conn.execute("SELECT platform.enable_audit('team_y.notes', ARRAY['nothing'])")
    conn.execute("SET ROLE platform_delivery")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT platform.enable_audit('team_y.notes')")
    conn.execute("RESET ROLE")


def test_rows_from_before_revision_0027_name_schema_platform_and_keep_verifying(empty_db: URL) -> None:
    def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute("SELECT entity_schema, hash_version FROM platform.audit_logs ORDER BY id").fetchall()

    migrate.upgrade(empty_db, "0022")
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        make = Make(conn)
        make.service()
        before = len(conn.execute("SELECT id FROM platform.audit_logs").fetchall())
    migrate.upgrade(empty_db, "head")
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        make.conn = conn
        make.service()
        found = rows(conn)
        assert set(found[:before]) == {("platform", 2)}
        assert set(found[before:]) == {("platform", 3)}
        assert verify(conn).ok
    migrate.downgrade(empty_db, "0022")  # version-3 rows are resealed in the version-2 form
    with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
        versions = {v for (v,) in conn.execute("SELECT hash_version FROM platform.audit_logs")}
        assert versions == {2}
        assert verify(conn).ok


def test_audit_verify_compares_functions_with_an_extension_on_platformdbs_head(
    empty_db: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An extension that depends on platformdb's head leaves only its own id in alembic_version: the verifier
    still knows the database is at platformdb's head and compares the capture functions (it skipped them)."""
    header = f'down_revision = None\nbranch_labels = ("late",)\ndepends_on = "{migrate.head()}"'
    _one_revision_extension(tmp_path, monkeypatch, "late", header)
    try:
        migrate.upgrade(empty_db)
        at = migrate.current_heads(empty_db)  # (the sample extension may be registered too, by an earlier test)
        assert "late_0001" in at
        assert migrate.head() not in at  # platformdb's head is implied, not recorded
        with psycopg.connect(libpq_dsn(empty_db), autocommit=True) as conn:
            assert verify(conn).ok
            assert not any("not compared" in note for note in verify(conn).notes)
            conn.execute(
                "CREATE OR REPLACE FUNCTION platform.audit_capture() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RETURN NULL; END $$"
            )
            assert not verify(conn).ok
    finally:
        monkeypatch.delitem(sys.modules, "late_extension", raising=False)
