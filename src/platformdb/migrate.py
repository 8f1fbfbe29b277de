"""Alembic, driven from Python: the package's own configuration and migration scripts."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL

from platformdb.db import display, engine
from platformdb.errors import MigrationError, NotMigratedError, UserError, describe
from platformdb.models.base import SCHEMA, partition_kind


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name`` filter: what autogenerate compares. Only schema ``platform``, and not the
    partitions, which are made at run time rather than declared in the models."""
    if type_ == "schema":
        return name == SCHEMA
    if type_ == "table" and name is not None:
        return partition_kind(name) is None
    return True


def alembic_config(url: URL | None = None) -> Config:
    """Alembic Config for the packaged migrations, aimed at ``url`` (None: offline, dialect only)."""
    cfg = Config(str(files("platformdb") / "alembic.ini"))
    cfg.set_main_option("script_location", "platformdb:migrations")
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise UserError(f"the migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def check_revision(rev: str) -> None:
    """Raise UserError unless ``rev`` names a revision (or base/head, or a relative step like -1)."""
    if rev in ("base", "head", "heads") or (rev.lstrip("+-").isdigit() and rev[0] in "+-"):
        return
    try:
        if script_directory().get_revision(rev) is None:
            raise UserError(f"unknown revision {rev!r}; see `platformdb history`")
    except CommandError as exc:
        raise UserError(f"unknown revision {rev!r}; see `platformdb history`") from exc


def current(url: URL) -> str | None:
    """The revision the database is at, or None for an unmigrated database."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        eng.dispose()  # leave no pooled session behind
    return heads[0] if heads else None


def require_head(url: URL) -> None:
    """Raise :class:`NotMigratedError` unless the database at ``url`` is at the head revision."""
    at = current(url)
    if at != head():
        raise NotMigratedError(f'database "{url.database}" ({display(url)})', at)


def upgrade(url: URL, rev: str = "head", *, lock_timeout: str | None = None) -> None:
    """Migrate the database at ``url`` up to ``rev``; :class:`MigrationError` says where a failure left it."""
    _migrate(command.upgrade, "upgrade", url, rev, lock_timeout)


def downgrade(url: URL, rev: str, *, lock_timeout: str | None = None) -> None:
    """Migrate the database at ``url`` down to ``rev`` (an id, ``-N`` or ``base``)."""
    _migrate(command.downgrade, "downgrade", url, rev, lock_timeout)


_TIMEOUT = re.compile(r"\d+(\.\d+)?\s*(us|ms|s|min|h|d)?")


def _migrate(fn: Any, direction: str, url: URL, rev: str, lock_timeout: str | None) -> None:
    check_revision(rev)
    cfg = alembic_config(url)
    if lock_timeout is not None:
        if not _TIMEOUT.fullmatch(lock_timeout.strip()):
            raise UserError(f"not a lock timeout: {lock_timeout!r} (e.g. 2s, 500ms, 1min)")
        cfg.attributes["lock_timeout"] = lock_timeout.strip()
    try:
        _run(fn, cfg, rev)
    except UserError:
        raise
    except Exception as exc:  # a database error inside a revision: that revision rolled back, the ones before stay
        raise MigrationError(direction, rev, current(url), describe(exc)) from exc


def offline_sql(from_rev: str, to_rev: str) -> str:
    """The SQL that takes a database from ``from_rev`` to ``to_rev`` (either direction), for DBAs."""
    for rev in (from_rev, to_rev):
        check_revision(rev)
    cfg = alembic_config()
    out = io.StringIO()
    cfg.output_buffer = out
    if _is_ancestor(to_rev, from_rev):
        _run(command.downgrade, cfg, f"{from_rev}:{to_rev}", sql=True)
    else:
        _run(command.upgrade, cfg, f"{from_rev}:{to_rev}", sql=True)
    return out.getvalue()


def history() -> list[tuple[str, str, str]]:
    """(revision, down revision, one-line message) from base to head."""
    rows = []
    for script in reversed(list(script_directory().walk_revisions())):
        down = script.down_revision if isinstance(script.down_revision, str) else "base"
        rows.append((script.revision, down or "base", (script.doc or "").splitlines()[0]))
    return rows


def _is_ancestor(candidate: str, rev: str) -> bool:
    """Whether ``candidate`` comes before ``rev`` (base comes before everything)."""
    if candidate == "base":
        return rev != "base"
    if rev in ("base",) or candidate in ("head", "heads"):
        return False
    sd = script_directory()
    target = head() if rev in ("head", "heads") else rev
    return any(s.revision == candidate for s in sd.iterate_revisions(target, "base")) and candidate != target


def _run(fn: object, *args: object, **kwargs: object) -> None:
    try:
        with redirect_stdout(io.StringIO()):
            fn(*args, **kwargs)  # type: ignore[operator]
    except CommandError as exc:
        raise UserError(str(exc).splitlines()[0]) from exc
