"""The service directory from the name key alone: uq_services_name INCLUDE (id, status, tier), built CONCURRENTLY

Why: catalog.service_directory (and the services walk of delivery.running_in_environment) read the name key in
     order and then one heap page per service: 52 buffers for a page of 50 at scale 100, where the original
     task's schema answered as fast or faster (issue #13, point 5). The same unique key carrying the columns
     the pages return makes both an index-only scan (the heap is read only for pages not all-visible). One
     index replaces another: writes to services maintain no more indexes than before; a HOT update is lost
     only when status or tier changes (rare, unlike description edits).
Locks: CREATE UNIQUE INDEX CONCURRENTLY outside a transaction: services stays readable and writable while it
       builds (SHARE UPDATE EXCLUSIVE); a failed build leaves an INVALID index, dropped and rebuilt when the
       revision is re-run. Then one short transaction drops the old key, renames the new index to its name and
       adds the constraint USING INDEX (no scan: the index is built, valid and unique): ACCESS EXCLUSIVE on
       services for milliseconds, lock_timeout bounding a wait behind a long reader. The constraint keeps its
       name, so 23505 errors name uq_services_name as before. Runs before or after the code (either).

Revision ID: 0067
Revises: 0066
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0067"
down_revision: str | Sequence[str] | None = "0066"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "uq_services_name"
BUILDING = "uq_services_name_covering"


def _swap(include: str) -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS platform.{BUILDING}")  # an INVALID one left by a failed build
        op.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {BUILDING} ON platform.services (name){include}")
    op.execute(f"ALTER TABLE platform.services DROP CONSTRAINT {KEY}")
    op.execute(f"ALTER INDEX platform.{BUILDING} RENAME TO {KEY}")
    op.execute(f"ALTER TABLE platform.services ADD CONSTRAINT {KEY} UNIQUE USING INDEX {KEY}")


def upgrade() -> None:
    op.execute(
        "-- squawk-ignore-file ban-drop-constraint,prefer-robust-stmts,disallowed-unique-constraint,renaming-object"
        " -- the old key is dropped only once its covering twin is built and valid, in the transaction that makes"
        " the twin the constraint, and the twin takes the old key's name (no client named the twin); the"
        " CONCURRENTLY build runs outside the transaction on purpose and drops an INVALID leftover first"
        " (re-runnable)"
    )
    _swap(" INCLUDE (id, status, tier)")


def downgrade() -> None:
    _swap("")
