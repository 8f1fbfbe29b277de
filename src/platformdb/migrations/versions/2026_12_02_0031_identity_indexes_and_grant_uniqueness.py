"""Index the new identity foreign keys and make grants unique per grantee (user or team), CONCURRENTLY

Why: Revision 0030 added role_grants.team_id, teams.parent_team_id and users.owner_team_id; each foreign key
     needs an index, and may_user_do finds a team's grants by team_id. The old unique key
     uq_role_grants_user_id_role_id_service_id_environment_id (NULLS NOT DISTINCT) is wrong once a grant may go
     to a team: two teams' grants of one role in one scope both have user_id NULL and would collide. It is
     replaced by uq_role_grants_grantee_role_scope over (user_id, team_id, role_id, service_id,
     environment_id), NULLS NOT DISTINCT, which says the same of every user grant (team_id is NULL in all of
     them, so no existing row can collide that did not already) and the same of team grants per team. It
     also serves may_user_do's lookup of a user's grants (user_id leads it).
Locks: CREATE [UNIQUE] INDEX CONCURRENTLY, outside a transaction: the tables stay readable and writable while
       each builds (SHARE UPDATE EXCLUSIVE). A failed build leaves an INVALID index, dropped and rebuilt when
       the revision is re-run. Then, in one short transaction, ADD CONSTRAINT ... USING INDEX (no scan: the
       index is already built and valid) and DROP CONSTRAINT of the old key take ACCESS EXCLUSIVE on
       role_grants for milliseconds. Runs before the code that uses it (pre-deploy): team grants need the new
       key; v1 writers never named the old constraint.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | Sequence[str] | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_role_grants_user_id_role_id_service_id_environment_id"
NEW_KEY = "uq_role_grants_grantee_role_scope"
INDEXES = (
    ("ix_teams_parent_team_id", "ON platform.teams (parent_team_id) WHERE parent_team_id IS NOT NULL",
     "FK teams.parent_team_id; may_user_do: the teams nested in a team"),
    ("ix_role_grants_team_id", "ON platform.role_grants (team_id) WHERE team_id IS NOT NULL",
     "identity.may_user_do: the grants of a team; FK"),
    ("ix_users_owner_team_id", "ON platform.users (owner_team_id) WHERE owner_team_id IS NOT NULL",
     "FK users.owner_team_id: the service accounts of a team"),
)  # fmt: skip


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file ban-drop-constraint,prefer-robust-stmts -- the old key is dropped only after"
        " uq_role_grants_grantee_role_scope, which implies it for every user grant, is in place; the CONCURRENTLY"
        " builds run outside the transaction on purpose and drop an INVALID leftover first (re-runnable)"
    )
    with op.get_context().autocommit_block():
        for name, definition, _ in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS platform.{name}")  # an INVALID one left by a failed build
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS platform.{NEW_KEY}")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {NEW_KEY} ON platform.role_grants"
            " (user_id, team_id, role_id, service_id, environment_id) NULLS NOT DISTINCT"
        )
    for name, _, serves in INDEXES:
        op.execute(f"COMMENT ON INDEX platform.{name} IS 'Serves: {serves}'")
    op.execute(f"ALTER TABLE platform.role_grants ADD CONSTRAINT {NEW_KEY} UNIQUE USING INDEX {NEW_KEY}")
    op.execute(f"ALTER TABLE platform.role_grants DROP CONSTRAINT {OLD_KEY}")


def downgrade() -> None:
    # Team grants cannot be held at revision 0030's downgrade target; user grants are unique under the old key.
    op.execute("DELETE FROM platform.role_grants WHERE team_id IS NOT NULL")
    op.execute(
        f"ALTER TABLE platform.role_grants ADD CONSTRAINT {OLD_KEY}"
        " UNIQUE NULLS NOT DISTINCT (user_id, role_id, service_id, environment_id)"
    )
    op.execute(f"ALTER TABLE platform.role_grants DROP CONSTRAINT {NEW_KEY}")
    with op.get_context().autocommit_block():
        for name, _, _ in reversed(INDEXES):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS platform.{name}")
