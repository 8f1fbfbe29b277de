"""``platformdb audit verify``: prove the audit log is whole, or report the first thing that is not.

The log is a hash chain in lanes (``audit_logs.chain_lane``); within a lane chain order is id order, because ids
are taken under the lane head's lock. The verifier trusts nothing stored in the database it checks:

- it computes every row's hash itself, from the raw columns, with PostgreSQL's built-ins (``pg_catalog``
  sha256 and jsonb), never through ``platform.audit_row_hash``, which the owner could replace;
- each row must hash to its row_hash and link to the previous row of its lane; a lane's oldest row must link
  to where retention left the lane (``audit_chain.pruned_through_hash``, which ``partitions prune`` writes in
  the transaction that drops the rows) or to 32 zero bytes; a lane's newest row must be the lane's head, and a
  lane without rows must have the head retention left; every row's lane must have a head, and there are
  exactly 16 heads; from hash_version 2 on the lane number is hashed too, so a lane cannot be renumbered;
- the capture triggers of every audited table and the append-only guards of audit_logs and each partition must
  be enabled, and (at the head revision) the capture and guard functions must be the ones this release ships.

What no check inside the database can see: a consistent rewrite of a lane's newest rows with its head reset to
match (or the same for every lane) by someone who can write the tables. Signed checkpoints taken outside the
database (:mod:`platformdb.ops.checkpoints`) make that evident: every checkpointed row must still be there, and
the walk above links it to today's head. The verdict says which were checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from platformdb.errors import UserError
from platformdb.models.audit import AUDIT_LANES
from platformdb.models.base import context_sql

# The canonical forms are written here, not read from the database: 1 (revisions 0010-0016), 2 (0017-0022),
# 3 (0027 on: also entity_schema).
_WALK = """
WITH heads AS (SELECT lane, encode(coalesce(pruned_through_hash, decode(repeat('00', 32), 'hex')), 'hex') AS anchor
                 FROM platform.audit_chain),
chain AS (
  SELECT l.id, l.chain_lane, encode(l.prev_hash, 'hex') AS prev_hash, encode(l.row_hash, 'hex') AS row_hash,
         l.hash_version,
         encode(sha256(convert_to((CASE l.hash_version
           WHEN 1 THEN jsonb_build_array(l.id, l.created_at AT TIME ZONE 'UTC', l.transaction_id, l.actor_id,
             l.actor_name, l.db_role, l.action, l.entity_type, l.entity_id, l.request_id, l.client_addr, l.before,
             l.after, encode(l.prev_hash, 'hex'))
           WHEN 2 THEN jsonb_build_array(l.id, l.created_at AT TIME ZONE 'UTC', l.transaction_id, l.actor_id,
             l.actor_name, l.db_role, l.action, l.entity_type, l.entity_id, l.request_id, l.client_addr, l.before,
             l.after, encode(l.prev_hash, 'hex'), l.hash_version, l.chain_lane, l.claimed_client_addr)
           WHEN 3 THEN jsonb_build_array(l.id, l.created_at AT TIME ZONE 'UTC', l.transaction_id, l.actor_id,
             l.actor_name, l.db_role, l.action, l.entity_type, l.entity_id, l.request_id, l.client_addr, l.before,
             l.after, encode(l.prev_hash, 'hex'), l.hash_version, l.chain_lane, l.claimed_client_addr,
             {entity_schema})
         END)::text, 'UTF8')), 'hex') AS computed,
         encode(lag(l.row_hash) OVER lane, 'hex') AS predecessor, lag(l.id) OVER lane AS predecessor_id,
         lag(l.hash_version) OVER lane AS predecessor_version, row_number() OVER lane AS n
    FROM platform.audit_logs l
   WHERE l.id >= %(since_id)s
  WINDOW lane AS (PARTITION BY l.chain_lane ORDER BY l.id)
)
SELECT c.id, format('row is in lane %%s, which has no head', c.chain_lane), 'a lane from 0 to 15', c.chain_lane::text
  FROM chain c LEFT JOIN heads h ON h.lane = c.chain_lane WHERE h.lane IS NULL
UNION ALL
SELECT id, 'row content does not match its row_hash', coalesce(computed, format('hash_version %%s', hash_version)),
       row_hash
  FROM chain WHERE computed IS DISTINCT FROM row_hash
UNION ALL
SELECT id, format('prev_hash does not link to row %%s, the previous row of lane %%s', predecessor_id, chain_lane),
       predecessor, prev_hash
  FROM chain WHERE predecessor IS NOT NULL AND prev_hash IS DISTINCT FROM predecessor
