"""Start a rollback: the library side of ``platform.start_rollback`` (the delivery service's login may call it).

The database makes the rollback deployment (pending, ``rollback_of_id`` set) and, when that deployment
succeeds, marks the one it undoes ``rolled_back`` in the same transaction; nothing else may mark it so::

    with Session(engine) as session, session.begin():
        set_actor(session, user.id)
        rollback_id = start_rollback(session, bad_deployment_id, deployed_by=user.id)
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

_SQL = text("SELECT platform.start_rollback(:deployment_id, :version, :deployed_by)")


def start_rollback(
    target: Session | Connection,
    deployment_id: uuid.UUID,
    *,
    version: str | None = None,
    deployed_by: uuid.UUID | None = None,
) -> uuid.UUID:
    """Create the pending rollback of ``deployment_id`` (a succeeded or failed deployment) and return its id.

    It deploys ``version``, or else the newest other version that succeeded in the same service and environment
    before the deployment was made. Errors are the database's: SQLSTATE 55000 for a deployment not finished or
    while a rollout of the service is under way in the environment, P0002 for no such deployment or nothing to
    go back to, 23514 (``trg_deployments_rollback_target``) for a deployment that is not the latest finished one
    or a version that is its own or never succeeded there.
    """
    params = {"deployment_id": deployment_id, "version": version, "deployed_by": deployed_by}
    new_id = target.execute(_SQL, params).scalar_one()
    return uuid.UUID(str(new_id))


__all__ = ["start_rollback"]
