"""The query catalog for services in other languages: named SQL files with ``$1`` parameters and a manifest.

Each query becomes ``<context>/<name>.sql`` with an sqlc header (``-- name: MayUserDo :many``), and
``manifest.json`` lists every query's name, caller, group roles, kind, SQL, parameters in order and result
columns, with their PostgreSQL types. The types are the database's own: each query is prepared on a migrated
database and described (libpq's DescribePrepared), so the export needs one at head and never guesses.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.pq import ExecStatus

from platformdb.migrate import head
from platformdb.queries import CATALOG, Query

Format = Literal["sql", "json"]
FORMATS: tuple[Format, ...] = ("sql", "json")
"""``sql``: one file per query and manifest.json; ``json``: manifest.json alone, the SQL inside it."""
MANIFEST = "manifest.json"
_STATEMENT = b"platformdb_export"


@dataclass(frozen=True)
class Typed:
    name: str
    type: str
    """PostgreSQL's name of the type (``format_type``): uuid, text, bigint, timestamp with time zone..."""


@dataclass(frozen=True)
class Exported:
    name: str
    """The catalog name, ``<context>.<query>``."""
    sqlc_name: str
    """The name in the sqlc header: the query's own name in CamelCase, unique in the catalog."""
    context: str
    kind: str
    roles: list[str]
    caller: str
    sql: str
    """The SQL with ``$1, $2...`` for the parameters, in the order of ``parameters``."""
    parameters: list[Typed]
    columns: list[Typed]
    file: str | None = None
    """The .sql file, relative to the manifest (``sql`` format only)."""


def sqlc_name(query: Query) -> str:
    return "".join(part.capitalize() for part in query.name.split(".", 1)[1].split("_"))


def _type_names(conn: psycopg.Connection[Any], types: list[tuple[int, int]]) -> list[str]:
    if not types:
        return []
    rows = conn.execute(
        "SELECT format_type(t.oid, nullif(t.mod, -1))"
        "  FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS t(oid, mod, i) ORDER BY t.i",
        ([oid for oid, _ in types], [mod for _, mod in types]),
    ).fetchall()
    return [str(name) for (name,) in rows]


def describe(conn: psycopg.Connection[Any], query: Query) -> tuple[list[Typed], list[Typed]]:
    """The parameters and result columns of ``query`` with their types, as the database prepares it."""
    pgconn = conn.pgconn
    prepared = pgconn.prepare(_STATEMENT, query.positional_sql().encode())
    if prepared.status != ExecStatus.COMMAND_OK:
        raise psycopg.DatabaseError(f"{query.name}: {(prepared.error_message or b'').decode().strip()}")
    try:
        desc = pgconn.describe_prepared(_STATEMENT)
        params = [(desc.param_type(i), -1) for i in range(desc.nparams)]
        fields = [(desc.ftype(i), desc.fmod(i)) for i in range(desc.nfields)]
        names = [(desc.fname(i) or b"").decode() for i in range(desc.nfields)]
    finally:
        pgconn.exec_(b"DEALLOCATE " + _STATEMENT)
    param_types, column_types = _type_names(conn, params), _type_names(conn, fields)
    return (
        [Typed(n, t) for n, t in zip(query.param_names, param_types, strict=True)],
        [Typed(n, t) for n, t in zip(names, column_types, strict=True)],
    )


def catalog(conn: psycopg.Connection[Any]) -> list[Exported]:
    """Every catalog query, described on ``conn`` (an autocommit connection to a database at head)."""
    exported = []
    for query in CATALOG.values():
        parameters, columns = describe(conn, query)
        exported.append(
            Exported(
                name=query.name,
                sqlc_name=sqlc_name(query),
                context=query.context,
                kind=query.kind,
                roles=list(query.roles),
                caller=query.caller,
                sql=query.positional_sql().strip() + "\n",
                parameters=parameters,
                columns=columns,
            )
        )
    names = [e.sqlc_name for e in exported]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two catalog queries share an sqlc name: {sorted(n for n in names if names.count(n) > 1)}")
    return exported


def sql_file(query: Exported) -> str:
    """The query as an sqlc input file: its header (name, catalog name, roles, parameters, caller) and SQL."""
    lines = [f"-- name: {query.sqlc_name} :many", f"-- platformdb: {query.name} ({query.kind})"]
    lines.append(f"-- roles: {', '.join(query.roles)}")
    lines += [f"-- ${i} {p.name} {p.type}" for i, p in enumerate(query.parameters, 1)]
    lines += [f"-- {line}" for line in textwrap.wrap(query.caller, 116)]
    return "\n".join(lines) + "\n" + query.sql.rstrip().rstrip(";") + ";\n"


def write(exported: list[Exported], out: Path, fmt: Format) -> list[Path]:
    """Write ``exported`` to ``out`` in ``fmt``; the paths written (the manifest last)."""
    written = []
    entries = []
    for query in exported:
        if fmt == "sql":
            path = out / query.context / f"{query.name.split('.', 1)[1]}.sql"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(sql_file(query))
            written.append(path)
            query = replace(query, file=str(path.relative_to(out)))
        entries.append(asdict(query))
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    document = {"format": 1, "revision": head(), "queries": entries}  # the schema revision the types are of
    manifest.write_text(json.dumps(document, indent=2) + "\n")
    return [*written, manifest]