UNION ALL
SELECT c.id, format('the oldest row of lane %%s does not link to where retention left the lane', c.chain_lane),
       h.anchor, c.prev_hash
  FROM chain c JOIN heads h ON h.lane = c.chain_lane
 WHERE c.n = 1 AND %(from_start)s AND c.prev_hash IS DISTINCT FROM h.anchor
UNION ALL
SELECT id, format('hash_version goes back from %%s in lane %%s', predecessor_version, chain_lane),
       predecessor_version::text, hash_version::text
  FROM chain WHERE hash_version < predecessor_version
ORDER BY 1, 2
LIMIT 1
"""

_HEADS = """
SELECT c.lane, encode(c.last_hash, 'hex'), newest.id, encode(newest.row_hash, 'hex'),
       encode(coalesce(c.pruned_through_hash, decode(repeat('00', 32), 'hex')), 'hex')
  FROM platform.audit_chain c
  LEFT JOIN LATERAL (
    SELECT l.id, l.row_hash FROM platform.audit_logs l WHERE l.chain_lane = c.lane ORDER BY l.id DESC LIMIT 1
  ) newest ON true
 ORDER BY c.lane
"""

# Triggers that must be on and enabled: every capture trigger the release ships, and audit_logs' guards on the
# parent and every partition (a partition's guard can be disabled on its own).
_TRIGGERS = """
SELECT t.relname, g.tgname, g.tgenabled
  FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_trigger g ON g.tgrelid = t.oid AND NOT g.tgisinternal
 WHERE n.nspname = 'platform' AND t.relkind IN ('r', 'p')
"""


# Capture triggers attached to tables outside schema platform (platform.enable_audit, revision 0027): each must be
# enabled too.
_EXTENSION_TRIGGERS = """
SELECT n.nspname, t.relname, g.tgname, g.tgenabled
  FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname <> 'platform' AND NOT g.tgisinternal AND NOT t.relispartition
   AND g.tgfoid = (SELECT p.oid FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
                    WHERE s.nspname = 'platform' AND p.proname = 'audit_capture')
 ORDER BY 1, 2, 3
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
    notes: tuple[str, ...] = field(default=())
    """What was not checked, and why (e.g. the functions, on a database not at this release's head)."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if self.ok:
            span = f"ids {self.first_id}..{self.last_id}" if self.rows else "no rows"
            return f"audit chain verified: {self.rows} rows ({span}); digest of the lane heads {self.digest}"
        where = f"row {self.broken_id}" if self.broken_id is not None else "the chain"
        return f"audit chain broken at {where}: {self.problem}: expected {self.expected}, found {self.found}"


def verify(conn: psycopg.Connection[Any], since: dt.datetime | None = None) -> Verdict:
    """Check the log (from the first row created at or after ``since``, or all of it) and its guards."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if idle:  # one consistent view of the chain and its heads; inside a caller's transaction, use that one
        saved = (conn.isolation_level, conn.read_only)
        conn.isolation_level, conn.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
    try:
        with conn.transaction():
            conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")  # built-ins only, nothing of the owner's
            return _verify(conn, since)
    finally:
        if idle:
            conn.isolation_level, conn.read_only = saved


def _verify(conn: psycopg.Connection[Any], since: dt.datetime | None) -> Verdict:
    heads = conn.execute(_HEADS).fetchall()
    digest = hashlib.sha256(b"".join(bytes.fromhex(str(h[1])) for h in heads)).hexdigest()
    since_id = 0
    if since is not None:
        found = conn.execute("SELECT min(id) FROM platform.audit_logs WHERE created_at >= %s", (since,)).fetchone()
        since_id = int(found[0]) if found and found[0] is not None else 2**62
    span = conn.execute(
        "SELECT count(*), min(id), max(id) FROM platform.audit_logs WHERE id >= %s", (since_id,)
    ).fetchone()
    assert span is not None
    rows, first_id, last_id = int(span[0]), span[1], span[2]

    def broken(
        row_id: int | None, problem: str, expected: object, found: object, notes: tuple[str, ...] = ()
    ) -> Verdict:
        return Verdict(rows, first_id, last_id, digest, row_id, problem, str(expected), str(found), notes)

    lanes = [int(h[0]) for h in heads]
    if lanes != list(range(AUDIT_LANES)):
        return broken(None, "audit_chain does not hold exactly the lanes 0 to 15", list(range(AUDIT_LANES)), lanes)
    guard = _guards(conn)
    if guard is not None:
        return broken(None, *guard)
    walked = conn.execute(_walk(conn), {"since_id": since_id, "from_start": since is None}).fetchone()
    if walked is not None:
        return broken(walked[0], walked[1], walked[2], walked[3])
    for lane, head, newest_id, newest_hash, anchor in heads:
        if newest_id is not None and newest_hash != head:
            return broken(newest_id, f"the newest row of lane {lane} is not the lane's head", head, newest_hash)
        if newest_id is None and since is None and head != anchor:
            return broken(None, f"lane {lane} has no rows, but its head names one", anchor, head)
    return Verdict(rows, first_id, last_id, digest, notes=_notes(conn))


