"""Index the active rollouts by age, for the rollout controller's poll (delivery.active_deployments)

Why: The rollout controller polls every few seconds for every deployment pending or in progress, oldest
     first. It used the partial unique index that enforces one active deployment per service and
     environment, which is keyed for that rule, not for the poll: in (service, environment) order, with a sort
     on top, and after the status churn of a busy day it carries many pages of dead entries between VACUUMs
     (measured at scale 10: 22 index pages read for 52 active rows, 3.7 ms cold). A partial index on
     created_at over the same predicate holds only the active rollouts, in the order the poll wants (4 pages,
     0.16 ms). The unique index now serves only its rule; its comment says so.
Locks: CREATE INDEX CONCURRENTLY, outside a transaction: deployments stay readable and writable while it
       builds (SHARE UPDATE EXCLUSIVE). If the build fails it leaves an INVALID index; the revision drops it
       and builds again when re-run. COMMENT ON INDEX takes a brief lock on the index's entry.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "platform.ix_deployments_created_at_active"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")  # an INVALID one left by a failed build
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX.split('.')[1]} ON platform.deployments (created_at)"
            " WHERE status IN ('pending', 'in_progress')"
        )
    op.execute(f"COMMENT ON INDEX {INDEX} IS 'Serves: delivery.active_deployments (the active rollouts, oldest first)'")
    op.execute(
        "COMMENT ON INDEX platform.uq_deployments_active_service_id_environment_id IS"
        " 'Serves: rule: at most one active deployment per service and environment'"
    )


def downgrade() -> None:
    op.execute(
        "COMMENT ON INDEX platform.uq_deployments_active_service_id_environment_id IS"
        " 'Serves: rule: at most one active deployment per service and environment; delivery.active_deployments'"
    )
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
