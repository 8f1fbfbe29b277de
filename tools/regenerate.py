"""Regenerate the committed, generated artifacts from a throwaway PostgreSQL 18 migrated to head.

python -m tools.regenerate snapshot   # docs/schema-snapshot.txt  (make snapshot)
python -m tools.regenerate docs       # docs/schema/              (make docs)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import psycopg
from tests.pg import Server, server_bins

from platformdb import migrate
from platformdb.review import docs
from platformdb.review.introspect import read_schema
from platformdb.review.snapshot import snapshot

ROOT = Path(__file__).resolve().parents[1]


def main(what: str) -> None:
    server = Server.start("regenerate", server_bins()["pg18"])
    try:
        name = server.create_database()
        migrate.upgrade(server.url(name), "head")
        with psycopg.connect(server.dsn(name)) as conn:
            if what == "snapshot":
                (ROOT / "docs" / "schema-snapshot.txt").write_text(
                    snapshot(conn, dated_partitions=False, portable=True)
                )
            elif what == "docs":
                schema = read_schema(conn)
                assert schema is not None
                shutil.rmtree(ROOT / "docs" / "schema", ignore_errors=True)
                docs.generate(schema, ROOT / "docs" / "schema")
            else:
                raise SystemExit(f"usage: python -m tools.regenerate snapshot|docs, not {what!r}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
