"""Validate ck_metric_samples_sampled_at_finite over the samples stored before revision 0015 (post-deploy)

Why: Revision 0015 added the rule NOT VALID, so that adding it took no scan under its lock: samples written since
     are checked, older ones not yet. This revision checks them. A non-finite sample stored earlier makes it fail
     with the rule's name; delete that sample (or move it to metric_samples_quarantine) and run it again.
Locks: VALIDATE CONSTRAINT scans every sample partition under SHARE UPDATE EXCLUSIVE: ingest and reads go on.
       It runs outside a transaction, so the scan holds no lock beyond its own; a crash part-way leaves the rule
       NOT VALID at revision 0015, and a re-run validates it (idempotent). Runs after the code that uses it
       (post-deploy): nothing depends on the rule being validated.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file prefer-robust-stmts -- VALIDATE CONSTRAINT runs outside the revision's transaction on"
        " purpose (its scan holds no other lock) and is idempotent: re-run on a valid constraint, it does nothing"
    )
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE platform.metric_samples VALIDATE CONSTRAINT ck_metric_samples_sampled_at_finite")


def downgrade() -> None:
    # A validated constraint cannot be made NOT VALID again: drop it and add it back as revision 0015 left it.
    op.execute("ALTER TABLE platform.metric_samples DROP CONSTRAINT ck_metric_samples_sampled_at_finite")
    op.execute(
        "ALTER TABLE platform.metric_samples ADD CONSTRAINT ck_metric_samples_sampled_at_finite"
        " CHECK (isfinite(sampled_at)) NOT VALID"
    )
