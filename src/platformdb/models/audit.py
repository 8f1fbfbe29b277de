"""Audit: an append-only, monthly-partitioned log of every change to an audited table.

Rows are written by the trigger function ``platform.audit_capture()`` (see ``audit.sql``), attached to every
audited table, so no service can skip them. The acting user and request come from transaction-local
settings that services set with :func:`platformdb.actor.set_actor`; a write without them is still
recorded, with the database role as the actor name. Rows are self-contained: they copy the actor's name and
the row images as they were, because an audit trail must not change when the things it describes do.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, LargeBinary, SmallInteger, text
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import Mapped, mapped_column

from platformdb.models.base import Base, CreatedAt, Partitioning, Timestamps

AUDIT_ACTIONS = ("insert", "update", "delete")
AUDIT_LANES = 16
"""Lanes of the audit hash chain: up to this many audited transactions append at once without waiting."""
HASH_VERSION_COMMENT = (
    "Canonical form row_hash covers: 1 (before revision 0017), 2 (also hash_version, chain_lane and "
    "claimed_client_addr), 3 (revision 0027: also entity_schema)."
)


class AuditLog(Base):
    """One captured change (insert, update or delete) of one row of an audited table."""

    __volume__ = "huge"
    __partitioning__ = Partitioning("month", "created_at", keep_days=400)

    __tablename__ = "audit_logs"
    __table_args__ = (
        CheckConstraint(f"action IN {AUDIT_ACTIONS!r}", name="action_allowed"),
        CheckConstraint(
            "(action = 'insert' AND before IS NULL AND after IS NOT NULL)"
            " OR (action = 'update' AND before IS NOT NULL AND after IS NOT NULL)"
            " OR (action = 'delete' AND before IS NOT NULL AND after IS NULL)",
            name="images_match_action",
        ),
        CheckConstraint("entity_type ~ '^[a-z_][a-z0-9_]*$'", name="entity_type_format"),
        CheckConstraint("char_length(actor_name) BETWEEN 1 AND 320", name="actor_name_length"),
        CheckConstraint("char_length(request_id) BETWEEN 1 AND 128", name="request_id_length"),
        CheckConstraint("octet_length(prev_hash) = 32 AND octet_length(row_hash) = 32", name="hashes_are_sha256"),
        Index(
            "ix_audit_logs_entity_type_entity_id_created_at",
            "entity_type",
            "entity_id",
            "created_at",
            info={"serves": "audit.entity_trail"},
        ),
        Index(
            "ix_audit_logs_actor_id_created_at",
            "actor_id",
            "created_at",
            postgresql_where=text("actor_id IS NOT NULL"),
            info={"serves": "audit.actor_activity"},
        ),
        Index("ix_audit_logs_created_at", "created_at", info={"serves": "audit.latest_events"}),
    )

    id: Mapped[int] = mapped_column(
        BigInteger,
        Identity(always=True),
        primary_key=True,
        comment="Row id from an identity sequence: increases in insertion order.",
    )
    created_at: Mapped[CreatedAt] = mapped_column(
        primary_key=True, comment="When the change was made (transaction time); the partition key."
    )
    transaction_id: Mapped[int] = mapped_column(
        server_default=text("txid_current()"), comment="Database transaction that made the change."
    )
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        comment="Acting user (setting platformdb.actor_id) as it was; NULL when the writer set none. "
        "Deliberately not a foreign key: audit rows outlive and never block what they describe."
    )
    actor_name: Mapped[str] = mapped_column(
        comment="Actor's name frozen at the time (setting platformdb.actor_name, else the user's email, "
        "else db:<role>)."
    )
    db_role: Mapped[str] = mapped_column(
        server_default=text("session_user"), comment="Database role the writing service logged in as."
    )
    action: Mapped[str] = mapped_column(comment="insert, update or delete.")
    entity_type: Mapped[str] = mapped_column(
        comment="Table the changed row belongs to, e.g. deployments (its schema: entity_schema)."
    )
    entity_id: Mapped[str] = mapped_column(
        comment="Primary key of the changed row as text; composite keys joined with ','."
    )
    request_id: Mapped[str | None] = mapped_column(
        comment="Request or trace id of the causing request (setting platformdb.request_id)."
    )
    client_addr: Mapped[str | None] = mapped_column(
        INET,
        comment="Address of the database client that wrote (inet_client_addr(); NULL over a Unix socket). Until "
        "hash_version 2 (revision 0017): the claimed end-user address when one was set.",
    )
    before: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Row image before the change, sensitive columns redacted; NULL for inserts."
    )
    after: Mapped[dict[str, Any] | None] = mapped_column(
        comment="Row image after the change, sensitive columns redacted; NULL for deletes."
    )
    prev_hash: Mapped[bytes] = mapped_column(
        LargeBinary, comment="row_hash of the previous row of the chain (32 zero bytes for the first)."
    )
    row_hash: Mapped[bytes] = mapped_column(
        LargeBinary,
        comment="SHA-256 over this row's canonical form and prev_hash (platform.audit_row_hash): "
        "changing, removing, inserting or reordering rows breaks the chain.",
    )
    chain_lane: Mapped[int] = mapped_column(
        SmallInteger,
        comment="Lane of the hash chain this row extends (audit_chain.lane); within a lane, chain order is id order.",
    )
    hash_version: Mapped[int] = mapped_column(
        SmallInteger,
        server_default=text("1"),
        sort_order=10,  # added by revision 0017, after the columns before it
        comment=HASH_VERSION_COMMENT,
    )
    claimed_client_addr: Mapped[str | None] = mapped_column(
        INET,
        sort_order=11,
        comment="End-user address the writing service claimed (setting platformdb.client_addr), kept apart from "
        "client_addr: a claim, not an observation.",
    )
    entity_schema: Mapped[str] = mapped_column(
        server_default=text("'platform'"),
        sort_order=12,  # added by revision 0027
        comment="Schema of the table the changed row belongs to: platform, or an extension's schema "
        "(platform.enable_audit). Rows from before revision 0027 read platform.",
    )


class AuditChain(Timestamps, Base):
    """The head of one lane of the audit hash chain, locked by the audited transaction appending to it."""

    __tablename__ = "audit_chain"
    __volume__ = "reference"
    __table_args__ = (
        CheckConstraint(f"lane BETWEEN 0 AND {AUDIT_LANES - 1}", name="lane_range"),
        Index(
            "ix_audit_chain_holder_txid",
            "holder_txid",
            info={"serves": "rule: an audited transaction appends to the one lane it holds"},
        ),
        # Each row is updated by every audited write to its lane: vacuum after 1,000 dead versions, whatever
        # the size, and leave room on the page for HOT updates.
        {
            "postgresql_with": {
                "fillfactor": "50",
                "autovacuum_vacuum_threshold": "1000",
                "autovacuum_vacuum_scale_factor": "0",
            }
        },
    )

    lane: Mapped[int] = mapped_column(
        SmallInteger,
        primary_key=True,
        autoincrement=False,
        comment="Lane number: an audited transaction takes the first lane no other holds, starting from one "
        "derived from its backend, and keeps it to commit.",
    )
    last_hash: Mapped[bytes] = mapped_column(
        LargeBinary, comment="row_hash of the lane's newest audit row; verify compares the lane's end with it."
    )
    pruned_through_id: Mapped[int | None] = mapped_column(
        BigInteger,
        sort_order=11,  # added by revision 0017
        comment="Id of the lane's newest row that retention removed (partitions prune); NULL if none or unknown.",
    )
    pruned_through_hash: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        sort_order=12,
        comment="row_hash the lane's oldest remaining row must link to: of the newest row retention removed "
        "(written by prune in the same transaction), or as found at revision 0017; NULL: the lane starts at zero.",
    )
    holder_txid: Mapped[int | None] = mapped_column(
        BigInteger,
        sort_order=10,  # added by revision 0014, after the timestamps
        comment="txid_current() of the transaction that last appended to the lane: while it is open it holds the "
        "lane, found by this key (never by a client setting). NULL before the lane's first append.",
    )
