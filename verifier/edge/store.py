"""The edge verifier's own SQLite file (docs/tokens.md "Edge verifier"): the device cache, binary-auth
replay state, used chain tokens, the outboxes of reports for the upstream (audit rows, piggy-backed health
reports), and sync metadata.

What is stored per device is what the upstream's GET /v1/edge/devices/{id} gave: the derived binary-auth
key (sealed here under the edge's own KEK, bound to device and tenant), status, flags and policy. Never a
master secret. Everything an edge restart must not forget (accepted timestamps, used token indices,
undelivered reports, a queued health report) is written before the reply that depends on it is sent. One connection, used only
from the event-loop thread; every call is short. No wire protocol and no clock here: times are arguments.
"""

import json
import sqlite3

from verifier.errors import StorageError
from verifier.registry.limits import MemoryLimitStore
from verifier.sqlite_tx import SQLiteTransactions
from verifier.registry.store import AUDIT_COLUMNS
from verifier.sqlite_files import make_private

EDGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS edge_devices (
    id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, entry TEXT NOT NULL, sealed_key BLOB NOT NULL,
    fetched_at INTEGER NOT NULL) WITHOUT ROWID;
-- binary-auth replay state; `dirty` = not yet reported upstream
CREATE TABLE IF NOT EXISTS edge_auth_state (
    id BLOB PRIMARY KEY, last_ts INTEGER NOT NULL, dirty INTEGER NOT NULL) WITHOUT ROWID;
-- chain tokens accepted here (each once); `reported` = the upstream has acknowledged it
CREATE TABLE IF NOT EXISTS edge_used (
    device_id BLOB NOT NULL, idx INTEGER NOT NULL, ts INTEGER NOT NULL, exp INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (device_id, idx)) WITHOUT ROWID;
