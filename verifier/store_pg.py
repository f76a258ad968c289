"""The verifier's store on PostgreSQL (issue #15, in progress; docs/architecture.md "PostgreSQL"): the same
feature stores as verifier.store.SQLiteStorage, on a verifier.pgconn.PGConnection instead of a sqlite3
connection, with PostgreSQL parts where the dialects differ.

What it has: the schemas (translated by pgconn.translate_ddl), the column migrations (read from
information_schema instead of PRAGMA table_info), the schema version in a table of its own (`janua_schema`,
the PRAGMA user_version of SQLite files), the features' PostgreSQL scripts (PG_SCRIPTS: the registry's change-marker
triggers, the fleet triggers and one-off build, verifier/<feature>/store_pg.py), and every store method whose SQL means the same on both. What it does
not have yet: the methods that use SQLite's JSON functions or lastrowid, shared rate limits and lockouts, and cache invalidation between instances. `open_storage` in verifier.store does not choose
it yet: only tests use it.
"""

import re
import sqlite3

from verifier import pgconn
from verifier.alerts.store_pg import PGAlertsStorage
from verifier.errors import StorageError
from verifier.fleet.store_pg import PG_FLEET_INDEXES, PGFleetStorage
from verifier.ota.store_pg import PG_OTA_SCRIPT, PGOTAStorage
from verifier.registry.limits import MemoryLimitStore
from verifier.registry.store import AUDIT_COLUMNS, audit_rows_full
from verifier.dburl import redact_url
from verifier.registry.store_pg import PG_CHANGE_TRIGGERS, PGRegistryStorage
from verifier.store import SQLiteStorage

AUDIT_INSERT = "INSERT INTO audit (%s) VALUES (%s)" % (",".join(AUDIT_COLUMNS), ",".join("?" * len(AUDIT_COLUMNS)))
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


class PGStorage(PGRegistryStorage, PGOTAStorage, PGFleetStorage, PGAlertsStorage, SQLiteStorage):
    """Storage on a PostgreSQL database, given by its URL (postgresql://...)."""

    def __init__(self, url):
        self._url = url
        try:
            self._db = pgconn.PGConnection(url)
        except pgconn.DatabaseError as e:
            raise StorageError(f"cannot open database {redact_url(url)}: {e}") from e
        self._depth = 0
        self.limits = MemoryLimitStore()
        try:
            self._db.executescript("CREATE TABLE IF NOT EXISTS janua_schema (id INTEGER PRIMARY KEY CHECK (id = 0), "
                                   "version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM janua_schema WHERE id = 0").fetchone()
            found = row[0] if row else 0
            if found > self.SCHEMA_VERSION:
                raise StorageError(f"cannot open database {redact_url(url)}: its schema version is {found}, written by a "
                                   f"newer janua; this janua knows versions up to {self.SCHEMA_VERSION}")
            with self.transaction():
                for script in self.SCHEMAS:
                    self._run_script(script)
                self._migrate()
                for script in self.PG_INDEXES:
                    self._run_script(script)
                for script in self.PG_SCRIPTS:
                    self._db.executescript(script)
                self._db.execute("INSERT INTO janua_schema VALUES (0, ?) ON CONFLICT (id) DO UPDATE "
                                 "SET version = excluded.version", (self.SCHEMA_VERSION,))
        except pgconn.DatabaseError as e:
            self._db.close()
            raise StorageError(f"cannot open database {redact_url(url)}: {e}") from e

    PG_INDEXES = tuple(s for s in SQLiteStorage.INDEXES if "CREATE TRIGGER" not in s)
    # PostgreSQL text sent as is after PG_INDEXES (translate_ddl does not apply)
    PG_SCRIPTS = (PG_CHANGE_TRIGGERS, PG_FLEET_INDEXES, PG_OTA_SCRIPT)

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


    # ---------------------------------------------------------------- binary auth's group commit
    def record_auth(self, accepted, activated, audit_rows, seen=()):
        """RegistryStorage.record_auth on a database several instances share. The replay floor of a device moves
        only upward, and only for the instance that finds it below the LOWEST timestamp it accepted for that device
        in this batch (a conditional upsert; PostgreSQL re-reads the row under its lock when two instances write
        it at once). A device whose floor was already there has lost: none of its timestamps of this batch is
        written, its audit rows say REPLAY, and its id is returned so that no OK goes out. So one packet sent to
        two instances at once is accepted at most once. The transaction takes the writer lock shared: auth batches
        of all instances run side by side, and wait only for an exclusive writer (BEGIN IMMEDIATE: an admin
        change that checks and then writes)."""
        try:
            return self._record_auth_pg(accepted, activated, audit_rows, seen)
        except sqlite3.Error as e:
            raise StorageError(f"could not persist auth state: {e}") from e

    def _record_auth_pg(self, accepted, activated, audit_rows, seen):
        db = self._db
        outer = self._depth == 0
        if outer:
            db.execute("BEGIN")
            db.execute(SHARED_LOCK)
        self._depth += 1
        try:
            rows = []
            for sql, args in _auth_batch(accepted, activated, audit_rows, seen):
                rows = db.execute(sql, args).fetchall()
        except BaseException:
            self._depth -= 1
            if outer:
                db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if outer:
            db.execute("COMMIT")
        return {bytes(r[0]) for r in rows}

    # ---------------------------------------------------------------- the async side of the auth path
    async_auth = True          # the batcher awaits record_auth_async and load_devices_async (verifier/binauth)
    _adb = None

    @property
    def url(self):
        return self._url

    async def aopen(self):
        """The async connection of the auth path; the app opens it at start (verifier/app.py)."""
        if self._adb is None:
            self._adb = await pgconn.AsyncPGConnection.connect(self._url)

    async def aclose(self):
        if self._adb is not None:
            adb, self._adb = self._adb, None
            await adb.close()

    async def record_auth_async(self, accepted, activated, audit_rows, seen=()):
        """record_auth, on the async connection: the event loop goes on while the batch is written. The whole
        transaction (the shared lock, the statements) is one message, one implicit transaction the server runs to its
        end without this process (pgconn transaction_script). Were it held open across awaits, a writer of this same
        process on the event loop's thread (BEGIN IMMEDIATE: an admin request, a sweep) would wait for the shared
        lock while the loop it blocks is what the open transaction waits for: the instance would hang."""
        await self.aopen()
        try:
            rows = await self._adb.transaction_script([(SHARED_LOCK, ())] +
                                                      _auth_batch(accepted, activated, audit_rows, seen))
        except sqlite3.Error as e:
            raise StorageError(f"could not persist auth state: {e}") from e
        return {bytes(r[0]) for r in rows}

    async def load_devices_async(self, device_ids):
        """{device id: the device as get_device gives it} of those of `device_ids` that exist, in one query."""
        await self.aopen()
        rows = await self._adb.execute(DEVICES_BY_ID, (list(device_ids),))
        return {bytes(r["id"]): self._device(r) for r in rows}


