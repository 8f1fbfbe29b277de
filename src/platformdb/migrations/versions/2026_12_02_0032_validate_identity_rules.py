"""Validate the identity rules revision 0030 added NOT VALID over the rows stored before it (post-deploy)

Why: Revision 0030 added its foreign keys and CHECKs on teams, team_memberships, role_grants and users NOT
     VALID, so that adding them took no scan under ACCESS EXCLUSIVE: rows written since are checked, older ones
     not yet. This revision checks them. Every rule but ck_role_grants_not_self_granted holds for every v1 row by
     construction (new columns are NULL or 'human'); a v1 self-grant (granted_by = user_id) makes this revision
     fail with that rule's name: delete or re-grant that row (SELECT id FROM platform.role_grants WHERE
     granted_by = user_id) and run it again.
Locks: VALIDATE CONSTRAINT scans its table under SHARE UPDATE EXCLUSIVE (reads and writes go on; a foreign key's
       validation also takes ROW SHARE on teams). Each runs outside a transaction, so a scan holds no lock beyond
       its own; a failure part-way leaves the remaining rules NOT VALID, and a re-run validates them
       (idempotent). Runs after the code that uses it (post-deploy): nothing depends on the rules being
       validated.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0032"
down_revision: str | Sequence[str] | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RULES = (
    ("teams", "fk_teams_parent_team_id_teams", "FOREIGN KEY (parent_team_id) REFERENCES platform.teams (id) ON DELETE RESTRICT"),
    ("teams", "ck_teams_not_own_parent", "CHECK (parent_team_id <> id)"),
    ("team_memberships", "ck_team_memberships_expires_after_created",
     "CHECK (expires_at IS NULL OR expires_at > created_at)"),
    ("role_grants", "fk_role_grants_team_id_teams", "FOREIGN KEY (team_id) REFERENCES platform.teams (id) ON DELETE CASCADE"),
    ("role_grants", "ck_role_grants_one_grantee", "CHECK (num_nonnulls(user_id, team_id) = 1)"),
    ("role_grants", "ck_role_grants_not_self_granted", "CHECK (granted_by <> user_id)"),
    ("users", "fk_users_owner_team_id_teams",
     "FOREIGN KEY (owner_team_id) REFERENCES platform.teams (id) ON DELETE RESTRICT"),
    ("users", "ck_users_kind_allowed", "CHECK (kind IN ('human', 'service_account'))"),
    ("users", "ck_users_owner_team_by_kind", "CHECK ((kind = 'service_account') = (owner_team_id IS NOT NULL))"),
    ("users", "ck_users_password_by_kind", "CHECK ((kind = 'human') = (password_hash IS NOT NULL))"),
)  # fmt: skip


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file prefer-robust-stmts -- VALIDATE CONSTRAINT runs outside the revision's transaction on"
        " purpose (its scan holds no other lock) and is idempotent: re-run on a valid constraint, it does nothing"
    )
    with op.get_context().autocommit_block():
        for table, name, _ in RULES:
            op.execute(f"ALTER TABLE platform.{table} VALIDATE CONSTRAINT {name}")


def downgrade() -> None:
    # A validated constraint cannot be made NOT VALID again: drop each and add it back as revision 0030 left it.
    for table, name, definition in reversed(RULES):
        op.execute(f"ALTER TABLE platform.{table} DROP CONSTRAINT {name}")
        op.execute(f"ALTER TABLE platform.{table} ADD CONSTRAINT {name} {definition} NOT VALID")
