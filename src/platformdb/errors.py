"""The one exception type the CLI turns into a single plain line on stderr."""


class UserError(Exception):
    """A mistake the user can fix (bad URL, server down, unknown revision...): shown as one line, exit 1."""
