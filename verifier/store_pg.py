"""The verifier's store on PostgreSQL (issue #15; docs/architecture.md "PostgreSQL", docs/operations.md 5b): the
same feature stores as verifier.store.SQLiteStorage, on a verifier.pgconn.PGConnection instead of a sqlite3
connection, with PostgreSQL parts where the dialects differ. verifier.storage.open_storage chooses it for a
postgresql:// URL.

What it has: the schemas (translated by pgconn.translate_ddl), the column migrations (read from
information_schema instead of PRAGMA table_info), the schema version in a table of its own (`janua_schema`,
the PRAGMA user_version of SQLite files), the features' PostgreSQL scripts (PG_SCRIPTS: the registry's
change-marker triggers, the fleet triggers and one-off build, the shared lockout tables; verifier/<feature>/
store_pg.py), the lockouts shared between instances (verifier.registry.limits_pg), and every store method whose
SQL means the same on both. Rate limits stay in each instance's memory (docs/protocol.md 3.4).
"""

import asyncio
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from verifier import pgconn
from verifier.alerts.store_pg import PGAlertsStorage
from verifier.claims.store_pg import PGClaimsStorage
from verifier.console.store_pg import PGConsoleStorage
from verifier.errors import StorageError
from verifier.fleet.store_pg import PG_FLEET_INDEXES, PGFleetStorage
from verifier.ota.store_pg import PG_OTA_SCRIPT, PGOTAStorage
from verifier.regions.store_pg import PGRegionsStorage
from verifier.policy.store_pg import PGPolicyStorage
from verifier.registry.limits_pg import PG_LIMITS_SCRIPT, PGLimitStore
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


class PGStorage(PGRegistryStorage, PGOTAStorage, PGFleetStorage, PGAlertsStorage, PGConsoleStorage, PGRegionsStorage,
                PGPolicyStorage, PGClaimsStorage,
                SQLiteStorage):
    """Storage on a PostgreSQL database, given by its URL (postgresql://...)."""

    def __init__(self, url):
        self._url = url
        try:
            self._db = pgconn.PGConnection(url)
        except pgconn.DatabaseError as e:
            raise StorageError(f"cannot open database {redact_url(url)}: {e}") from e
        self._depth = 0
        self.limits = PGLimitStore(url, self)
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
    PG_SCRIPTS = (PG_CHANGE_TRIGGERS, PG_FLEET_INDEXES, PG_OTA_SCRIPT, PG_LIMITS_SCRIPT)

    def close(self):
        self.limits.close()
        self._db.close()

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
        outer = self._depth == 0
        self._depth += 1
        try:
            return _record_auth_on(self._db, outer, accepted, activated, audit_rows, seen)
        finally:
            self._depth -= 1

    # ---------------------------------------------------------------- the auth path, off the event loop
    # The batches of binary auth (verifier/binauth/batch.py) are written by one thread of their own on a connection of
    # their own, and the event loop awaits them. Why a thread and not psycopg's AsyncConnection: the admin routes and
    # the other features still call the store synchronously on the event loop, and one of them waiting for a lock
    # (BEGIN IMMEDIATE's writer lock, a row) held by an auth transaction that only the event loop could finish would
    # wait forever. The thread finishes its transaction on its own, so such a wait is as short as the transaction.
    async_auth = True          # the batcher awaits record_auth_async and load_devices_async (verifier/binauth)
    _auth_thread = None
    _auth_db = None

    @property
    def url(self):
        return self._url

    async def aopen(self):
        """The auth path's thread and connection; the app opens them at start (verifier/app.py)."""
        if self._auth_thread is None:
            self._auth_thread = ThreadPoolExecutor(1, thread_name_prefix="janua-auth-db")
        if self._auth_db is None:
            try:
                self._auth_db = await asyncio.get_running_loop().run_in_executor(
                    self._auth_thread, pgconn.PGConnection, self._url)
            except sqlite3.Error as e:
                raise StorageError(f"cannot open database {redact_url(self._url)}: {e}") from e

    async def aclose(self):
        db, self._auth_db = self._auth_db, None
        pool, self._auth_thread = self._auth_thread, None
        if pool is not None:
            if db is not None:
                await asyncio.get_running_loop().run_in_executor(pool, db.close)
            pool.shutdown(wait=False)

    async def in_auth_thread(self, fn, *args):
        """fn(connection, *args) on the auth path's thread and connection; awaited. A lost connection is opened
        again by the next call."""
        await self.aopen()
        db = self._auth_db
        try:
            return await asyncio.get_running_loop().run_in_executor(self._auth_thread, fn, db, *args)
        finally:
            if db.lost and self._auth_db is db:
                self._auth_db = None
                self._auth_thread.submit(db.close)

    async def record_auth_async(self, accepted, activated, audit_rows, seen=()):
        """record_auth, in the auth path's thread: the event loop goes on while the batch is written."""
        try:
            return await self.in_auth_thread(_record_auth_on, True, accepted, activated, audit_rows, seen)
        except StorageError:
            raise
        except sqlite3.Error as e:
            raise StorageError(f"could not persist auth state: {e}") from e

    async def load_devices_async(self, device_ids):
        """{device id: the device as get_device gives it} of those of `device_ids` that exist, in one query."""
        try:
            rows = await self.in_auth_thread(_fetch, DEVICES_BY_ID, (list(device_ids),))
        except sqlite3.Error as e:
            raise StorageError(f"could not load devices: {e}") from e
        return {bytes(r["id"]): self._device(r) for r in rows}


def _fetch(db, sql, args):
    return db.execute(sql, args).fetchall()


def _record_auth_on(db, outer, accepted, activated, audit_rows, seen):
    """One auth batch's statements on `db`; returns the devices that lost. Outside a transaction (`outer`) they go
    with the shared lock as one message, one implicit transaction the server runs to its end (pgconn
    transaction_script: one round trip); inside the caller's transaction, one after the other."""
    try:
        steps = _auth_batch(accepted, activated, audit_rows, seen)
        if outer:
            rows = db.transaction_script([(SHARED_LOCK, ())] + steps)
        else:
            rows = []
            for sql, args in steps:
                rows = db.execute(sql, args).fetchall()
        return {bytes(r[0]) for r in rows}
    except sqlite3.Error as e:
        raise StorageError(f"could not persist auth state: {e}") from e


SHARED_LOCK = pgconn.SHARED_LOCK
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
