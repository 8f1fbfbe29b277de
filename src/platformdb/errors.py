"""The exceptions platformdb raises for mistakes a user can fix; the CLI shows each as one plain line."""

from __future__ import annotations

# SQLSTATE classes whose DETAIL and HINT explain the refusal without showing data: privileges and
# definitions (42), unsupported features (0A), resources (53), object state and locks (55), the operator (57).
# Integrity (23) and data (22) errors are left out: their DETAIL may show a row or a key.
_EXPLAINED_CLASSES = ("42", "0A", "53", "55", "57")


class UserError(Exception):
    """A mistake the user can fix (bad URL, server down, unknown revision...): shown as one line, exit 1."""


class NotMigratedError(UserError):
    """The database is not at the head revision (or lacks what a command needs): run ``platformdb upgrade``."""

    def __init__(self, where: str, at: str | None = None, *, lacks: str | None = None) -> None:
        self.where, self.at, self.lacks = where, at, lacks
        state = f"has no {lacks}" if lacks else f"is not migrated to head (it is at {at or 'base'})"
        super().__init__(f"{where} {state}: run `platformdb upgrade` first")


class MigrationError(UserError):
    """A migration step failed; ``at`` is the revision the database stayed at (each revision commits alone)."""

    def __init__(self, direction: str, target: str, at: str | None, reason: str) -> None:
        self.direction, self.target, self.at, self.reason = direction, target, at, reason
        super().__init__(f"{direction} to {target} stopped at {at or 'base'}: {reason}")


def describe(exc: BaseException) -> str:
    """One line for an error: the database's own message where there is one, with its DETAIL and HINT when
    they explain a refusal without showing data (see ``_EXPLAINED_CLASSES``)."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not primary:
        text = str(orig).strip() or type(orig).__name__
        return text.splitlines()[0]
    extra = []
    if (getattr(diag, "sqlstate", None) or "")[:2] in _EXPLAINED_CLASSES:
        extra = [p for p in (getattr(diag, "message_detail", None), getattr(diag, "message_hint", None)) if p]
    line = " ".join(primary.split())
    return f"{line} ({' '.join(' '.join(p.split()) for p in extra)})" if extra else line


class NoTransactionError(UserError):
    """A transaction-local setting was asked for on a connection in autocommit mode outside a transaction: it
    would vanish with its own statement. Open a transaction first (or pass ``local=False``)."""


__all__ = ["MigrationError", "NoTransactionError", "NotMigratedError", "UserError", "describe"]
