"""``platformdb lint``: rules a senior DBA checks by eye, run over the live catalogs.

Drawn from tbls, SchemaCrawler and SchemaSpy. Each finding is one line with a rule id; a finding is allowed
only by a reasoned exception in ``lint_exceptions.toml`` (rule, object, reason). The same rules, run on the
original task's DDL, report its known defects (a test proves the linter bites).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from platformdb.models.base import SCHEMA
from platformdb.review.docs import model_facts
from platformdb.review.introspect import Index, Schema, Table

MAX_IDENTIFIER_BYTES = 63
AUDIT_CONTEXT = "audit"
_AUDITED_EVENTS = ("INSERT", "UPDATE", "DELETE")
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
    raw = text if text is not None else (files("platformdb.review") / "lint_exceptions.toml").read_text()
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


Check = Callable[[Schema, Table], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    says: str
    check: Check


REGISTRY: list[Rule] = []
"""Every rule, in id order: one function each, registered by :func:`rule`."""


def rule(rule_id: str, says: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        REGISTRY.append(Rule(rule_id, says, check))
        return check

    return register


def not_platformdbs(schema: Schema) -> list[str]:
    """Tables in schema platform that no platformdb model declares (an extension's, put there against advice):
    lint leaves them alone and says so in one line each."""
    if schema.name != SCHEMA:
        return []
    return sorted(set(schema.tables) - set(_contexts()))


def _all(schema: Schema) -> Iterator[Finding]:
    foreign = set(not_platformdbs(schema))
    for table in schema.tables.values():
        if table.name in foreign:
            continue
        for registered in REGISTRY:
            yield from registered.check(schema, table)


@rule("L001", "every table has a primary key")
def _primary_key(schema: Schema, t: Table) -> Iterator[Finding]:
    if t.primary_key is None:
        yield Finding("L001", t.name, "no primary key")


@rule("L002", "every table has a comment")
def _table_comment(schema: Schema, t: Table) -> Iterator[Finding]:
    if not t.comment:
        yield Finding("L002", t.name, "no comment")


@rule("L003", "every column has a comment")
def _column_comments(schema: Schema, t: Table) -> Iterator[Finding]:
    yield from (Finding("L003", f"{t.name}.{c.name}", "no comment") for c in t.columns if not c.comment)


@rule("L004", "every foreign key's columns lead some index")
def _foreign_key_indexed(schema: Schema, t: Table) -> Iterator[Finding]:
    for fk in t.foreign_keys:
        if not any(_leads(ix, fk.columns) for ix in t.indexes):
            yield Finding("L004", f"{t.name}.{fk.name}", f"no index leads with ({', '.join(fk.columns)})")


@rule("L005", "foreign key column types equal the referenced column types")
def _foreign_key_types(schema: Schema, t: Table) -> Iterator[Finding]:
    for fk in t.foreign_keys:
        ref = schema.tables.get(fk.ref_table or "")
        if ref is None:
            continue
        for c, rc in zip(fk.columns, fk.ref_columns, strict=True):
            a, b = t.column(c), ref.column(rc)
            if a and b and a.type != b.type:
                yield Finding("L005", f"{t.name}.{fk.name}", f"{c} is {a.type} but {fk.ref_table}.{rc} is {b.type}")


@rule("L006", "no redundant index (same or prefix columns and the same predicate as another)")
def _redundant_indexes(schema: Schema, t: Table) -> Iterator[Finding]:
    for ix in t.indexes:
        other = next((o for o in t.indexes if o.name != ix.name and _redundant(ix, o)), None)
        if other is not None:
            yield Finding("L006", f"{t.name}.{ix.name}", f"redundant with {other.name}")


@rule("L007", "no nullable column in a unique index unless NULLS NOT DISTINCT (or the index excludes its NULLs)")
def _nullable_unique(schema: Schema, t: Table) -> Iterator[Finding]:
    for ix in t.indexes:
        if ix.unique and not ix.nulls_not_distinct:
            # A partial index WHERE <col> IS NOT NULL holds no NULL of that column: nothing to collide.
            excluded = {c for c in ix.columns if ix.predicate and f"({c} IS NOT NULL)" in ix.predicate}
            nullable = [c for c in ix.columns
                        if (col := t.column(c)) is not None and not col.not_null and c not in excluded]  # fmt: skip
            if nullable:
                message = f"nullable {', '.join(nullable)} in a unique index: NULLs never collide"
                yield Finding("L007", f"{t.name}.{ix.name}", message)


@rule("L008", "timestamps are timestamptz")
def _timestamptz(schema: Schema, t: Table) -> Iterator[Finding]:
    for col in t.columns:
        if col.type.startswith("timestamp without"):
            yield Finding("L008", f"{t.name}.{col.name}", f"{col.type}: use timestamptz")


@rule("L009", "text with a CHECK, not varchar/char")
def _text_not_varchar(schema: Schema, t: Table) -> Iterator[Finding]:
    for col in t.columns:
        if col.type.startswith("character"):
            yield Finding("L009", f"{t.name}.{col.name}", f"{col.type}: use text with a CHECK on its length")


@rule("L010", "every table has created_at timestamptz NOT NULL DEFAULT now()")
def _created_at(schema: Schema, t: Table) -> Iterator[Finding]:
    created = t.column("created_at")
    if created is None:
        yield Finding("L010", t.name, "no created_at")
    elif not (created.type == "timestamp with time zone" and created.not_null and created.default == "now()"):
        yield Finding("L010", f"{t.name}.created_at", "must be timestamptz NOT NULL DEFAULT now()")


@rule("L011", "mutable tables keep updated_at by trigger; the others refuse UPDATE")
def _updated_at_or_immutable(schema: Schema, t: Table) -> Iterator[Finding]:
    update_triggers = [tr for tr in t.triggers if "UPDATE" in tr.events and tr.timing == "BEFORE"]
    if t.column("updated_at") is not None:
        if not any(tr.function == "set_updated_at" for tr in update_triggers):
            yield Finding("L011", t.name, "has updated_at but no trigger keeps it")
    elif not any(tr.function == "forbid_change" for tr in update_triggers):
        yield Finding("L011", t.name, "no updated_at, yet nothing refuses UPDATE")


@rule("L012", "names follow the naming convention and fit in 63 bytes")
def _naming(schema: Schema, t: Table) -> Iterator[Finding]:
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


@rule("L013", "no table without relations")
def _has_relations(schema: Schema, t: Table) -> Iterator[Finding]:
    if not t.foreign_keys and not schema.referencing(t.name):
        yield Finding("L013", t.name, "no foreign key in or out")


@rule("L014", "no implied but undeclared foreign key (a *_id column without one)")
def _implied_foreign_keys(schema: Schema, t: Table) -> Iterator[Finding]:
    referencing = {c for fk in t.foreign_keys for c in fk.columns}
    key = t.primary_key.columns if t.primary_key else ()
    for col in t.columns:
        if col.name.endswith("_id") and col.name not in referencing and key != (col.name,):
            yield Finding("L014", f"{t.name}.{col.name}", "looks like a reference but has no foreign key")


@rule("L015", "no single-column index on a low-selectivity column (status, state, type, boolean)")
def _low_selectivity_index(schema: Schema, t: Table) -> Iterator[Finding]:
    for ix in t.indexes:
        if len(ix.columns) == 1 and not ix.unique and not ix.predicate and _LOW_SELECTIVITY.match(ix.columns[0]):
            yield Finding("L015", f"{t.name}.{ix.name}", f"single-column index on low-selectivity {ix.columns[0]}")


@rule("L016", "every foreign key states ON DELETE (RESTRICT or CASCADE, not the default NO ACTION)")
def _on_delete_stated(schema: Schema, t: Table) -> Iterator[Finding]:
    for fk in t.foreign_keys:
        if fk.on_delete == "NO ACTION":
            message = "ON DELETE not stated (NO ACTION): decide RESTRICT or CASCADE"
            yield Finding("L016", f"{t.name}.{fk.name}", message)


@rule("L017", "no array columns (a repeating group: not 1NF)")
def _no_arrays(schema: Schema, t: Table) -> Iterator[Finding]:
    for col in t.columns:
        if col.type.endswith("[]"):
            message = f"array column {col.type}: a repeating group belongs in its own table"
            yield Finding("L017", f"{t.name}.{col.name}", message)


@rule("L018", "a primary key column has a default (identity or generated key)")
def _key_default(schema: Schema, t: Table) -> Iterator[Finding]:
    pk = t.primary_key
    if pk is None or len(pk.columns) != 1:
        return
    key = t.column(pk.columns[0])
    fk_col = any(pk.columns[0] in fk.columns for fk in t.foreign_keys)
    if key is not None and not key.default and not key.identity and not fk_col:
        yield Finding("L018", f"{t.name}.{key.name}", "primary key without a default: every writer must invent keys")


@rule("L019", "every table outside the audit context has an audit trigger (calling platform.audit_capture)")
def _audited(schema: Schema, t: Table) -> Iterator[Finding]:
    if schema.name == SCHEMA and _contexts().get(t.name) == AUDIT_CONTEXT:  # an unknown table is outside it too
        return
    audit = [tr for tr in t.triggers if tr.function == "audit_capture"]
    if not audit:
        yield Finding("L019", t.name, "no audit trigger: its changes leave no audit_logs row")
    elif not set(_AUDITED_EVENTS) <= {  # one trigger, or one per event (a WHEN clause may skip some updates)
        event for tr in audit if tr.timing == "AFTER" and "FOR EACH ROW" in tr.definition for event in tr.events
    }:
        yield Finding("L019", t.name, "audit trigger must be AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW")


RULES: dict[str, str] = {r.id: r.says for r in REGISTRY}
"""Rule id -> what it says."""


@cache
def _contexts() -> dict[str, str]:
    """table -> bounded context, as the models declare it (L019)."""
    return {table: context for table, (context, _) in model_facts().items()}


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
