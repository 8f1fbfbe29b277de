"""The live schema as PostgreSQL's catalogs describe it: one reader, three uses.

:func:`read_schema` reads tables, columns, constraints, indexes, triggers, partitions and functions of a
schema into plain dataclasses. From them come the deterministic text snapshot the schema-drift tests compare
(:func:`snapshot`), the generated docs (``platformdb docs``) and the schema linter (``platformdb lint``). The
catalogs, not the ORM, are the source: they see triggers, partitions, partial indexes and comments.

``python -m platformdb.introspect`` prints the snapshot of the database in ``PLATFORMDB_DATABASE_URL`` (or
the embedded server's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

SCHEMA = "platform"
VERSION_SPECIFIC_FUNCTIONS = {"uuidv7"}
"""Functions whose body depends on the server version by design (native uuidv7 on 18, SQL before)."""
DATED_PARTITION = re.compile(r"_p\d{4}_\d{2}(_\d{2})?$")
_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: str | None  # "always", "by default" or None
    comment: str | None


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # p(rimary key), f(oreign key), u(nique), c(heck), x (exclusion)
    definition: str
    columns: tuple[str, ...]
    ref_table: str | None = None
    ref_columns: tuple[str, ...] = ()
    on_delete: str | None = None


@dataclass(frozen=True)
class Index:
    name: str
    definition: str
    columns: tuple[str, ...]  # expressions appear as their text
    unique: bool
    predicate: str | None
    nulls_not_distinct: bool
    constraint: str | None  # the constraint this index implements, if any
    comment: str | None


@dataclass(frozen=True)
class Trigger:
    name: str
    definition: str
    function: str
    events: tuple[str, ...]  # INSERT, UPDATE, DELETE, TRUNCATE
    timing: str  # BEFORE, AFTER, INSTEAD OF


@dataclass(frozen=True)
class Partition:
    name: str
    bound: str
    comment: str | None
    options: tuple[str, ...] = ()

    @property
    def dated(self) -> bool:
        return bool(DATED_PARTITION.search(self.name))


@dataclass
class Table:
    name: str
    comment: str | None
    partition_key: str | None
    options: tuple[str, ...] = ()  # storage parameters (reloptions), e.g. fillfactor=90
    grants: tuple[str, ...] = ()  # "role: PRIVILEGE, ..." for every grantee but the owner
    column_grants: tuple[str, ...] = ()  # "role (column): PRIVILEGE, ..."
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    partitions: list[Partition] = field(default_factory=list)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def primary_key(self) -> Constraint | None:
        return next((c for c in self.constraints if c.kind == "p"), None)

    @property
    def foreign_keys(self) -> list[Constraint]:
        return [c for c in self.constraints if c.kind == "f"]


@dataclass(frozen=True)
class Function:
    name: str
    arguments: str
    definition: str
    comment: str | None
    grants: tuple[str, ...] = ()


@dataclass
class Schema:
    name: str
    comment: str | None
    grants: tuple[str, ...]
    tables: dict[str, Table]
    functions: list[Function]
    sequences: list[tuple[str, str]]
    transitions: list[tuple[str, str]]

    def referencing(self, table: str) -> list[tuple[Table, Constraint]]:
        """Foreign keys of other tables (and this one) that point at ``table``."""
        return [(t, fk) for t in self.tables.values() for fk in t.foreign_keys if fk.ref_table == table]


def _acl(expr: str, kind: str, owner: str) -> str:
    """SQL listing "grantee: PRIV, PRIV" for an ACL column, NULL read as the default, the owner left out (the
    owner's own privileges differ between server versions and say nothing about least privilege)."""
    return f"""ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END || ': '
                            || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
                       FROM aclexplode(coalesce({expr}, acldefault('{kind}', {owner}))) a
                      WHERE a.grantee <> {owner} GROUP BY a.grantee ORDER BY 1)"""


def read_schema(conn: psycopg.Connection[Any], schema: str = SCHEMA) -> Schema | None:
    """Everything of ``schema`` the catalogs know, or None when there is no such schema."""
    q = conn.execute
    row = q(
        f"SELECT oid, obj_description(oid, 'pg_namespace'), {_acl('nspacl', 'n', 'nspowner')}"
        " FROM pg_namespace WHERE nspname = %s",
        (schema,),
    )
    found = row.fetchone()
    if found is None:
        return None
    nsp_oid, schema_comment, schema_grants = found
    tables: dict[str, Table] = {}
    oids: dict[int, Table] = {}
    parents: list[tuple[str, Partition]] = []
    for oid, name, is_partition, comment, partkey, bound, parent, grants, options in q(
        f"""SELECT c.oid, c.relname, c.relispartition, obj_description(c.oid, 'pg_class'),
                  pg_get_partkeydef(c.oid), pg_get_expr(c.relpartbound, c.oid),
                  (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid),
                  {_acl("c.relacl", "r", "c.relowner")}, coalesce(c.reloptions, '{{}}')
             FROM pg_class c WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname""",
        (nsp_oid,),
    ):
        if is_partition:
            parents.append((parent, Partition(name, bound, comment, tuple(sorted(options)))))
            continue
        oids[oid] = tables[name] = Table(name, comment, partkey, tuple(sorted(options)), tuple(grants))
    for parent, partition in parents:
        if parent in tables:
            tables[parent].partitions.append(partition)

    for relid, name, typ, not_null, default, identity, comment in q(
        """SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid), a.attidentity, col_description(a.attrelid, a.attnum)
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum""",
        (list(oids),),
    ):
        ident = {"a": "always", "d": "by default"}.get(identity or "")
        oids[relid].columns.append(Column(name, typ, not_null, default, ident, comment))

    for relid, grants in q(
        """SELECT a.attrelid, ARRAY(SELECT x.grantee::regrole::text || ' (' || a.attname || '): '
                                           || string_agg(x.privilege_type, ', ' ORDER BY x.privilege_type)
                                      FROM aclexplode(a.attacl) x GROUP BY x.grantee ORDER BY 1)
             FROM pg_attribute a
            WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
            ORDER BY a.attrelid, a.attnum""",
        (list(oids),),
    ):
        oids[relid].column_grants += tuple(grants)

    for relid, name, kind, definition, cols, ref_table, ref_cols, deltype in q(
        """SELECT c.conrelid, c.conname, c.contype, pg_get_constraintdef(c.oid),
                  ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
                  r.relname,
                  ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o),
                  c.confdeltype
             FROM pg_constraint c LEFT JOIN pg_class r ON r.oid = c.confrelid
            WHERE c.conrelid = ANY(%s) AND c.contype IN ('p', 'f', 'u', 'c', 'x') ORDER BY c.conname""",
        (list(oids),),
    ):
        oids[relid].constraints.append(
            Constraint(name, kind, definition, tuple(cols), ref_table, tuple(ref_cols), _ON_DELETE.get(deltype or ""))
        )

    for relid, name, definition, unique, predicate, nnd, constraint, comment, cols in q(
        """SELECT x.indrelid, i.relname, pg_get_indexdef(i.oid), x.indisunique, pg_get_expr(x.indpred, x.indrelid),
                  coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false),
                  (SELECT conname FROM pg_constraint c
                    WHERE c.conindid = i.oid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')),
                  obj_description(i.oid, 'pg_class'),
                  ARRAY(SELECT pg_get_indexdef(i.oid, k, true) FROM generate_series(1, x.indnkeyatts) k)
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = ANY(%s) ORDER BY i.relname""",
        (list(oids),),
    ):
        oids[relid].indexes.append(Index(name, definition, tuple(cols), unique, predicate, nnd, constraint, comment))

    for relid, name, definition, function, tgtype in q(
        """SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid), p.proname, t.tgtype
             FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = ANY(%s) AND NOT t.tgisinternal ORDER BY t.tgname""",
        (list(oids),),
    ):
        events = tuple(e for bit, e in ((4, "INSERT"), (8, "DELETE"), (16, "UPDATE"), (32, "TRUNCATE")) if tgtype & bit)
        timing = "INSTEAD OF" if tgtype & 64 else ("BEFORE" if tgtype & 2 else "AFTER")
        oids[relid].triggers.append(Trigger(name, definition, function, events, timing))

    functions = [
        Function(name, args, definition, comment, tuple(grants))
        for name, args, definition, comment, grants in q(
            f"""SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
                      obj_description(p.oid, 'pg_proc'), {_acl("p.proacl", "f", "p.proowner")}
                 FROM pg_proc p WHERE p.pronamespace = %s ORDER BY 1, 2""",
            (nsp_oid,),
        )
    ]
    sequences = [
        (str(n), str(t))
        for n, t in q(
            """SELECT c.relname, format_type(s.seqtypid, NULL) FROM pg_sequence s
                 JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = %s ORDER BY 1""",
            (nsp_oid,),
        )
    ]
    transitions: list[tuple[str, str]] = []
    if "deployment_status_transitions" in tables:
        # Reference data that migrations write is schema too: the legal deployment transitions.
        transitions = [
            (str(a), str(b))
            for a, b in q(f"SELECT from_status, to_status FROM {schema}.deployment_status_transitions ORDER BY 1, 2")
        ]
    return Schema(schema, schema_comment, tuple(schema_grants), tables, functions, sequences, transitions)


def snapshot(conn: psycopg.Connection[Any], *, dated_partitions: bool = True, portable: bool = False) -> str:
    """The schema as sorted text lines.

    ``dated_partitions=False`` leaves out the calendar partitions that migrations create relative to today
    (the scheme and the DEFAULT partition stay). ``portable=True`` also hides what legitimately differs
    between server versions, so one committed snapshot serves PostgreSQL 15 to 18.
    """
    schema = read_schema(conn)
    if schema is None:
        return ""
    lines = [f"schema {schema.name}: {schema.comment}"]
    lines.extend(f"  grant {g}" for g in schema.grants)
    for table in schema.tables.values():
        lines.append(f"table {table.name} -- {table.comment}")
        if table.partition_key:
            lines.append(f"  partition by {table.partition_key}")
        if table.options:
            lines.append(f"  with ({', '.join(table.options)})")
        for col in table.columns:
            parts = [f"  column {col.name} {col.type}", "not null" if col.not_null else "null"]
            if col.identity:
                parts.append(f"generated {col.identity} as identity")
            if col.default:
                parts.append(f"default {col.default}")
            lines.append(" ".join(parts) + f" -- {col.comment}")
        lines.extend(f"  constraint {c.name}: {c.definition}" for c in table.constraints)
        lines.extend(
            f"  index {i.name}: {i.definition}" + (f" -- {i.comment}" if i.comment else "") for i in table.indexes
        )
        lines.extend(f"  trigger {t.name}: {t.definition}" for t in table.triggers)
        lines.extend(f"  grant {g}" for g in (*table.grants, *sorted(table.column_grants)))
        for part in sorted(table.partitions, key=lambda p: p.name):
            if dated_partitions or not part.dated:
                options = f" with ({', '.join(part.options)})" if part.options else ""
                lines.append(f"partition {part.name} of {table.name}: {part.bound}{options} -- {part.comment}")
    for from_status, to_status in schema.transitions:
        lines.append(f"reference deployment_status_transitions: {from_status} -> {to_status}")
    for fn in schema.functions:
        lines.append(f"function {fn.name}({fn.arguments}) -- {fn.comment}")
        lines.extend(f"  grant {g}" for g in fn.grants)
        if portable and fn.name in VERSION_SPECIFIC_FUNCTIONS:
            lines.append("  <body depends on the server version>")
            continue
        lines.extend("  | " + line.rstrip() for line in fn.definition.strip().splitlines())
    lines.extend(f"sequence {name} {typ}" for name, typ in schema.sequences)
    return "\n".join(lines) + "\n"


def main() -> None:
    from platformdb.db import connect, resolve_url

    with connect(resolve_url()) as conn:
        print(snapshot(conn, dated_partitions=False, portable=True), end="")


if __name__ == "__main__":
    main()
