"""Configuration: versioned key/value settings per service, optionally overridden per environment.

A ``configurations`` row is a slot (service, environment or NULL for the service-wide default, key); every
change to it is a new immutable ``configuration_versions`` row. Secrets are stored only as references to a
secret manager. What was in force when a deployment was created is recorded in ``deployment_configurations``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, FetchedValue, ForeignKey, ForeignKeyConstraint, Index, Integer, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from platformdb.models.base import Base, CreatedOnly, UUIDPk

if TYPE_CHECKING:
    from platformdb.models.catalog import Environment, Service
    from platformdb.models.delivery import Deployment
    from platformdb.models.identity import User

VALUE_KINDS = ("plain", "secret", "deleted")
SECRET_SCHEMES = ("vault", "aws-sm", "gcp-sm", "azure-kv", "k8s")
"""The secret managers a secret_ref may point into (HashiCorp Vault, AWS Secrets Manager, Google Secret Manager,
Azure Key Vault, Kubernetes secrets)."""
MAX_VALUE_BYTES = 65536
"""The largest configuration value, in bytes of its JSON text (64 KiB)."""
MAX_KEYS_PER_SERVICE = 1000
"""The most configuration keys one service may have, defaults and environment overrides together (enforced by
trigger trg_configurations_keys_per_service)."""


class Configuration(CreatedOnly, Base):
    """A configuration key of a service, service-wide or overridden for one environment."""

    __volume__ = "medium"

    __tablename__ = "configurations"
    __table_args__ = (
        # NULL environment = the service-wide default; there is one default and one override per env.
        UniqueConstraint("service_id", "key", "environment_id", postgresql_nulls_not_distinct=True),
        CheckConstraint("key ~ '^[A-Za-z_][A-Za-z0-9_.-]*$' AND char_length(key) <= 200", name="key_format"),
        Index(
            "ix_configurations_environment_id",
            "environment_id",
            info={"serves": "FK configurations.environment_id"},
        ),
    )

    id: Mapped[UUIDPk] = mapped_column(comment="Configuration slot id (UUIDv7).")
    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="RESTRICT"), comment="Service the key belongs to."
    )
    environment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"),
        comment="Environment this override applies to; NULL for the service-wide default.",
    )
    key: Mapped[str] = mapped_column(
        comment="Setting name, e.g. HTTP_TIMEOUT or db.pool.size; at most 1000 keys per service "
        "(trigger trg_configurations_keys_per_service)."
    )

    service: Mapped[Service] = relationship(lazy="raise")
    environment: Mapped[Environment | None] = relationship(lazy="raise")
    versions: Mapped[list[ConfigurationVersion]] = relationship(
        back_populates="configuration", order_by="ConfigurationVersion.version", lazy="raise"
    )


class ConfigurationVersion(CreatedOnly, Base):
    """One immutable value of a configuration key; the highest version is in force."""

    __volume__ = "medium"

    __tablename__ = "configuration_versions"
    __table_args__ = (
        CheckConstraint(f"kind IN {VALUE_KINDS!r}", name="kind_allowed"),
        CheckConstraint("kind <> 'secret' OR value IS NULL", name="secret_has_no_plaintext"),
        CheckConstraint(
            "(kind = 'plain') = (value IS NOT NULL) AND (kind = 'secret') = (secret_ref IS NOT NULL)"
            " AND jsonb_typeof(value) IS DISTINCT FROM 'null'",
            name="value_matches_kind",
        ),
        CheckConstraint(
            # A reference into an allow-listed secret manager, carrying no credential: no userinfo (user:pw@), no
            # query string (?token=...); printable ASCII without spaces (RFC 3986), which also rules out Unicode
            # whitespace. At most one #fragment, naming the field of the secret.
            f"secret_ref ~ '^({'|'.join(SECRET_SCHEMES)})://[^#?@]+(#[^#?@]+)?$' AND secret_ref ~ '^[!-~]+$'"
            " AND char_length(secret_ref) <= 1024",
            name="secret_ref_format",
        ),
        # Stored as text so the bound does not depend on compression or TOAST.
        CheckConstraint(f"octet_length(value::text) <= {MAX_VALUE_BYTES}", name="value_size"),
        # The numbering trigger assigns versions; this guards writes made with triggers disabled
        # (session_replication_role = replica, as logical replication applies changes).
        CheckConstraint("version >= 1", name="version_positive"),
        Index(
            "ix_configuration_versions_created_by",
            "created_by",
            info={"serves": "FK configuration_versions.created_by"},
        ),
    )

    configuration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("configurations.id", ondelete="RESTRICT"), primary_key=True, comment="The key changed."
    )
    version: Mapped[int] = mapped_column(
        Integer,
        primary_key=True,
        # Assigned by the trigger (no DDL default): the INSERT returns it, so the flush knows the identity.
        server_default=FetchedValue(),
        comment="1, 2, 3... per key without gaps; assigned by trigger trg_configuration_versions_number.",
    )
    kind: Mapped[str] = mapped_column(
        comment="plain (value holds it), secret (secret_ref points at it) or deleted (key removed)."
    )
    value: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True),  # None is SQL NULL (no value), not the JSON null the CHECKs refuse
        comment="The setting as JSON (string, number, object...), at most 64 KiB as text; only for kind plain.",
    )
    secret_ref: Mapped[str | None] = mapped_column(
        comment="URI of the secret in a secret manager (vault, aws-sm, gcp-sm, azure-kv or k8s), e.g. "
        "vault://kv/payments/db#password, with no credential in it (no user:password@, no ?query); "
        "only for kind secret."
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), comment="Who made the change; NULL for automation."
    )

    configuration: Mapped[Configuration] = relationship(back_populates="versions", lazy="raise")
    creator: Mapped[User | None] = relationship(lazy="raise")


class DeploymentConfiguration(CreatedOnly, Base):
    """The configuration version in force for each key when a deployment was created."""

    __volume__ = "large"

    __tablename__ = "deployment_configurations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["configuration_id", "version"],
            ["configuration_versions.configuration_id", "configuration_versions.version"],
            ondelete="RESTRICT",
        ),
        Index(
            "ix_deployment_configurations_configuration_id_version",
            "configuration_id",
            "version",
            info={"serves": "FK to configuration_versions; deployments that used a version"},
        ),
    )

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="RESTRICT"), primary_key=True, comment="The deployment."
    )
    configuration_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="A key in force.")
    version: Mapped[int] = mapped_column(Integer, comment="The version of that key in force.")

    # Written by trigger only (trg_deployments_capture_configuration): read-only here.
    deployment: Mapped[Deployment] = relationship(back_populates="configurations", viewonly=True, lazy="raise")
    configuration_version: Mapped[ConfigurationVersion] = relationship(viewonly=True, lazy="raise")
