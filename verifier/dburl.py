"""Whether a registry name is a PostgreSQL URL, and the same URL fit to print (no imports: config and store use it)."""

import re


def is_database_url(db):
    """Whether `db` names a PostgreSQL database (postgresql:// or postgres://) rather than a SQLite file."""
    return str(db).startswith(("postgresql://", "postgres://"))


def redact_url(db):
    """`db` with the password of a database URL replaced by ***, for messages and printed settings."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(db))
