"""The device-token part of the storage interface (verifier/tokens.py, verifier/chain.py): tables,
abstract methods, and their SQLite implementation as a mixin of verifier.storage.SQLiteStorage
(which owns the connection `_db`, `transaction()` and `_write()`)."""

import abc

TOKEN_SCHEMA = """
"""


class TokenStorage(abc.ABC):
    pass


class SQLiteTokenStorage:
    pass
