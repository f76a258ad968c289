"""The verifier's store: every feature's storage interface composed into one `Storage`, and its SQLite
implementation `SQLiteStorage` on one file (what a second verifier instance would share). Each feature
owns its part in verifier/<feature>/store.py (the interface, its SQLite implementation, its schema);
this module only lists them. A PostgreSQL store composes the features' PostgreSQL parts the same way."""

from verifier.mqtt.store import X509_SCHEMA, SQLiteX509Storage, X509Storage
from verifier.ota.store import OTA_SCHEMA, OTAStorage, SQLiteOTAStorage
from verifier.registry.store import MIGRATIONS, SCHEMA, RegistryStorage, SQLiteRegistryStorage
from verifier.tokens.store import TOKEN_INDEXES, TOKEN_MIGRATIONS, TOKEN_SCHEMA, SQLiteTokenStorage, TokenStorage


class Storage(RegistryStorage, OTAStorage, TokenStorage, X509Storage):
    """What the verifier needs from its database. Device ids are 8 bytes; times are unix seconds."""


class SQLiteStorage(SQLiteRegistryStorage, SQLiteOTAStorage, SQLiteTokenStorage, SQLiteX509Storage, Storage):
    """Storage on one SQLite file (WAL). Single instance: limits are in process memory."""

    SCHEMAS = (SCHEMA, OTA_SCHEMA, TOKEN_SCHEMA, X509_SCHEMA)
    MIGRATIONS = MIGRATIONS + TOKEN_MIGRATIONS
    INDEXES = (TOKEN_INDEXES,)
