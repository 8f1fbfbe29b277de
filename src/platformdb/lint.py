"""``platformdb lint``: rules a senior DBA checks by eye, run over the live catalogs.

Drawn from tbls, SchemaCrawler and SchemaSpy. Each finding is one line with a rule id; a finding is allowed
only by a reasoned exception in ``lint_exceptions.toml`` (rule, object, reason). The same rules, run on the
original task's DDL, report its known defects (a test proves the linter bites).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from platformdb.introspect import Index, Schema, Table

MAX_IDENTIFIER_BYTES = 63
RULES: dict[str, str] = {
    "L001": "every table has a primary key",
    "L002": "every table has a comment",
    "L003": "every column has a comment",
    "L004": "every foreign key's columns lead some index",
    "L005": "foreign key column types equal the referenced column types",
    "L006": "no redundant index (same or prefix columns and the same predicate as another)",
    "L007": "no nullable column in a unique index unless NULLS NOT DISTINCT",
    "L008": "timestamps are timestamptz",
    "L009": "text with a CHECK, not varchar/char",
    "L010": "every table has created_at timestamptz NOT NULL DEFAULT now()",
    "L011": "mutable tables keep updated_at by trigger; the others refuse UPDATE",
    "L012": "names follow the naming convention and fit in 63 bytes",
    "L013": "no table without relations",
    "L014": "no implied but undeclared foreign key (a *_id column without one)",
    "L015": "no single-column index on a low-selectivity column (status, state, type, boolean)",
    "L016": "every foreign key states ON DELETE (RESTRICT or CASCADE, not the default NO ACTION)",
    "L017": "no array columns (a repeating group: not 1NF)",
    "L018": "a primary key column has a default (identity or generated key)",
}
_LOW_SELECTIVITY = re.compile(r"^(status|state|type|kind|is_\w+|has_\w+)$")
_PREFIX = {"p": "pk", "f": "fk", "u": "uq", "c": "ck", "x": "ex"}


@dataclass(frozen=True, order=True)
class Finding:
    rule: str
    obj: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} {self.obj}: {self.message}"


@dataclass(frozen=True)
class LintException:
    rule: str
    obj: str
    reason: str


def load_exceptions(text: str | None = None) -> list[LintException]:
    """The reasoned exceptions shipped with the package (or parsed from ``text``)."""
    raw = text if text is not None else (files("platformdb") / "lint_exceptions.toml").read_text()
    data: dict[str, Any] = tomllib.loads(raw)
    out = []
    for item in data.get("exception", []):
        if not str(item.get("reason", "")).strip():
            raise ValueError(f"lint exception {item} has no reason")
        out.append(LintException(item["rule"], item["object"], item["reason"]))
    return out


def lint(schema: Schema, exceptions: list[LintException] | None = None) -> tuple[list[Finding], list[Finding]]:
    """(findings not excepted, findings excepted), each sorted."""
    allowed = {(e.rule, e.obj) for e in (exceptions or [])}
    found = sorted(set(_all(schema)))
    return [f for f in found if (f.rule, f.obj) not in allowed], [f for f in found if (f.rule, f.obj) in allowed]


def _all(schema: Schema) -> Iterator[Finding]:
    for table in schema.tables.values():
        yield from _table_rules(schema, table)


def _table_rules(schema: Schema, t: Table) -> Iterator[Finding]:
    name = t.name
    if t.primary_key is None:
        yield Finding("L001", name, "no primary key")
    if not t.comment:
        yield Finding("L002", name, "no comment")
    for col in t.columns:
        obj = f"{name}.{col.name}"
        if not col.comment:
            yield Finding("L003", obj, "no comment")
        if col.type.startswith("timestamp without"):
            yield Finding("L008", obj, f"{col.type}: use timestamptz")
        if col.type.startswith("character"):
            yield Finding("L009", obj, f"{col.type}: use text with a CHECK on its length")
        if col.type.endswith("[]"):
            yield Finding("L017", obj, f"array column {col.type}: a repeating group belongs in its own table")
        if col.name.endswith("_id") and not any(col.name in fk.columns for fk in t.foreign_keys):
            pk = t.primary_key
            if not (pk and pk.columns == (col.name,)):
                yield Finding("L014", obj, "looks like a reference but has no foreign key")

    pk = t.primary_key
    if pk is not None:
        for c in pk.columns:
            key = t.column(c)
            fk_col = any(c in fk.columns for fk in t.foreign_keys)
            if key is not None and not key.default and not key.identity and not fk_col and len(pk.columns) == 1:
                yield Finding("L018", f"{name}.{c}", "primary key without a default: every writer must invent keys")

    for fk in t.foreign_keys:
        obj = f"{name}.{fk.name}"
        if not any(_leads(ix, fk.columns) for ix in t.indexes):
            yield Finding("L004", obj, f"no index leads with ({', '.join(fk.columns)})")
        ref = schema.tables.get(fk.ref_table or "")
        if ref is not None:
            for c, rc in zip(fk.columns, fk.ref_columns, strict=True):
                a, b = t.column(c), ref.column(rc)
                if a and b and a.type != b.type:
                    yield Finding("L005", obj, f"{c} is {a.type} but {fk.ref_table}.{rc} is {b.type}")
        if fk.on_delete == "NO ACTION":
            yield Finding("L016", obj, "ON DELETE not stated (NO ACTION): decide RESTRICT or CASCADE")

    for ix in t.indexes:
        obj = f"{name}.{ix.name}"
        for other in t.indexes:
            if other.name != ix.name and _redundant(ix, other):
                yield Finding("L006", obj, f"redundant with {other.name}")
                break
        if ix.unique and not ix.nulls_not_distinct:
            nullable = [c for c in ix.columns if (ixcol := t.column(c)) is not None and not ixcol.not_null]
            if nullable:
                yield Finding("L007", obj, f"nullable {', '.join(nullable)} in a unique index: NULLs never collide")
        if len(ix.columns) == 1 and not ix.unique and not ix.predicate and _LOW_SELECTIVITY.match(ix.columns[0]):
            yield Finding("L015", obj, f"single-column index on low-selectivity {ix.columns[0]}")

    created = t.column("created_at")
    if created is None:
        yield Finding("L010", name, "no created_at")
    elif not (created.type == "timestamp with time zone" and created.not_null and created.default == "now()"):
        yield Finding("L010", f"{name}.created_at", "must be timestamptz NOT NULL DEFAULT now()")

    update_triggers = [tr for tr in t.triggers if "UPDATE" in tr.events and tr.timing == "BEFORE"]
    if t.column("updated_at") is not None:
        if not any(tr.function == "set_updated_at" for tr in update_triggers):
            yield Finding("L011", name, "has updated_at but no trigger keeps it")
    elif not any(tr.function == "forbid_change" for tr in update_triggers):
        yield Finding("L011", name, "no updated_at, yet nothing refuses UPDATE")

    yield from _naming(t)
    if not t.foreign_keys and not schema.referencing(name):
        yield Finding("L013", name, "no foreign key in or out")


def _leads(ix: Index, columns: tuple[str, ...]) -> bool:
    """Whether the index's leading columns are exactly ``columns`` (in any order)."""
    return set(ix.columns[: len(columns)]) == set(columns)


