"""``platformdb docs``: the ERD and data dictionary, generated from a live, migrated database.

Everything is read from the PostgreSQL catalogs (:mod:`platformdb.review.introspect`), so triggers, partitions,
partial indexes and comments appear as they really are. Only two facts come from the models, because the
catalogs cannot hold them: which bounded context a table belongs to, and its expected volume.

Output (``docs/schema/``) is deterministic: sorted, no timestamps, no row counts, no dated partitions,
so ``platformdb docs --check`` can regenerate it into a temporary directory and diff.
"""

from __future__ import annotations

import difflib
import filecmp
import html
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from platformdb.contexts import CONTEXTS, NAMES
from platformdb.errors import UserError
from platformdb.review.introspect import Constraint, Schema, Table

CONTEXT_COLORS = {c.name: c.color for c in CONTEXTS}
VOLUMES = {
    "reference": "reference data: tens of rows, written by migrations",
    "small": "small: up to ~10^4 rows",
    "medium": "medium: up to ~10^6 rows",
    "large": "large: up to ~10^8 rows",
    "huge": "huge: 10^8+ rows, partitioned by time",
}
_SHORT_TYPES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "double precision": "float8",
    "character varying": "varchar",
}


def model_facts() -> dict[str, tuple[str, str]]:
    """table -> (bounded context, volume class), declared on the models."""
    from platformdb.models import Base

    facts = {}
    for mapper in Base.registry.mappers:
        table: Any = mapper.local_table
        context = mapper.class_.__module__.rsplit(".", 1)[-1]
        facts[str(table.name)] = (context, str(table.info.get("volume", "small")))
    return facts


def short_type(typ: str) -> str:
    return _SHORT_TYPES.get(typ, typ)


def platformdbs(schema: Schema) -> Schema:
    """``schema`` with only the tables platformdb's models declare (an extension's tables are its own)."""
    facts = model_facts()
    return replace(schema, tables={n: t for n, t in schema.tables.items() if n in facts})


