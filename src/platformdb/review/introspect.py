"""The live schema as PostgreSQL's catalogs describe it: one reader, three uses.

:func:`read_schema` reads tables, columns, constraints, indexes, triggers, partitions and functions of a
schema into plain dataclasses. From them come the deterministic text snapshot the schema-drift tests compare
(:func:`snapshot`), the generated docs (``platformdb docs``) and the schema linter (``platformdb lint``). The
catalogs, not the ORM, are the source: they see triggers, partitions, partial indexes and comments.

"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from platformdb.models.base import SCHEMA, partition_kind

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
        return partition_kind(self.name) == "dated"


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


def _acl(column: str, kind: str, owner: str) -> sql.Composed:
    """SQL listing "grantee: PRIV, PRIV" for an ACL column, NULL read as the default, the owner left out (the
    owner's own privileges differ between server versions and say nothing about least privilege)."""
    return sql.SQL(
        """ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END || ': '
                            || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
                       FROM aclexplode(coalesce({column}, acldefault({kind}, {owner}))) a
                      WHERE a.grantee <> {owner} GROUP BY a.grantee ORDER BY 1)"""
    ).format(column=sql.Identifier(*column.split(".")), kind=sql.Literal(kind), owner=sql.Identifier(*owner.split(".")))


def read_schema(conn: psycopg.Connection[Any], schema: str = SCHEMA) -> Schema | None:
    """Everything of ``schema`` the catalogs know, or None when there is no such schema."""
    q = conn.execute
    row = q(
        sql.SQL("SELECT oid, obj_description(oid, 'pg_namespace'), {} FROM pg_namespace WHERE nspname = %s").format(
            _acl("nspacl", "n", "nspowner")
        ),
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
        sql.SQL(
            """SELECT c.oid, c.relname, c.relispartition, obj_description(c.oid, 'pg_class'),
                  pg_get_partkeydef(c.oid), pg_get_expr(c.relpartbound, c.oid),
                  (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid),
                  {}, coalesce(c.reloptions, '{{}}')
             FROM pg_class c WHERE c.relnamespace = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname"""
        ).format(_acl("c.relacl", "r", "c.relowner")),
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
            sql.SQL(
                """SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
                      obj_description(p.oid, 'pg_proc'), {}
                 FROM pg_proc p WHERE p.pronamespace = %s ORDER BY 1, 2"""
            ).format(_acl("p.proacl", "f", "p.proowner")),
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
            for a, b in q(
                sql.SQL("SELECT from_status, to_status FROM {} ORDER BY 1, 2").format(
                    sql.Identifier(schema, "deployment_status_transitions")
                )
            )
        ]
    return Schema(schema, schema_comment, tuple(schema_grants), tables, functions, sequences, transitions)


def table_names(conn: psycopg.Connection[Any], schema: str = SCHEMA) -> list[str]:
    """The tables of ``schema`` (partitioned parents, not their partitions), by name."""
    rows = conn.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1""",
        (schema,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def count_rows(conn: psycopg.Connection[Any], schema: str = SCHEMA) -> dict[str, int]:
    """Exact row count of every table of ``schema`` (a partitioned table counts its partitions' rows)."""
    counts = {}
    for table in table_names(conn, schema):
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