def _redundant(ix: Index, other: Index) -> bool:
    """``ix`` adds nothing that ``other`` does not give: same predicate, and its columns a prefix of other's.

    A unique index is never redundant with a wider one (it enforces something the wider one does not);
    two identical indexes are redundant whatever they enforce, and the later name is reported.
    """
    if ix.predicate != other.predicate or ix.columns != other.columns[: len(ix.columns)]:
        return False
    if ix.columns == other.columns:
        if ix.unique != other.unique:
            return not ix.unique
        return ix.name > other.name
    return not ix.unique


def _naming(t: Table) -> Iterator[Finding]:
    name = t.name
    for con in t.constraints:
        expected = f"{_PREFIX[con.kind]}_{name}" + ("" if con.kind == "p" else "_")
        if not (con.name == expected if con.kind == "p" else con.name.startswith(expected)):
            yield Finding("L012", f"{name}.{con.name}", f"constraint name should start with {expected}")
    for ix in t.indexes:
        if ix.constraint is None and not ix.name.startswith((f"ix_{name}_", f"uq_{name}_")):
            yield Finding("L012", f"{name}.{ix.name}", f"index name should start with ix_{name}_ or uq_{name}_")
    for tr in t.triggers:
        if not tr.name.startswith(f"trg_{name}_"):
            yield Finding("L012", f"{name}.{tr.name}", f"trigger name should start with trg_{name}_")
    names = [name, *(c.name for c in t.columns), *(c.name for c in t.constraints), *(i.name for i in t.indexes),
             *(tr.name for tr in t.triggers)]  # fmt: skip
    for n in names:
        if len(n.encode()) > MAX_IDENTIFIER_BYTES:
            yield Finding("L012", f"{name}.{n}", f"{len(n.encode())} bytes: PostgreSQL truncates names at 63")
