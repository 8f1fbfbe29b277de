"""Validate the configuration_versions rules of revision 0018 over the versions stored before it (post-deploy)

Why: Revision 0018 added ck_configuration_versions_value_size and redefined
     ck_configuration_versions_secret_ref_format NOT VALID, so that adding them took no scan under its lock:
     versions written since are checked, older ones not yet. This revision checks them. A stored value over
     64 KiB, or a stored secret_ref outside the allow-list or carrying a credential, makes it fail with the
     rule's name: rotate that credential, write a new version with a clean reference (versions are immutable; an
     owner removes the offending row with the append-only trigger disabled) and run it again.
Locks: VALIDATE CONSTRAINT scans configuration_versions under SHARE UPDATE EXCLUSIVE: writes and reads go on.
       It runs outside a transaction, so each scan holds no lock beyond its own; a crash part-way leaves a rule
       NOT VALID at revision 0018, and a re-run validates it (idempotent). Runs after the code that uses it
       (post-deploy): nothing depends on the rules being validated.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCE_FORMAT = (
    "secret_ref ~ '^(vault|aws-sm|gcp-sm|azure-kv|k8s)://[^#?@]+(#[^#?@]+)?$' AND secret_ref ~ '^[!-~]+$'"
    " AND char_length(secret_ref) <= 1024"
)
RULES = (
    ("ck_configuration_versions_value_size", "octet_length(value::text) <= 65536"),
    ("ck_configuration_versions_secret_ref_format", REFERENCE_FORMAT),
)


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file prefer-robust-stmts -- VALIDATE CONSTRAINT runs outside the revision's transaction on"
        " purpose (its scan holds no other lock) and is idempotent: re-run on a valid constraint, it does nothing"
    )
    with op.get_context().autocommit_block():
        for name, _ in RULES:
            op.execute(f"ALTER TABLE platform.configuration_versions VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    # A validated constraint cannot be made NOT VALID again: drop each and add it back as revision 0018 left it.
    for name, check in RULES:
        op.execute(
            f"ALTER TABLE platform.configuration_versions DROP CONSTRAINT {name},"
            f" ADD CONSTRAINT {name} CHECK ({check}) NOT VALID"
        )
