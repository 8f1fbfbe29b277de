"""``python -m platformdb.cli``: the same as the ``platformdb`` command."""

from platformdb.cli import main

main()