-- audit rows waiting for delivery upstream (JSON arrays in AUDIT_COLUMNS order)
CREATE TABLE IF NOT EXISTS edge_outbox (seq INTEGER PRIMARY KEY, row TEXT NOT NULL);
-- health reports piggy-backed on an accepted binary-auth request (docs/health.md 2.1), for the upstream:
-- the 20-byte request and the rest (report || tag) as received; never parsed here (the tag needs K_health)
CREATE TABLE IF NOT EXISTS edge_health (
    seq INTEGER PRIMARY KEY, device_id BLOB NOT NULL, request BLOB NOT NULL, rest BLOB NOT NULL,
    received_at INTEGER NOT NULL, transport TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edge_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""

MAX_VALIDITY_S = 61 * 86400   # the largest chain_validity_s a policy allows, plus a day of drift
MAX_OUTBOX = 1_000_000        # past this, the oldest undelivered audit rows are dropped (logged)
MAX_HEALTH = 100_000          # undelivered health reports: past this many, or ...
MAX_HEALTH_BYTES = 16 << 20   # ... this many bytes (request + rest), the oldest are dropped (logged, counted)


class EdgeStore(SQLiteTransactions):
    """The edge's SQLite file. `limits` (rate limits, lockouts) is in process memory, as in the cloud."""

    def __init__(self, path, health_max=MAX_HEALTH, health_max_bytes=MAX_HEALTH_BYTES):
        try:
            make_private(path)      # 0600, and so its -wal and -shm: it holds sealed device keys
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(EDGE_SCHEMA)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the edge database {path}: {e}") from e
        except OSError as e:
            raise StorageError(f"cannot open the edge database {path}: {e.strerror}") from e
        self._depth = 0
        self.limits = MemoryLimitStore()
        self._health_max, self._health_max_bytes = health_max, health_max_bytes
        self._health_n, self._health_bytes = self._health_size()
        self.health_dropped = 0     # health reports dropped by the bound since this process opened the file

    def _run(self, fn, *args):
        try:
            with self.transaction():
                return fn(self._db, *args)
        except sqlite3.Error as e:
            raise StorageError(f"edge database: {e}") from e

    def ping(self):
        try:
            self._db.execute("SELECT 1 FROM edge_meta LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"edge database unreachable: {e}") from e

    def close(self):
        self._db.close()

    # sync metadata (JSON values)
    def get_meta(self, key, default=None):
        row = self._db.execute("SELECT v FROM edge_meta WHERE k = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, items):
        self._run(lambda db: db.executemany("INSERT INTO edge_meta VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = "
                                            "excluded.v", [(k, json.dumps(v)) for k, v in items.items()]))

    # the device cache
    def load_devices(self, limit):
        """[(id, tenant_id, entry dict, sealed_key, fetched_at)], most recently fetched last."""
        rows = self._db.execute("SELECT id, tenant_id, entry, sealed_key, fetched_at FROM edge_devices "
                                "ORDER BY fetched_at DESC LIMIT ?", (limit,)).fetchall()
        return [(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in reversed(rows)]

    def put_devices(self, rows):
        """Insert or replace [(id, tenant_id, entry dict, sealed_key, fetched_at)]."""
        self._run(lambda db: db.executemany(
            "INSERT OR REPLACE INTO edge_devices VALUES (?, ?, ?, ?, ?)",
            [(r[0], r[1], json.dumps(r[2]), r[3], r[4]) for r in rows]))

    def delete_devices(self, ids):
        self._run(lambda db: db.executemany("DELETE FROM edge_devices WHERE id = ?", [(i,) for i in ids]))

    # binary-auth replay state (the part of verifier.store.Storage that BinAuthCore.flush uses)
    def last_ts(self, device_id):
        row = self._db.execute("SELECT last_ts FROM edge_auth_state WHERE id = ?", (device_id,)).fetchone()
        return 0 if row is None else row[0]

    def record_auth(self, accepted, activated, audit_rows, seen=(), health=()):
        """One transaction: accepted [(last_ts, now, device_id)] raise the replay floor (never lower it);
        audit rows go to the outbox; health [(device_id, request, rest, received_at, transport)] to the health
        outbox, whose oldest reports beyond its bound are dropped (counted in `health_dropped`). Activations
        are applied to the cached entry by the caller. Returns the number of health reports dropped."""
        def write(db):
            if accepted:
                db.executemany("INSERT INTO edge_auth_state (id, last_ts, dirty) VALUES (?, ?, 1) "
                               "ON CONFLICT (id) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts), dirty = 1",
                               [(a[2], a[0]) for a in accepted])
            if audit_rows:
                self._queue_audit(db, audit_rows)
            return self._queue_health(db, health) if health else None
        got = self._run(write)
        if got is None:
            return 0
        self._health_n, self._health_bytes, dropped = got
        self.health_dropped += dropped
        return dropped

    # health outbox
    def _health_size(self):
        row = self._db.execute("SELECT count(*), coalesce(sum(length(request) + length(rest)), 0) "
                               "FROM edge_health").fetchone()
        return row[0], row[1]

    def _queue_health(self, db, rows):
        """Insert, then drop the oldest while over the bound: (count, bytes, dropped) after it."""
        db.executemany("INSERT INTO edge_health (device_id, request, rest, received_at, transport) "
                       "VALUES (?, ?, ?, ?, ?)", [(bytes(r[0]), bytes(r[1]), bytes(r[2]), int(r[3]), r[4])
                                                  for r in rows])
        n = self._health_n + len(rows)
        size = self._health_bytes + sum(len(r[1]) + len(r[2]) for r in rows)
        if n <= self._health_max and size <= self._health_max_bytes:
            return n, size, 0
        dropped, last = 0, None
        for seq, length in db.execute("SELECT seq, length(request) + length(rest) FROM edge_health ORDER BY seq"):
            if n <= self._health_max and size <= self._health_max_bytes:
                break
            n, size, dropped, last = n - 1, size - length, dropped + 1, seq
        db.execute("DELETE FROM edge_health WHERE seq <= ?", (last,))
        return n, size, dropped

    def health_pending(self):
        """(count, bytes) of the undelivered health reports."""
        return self._health_n, self._health_bytes

    def raise_floor(self, device_id, last_ts):
        """Take the upstream's last accepted timestamp into account (not reported back: not dirty)."""
        self._run(lambda db: db.execute(
            "INSERT INTO edge_auth_state (id, last_ts, dirty) VALUES (?, ?, 0) "
            "ON CONFLICT (id) DO UPDATE SET last_ts = max(last_ts, excluded.last_ts)", (device_id, last_ts)))

    # audit outbox
    def add_audit(self, rows):
        self._run(self._queue_audit, rows)

    @staticmethod
    def _queue_audit(db, rows):
        db.executemany("INSERT INTO edge_outbox (row) VALUES (?)", [(json.dumps(list(r)),) for r in rows])

    # chain tokens
    def use_token(self, device_id, index, now, exp, audit_row=None):
        """Record the first use of token `index` of a device; False if it was used here before. The
        audit row (if any) is queued in the same transaction."""
        def write(db):
            cur = db.execute("INSERT OR IGNORE INTO edge_used (device_id, idx, ts, exp) VALUES (?, ?, ?, ?)",
                             (device_id, index, int(now), exp))
            if audit_row is not None and cur.rowcount == 1:
                self._queue_audit(db, [audit_row])
            return cur.rowcount == 1
        return self._run(write)

    def mark_used_upstream(self, device_id, indices, now):
        """Indices the upstream already saw used: refused here too, and not reported back. Their exp is
        not known here: kept as long as any token can be valid (the largest chain_validity_s)."""
        self._run(lambda db: db.executemany(
            "INSERT OR IGNORE INTO edge_used (device_id, idx, ts, exp, reported) VALUES (?, ?, ?, ?, 1)",
            [(device_id, i, int(now), int(now) + MAX_VALIDITY_S) for i in indices]))

    def prune_used(self, before):
        """Forget reported tokens that expired before `before` (they are refused as expired anyway)."""
        self._run(lambda db: db.execute("DELETE FROM edge_used WHERE reported = 1 AND exp < ?", (before,)))

    # reports for the upstream
    def pending_reports(self, limit):
        """(body, marker): the POST /v1/edge/reports body with up to `limit` items of each kind, and what
        to pass to reports_delivered once the upstream has acknowledged it."""
        db = self._db
        used = db.execute("SELECT device_id, idx, ts FROM edge_used WHERE reported = 0 ORDER BY ts LIMIT ?",
                          (limit,)).fetchall()
        auth = db.execute("SELECT id, last_ts FROM edge_auth_state WHERE dirty = 1 LIMIT ?", (limit,)).fetchall()
        audit = db.execute("SELECT seq, row FROM edge_outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        health = db.execute("SELECT seq, device_id, request, rest, received_at, transport FROM edge_health "
                            "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        body = {"used": [{"device_id": d.hex(), "index": i, "ts": ts} for d, i, ts in used],
                "binauth": [{"device_id": d.hex(), "last_ts": ts} for d, ts in auth],
                "audit": [dict(zip(AUDIT_COLUMNS, json.loads(r))) for _, r in audit]}
        if health:      # only when there are some: an upstream older than the member still takes the rest
            body["health"] = [{"device_id": d.hex(), "request": q.hex(), "rest": r.hex(), "received_at": t,
                               "transport": tr} for _, d, q, r, t, tr in health]
        marker = ([(d, i) for d, i, _ in used], [(d, ts) for d, ts in auth], audit[-1][0] if audit else None,
                  health[-1][0] if health else None)
        return body, marker

    def reports_delivered(self, marker):
        used, auth, last_seq, last_health = marker

        def write(db):
            db.executemany("UPDATE edge_used SET reported = 1 WHERE device_id = ? AND idx = ?", used)
            db.executemany("UPDATE edge_auth_state SET dirty = 0 WHERE id = ? AND last_ts = ?", auth)
            if last_seq is not None:
                db.execute("DELETE FROM edge_outbox WHERE seq <= ?", (last_seq,))
            if last_health is not None:
                db.execute("DELETE FROM edge_health WHERE seq <= ?", (last_health,))
        self._run(write)
        if last_health is not None:
            self._health_n, self._health_bytes = self._health_size()

    def pending_counts(self):
        db = self._db
        return {"used": db.execute("SELECT count(*) FROM edge_used WHERE reported = 0").fetchone()[0],
                "binauth": db.execute("SELECT count(*) FROM edge_auth_state WHERE dirty = 1").fetchone()[0],
                "audit": db.execute("SELECT count(*) FROM edge_outbox").fetchone()[0],
                "health": self._health_n}

    def trim_outbox(self):
        """Bound the outbox: drop the oldest audit rows beyond MAX_OUTBOX; return how many were dropped."""
        n = self._db.execute("SELECT count(*) FROM edge_outbox").fetchone()[0] - MAX_OUTBOX
        if n > 0:
            self._run(lambda db: db.execute("DELETE FROM edge_outbox WHERE seq IN (SELECT seq FROM edge_outbox "
                                            "ORDER BY seq LIMIT ?)", (n,)))
        return max(n, 0)
