"""The verifier's store on PostgreSQL (issue #15, in progress; docs/architecture.md "PostgreSQL"): the same
feature stores as verifier.store.SQLiteStorage, on a verifier.pgconn.PGConnection instead of a sqlite3
connection, with PostgreSQL parts where the dialects differ.

What it has: the schemas (translated by pgconn.translate_ddl), the column migrations (read from
information_schema instead of PRAGMA table_info), the schema version in a table of its own (`janua_schema`,
the PRAGMA user_version of SQLite files), and every store method whose SQL means the same on both. What it does
not have yet: the fleet aggregates' triggers (FLEET_INDEXES is SQLite text; the fleet feature's PostgreSQL part
replaces it), the methods that use SQLite's JSON functions or lastrowid, the async group commit, shared rate
limits and lockouts, and cache invalidation between instances. `open_storage` in verifier.store does not choose
it yet: only tests use it.
"""

import re

from verifier import pgconn
from verifier.errors import StorageError
from verifier.registry.limits import MemoryLimitStore
from verifier.store import SQLiteStorage

_STATEMENTS = re.compile(r";\s*(?:\n|$)")


def _statements(script):
    """The statements of a schema script of tables, indexes and inserts (no trigger bodies)."""
    out = []
    for part in _STATEMENTS.split(script):
        lines = [ln for ln in part.splitlines() if not ln.strip().startswith("--")]
        text = "\n".join(lines).strip()
        if text:
            out.append(text)
    return out


class PGStorage(SQLiteStorage):
    """Storage on a PostgreSQL database, given by its URL (postgresql://...)."""

    def __init__(self, url):
        try:
            self._db = pgconn.PGConnection(url)
        except pgconn.DatabaseError as e:
            raise StorageError(f"cannot open database {_redact(url)}: {e}") from e
        self._depth = 0
        self.limits = MemoryLimitStore()
        try:
            self._db.executescript("CREATE TABLE IF NOT EXISTS janua_schema (id INTEGER PRIMARY KEY CHECK (id = 0), "
                                   "version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM janua_schema WHERE id = 0").fetchone()
            found = row[0] if row else 0
            if found > self.SCHEMA_VERSION:
                raise StorageError(f"cannot open database {_redact(url)}: its schema version is {found}, written by a "
                                   f"newer janua; this janua knows versions up to {self.SCHEMA_VERSION}")
            with self.transaction():
                for script in self.SCHEMAS:
                    self._run_script(script)
                self._migrate()
                for script in self.PG_INDEXES:
                    self._run_script(script)
                self._db.execute("INSERT INTO janua_schema VALUES (0, ?) ON CONFLICT (id) DO UPDATE "
                                 "SET version = excluded.version", (self.SCHEMA_VERSION,))
        except pgconn.DatabaseError as e:
            self._db.close()
            raise StorageError(f"cannot open database {_redact(url)}: {e}") from e

    # the fleet feature's PostgreSQL part will add its triggers here
    PG_INDEXES = tuple(s for s in SQLiteStorage.INDEXES if "CREATE TRIGGER" not in s)

    def _run_script(self, script):
        for stmt in _statements(script):
            if re.match(r"\s*CREATE\b", stmt, re.I):
                self._db.executescript(pgconn.translate_ddl(stmt))
            else:
                self._db.execute(stmt)

    def _migrate(self):
        tables = {m[0] for m in self.MIGRATIONS}
        cols = {t: set() for t in tables}
        for table, column in self._db.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"):
            if table in cols:
                cols[table].add(column)
        for table, column, alter, fill in self.MIGRATIONS:
            if column not in cols[table]:
                self._db.executescript(pgconn.translate_ddl(alter))
                if fill:
                    self._db.execute(fill)


def _redact(url):
    # a password in the URL never reaches a message
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
