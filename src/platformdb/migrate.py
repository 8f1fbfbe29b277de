"""Alembic, driven from Python: the package's own configuration and migration scripts, plus the version
locations of every registered extension (:mod:`platformdb.extensions`), applied together."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from functools import cache
from importlib.resources import files
from typing import Any

from alembic import command, util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import URL, MetaData

from platformdb import extensions
from platformdb.db import display, engine
from platformdb.errors import MigrationError, NotMigratedError, UserError, describe
from platformdb.models.base import SCHEMA

OWN_VERSIONS = "platformdb:migrations/versions"

IncludeName = Callable[[str | None, str, Any], bool]


def include_name_for(schema: str, target: MetaData) -> IncludeName:
    """An ``include_name`` filter for autogenerate that compares only ``schema`` and, in it, only the tables
    ``target`` declares: what others put there (an extension's tables, run-time partitions) is left alone.
    A table dropped from the models is then not proposed for dropping; the schema-drift test catches that."""

    @cache
    def tables() -> frozenset[str]:
        return frozenset(str(t.name) for t in target.tables.values() if (t.schema or schema) == schema)

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == schema
        if type_ == "table":
            return name in tables()
        return True

    return include


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name`` filter for platformdb: schema ``platform``, only the tables of its models."""
    from platformdb.models import metadata

    return _platformdb_filter(metadata)(name, type_, parent_names)


@cache
def _platformdb_filter(target: MetaData) -> IncludeName:
    return include_name_for(SCHEMA, target)


def version_locations() -> list[str]:
    """platformdb's own revisions, then each registered extension's (entry point group platformdb.extensions)."""
    locations = [OWN_VERSIONS]
    for name, location in extensions.registered().items():
        package = location.split(":", 1)[0]
        try:
            files(package)
        except ModuleNotFoundError as exc:
            raise UserError(f"extension {name!r} registers {location!r}, but {package} cannot be imported") from exc
        locations.append(location)
    return locations


def alembic_config(url: URL | None = None, *, with_extensions: bool = True) -> Config:
    """Alembic Config for the packaged migrations (and the registered extensions'), aimed at ``url`` (None:
    offline, dialect only)."""
    cfg = Config(str(files("platformdb") / "alembic.ini"))
    cfg.set_main_option("script_location", "platformdb:migrations")
    cfg.set_main_option("path_separator", "space")  # locations are package:directory resources, never paths
    cfg.set_main_option("version_locations", " ".join(version_locations() if with_extensions else [OWN_VERSIONS]))
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def script_directory(*, with_extensions: bool = True) -> ScriptDirectory:
    sd = ScriptDirectory.from_config(alembic_config(with_extensions=with_extensions))
    if with_extensions:
        own = _own_revisions()
        for script in sd.walk_revisions():
            downs = set(util.to_tuple(script.down_revision, default=()))
            if script.revision not in own and downs & own:
                raise UserError(
                    f"extension revision {script.revision} has platformdb's {', '.join(sorted(downs & own))} as "
                    "down_revision: start the extension's own branch and use depends_on (docs/EXTENDING.md)"
                )
    return sd


@cache
def _own_revisions() -> frozenset[str]:
    """platformdb's revision ids (they do not change while the process runs)."""
    return frozenset(s.revision for s in script_directory(with_extensions=False).walk_revisions())


def head() -> str:
    """platformdb's own head revision (``platformdb@head``), whatever extensions are registered."""
    heads = script_directory(with_extensions=False).get_heads()
    if len(heads) != 1:
        raise UserError(f"platformdb's migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def heads() -> list[str]:
    """Every head: platformdb's and each registered extension's, sorted."""
    return sorted(script_directory().get_heads())


def check_revision(rev: str) -> None:
    """Raise UserError unless ``rev`` names a revision (or base/head, or a relative step like -1, or a branch's
    ``label@head`` / ``label@base``)."""
    if rev in ("base", "head", "heads") or (rev.lstrip("+-").isdigit() and rev[0] in "+-"):
        return
    label, at, where = rev.partition("@")
    if at and where in ("head", "base"):
        rev = label
    try:
        if script_directory().get_revision(rev) is None:
            raise UserError(f"unknown revision {rev!r}; see `platformdb history`")
    except CommandError as exc:
        raise UserError(f"unknown revision {rev!r}; see `platformdb history`") from exc


def current_heads(url: URL) -> list[str]:
    """Every revision the database is at (platformdb's and each extension's), sorted; [] when unmigrated."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            at = MigrationContext.configure(conn).get_current_heads()
    finally:
        eng.dispose()  # leave no pooled session behind
    return sorted(at)


def applied(url: URL) -> set[str]:
    """Every revision applied to the database: its heads and all they stand on (down revisions and depends_on;
    Alembic's version table keeps only the heads nothing else applied implies)."""
    return applied_from(current_heads(url))


def applied_from(at: Sequence[str]) -> set[str]:
    """Every revision implied by the version table's rows ``at`` (see :func:`applied`)."""
    if not at:
        return set()
    try:
        return {s.revision for s in script_directory().revision_map.iterate_revisions(tuple(at), "base")}
    except (RevisionError, CommandError) as exc:  # a revision no registered location provides
        raise UserError(
            f"the database is at {', '.join(at)}, which the registered migrations do not all know: is an extension "
            f"missing? (entry point group {extensions.GROUP})"
        ) from exc


def current(url: URL) -> str | None:
    """The platformdb revision the database is at, or None for an unmigrated database (extensions' revisions:
    :func:`current_heads`)."""
    done = applied(url)
    return next(
        (s.revision for s in script_directory(with_extensions=False).walk_revisions() if s.revision in done), None
    )


def require_head(url: URL) -> None:
    """Raise :class:`NotMigratedError` unless the database at ``url`` is at every head (platformdb's and each
    registered extension's)."""
    if not set(heads()) <= applied(url):
        raise NotMigratedError(f'database "{url.database}" ({display(url)})', ", ".join(current_heads(url)) or None)


def upgrade(url: URL, rev: str = "head", *, lock_timeout: str | None = None) -> None:
    """Migrate the database at ``url`` up to ``rev`` (``head`` means every head when extensions add their own);
    :class:`MigrationError` says where a failure left it."""
    if rev == "head" and len(heads()) > 1:
        rev = "heads"
    _migrate(command.upgrade, "upgrade", url, rev, lock_timeout)


def downgrade(url: URL, rev: str, *, lock_timeout: str | None = None) -> None:
    """Migrate the database at ``url`` down to ``rev`` (an id, ``-N`` or ``base``)."""
    _migrate(command.downgrade, "downgrade", url, rev, lock_timeout)


TIMEOUT = re.compile(r"0*[1-9]\d*(\.\d+)?\s*(us|ms|s|min|h|d)?|0*\.\d*[1-9]\d*\s*(us|ms|s|min|h|d)?")
"""A PostgreSQL duration that is not zero (zero would mean: wait for ever)."""


def _migrate(fn: Any, direction: str, url: URL, rev: str, lock_timeout: str | None) -> None:
    check_revision(rev)
    cfg = alembic_config(url)
    if lock_timeout is not None:
        if not TIMEOUT.fullmatch(lock_timeout.strip()):
            raise UserError(f"not a lock timeout: {lock_timeout!r} (more than zero, e.g. 2s, 500ms, 1min)")
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
    if to_rev == "head" and len(heads()) > 1:  # with extensions, head is every head
        to_rev = "heads"
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
        message = str(exc).splitlines()[0]
        if "Can't locate revision" in message:
            message += f" (a revision of an extension that is not installed? see entry point group {extensions.GROUP})"
        raise UserError(message) from exc
