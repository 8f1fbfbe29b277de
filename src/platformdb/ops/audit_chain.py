"""``platformdb audit verify``: walk the hash chain of platform.audit_logs and report the first broken link.

The chain has lanes (``audit_logs.chain_lane``); within a lane it is in id order, because ids are taken under
the lane head's lock. Each row must hash to its row_hash (``platform.audit_row_hash``, the same function the
capture trigger uses) and link to the row_hash of its lane's previous row, and each lane's newest row must equal
the lane's head kept in ``platform.audit_chain``. A lane's first row checked is its anchor: its prev_hash is
trusted (after retention drops old partitions, it is the hash of a row no longer here). The verdict's digest
(SHA-256 of the lane heads in lane order) is the value to record outside the database from time to time, to
make even a wholesale rewrite evident.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg

_WALK = """
WITH chain AS (
  SELECT l.id, l.chain_lane, l.prev_hash, l.row_hash, platform.audit_row_hash(l) AS computed,
         lag(l.row_hash) OVER lane AS predecessor, lag(l.id) OVER lane AS predecessor_id
    FROM platform.audit_logs l
   WHERE l.id >= coalesce((SELECT min(s.id) FROM platform.audit_logs s WHERE s.created_at >= %(since)s), 0)
  WINDOW lane AS (PARTITION BY l.chain_lane ORDER BY l.id)
)
SELECT id, 'row content does not match its row_hash', encode(computed, 'hex'), encode(row_hash, 'hex')
  FROM chain WHERE computed IS DISTINCT FROM row_hash
UNION ALL
SELECT id, format('prev_hash does not link to row %%s, the previous row of lane %%s', predecessor_id, chain_lane),
       encode(predecessor, 'hex'), encode(prev_hash, 'hex')
  FROM chain WHERE predecessor IS NOT NULL AND prev_hash IS DISTINCT FROM predecessor
ORDER BY 1, 2
LIMIT 1
"""


@dataclass(frozen=True)
class Verdict:
    rows: int
    first_id: int | None
    last_id: int | None
    digest: str
    broken_id: int | None = None
    problem: str | None = None
    expected: str | None = None
    found: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.ok:
            span = f"ids {self.first_id}..{self.last_id}" if self.rows else "no rows"
            return f"audit chain verified: {self.rows} rows ({span}); digest of the lane heads {self.digest}"
        where = f"row {self.broken_id}" if self.broken_id is not None else "the chain head"
        return f"audit chain broken at {where}: {self.problem}: expected {self.expected}, found {self.found}"


def verify(conn: psycopg.Connection[Any], since: dt.datetime | None = None) -> Verdict:
    """Check the chain (from the first row created at or after ``since``, or from the oldest row)."""
    since_param = since or dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if idle:  # one consistent view of the chain and its head; inside a caller's transaction, use that one
        saved = (conn.isolation_level, conn.read_only)
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
    try:
        return _verify(conn, since_param)
    finally:
        if idle:
            conn.isolation_level, conn.read_only = saved


_HEADS = """
SELECT c.lane, encode(c.last_hash, 'hex'), newest.id, encode(newest.row_hash, 'hex')
  FROM platform.audit_chain c
  LEFT JOIN LATERAL (
    SELECT l.id, l.row_hash FROM platform.audit_logs l WHERE l.chain_lane = c.lane ORDER BY l.id DESC LIMIT 1
  ) newest ON true
 ORDER BY c.lane
"""


def _verify(conn: psycopg.Connection[Any], since_param: dt.datetime) -> Verdict:
    with conn.transaction():
        heads = conn.execute(_HEADS).fetchall()
        digest = hashlib.sha256(b"".join(bytes.fromhex(str(h[1])) for h in heads)).hexdigest()
        span = conn.execute(
            """SELECT count(*), min(id), max(id) FROM platform.audit_logs
                WHERE id >= coalesce((SELECT min(s.id) FROM platform.audit_logs s WHERE s.created_at >= %s), 0)""",
            (since_param,),
        ).fetchone()
        assert span is not None
        rows, first_id, last_id = int(span[0]), span[1], span[2]
        broken = conn.execute(_WALK, {"since": since_param}).fetchone()
    if broken is not None:
        return Verdict(rows, first_id, last_id, digest, broken[0], broken[1], broken[2], broken[3])
    for lane, head, newest_id, newest_hash in heads:
        if newest_id is not None and newest_hash != head:
            problem = f"the newest row of lane {lane} is not the lane's head"
            return Verdict(rows, first_id, last_id, digest, newest_id, problem, head, newest_hash)
    return Verdict(rows, first_id, last_id, digest)
