"""The X.509 and MQTT part of the storage interface (verifier/x509.py, verifier/mqtt_*.py): tables,
abstract methods, and their SQLite implementation as a mixin of verifier.storage.SQLiteStorage
(which owns the connection `_db`, `transaction()` and `_write()`)."""

import abc

X509_SCHEMA = """
"""


class X509Storage(abc.ABC):
    pass


class SQLiteX509Storage:
    pass
