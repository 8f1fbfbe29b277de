"""Declarative base, metadata and the column types every context shares.

Everything platformdb owns lives in the PostgreSQL schema ``platform`` so that a platform team can put it
beside their own objects and grant on it as a unit. The naming convention below names every constraint
and index deterministically; migrations spell the same names out literally (they are frozen history).
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Annotated, Any, ClassVar

from sqlalchemy import DDL, BigInteger, Connection, Identity, Index, MetaData, Text, event, func, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "platform"

NAMING_CONVENTION: dict[str, str] = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}
"""Index and constraint names. Expression and partial indexes, which have no column list to name them,
take an explicit ``ix_<table>_<purpose>`` / ``uq_<table>_<purpose>`` name. Trigger-enforced rules are named
``trg_<table>_<rule>`` and report that name as the constraint in the error they raise."""

metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

# --- shared column types -------------------------------------------------------------------------------
# One mapping from Python annotation to PostgreSQL type, so no model spells a type twice.
TYPE_ANNOTATION_MAP: dict[Any, Any] = {
    uuid.UUID: UUID(as_uuid=True),
    dt.datetime: TIMESTAMP(timezone=True),
    str: Text(),
    int: BigInteger(),
    dict[str, Any]: JSONB(),
}

NEW_ID = text(f"{SCHEMA}.uuidv7()")
"""Server default of every UUID key: time-ordered, generated in the database (native on PostgreSQL 18,
an equivalent SQL function on 15-17 installed by the first migration under the same name)."""

UUIDPk = Annotated[uuid.UUID, mapped_column(primary_key=True, server_default=NEW_ID)]
BigIdPk = Annotated[int, mapped_column(BigInteger, Identity(always=True), primary_key=True)]
CreatedAt = Annotated[dt.datetime, mapped_column(server_default=func.now())]
UpdatedAt = Annotated[dt.datetime, mapped_column(server_default=func.now())]


class Base(DeclarativeBase):
    """Base of every platformdb model: shared metadata, type map, and docstring-as-table-comment."""

    metadata = metadata
    type_annotation_map = TYPE_ANNOTATION_MAP
    __volume__: ClassVar[str] = "small"
    """Expected row count class (reference, small, medium, large, huge), for the docs and the plan checks."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The model's one-line docstring is the table's COMMENT: written once, flows into the database.
        if "__tablename__" in cls.__dict__ and cls.__doc__:
            args = cls.__dict__.get("__table_args__", ())
            comment = " ".join(cls.__doc__.split())
            if isinstance(args, dict):
                cls.__table_args__ = {"comment": comment, **args}
            elif args and isinstance(args[-1], dict):
                cls.__table_args__ = (*args[:-1], {"comment": comment, **args[-1]})
            else:
                cls.__table_args__ = (*args, {"comment": comment})
        super().__init_subclass__(**kwargs)
        if "__tablename__" in cls.__dict__:
            cls.__table__.info["volume"] = cls.__volume__  # type: ignore[attr-defined]


class Timestamps:
    """Mixin for mutable tables: ``created_at`` and a trigger-maintained ``updated_at``."""

    created_at: Mapped[CreatedAt] = mapped_column(comment="When the row was inserted.")
    updated_at: Mapped[UpdatedAt] = mapped_column(
        comment="When the row was last changed; maintained by trigger trg_<table>_updated_at."
    )


class CreatedOnly:
    """Mixin for tables whose rows never change (a ``trg_<table>_immutable`` or ``_append_only`` trigger refuses
    UPDATE): only ``created_at``."""

    created_at: Mapped[CreatedAt] = mapped_column(comment="When the row was inserted.")


def register_base_sql() -> None:
    """Make ``metadata.create_all`` build what the first migration builds around the tables: the schema and
    shared functions before them, and a COMMENT naming the query each index serves after them."""
    event.listen(metadata, "before_create", _ddl(context_sql("base")))
    event.listen(metadata, "after_create", _comment_indexes)


def index_comment(index: Index) -> str | None:
    """The COMMENT of an index: which query or rule it serves, from ``Index(..., info={"serves": ...})``."""
    serves = index.info.get("serves")
    return f"Serves: {serves}" if serves else None


def _comment_indexes(target: MetaData, connection: Connection, **_: Any) -> None:
    for table in target.sorted_tables:
        for index in table.indexes:
            comment = index_comment(index)
            if comment is not None:
                quoted = comment.replace("'", "''")  # COMMENT takes a literal, not a parameter
                connection.exec_driver_sql(f"COMMENT ON INDEX {SCHEMA}.{index.name} IS '{quoted}'")


def register_privileges_sql() -> None:
    """Run ``privileges.sql`` (group roles and grants) after every context's tables and functions exist."""
    event.listen(metadata, "after_create", _ddl(context_sql("privileges")))


def attach_sql(context_module_file: str) -> None:
    """Register the context's ``<module>.sql`` (functions, triggers) to run after ``metadata.create_all``.

    Migrations carry frozen copies of the same SQL; the schema-drift test proves the two agree.
    """
    sql_path = Path(context_module_file).with_suffix(".sql")
    event.listen(metadata, "after_create", _ddl(sql_path.read_text()))


def _ddl(sql: str) -> DDL:
    return DDL(sql.replace("%", "%%"))  # type: ignore[no-untyped-call]  # DDL() treats % as a format marker


def context_sql(name: str) -> str:
    """The current database-side SQL of a bounded context (``models/<name>.sql``)."""
    return (Path(__file__).parent / f"{name}.sql").read_text()
