"""Validate the address and display-name rules of revision 0020 over the rows stored before it (post-deploy)

Why: Revision 0020 added ck_users_email_printable_ascii, ck_users_display_name_visible and
     ck_teams_display_name_visible NOT VALID, so that adding them took no scan under their lock: rows written
     or updated since are checked, older ones not yet. This revision checks them. A stored address that is not
     printable ASCII (a non-ASCII local part, an internationalized domain not in punycode, an invisible
     character) or a display name holding a control or invisible character makes it fail with the rule's name:
     correct that row (an address: SELECT id, email FROM platform.users WHERE email !~ '^[!-~]+$') and run it
     again.
Locks: VALIDATE CONSTRAINT scans users and teams under SHARE UPDATE EXCLUSIVE: reads and writes go on. Each runs
       outside a transaction, so a scan holds no lock beyond its own; a crash part-way leaves the rules that
       were not reached NOT VALID at revision 0020, and a re-run validates them (idempotent). Runs after the
       code that uses it (post-deploy): nothing depends on the rules being validated.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the rules as revision 0020 added them.
INVISIBLE = (
    r"\u0001-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u206f\ufeff"
    r"\ufff9-\ufffb\U000e0000-\U000e007f"
)
CHECKS = (
    ("users", "ck_users_email_printable_ascii", r"email !~ '[^\u0021-\u007e]'"),
    ("users", "ck_users_display_name_visible", f"display_name !~ '[{INVISIBLE}]'"),
    ("teams", "ck_teams_display_name_visible", f"display_name !~ '[{INVISIBLE}]'"),
)


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file prefer-robust-stmts -- VALIDATE CONSTRAINT runs outside the revision's transaction on"
        " purpose (its scan holds no other lock) and is idempotent: re-run on a valid constraint, it does nothing"
    )
    with op.get_context().autocommit_block():
        for table, name, _ in CHECKS:
            op.execute(f"ALTER TABLE platform.{table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    # A validated constraint cannot be made NOT VALID again: drop each and add it back as revision 0020 left it.
    for table, name, rule in reversed(CHECKS):
        op.execute(f"ALTER TABLE platform.{table} DROP CONSTRAINT {name}")
        op.execute(f"ALTER TABLE platform.{table} ADD CONSTRAINT {name} CHECK ({rule}) NOT VALID")
