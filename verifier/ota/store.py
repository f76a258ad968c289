"""The signed-OTA part of the storage interface (verifier/ota/core.py, verifier/ota/rollout.py): tables,
abstract methods, and their SQLite implementation as a mixin of verifier.store.SQLiteStorage
(which owns the connection `_db`, `transaction()` and `_write()`)."""

import abc
import json
import sqlite3

from verifier.errors import Conflict, StorageError

# Signed OTA (verifier/ota/core.py): release-signing public keys, releases (files on disk, see BlobStore;
# on PostgreSQL in the database, verifier/ota/store_pg.py),
# rollouts (one per release) and each device's latest update report per release.
OTA_SCHEMA = """
CREATE TABLE IF NOT EXISTS ota_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants(id), kid TEXT NOT NULL, pub BLOB NOT NULL, name TEXT,
    created INTEGER NOT NULL, retired_at INTEGER, PRIMARY KEY (tenant_id, kid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ota_releases (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), kind TEXT NOT NULL, name TEXT,
    version TEXT NOT NULL, counter INTEGER NOT NULL, kid TEXT NOT NULL, size INTEGER NOT NULL,
    manifest BLOB NOT NULL, sig BLOB NOT NULL, manifest_sha256 TEXT NOT NULL, created INTEGER NOT NULL,
    UNIQUE (tenant_id, kind, version));
CREATE TABLE IF NOT EXISTS ota_files (
    release_id TEXT NOT NULL REFERENCES ota_releases(id), path TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, PRIMARY KEY (release_id, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ota_rollouts (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    release_id TEXT NOT NULL UNIQUE REFERENCES ota_releases(id), state TEXT NOT NULL, phases TEXT NOT NULL,
    phase INTEGER NOT NULL, phase_started_at INTEGER, created INTEGER NOT NULL, started_at INTEGER,
    health_threshold REAL NOT NULL, halt_threshold REAL NOT NULL, halt_min_reports INTEGER NOT NULL,
    halt_reason TEXT, updated_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ota_rollouts_tenant ON ota_rollouts (tenant_id, state);
CREATE TABLE IF NOT EXISTS ota_reports (
    release_id TEXT NOT NULL REFERENCES ota_releases(id), device_id BLOB NOT NULL, state TEXT NOT NULL,
    reason TEXT, updated_at INTEGER NOT NULL, PRIMARY KEY (release_id, device_id)) WITHOUT ROWID;
"""
RELEASE_COLUMNS = ("id", "tenant_id", "kind", "name", "version", "counter", "kid", "size", "manifest", "sig",
                   "manifest_sha256", "created")
ROLLOUT_COLUMNS = ("id", "tenant_id", "release_id", "state", "phases", "phase", "phase_started_at", "created",
                   "started_at", "health_threshold", "halt_threshold", "halt_min_reports", "halt_reason", "updated_at")
ROLLOUT_FIELDS = frozenset(("state", "phase", "phase_started_at", "started_at", "halt_reason", "updated_at"))


