"""The ``platformdb`` command, one module per command group (installed with the ``cli`` extra).

- :mod:`~platformdb.cli.migrations`: upgrade, downgrade, current, history, sql
- :mod:`~platformdb.cli.operations`: audit, freezes, partitions, roles (run against production)
- :mod:`~platformdb.cli.review`: docs, lint (read the live catalogs)
- :mod:`~platformdb.cli.tokens`: tokens issue, list, revoke, rotate (API tokens)
- :mod:`~platformdb.cli.workbench`: server, demo, seed (the local embedded server and its data)

``main`` is the root click group; without the extra installed it is a stub that says which extra to install.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    import click  # noqa: F401
    import rich  # noqa: F401
except ImportError:  # a bare `pip install platformdb`: the library only

    def main(*_: Any, **__: Any) -> None:
        sys.stderr.write("platformdb: error: the command line needs the cli extra: pip install 'platformdb[cli]'\n")
        sys.exit(1)

else:
    from platformdb.cli import migrations, operations, review, tokens, workbench  # noqa: F401  (each registers commands)
    from platformdb.cli.app import cli as main

__all__ = ["main"]