def _walk(conn: psycopg.Connection[Any]) -> str:
    """The walk, for a database before revision 0027 too (no entity_schema column, so no version-3 row)."""
    found = conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'platform.audit_logs'::regclass AND attname = 'entity_schema'"
        " AND NOT attisdropped"
    ).fetchone()
    return _WALK.replace("{entity_schema}", "l.entity_schema" if found else "NULL::text")


def _guards(conn: psycopg.Connection[Any]) -> tuple[str, str, str] | None:
    """The first capture trigger or append-only guard that is missing or disabled, or a replaced function."""
    triggers = {(str(t), str(g)): str(e) for t, g, e in conn.execute(_TRIGGERS).fetchall() if g is not None}
    partitions = [str(r[0]) for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'platform.audit_logs'::regclass ORDER BY 1").fetchall()]  # fmt: skip
    at_head = _at_head(conn)
    required = [(t, f"trg_{t}_audit") for t in shipped_audited_tables()]
    if not at_head:  # an older revision lacks the tables later ones add: what it has must be captured
        present = {str(r[0]) for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'platform'::regnamespace").fetchall()}  # fmt: skip
        required = [(t, g) for t, g in required if t in present]
    required += [(t, g) for t in ("audit_logs", *partitions) for g in ("trg_audit_logs_append_only",
                                                                        "trg_audit_logs_no_truncate")]  # fmt: skip
    for table, trigger in required:
        state = triggers.get((table, trigger))
        if state not in ("O", "A"):
            return (
                f"trigger {trigger} on {table} is {'missing' if state is None else 'disabled'}",
                "enabled",
                str(state),
            )
    for schema, table, trigger, state in conn.execute(_EXTENSION_TRIGGERS).fetchall():
        if state not in ("O", "A"):
            return f"trigger {trigger} on {schema}.{table} is disabled", "enabled", str(state)
    if at_head:
        for function, source in shipped_functions().items():
            row = conn.execute(
                "SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", (f"platform.{function}()",)
            ).fetchone()
            found = row[0] if row else None
            if found is None or found.strip() != source.strip():
                digest = hashlib.sha256(str(found).encode()).hexdigest()[:16]
                return f"function platform.{function}() is not the one this release ships", "the shipped body", digest
    return None


def _at_head(conn: psycopg.Connection[Any]) -> bool:
    """Whether platformdb's head is applied: recorded in alembic_version, or implied by a recorded extension
    revision that depends on it (Alembic keeps only the heads nothing else applied implies)."""
    from platformdb.migrate import applied_from, head

    if not _has_version(conn):
        return False
    at = [str(r[0]) for r in conn.execute("SELECT version_num FROM public.alembic_version").fetchall()]
    try:
        return head() in applied_from(at)
    except UserError:  # a revision no registered location provides: not provably at head
        return False


def _has_version(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _notes(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    notes = ["a consistent rewrite of a lane's newest rows with its head reset is evident only against a signed "
             "checkpoint (platformdb audit checkpoint)"]  # fmt: skip
    if not _at_head(conn):
        notes.append("the capture and guard functions were not compared: the database is not at this release's head")
    return tuple(notes)


_TRIGGER_DEF = re.compile(r"CREATE TRIGGER trg_(\w+)_audit\b")
_FUNCTION_DEF = r"CREATE FUNCTION platform\.{name}\(\).*?AS \$\$(.*?)\$\$;"


def shipped_audited_tables() -> list[str]:
    """The tables this release attaches an audit capture trigger to (from the contexts' SQL)."""
    from platformdb.contexts import NAMES

    return sorted({t for name in NAMES for t in _TRIGGER_DEF.findall(context_sql(name))})


def shipped_functions() -> dict[str, str]:
    """The bodies of the functions the audit trail rests on, as this release ships them."""
    found = {}
    for name, context in (("audit_capture", "audit"), ("forbid_change", "base")):
        match = re.search(_FUNCTION_DEF.format(name=name), context_sql(context), re.DOTALL)
        assert match is not None, name
        found[name] = match.group(1)
    return found
