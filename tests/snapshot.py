"""Print the committed schema snapshot: a throwaway PostgreSQL 18, migrated to head (`make snapshot`)."""

from __future__ import annotations

import sys

import psycopg

from platformdb import migrate
from platformdb.introspect import snapshot
from tests.pg import Server, server_bins


def main() -> None:
    server = Server.start("snapshot", server_bins()["pg18"])
    try:
        name = server.create_database()
        migrate.upgrade(server.url(name), "head")
        with psycopg.connect(server.dsn(name)) as conn:
            sys.stdout.write(snapshot(conn, dated_partitions=False, portable=True))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
