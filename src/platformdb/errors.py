"""The exceptions platformdb raises for mistakes a user can fix; the CLI shows each as one plain line."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad URL, server down, unknown revision...): shown as one line, exit 1."""


class NotMigratedError(UserError):
    """The database is not at the head revision (or lacks what a command needs): run ``platformdb upgrade``."""

    def __init__(self, where: str, at: str | None = None, *, lacks: str | None = None) -> None:
        self.where, self.at, self.lacks = where, at, lacks
        state = f"has no {lacks}" if lacks else f"is not migrated to head (it is at {at or 'base'})"
        super().__init__(f"{where} {state}: run `platformdb upgrade` first")


class NoTransactionError(UserError):
    """A transaction-local setting was asked for on a connection in autocommit mode outside a transaction: it
    would vanish with its own statement. Open a transaction first (or pass ``local=False``)."""


__all__ = ["NoTransactionError", "NotMigratedError", "UserError"]