class OTAStorage(abc.ABC):
    # signed OTA (verifier/ota/core.py)
    @abc.abstractmethod
    def add_release_key(self, tenant_id, kid, pub, name, created): """Trust an Ed25519 public key (32 raw bytes)."""

    @abc.abstractmethod
    def get_release_key(self, tenant_id, kid): """{kid, pub, name, created, retired_at} or None."""

    @abc.abstractmethod
    def list_release_keys(self, tenant_id): """The tenant's release keys, oldest first."""

    @abc.abstractmethod
    def retire_release_key(self, tenant_id, kid, now): """Mark a key retired; False if absent."""

    @abc.abstractmethod
    def add_release(self, release, files):
        """Insert a release dict and its file rows [(release_id, path, size, sha256)]."""

    @abc.abstractmethod
    def get_release(self, tenant_id, release_id): """Release dict of that tenant, or None."""

    @abc.abstractmethod
    def find_release(self, tenant_id, kind, version): """Release dict by kind and version, or None."""

    @abc.abstractmethod
    def list_releases(self, tenant_id, kind=None, limit=100): """Newest first (limit None: all)."""

    @abc.abstractmethod
    def list_release_files(self, release_id): """[{path, size, sha256}] in manifest order."""

    @abc.abstractmethod
    def get_release_file(self, release_id, path): """{path, size, sha256} or None."""

    @abc.abstractmethod
    def max_release_counter(self, tenant_id, kind): """Highest published counter of a kind, or None."""

    @abc.abstractmethod
    def release_blobs(self, root):
        """The store of release files (a verifier.ota.core.BlobStore): the folder `root` on SQLite, the database
        on PostgreSQL (uploads in progress are spooled to `root`/tmp there)."""

    @abc.abstractmethod
    def add_rollout(self, rollout): """Insert a rollout dict (phases: list)."""

    @abc.abstractmethod
    def get_rollout(self, tenant_id, rollout_id): """Rollout dict of that tenant, or None."""

    @abc.abstractmethod
    def get_rollout_for_release(self, tenant_id, release_id): """The release's rollout, or None."""

    @abc.abstractmethod
    def list_rollouts(self, tenant_id, state=None): """The tenant's rollouts, newest first."""

    @abc.abstractmethod
    def update_rollout(self, rollout_id, fields): """Update ROLLOUT_FIELDS columns."""

    @abc.abstractmethod
    def record_ota_report(self, release_id, device_id, state, reason, now): """Upsert a device's latest report."""

    @abc.abstractmethod
    def get_ota_report(self, release_id, device_id): """{state, reason, updated_at} or None."""

    @abc.abstractmethod
    def ota_report_counts(self, release_id): """{state: number of devices whose latest report is it}."""