SHARED_LOCK = f"SELECT pg_advisory_xact_lock_shared({pgconn.WRITER_LOCK})"
DEVICES_BY_ID = ("SELECT d.*, COALESCE(a.last_ts, 0) AS last_ts, a.last_authenticated_at, "
                 "a.last_authenticated_at AS last_seen_at FROM devices d LEFT JOIN auth_state a ON a.id = d.id "
                 "WHERE d.id = ANY(?::bytea[])")


_AUDIT_TYPES = ("bigint",) + ("text",) * (len(AUDIT_COLUMNS) - 1)
# One statement for the accepted timestamps and the audit rows (record_auth): each device's floor moves to the
# highest timestamp of the batch only where it is below the LOWEST one (a conditional upsert, rows locked in id
# order); the devices it did not move lost (their OK audit rows are written as REPLAY), and are returned.
_AUTH_SQL = (
    "WITH b AS (SELECT * FROM unnest(?::bytea[], ?::bigint[], ?::bigint[], ?::bigint[]) AS b (id, lo, hi, at)), "
    "won AS (INSERT INTO auth_state (last_ts, last_authenticated_at, id) SELECT hi, at, id FROM b ORDER BY id "
    "ON CONFLICT (id) DO UPDATE SET last_ts = excluded.last_ts, last_authenticated_at = excluded.last_authenticated_at "
    "WHERE auth_state.last_ts < (SELECT b.lo FROM b WHERE b.id = excluded.id) RETURNING id), "
    "lost AS (SELECT id FROM b WHERE id NOT IN (SELECT id FROM won)), "
    "aud AS (INSERT INTO audit (%s) SELECT %s FROM unnest(%s) WITH ORDINALITY AS r (%s, n) ORDER BY n) "
    "SELECT id FROM lost" % (
        ",".join(AUDIT_COLUMNS),
        ", ".join("CASE WHEN r.kind = 'auth' AND r.result = 'OK' AND r.device_id IN (SELECT encode(id, 'hex') FROM "
                  "lost) THEN %s ELSE r.%s END" % (new, c) if c in ("result", "reason") else "r." + c
                  for c, new in zip(AUDIT_COLUMNS, [None] * 8 + ["'REPLAY'",
                                                                 "'timestamp accepted first by another verifier instance'", None])),
        ", ".join(f"?::{t}[]" for t in _AUDIT_TYPES), ", ".join(AUDIT_COLUMNS)))


def _auth_batch(accepted, activated, audit_rows, seen):
    """The statements of one auth batch (record_auth) as (sql, args); the last returns the device ids that lost
    (another instance had taken their timestamps), or nothing. Rows of one statement go as arrays; a device named
    twice keeps what one row after the other would leave (seen: the last time; activated: the first)."""
    out = []
    if seen:
        last = {bytes(did): at for at, did in seen}
        out.append(("INSERT INTO auth_state (last_ts, last_authenticated_at, id) SELECT 0, at, id FROM "
                    "unnest(?::bigint[], ?::bytea[]) AS s (at, id) ON CONFLICT (id) DO UPDATE "
                    "SET last_authenticated_at = excluded.last_authenticated_at", (list(last.values()), list(last))))
    if activated:
        first = {}
        for at, did in activated:
            first.setdefault(bytes(did), at)
        out.append(("UPDATE devices SET status = 'active', status_changed_at = a.at FROM "
                    "unnest(?::bigint[], ?::bytea[]) AS a (at, id) WHERE devices.id = a.id AND "
                    "devices.status = 'provisioning'", (list(first.values()), list(first))))
    if accepted or audit_rows:
        lo, hi = {}, {}
        for ts, now, did in accepted:
            did = bytes(did)
            if did not in lo or ts < lo[did]:
                lo[did] = ts
            if did not in hi or ts > hi[did][0]:
                hi[did] = (ts, now)
        ids = sorted(lo)          # one order for every instance: row locks are taken without deadlock
        cols = list(zip(*audit_rows_full(audit_rows))) or [()] * len(AUDIT_COLUMNS)
        cols = [[None if v is None else int(v) for v in cols[0]]] + [[None if v is None else str(v) for v in c]
                                                                     for c in cols[1:]]
        out.append((_AUTH_SQL, (ids, [lo[d] for d in ids], [hi[d][0] for d in ids], [hi[d][1] for d in ids], *cols)))
    return out
