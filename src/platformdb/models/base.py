"""Declarative base, metadata and the column types every context shares.

Everything platformdb owns lives in the PostgreSQL schema ``platform`` so that a platform team can put it
beside their own objects and grant on it as a unit. The naming convention below names every constraint
and index deterministically; migrations spell the same names out literally (they are frozen history).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from sqlalchemy import DDL, BigInteger, Connection, FetchedValue, Identity, Index, MetaData, Text, event, func, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from platformdb.contexts import NAMES as CONTEXT_NAMES

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

PARTITION_NAME = re.compile(r"_(?:p(?P<dated>\d{4}_\d{2}(?:_\d{2})?)|(?P<default>default))$")
"""Names ``platform.ensure_partitions`` gives the partitions of a partitioned table: ``<table>_pYYYY_MM``
(monthly), ``<table>_pYYYY_MM_DD`` (daily) and ``<table>_default``. Partitions are made at run time, not
declared in the models."""


def partition_kind(name: str) -> Literal["dated", "default"] | None:
    """Whether ``name`` is a dated partition, a DEFAULT partition, or neither (by :data:`PARTITION_NAME`)."""
    found = PARTITION_NAME.search(name)
    if found is None:
        return None
    return "dated" if found.group("dated") else "default"


@dataclass(frozen=True)
class Partitioning:
    """A table range-partitioned on ``key``, one partition per ``granularity``, kept by ``partitions ensure``."""

    granularity: Literal["day", "month"]
    key: str
    keep_days: int
    """How far back maintenance keeps making partitions; older rows waiting in DEFAULT are set aside instead."""


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
UpdatedAt = Annotated[dt.datetime, mapped_column(server_default=func.now(), server_onupdate=FetchedValue())]
"""Set by trigger trg_<table>_updated_at on every UPDATE: ``server_onupdate`` makes the ORM fetch it back."""


class Base(DeclarativeBase):
    """Base of every platformdb model: shared metadata, type map, and docstring-as-table-comment."""

    metadata = metadata
    type_annotation_map = TYPE_ANNOTATION_MAP
    # The flush fetches what the database assigned (server defaults, trigger-set columns) with INSERT/UPDATE
    # ... RETURNING, so an object never holds a stale or missing value after flush().
    __mapper_args__ = {"eager_defaults": True}
    __volume__: ClassVar[str] = "small"
    """Expected row count class (reference, small, medium, large, huge), for the docs and the plan checks."""
    __partitioning__: ClassVar[Partitioning | None] = None
    """Set on time-partitioned tables: becomes ``PARTITION BY RANGE (key)`` and ``table.info["partitioning"]``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "__tablename__" in cls.__dict__:
            # The model's one-line docstring is the table's COMMENT: written once, flows into the database.
            options: dict[str, Any] = {"comment": " ".join(cls.__doc__.split())} if cls.__doc__ else {}
            if cls.__partitioning__ is not None:
                options["postgresql_partition_by"] = f"RANGE ({cls.__partitioning__.key})"
            args = cls.__dict__.get("__table_args__", ())
            if isinstance(args, dict):
                cls.__table_args__ = {**options, **args}
            elif args and isinstance(args[-1], dict):
                cls.__table_args__ = (*args[:-1], {**options, **args[-1]})
            else:
                cls.__table_args__ = (*args, options)
        super().__init_subclass__(**kwargs)
        if "__tablename__" in cls.__dict__:
            info = cls.__table__.info  # type: ignore[attr-defined]
            info["volume"] = cls.__volume__
            if cls.__partitioning__ is not None:
                info["partitioning"] = cls.__partitioning__


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


def _context_sql(target: MetaData, connection: Connection, **_: Any) -> None:
    """After the tables: each context's functions and triggers in registry order, then the grants, which name
    every table. Migrations carry frozen copies of the same SQL; the schema-drift test proves the two agree."""
    for name in (*CONTEXT_NAMES, "privileges"):
        connection.execute(_ddl(context_sql(name)))


def _ddl(sql: str) -> DDL:
    return DDL(sql.replace("%", "%%"))  # type: ignore[no-untyped-call]  # DDL() treats % as a format marker


def context_sql(name: str) -> str:
    """The current database-side SQL of a bounded context (``models/<name>.sql``)."""
    return (Path(__file__).parent / f"{name}.sql").read_text()


# ``metadata.create_all`` builds what the migrations build around the tables: the schema and shared functions
# before them; after them the index comments, every context's SQL and the grants, in that order.
event.listen(metadata, "before_create", _ddl(context_sql("base")))
event.listen(metadata, "after_create", _comment_indexes)
event.listen(metadata, "after_create", _context_sql)