class SQLiteOTAStorage:
    """SQLite implementations of OTAStorage (mixed into SQLiteStorage)."""

    # newest first; of one second, the last inserted first (rowid: SQLite's insertion order; the PostgreSQL part
    # has a column of its own for it, verifier/ota/store_pg.py)
    _NEWEST_FIRST = "created DESC, rowid DESC"
    _RELEASE_SELECT = "SELECT %s FROM ota_releases" % ", ".join(RELEASE_COLUMNS)
    _ROLLOUT_SELECT = "SELECT %s FROM ota_rollouts" % ", ".join(ROLLOUT_COLUMNS)

    # signed OTA
    def add_release_key(self, tenant_id, kid, pub, name, created):
        self._write("INSERT INTO ota_keys VALUES (?, ?, ?, ?, ?, NULL)", (tenant_id, kid, pub, name, created))

    def get_release_key(self, tenant_id, kid):
        row = self._db.execute("SELECT * FROM ota_keys WHERE tenant_id = ? AND kid = ?", (tenant_id, kid)).fetchone()
        return None if row is None else dict(row)

    def list_release_keys(self, tenant_id):
        return [dict(r) for r in self._db.execute(
            "SELECT * FROM ota_keys WHERE tenant_id = ? ORDER BY created, kid", (tenant_id,))]

    def retire_release_key(self, tenant_id, kid, now):
        cur = self._write("UPDATE ota_keys SET retired_at = ? WHERE tenant_id = ? AND kid = ? AND retired_at IS NULL",
                          (now, tenant_id, kid))
        return cur.rowcount == 1

    def add_release(self, release, files):
        cols = RELEASE_COLUMNS
        try:
            with self.transaction():
                self._db.execute("INSERT INTO ota_releases (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))),
                                 [release[c] for c in cols])
                self._db.executemany("INSERT INTO ota_files VALUES (?, ?, ?, ?)", files)
        except sqlite3.IntegrityError as e:
            raise Conflict(f"release conflicts with an existing one: {e}") from e

    def get_release(self, tenant_id, release_id):
        row = self._db.execute(self._RELEASE_SELECT + " WHERE id = ? AND tenant_id = ?",
                               (release_id, tenant_id)).fetchone()
        return None if row is None else dict(row)

    def find_release(self, tenant_id, kind, version):
        row = self._db.execute(self._RELEASE_SELECT + " WHERE tenant_id = ? AND kind = ? AND version = ?",
                               (tenant_id, kind, version)).fetchone()
        return None if row is None else dict(row)

    def list_releases(self, tenant_id, kind=None, limit=100):
        q, args = self._RELEASE_SELECT + " WHERE tenant_id = ?", [tenant_id]
        if kind is not None:
            q += " AND kind = ?"; args.append(kind)
        q += " ORDER BY " + self._NEWEST_FIRST
        if limit is not None:
            q += " LIMIT ?"; args.append(limit)
        return [dict(r) for r in self._db.execute(q, args)]

    def list_release_files(self, release_id):
        return [dict(r) for r in self._db.execute(
            "SELECT path, size, sha256 FROM ota_files WHERE release_id = ? ORDER BY path", (release_id,))]

    def get_release_file(self, release_id, path):
        row = self._db.execute("SELECT path, size, sha256 FROM ota_files WHERE release_id = ? AND path = ?",
                               (release_id, path)).fetchone()
        return None if row is None else dict(row)

    def max_release_counter(self, tenant_id, kind):
        return self._db.execute("SELECT max(counter) FROM ota_releases WHERE tenant_id = ? AND kind = ?",
                                (tenant_id, kind)).fetchone()[0]

    def release_blobs(self, root):
        from verifier.ota.core import BlobStore
        return BlobStore(root)

    _ROLLOUT_COLS = ROLLOUT_COLUMNS

    def add_rollout(self, rollout):
        row = dict(rollout, phases=json.dumps(rollout["phases"]))
        try:
            self._write("INSERT INTO ota_rollouts (%s) VALUES (%s)" % (",".join(self._ROLLOUT_COLS),
                                                                     ",".join("?" * len(self._ROLLOUT_COLS))),
                        [row[c] for c in self._ROLLOUT_COLS])
        except sqlite3.IntegrityError as e:
            raise Conflict(f"the release already has a rollout: {e}") from e

    @staticmethod
    def _rollout(row):
        if row is None:
            return None
        d = dict(row)
        d["phases"] = json.loads(d["phases"])
        return d

    def get_rollout(self, tenant_id, rollout_id):
        return self._rollout(self._db.execute(self._ROLLOUT_SELECT + " WHERE id = ? AND tenant_id = ?",
                                              (rollout_id, tenant_id)).fetchone())

    def get_rollout_for_release(self, tenant_id, release_id):
        return self._rollout(self._db.execute(self._ROLLOUT_SELECT + " WHERE release_id = ? AND tenant_id = ?",
                                              (release_id, tenant_id)).fetchone())

    def list_rollouts(self, tenant_id, state=None):
        q, args = self._ROLLOUT_SELECT + " WHERE tenant_id = ?", [tenant_id]
        if state is not None:
            q += " AND state = ?"; args.append(state)
        return [self._rollout(r) for r in self._db.execute(q + " ORDER BY " + self._NEWEST_FIRST, args)]

    def update_rollout(self, rollout_id, fields):
        bad = set(fields) - ROLLOUT_FIELDS
        if bad:
            raise StorageError(f"not updatable: {sorted(bad)}")
        cols = sorted(fields)
        self._write("UPDATE ota_rollouts SET %s WHERE id = ?" % ", ".join(f"{c} = ?" for c in cols),
                    (*[fields[c] for c in cols], rollout_id))

    def record_ota_report(self, release_id, device_id, state, reason, now):
        self._write("INSERT INTO ota_reports VALUES (?, ?, ?, ?, ?) ON CONFLICT (release_id, device_id) DO UPDATE "
                    "SET state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at",
                    (release_id, device_id, state, reason, now))

    def get_ota_report(self, release_id, device_id):
        row = self._db.execute("SELECT state, reason, updated_at FROM ota_reports WHERE release_id = ? AND device_id = ?",
                               (release_id, device_id)).fetchone()
        return None if row is None else dict(row)

    def ota_report_counts(self, release_id):
        return {r[0]: r[1] for r in self._db.execute(
            "SELECT state, count(*) FROM ota_reports WHERE release_id = ? GROUP BY state", (release_id,))}

