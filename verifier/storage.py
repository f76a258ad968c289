"""The verifier's storage for a registry name: a postgresql:// URL is PostgreSQL (verifier/store_pg.py), anything else
a SQLite file (verifier/store.py)."""

from verifier.dburl import is_database_url


def open_storage(db):
    if is_database_url(db):
        from verifier.store_pg import PGStorage
        return PGStorage(str(db))
    from verifier.store import SQLiteStorage
    return SQLiteStorage(db)
