"""A deterministic text snapshot of the live ``platform`` schema, read from the PostgreSQL catalogs.

The snapshot covers what the ORM cannot see (functions, triggers, partitions, index comments), so it is
what the schema-drift tests compare: migrations against ``metadata.create_all``, upgrade-downgrade-upgrade
round trips, and the committed ``docs/schema-snapshot.txt``. Run ``python -m platformdb.introspect`` to
print the snapshot of the database in ``PLATFORMDB_DATABASE_URL`` (or the embedded server).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

SCHEMA = "platform"
VERSION_SPECIFIC_FUNCTIONS = {"uuidv7"}
"""Functions whose body depends on the server version by design (native uuidv7 on 18, SQL before)."""
_DATED_PARTITION = re.compile(r"_p\d{4}_\d{2}(_\d{2})?$")


def snapshot(conn: psycopg.Connection[Any], *, dated_partitions: bool = True, portable: bool = False) -> str:
    """The schema as sorted text lines.

    ``dated_partitions=False`` leaves out the calendar partitions that migrations create relative to today
    (the scheme and the DEFAULT partition stay). ``portable=True`` also hides what legitimately differs
    between server versions, so one committed snapshot serves PostgreSQL 15 to 18.
    """
    lines: list[str] = []
    q = conn.execute
    comment = q("SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (SCHEMA,))
    row = comment.fetchone()
    if row is None:
        return ""
    lines.append(f"schema {SCHEMA}: {row[0]}")

    tables = q(
        """SELECT c.oid, c.relname, c.relkind, c.relispartition, obj_description(c.oid, 'pg_class'),
                  pg_get_partkeydef(c.oid), pg_get_expr(c.relpartbound, c.oid),
                  (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                    WHERE i.inhrelid = c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
            ORDER BY c.relname""",
        (SCHEMA,),
    ).fetchall()
    for oid, name, _kind, is_partition, tcomment, partkey, bound, parent in tables:
        if is_partition:
            if not dated_partitions and _DATED_PARTITION.search(name):
                continue
            lines.append(f"partition {name} of {parent}: {bound} -- {tcomment}")
            continue
        lines.append(f"table {name} -- {tcomment}")
        if partkey:
            lines.append(f"  partition by {partkey}")
        for col in q(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid), a.attidentity, col_description(a.attrelid, a.attnum)
                 FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
            (oid,),
        ):
            cname, ctype, notnull, default, identity, ccomment = col
            parts = [f"  column {cname} {ctype}", "not null" if notnull else "null"]
            if identity:
                parts.append("generated " + ("always" if identity == "a" else "by default") + " as identity")
            if default:
                parts.append(f"default {default}")
            lines.append(" ".join(parts) + f" -- {ccomment}")
        for cname, cdef in q(
            """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                WHERE conrelid = %s AND contype <> 'n' ORDER BY conname""",
            (oid,),
        ):
            lines.append(f"  constraint {cname}: {cdef}")
        for iname, idef, icomment in q(
            """SELECT i.relname, pg_get_indexdef(i.oid), obj_description(i.oid, 'pg_class')
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = %s ORDER BY i.relname""",
            (oid,),
        ):
            lines.append(f"  index {iname}: {idef}" + (f" -- {icomment}" if icomment else ""))
        for tname, tdef in q(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal"
            " ORDER BY tgname",
            (oid,),
        ):
            lines.append(f"  trigger {tname}: {tdef}")

    # Reference data that migrations write is schema too: the legal deployment transitions.
    if any(t[1] == "deployment_status_transitions" for t in tables):
        for from_status, to_status in q(
            "SELECT from_status, to_status FROM platform.deployment_status_transitions ORDER BY 1, 2"
        ):
            lines.append(f"reference deployment_status_transitions: {from_status} -> {to_status}")

    for fname, fargs, fdef, fcomment in q(
        """SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
                  obj_description(p.oid, 'pg_proc')
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = %s ORDER BY p.proname, 2""",
        (SCHEMA,),
    ):
        lines.append(f"function {fname}({fargs}) -- {fcomment}")
        if portable and fname in VERSION_SPECIFIC_FUNCTIONS:
            lines.append("  <body depends on the server version>")
            continue
        lines.extend("  | " + line.rstrip() for line in fdef.strip().splitlines())

    for sname, stype in q(
        """SELECT c.relname, format_type(s.seqtypid, NULL) FROM pg_sequence s
             JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s ORDER BY 1""",
        (SCHEMA,),
    ):
        lines.append(f"sequence {sname} {stype}")
    return "\n".join(lines) + "\n"


def main() -> None:
    from platformdb.db import connect, resolve_url

    with connect(resolve_url()) as conn:
        print(snapshot(conn, dated_partitions=False, portable=True), end="")


if __name__ == "__main__":
    main()