def generate(schema: Schema, out: Path) -> list[Path]:
    """Write the docs for ``schema`` (platformdb's tables of it) into ``out``; returns the files written."""
    schema = platformdbs(schema)
    facts = model_facts()
    by_context: dict[str, list[Table]] = {c: [] for c in NAMES}
    for table in schema.tables.values():
        context = facts.get(table.name, ("other", "small"))[0]
        by_context.setdefault(context, []).append(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    written = [_write(out / "README.md", _readme(schema, by_context, facts))]
    written.append(_write(out / "erd.svg", _svg(schema, schema.tables.values(), facts, "platform: all contexts")))
    for context, tables in by_context.items():
        if tables:
            title = f"platform: {context}"
            written.append(_write(out / f"erd-{context}.svg", _svg(schema, tables, facts, title, stubs=True)))
    for table in schema.tables.values():
        written.append(_write(out / "tables" / f"{table.name}.md", _table_page(schema, table, facts)))
    return written


def check(schema: Schema, committed: Path) -> str:
    """Regenerate into a temporary directory; return a unified diff against ``committed`` ('' when equal)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(schema, fresh)
        diffs: list[str] = []
        _compare(fresh, committed, Path("."), diffs)
        return "".join(diffs)


def _compare(fresh: Path, committed: Path, rel: Path, diffs: list[str]) -> None:
    cmp = filecmp.dircmp(fresh / rel, committed / rel) if (committed / rel).is_dir() else None
    if cmp is None:
        diffs.append(f"missing directory: {committed / rel}\n")
        return
    for name in sorted(cmp.left_only):
        diffs.append(f"missing: {committed / rel / name}\n")
    for name in sorted(cmp.right_only):
        diffs.append(f"stale (no longer generated): {committed / rel / name}\n")
    for name in sorted(cmp.diff_files):
        old = (committed / rel / name).read_text().splitlines(keepends=True)
        new = (fresh / rel / name).read_text().splitlines(keepends=True)
        diffs.extend(difflib.unified_diff(old, new, f"committed/{rel / name}", f"generated/{rel / name}", n=1))
    for name in sorted(cmp.common_dirs):
        _compare(fresh, committed, rel / name, diffs)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- Markdown + Mermaid -------------------------------------------------------------------------------
def _mermaid(tables: Iterable[Table], schema: Schema, *, columns: bool) -> str:
    tables = list(tables)
    names = {t.name for t in tables}
    lines = ["```mermaid", "erDiagram"]
    for table in tables:
        for fk in table.foreign_keys:
            if fk.ref_table in names and fk.ref_table is not None:
                lines.append(
                    f'    {fk.ref_table} {_mermaid_cardinality(table, fk)} {table.name} : "{", ".join(fk.columns)}"'
                )
    if columns:
        for table in tables:
            fk_cols = {c for fk in table.foreign_keys for c in fk.columns}
            pk_cols = set(table.primary_key.columns) if table.primary_key else set()
            lines.append(f"    {table.name} {{")
            for col in table.columns:
                keys = ",".join(k for k, on in (("PK", col.name in pk_cols), ("FK", col.name in fk_cols)) if on)
                typ = re.sub(r"[^A-Za-z0-9_]", "_", short_type(col.type))
                lines.append(f"        {typ} {col.name}" + (f" {keys}" if keys else ""))
            lines.append("    }")
    lines.append("```")
    return "\n".join(lines)


def _mermaid_cardinality(table: Table, fk: Constraint) -> str:
    required = all((col := table.column(c)) is not None and col.not_null for c in fk.columns)
    unique = any(i.unique and set(i.columns) == set(fk.columns) and not i.predicate for i in table.indexes)
    return ("||" if required else "|o") + "--" + ("o|" if unique else "o{")


def _readme(schema: Schema, by_context: dict[str, list[Table]], facts: dict[str, tuple[str, str]]) -> str:
    out = [
        "# platform schema",
        "",
        f"{schema.comment}",
        "",
        "Generated by `platformdb docs` from a migrated database's catalogs; do not edit by hand.",
        "Regenerate with `make docs` (or `platformdb docs --out docs/schema` against a database at head);",
        "`platformdb docs --check` fails when these files are stale, and `make test` runs it.",
        "",
        "Diagrams: [all contexts (SVG)](erd.svg) · "
        + " · ".join(f"[{c}](erd-{c}.svg)" for c, ts in by_context.items() if ts),
        "",
        "## Overview",
        "",
        _mermaid(schema.tables.values(), schema, columns=False),
        "",
        "## Tables",
        "",
        "| table | context | volume | what it holds |",
        "| --- | --- | --- | --- |",
    ]
    for context, tables in by_context.items():
        for table in tables:
            volume = facts.get(table.name, ("", "small"))[1]
            out.append(f"| [{table.name}](tables/{table.name}.md) | {context} | {volume} | {_cell(table.comment)} |")
    out += ["", "Volume classes: " + "; ".join(f"**{k}** — {v.split(': ', 1)[-1]}" for k, v in VOLUMES.items()), ""]
    out += _stable_references(schema)
    for context, tables in by_context.items():
        if not tables:
            continue
        holds = next((f"{c.holds.capitalize()}." for c in CONTEXTS if c.name == context), "")
        out += [f"## {context}", "", holds, "", _mermaid(tables, schema, columns=True), ""]
    return "\n".join(out)


def _stable_references(schema: Schema) -> list[str]:
    from platformdb.extensions import STABLE_REFERENCES

    out = [
        "## Stable foreign-key targets",
        "",
        "What an extension's tables may reference (`platformdb.extensions.STABLE_REFERENCES`; see",
        "docs/EXTENDING.md): a minor release keeps each of these tables and keys, with their types.",
        "",
        "| target | key | type |",
        "| --- | --- | --- |",
    ]
    for name, columns in STABLE_REFERENCES.items():
        table = schema.tables[name]
        key = next(c for c in table.constraints if c.kind in ("p", "u") and c.columns == columns)
        types = ", ".join(short_type(col.type) for c in columns if (col := table.column(c)) is not None)
        out.append(f"| `platform.{name}({', '.join(columns)})` | {key.name} | {types} |")
    return [*out, ""]


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _code(text: str | None) -> str:
    return f"`{_cell(text)}`" if text else ""


def _table_page(schema: Schema, table: Table, facts: dict[str, tuple[str, str]]) -> str:
    context, volume = facts.get(table.name, ("other", "small"))
    pk = set(table.primary_key.columns) if table.primary_key else set()
    fk_cols = {c for fk in table.foreign_keys for c in fk.columns}
    out = [
        f"# {table.name}",
        "",
        f"{table.comment}",
        "",
        f"Context: **{context}** · Volume: {VOLUMES.get(volume, volume)} · [overview](../README.md)",
        "",
        "## Columns",
        "",
        "| column | type | null | default | key | comment |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for col in table.columns:
        default = f"identity ({col.identity})" if col.identity else col.default
        keys = " ".join(k for k, on in (("PK", col.name in pk), ("FK", col.name in fk_cols)) if on)
        null = "not null" if col.not_null else "null"
        out.append(f"| {col.name} | {col.type} | {null} | {_code(default)} | {keys} | {_cell(col.comment)} |")
    out += ["", "## Constraints", "", "| name | definition |", "| --- | --- |"]
    out += [f"| {c.name} | {_code(c.definition)} |" for c in table.constraints]
    out += ["", "## Indexes", "", "| name | definition | serves |", "| --- | --- | --- |"]
    for index in table.indexes:
        serves = (index.comment or "").removeprefix("Serves: ")
        if not serves and index.constraint:
            serves = f"constraint {index.constraint}"
        definition = index.definition.split(" USING ", 1)[-1]
        out.append(f"| {index.name} | {_code(definition)} | {_cell(serves)} |")
    out += ["", "## Foreign keys", ""]
    outgoing = [
        f"- `{', '.join(fk.columns)}` → [{fk.ref_table}]({fk.ref_table}.md) `({', '.join(fk.ref_columns)})`, "
        f"ON DELETE {fk.on_delete} (`{fk.name}`)"
        for fk in table.foreign_keys
    ]
    incoming = [
        f"- [{src.name}]({src.name}.md) `({', '.join(fk.columns)})` → `({', '.join(fk.ref_columns)})`, "
        f"ON DELETE {fk.on_delete} (`{fk.name}`)"
        for src, fk in sorted(schema.referencing(table.name), key=lambda p: (p[0].name, p[1].name))
    ]
    out += ["Out:", "", *(outgoing or ["- none"]), "", "In:", "", *(incoming or ["- none"])]
    out += ["", "## Triggers", "", "| name | when | function |", "| --- | --- | --- |"]
    out += [f"| {t.name} | {t.timing} {' OR '.join(t.events)} | `{t.function}()` |" for t in table.triggers]
    if not table.triggers:
        out.append("| none | | |")
    out += ["", "## Privileges", ""]
    out += [f"- {g}" for g in (*table.grants, *sorted(table.column_grants))] or ["- owner only"]
    if table.options:
        out += ["", "## Storage", "", f"`WITH ({', '.join(table.options)})`"]
    if table.partition_key:
        fixed = [p for p in table.partitions if not p.dated]
        out += [
            "",
            "## Partitioning",
            "",
            f"`PARTITION BY {table.partition_key}`. Calendar partitions (`{table.name}_pYYYY_MM…`) are created "
            "ahead by `platform.ensure_partitions()`; they are not listed here because they depend on the date.",
            "",
            *(
                f"- `{p.name}`: {p.bound}"
                + (f" `WITH ({', '.join(p.options)})`" if p.options else "")
                + f" — {_cell(p.comment)}"
                for p in fixed
            ),
        ]
    return "\n".join(out) + "\n"


# --- Graphviz ------------------------------------------------------------------------------------------
def _svg(schema: Schema, tables: Iterable[Table], facts: dict[str, tuple[str, str]], title: str,
         *, stubs: bool = False) -> str:  # fmt: skip
    try:
        import graphviz
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise UserError("the graphviz Python package is not installed") from exc
    if shutil.which("dot") is None:
        raise UserError("Graphviz's `dot` is not installed (Debian: apt-get install graphviz; `make` does it)")
    tables = sorted(tables, key=lambda t: t.name)
    names = {t.name for t in tables}
    graph = graphviz.Digraph(
        name="erd",
        graph_attr={"rankdir": "LR", "label": title, "labelloc": "t", "fontname": "Helvetica", "fontsize": "20",
                    "nodesep": "0.35", "ranksep": "0.9", "newrank": "true"},
        node_attr={"shape": "plain", "fontname": "Helvetica", "fontsize": "11"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "color": "#475569", "dir": "both"},
    )  # fmt: skip
    grouped: dict[str, list[Table]] = {}
    for table in tables:
        grouped.setdefault(facts.get(table.name, ("other", ""))[0], []).append(table)
    for context in sorted(grouped, key=lambda c: NAMES.index(c) if c in NAMES else 99):
        with graph.subgraph(name=f"cluster_{context}") as sub:
            sub.attr(label=context, style="rounded,filled", fillcolor="#f8fafc", color="#cbd5e1", fontsize="16")
            for table in grouped[context]:
                sub.node(table.name, label=_html_table(table, CONTEXT_COLORS.get(context, "#f1f5f9")))
    referenced = sorted({fk.ref_table for t in tables for fk in t.foreign_keys if fk.ref_table} - names)
    if stubs:
        for name in referenced:
            other = schema.tables[name]
            context = facts.get(name, ("other", ""))[0]
            graph.node(name, label=_html_stub(other, CONTEXT_COLORS.get(context, "#f1f5f9"), context))
    for table in tables:
        for fk in table.foreign_keys:
            if fk.ref_table is None or (fk.ref_table not in names and not stubs):
                continue
            required = all((col := table.column(c)) is not None and col.not_null for c in fk.columns)
            graph.edge(
                f"{table.name}:{fk.columns[0]}",
                f"{fk.ref_table}:{fk.ref_columns[0]}",
                arrowtail="crow" if required else "crowodot",
                arrowhead="teetee" if required else "teeodot",
            )
    svg = subprocess.run(["dot", "-Tsvg"], input=graph.source, capture_output=True, text=True, check=True).stdout
    # Drop the generator's version comment so the output depends only on the schema.
    return re.sub(r"<!-- Generated by graphviz version [^>]*-->\n", "", svg)


def _html_table(table: Table, color: str) -> str:
    pk = set(table.primary_key.columns) if table.primary_key else set()
    fk_cols = {c for fk in table.foreign_keys for c in fk.columns}
    head = f'<TR><TD COLSPAN="3" BGCOLOR="{color}"><B>{html.escape(table.name)}</B></TD></TR>'
    rows = []
    for col in table.columns:
        mark = " ".join(k for k, on in (("PK", col.name in pk), ("FK", col.name in fk_cols)) if on)
        name = f"<B>{html.escape(col.name)}</B>" if col.name in pk else html.escape(col.name)
        null = "" if col.not_null else "?"
        mark = f'<FONT COLOR="#b45309">{mark}</FONT>' if mark else " "
        rows.append(
            f'<TR><TD ALIGN="LEFT" PORT="{col.name}">{name}</TD>'
            f'<TD ALIGN="LEFT"><FONT COLOR="#475569">{html.escape(short_type(col.type))}{null}</FONT></TD>'
            f'<TD ALIGN="LEFT">{mark}</TD></TR>'
        )
    return f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">{head}{"".join(rows)}</TABLE>>'


def _html_stub(table: Table, color: str, context: str) -> str:
    pk = table.primary_key.columns if table.primary_key else ()
    ports = "".join(f'<TR><TD ALIGN="LEFT" PORT="{c}"><B>{html.escape(c)}</B></TD></TR>' for c in pk)
    # Unique keys referenced by composite FKs (e.g. releases (service_id, version)) need ports too.
    extra = sorted({c for con in table.constraints if con.kind == "u" for c in con.columns} - set(pk))
    ports += "".join(f'<TR><TD ALIGN="LEFT" PORT="{c}">{html.escape(c)}</TD></TR>' for c in extra)
    return (
        '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3" STYLE="dashed">'
        f'<TR><TD BGCOLOR="{color}"><I>{html.escape(table.name)}</I><BR/>'
        f'<FONT POINT-SIZE="9">{context}</FONT></TD></TR>'
        f"{ports}</TABLE>>"
    )
