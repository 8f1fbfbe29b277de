"""Extending platformdb without forking it: how an extension registers, and what it may rely on.

An extension is a package with its own schema and its own Alembic branch. It registers its revisions under the
entry point group ``platformdb.extensions`` (name -> Alembic version location, ``"package:directory"``);
``platformdb upgrade`` then applies platformdb's revisions and every registered extension's together. Its first
revision starts its own branch (``down_revision = None``, its own ``branch_labels``) and ``depends_on`` a
platformdb revision id (e.g. ``"0027"``, which brings ``platform.enable_audit``). See docs/EXTENDING.md.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

from platformdb.errors import UserError

GROUP = "platformdb.extensions"
"""The entry point group an extension registers its Alembic version location under."""

BRANCH = "platformdb"
"""The Alembic branch label of platformdb's own revisions (revision 0027 carries it for the whole lineage)."""

STABLE_REFERENCES: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "teams": ("id",),
    "environments": ("id",),
    "services": ("id",),
    "releases": ("id",),
    "deployments": ("id",),
}
"""The foreign-key targets an extension may reference: table of schema platform -> its key columns. A minor
release keeps each one (table, columns, type and key); removing or changing one takes a major version."""

_LOCATION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[\w.\-/]+)?$")


def registered() -> dict[str, str]:
    """Registered extensions: entry point name -> Alembic version location, in name order."""
    found = {}
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        if not _LOCATION.match(point.value):
            raise UserError(
                f"extension {point.name!r} registers {point.value!r} under {GROUP}: expected 'package:directory'"
            )
        found[point.name] = point.value
    return found
