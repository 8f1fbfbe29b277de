"""Signed checkpoints of the audit chain: what no check inside the database can prove, proved from outside it.

``take`` reads each lane's newest row (id and row_hash) and signs the list with an Ed25519 key held outside the
database; the checkpoint is one JSON line, to append to a file or an append-only store (object lock, a ticket,
another team's log). ``check`` proves, for every checkpoint in such a file, that its signature holds and that
every row it names is still in its lane with that hash, or was removed by recorded retention; ``audit verify``
then links each of them to today's head. A rewrite of a lane's newest rows with its head reset, invisible to
the chain alone, is evident once a checkpoint covered those rows.

Needs the ``ops`` extra (the ``cryptography`` package).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from platformdb.errors import UserError

FORMAT = "platformdb-audit-checkpoint/1"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise UserError("signed checkpoints need the ops extra: pip install 'platformdb[ops]'") from None
    return serialization, ed25519


def keygen(private_path: Path) -> Path:
    """Write a new Ed25519 private key (PEM, mode 0600) and its public key beside it (``.pub``); returns the latter."""
    serialization, ed25519 = _crypto()
    if private_path.exists():
        raise UserError(f"{private_path} exists: refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = private_path.with_name(private_path.name + ".pub")
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public


def _load(path: Path, *, private: bool) -> Any:
    serialization, _ = _crypto()
    try:
        data = path.read_bytes()
        if private:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_pem_public_key(data)
    except (OSError, ValueError) as exc:
        kind = "private" if private else "public"
        raise UserError(f"cannot read the {kind} key {path}: {type(exc).__name__}") from None


def _payload(checkpoint: dict[str, Any]) -> bytes:
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def take(conn: psycopg.Connection[Any], private_key: Path) -> str:
    """A signed checkpoint of every lane's newest row, as one JSON line."""
    key = _load(private_key, private=True)
    lanes = conn.execute(
        """SELECT c.lane, newest.id, encode(newest.row_hash, 'hex')
             FROM platform.audit_chain c
             LEFT JOIN LATERAL (SELECT l.id, l.row_hash FROM platform.audit_logs l WHERE l.chain_lane = c.lane
                                 ORDER BY l.id DESC LIMIT 1) newest ON true
            ORDER BY c.lane"""
    ).fetchall()
    row = conn.execute("SELECT current_database(), now()").fetchone()
    assert row is not None
    checkpoint: dict[str, Any] = {
        "format": FORMAT,
        "database": str(row[0]),
        "taken_at": row[1].astimezone(dt.UTC).isoformat(),
        "lanes": [[int(lane), row_id, row_hash] for lane, row_id, row_hash in lanes if row_id is not None],
    }
    checkpoint["signature"] = base64.b64encode(key.sign(_payload(checkpoint))).decode()
    return json.dumps(checkpoint, sort_keys=True)


@dataclass(frozen=True)
class Checked:
    checkpoints: int
    rows: int
    retained_away: int
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if not self.ok:
            return f"checkpoint check failed: {self.problem}"
        return (f"{self.checkpoints} signed checkpoint(s) hold: {self.rows} checkpointed rows still in their lanes"
                f"{f', {self.retained_away} removed by recorded retention' if self.retained_away else ''}")  # fmt: skip


def check(conn: psycopg.Connection[Any], checkpoints: Path, public_key: Path) -> Checked:
    """Every checkpoint in the file is signed by the key and every row it names is still there, unchanged."""
    _, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature

    key = _load(public_key, private=False)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UserError(f"{public_key} is not an Ed25519 public key")
    try:
        lines = [line for line in checkpoints.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise UserError(f"cannot read {checkpoints}: {exc.strerror}") from None
    pruned = dict(conn.execute("SELECT lane, coalesce(pruned_through_id, 0) FROM platform.audit_chain").fetchall())
    rows = retained = 0
    for number, line in enumerate(lines, 1):
        try:
            checkpoint = json.loads(line)
            key.verify(base64.b64decode(checkpoint["signature"]), _payload(checkpoint))
        except (ValueError, KeyError, TypeError, InvalidSignature):
            return Checked(
                number - 1, rows, retained, f"line {number} of {checkpoints} is not a checkpoint signed by this key"
            )
        for lane, row_id, row_hash in checkpoint["lanes"]:
            found = conn.execute(
                "SELECT chain_lane, encode(row_hash, 'hex') FROM platform.audit_logs WHERE id = %s", (row_id,)
            ).fetchone()
            if found is None and row_id <= pruned.get(lane, 0):
                retained += 1
                continue
            if found is None or (int(found[0]), str(found[1])) != (lane, row_hash):
                what = "is gone" if found is None else "has changed"
                lost = f"row {row_id} of lane {lane}, checkpointed at {checkpoint['taken_at']}, {what}"
                return Checked(number - 1, rows, retained, lost)
            rows += 1
    return Checked(len(lines), rows, retained)
