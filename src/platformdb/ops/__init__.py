"""Operations run against production by DBAs and cron: audit chain verification, partition maintenance, logins.

Not imported by services. Each module works on a psycopg connection or a URL the operator names; the
``platformdb audit | partitions | roles`` commands are thin wrappers around them.
"""
