"""The schema as deterministic text: what the schema-drift tests compare and ``docs/schema-snapshot.txt`` holds."""

from __future__ import annotations

from typing import Any

import psycopg

from platformdb.review.introspect import read_schema

VERSION_SPECIFIC_FUNCTIONS = {"uuidv7"}
"""Functions whose body depends on the server version by design (native uuidv7 on 18, SQL before)."""


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
