"""Registry storage: the one interface for everything a second verifier instance would share.

`Storage` is the abstract interface (tenants, admin tokens, devices, replay state, audit, and
rate-limit/lockout state through `limits`). `SQLiteStorage` implements it on the stdlib sqlite3
module: WAL, synchronous=NORMAL, one connection used only from the event-loop thread (every call is
short). Its rate-limit/lockout state lives in process memory, so it serves a single instance.
It knows nothing of the wire protocol.
"""

import abc
import contextlib
import json
import sqlite3

from verifier.errors import Conflict, StorageError
from verifier.limits import MemoryLimitStore
from verifier.model import PSK_LIFETIME_S

DEVICE_COLUMNS = ("id", "tenant_id", "serial_number", "manufacturer_id", "model_id", "credential_type",
                  "sealed_secret", "metadata", "status", "provisioned_at", "status_changed_at", "trust_level",
                  "compromised", "quarantined", "permissions", "psk_generation", "psk_expires_at")
AUDIT_COLUMNS = ("ts", "tenant_id", "kind", "device_id", "actor", "action", "transport", "source",
                 "result", "reason")
PATCHABLE = frozenset(("metadata", "trust_level", "compromised", "quarantined", "permissions",
                       "status", "status_changed_at"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL, policy TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), hash BLOB NOT NULL UNIQUE,
    label TEXT, created INTEGER NOT NULL, revoked_at INTEGER);
CREATE TABLE IF NOT EXISTS devices (
    id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    serial_number TEXT NOT NULL, manufacturer_id TEXT, model_id TEXT,
    credential_type TEXT NOT NULL, sealed_secret BLOB NOT NULL, metadata TEXT NOT NULL,
    status TEXT NOT NULL, provisioned_at INTEGER NOT NULL, status_changed_at INTEGER NOT NULL,
    trust_level INTEGER NOT NULL, compromised INTEGER NOT NULL, quarantined INTEGER NOT NULL,
    permissions INTEGER NOT NULL,
    psk_generation INTEGER NOT NULL DEFAULT 0, psk_expires_at INTEGER,
    UNIQUE (tenant_id, serial_number)) WITHOUT ROWID;
-- replay state: narrow rows, written by every group commit of binary auth
CREATE TABLE IF NOT EXISTS auth_state (
    id BLOB PRIMARY KEY, last_ts INTEGER NOT NULL, last_authenticated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, tenant_id TEXT, kind TEXT NOT NULL,
    device_id TEXT, actor TEXT, action TEXT NOT NULL, transport TEXT, source TEXT,
    result TEXT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant_id, seq);
"""

# Signed OTA (verifier/ota.py): release-signing public keys, releases (files on disk, see BlobStore),
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
ROLLOUT_FIELDS = frozenset(("state", "phase", "phase_started_at", "started_at", "halt_reason", "updated_at"))

# Columns added after the first release, with the ALTER TABLE that adds each to an older file and the
# UPDATE that fills it for the rows that file already holds (see SQLiteStorage._migrate).
MIGRATIONS = (
    ("devices", "psk_generation", "ALTER TABLE devices ADD COLUMN psk_generation INTEGER NOT NULL DEFAULT 0", None),
    ("devices", "psk_expires_at", "ALTER TABLE devices ADD COLUMN psk_expires_at INTEGER",
     "UPDATE devices SET psk_expires_at = provisioned_at + %d WHERE psk_expires_at IS NULL" % PSK_LIFETIME_S),
)


class Storage(abc.ABC):
    """What the verifier needs from its database. Device ids are 8 bytes; times are unix seconds."""

    limits = None  # a verifier.limits.LimitStore

    @abc.abstractmethod
    def transaction(self):
        """Context manager: everything inside commits together or not at all (nestable)."""

    @abc.abstractmethod
    def ping(self): """Raise StorageError if the database is unreachable."""

    @abc.abstractmethod
    def close(self): """Release the connection."""

    # tenants and tokens
    @abc.abstractmethod
    def create_tenant(self, tenant_id, name, created, policy): """Insert a tenant (policy: JSON dict)."""

    @abc.abstractmethod
    def get_tenant(self, tenant_id): """Tenant dict or None."""

    @abc.abstractmethod
    def get_tenant_by_name(self, name): """Tenant dict or None."""

    @abc.abstractmethod
    def count_tenants(self): """Number of tenants."""

    @abc.abstractmethod
    def set_tenant_policy(self, tenant_id, policy): """Replace a tenant's policy (JSON dict)."""

    @abc.abstractmethod
    def add_token(self, token_id, tenant_id, token_hash, label, created): """Store a token hash."""

    @abc.abstractmethod
    def find_token(self, token_hash): """(token_id, tenant_id, stored_hash) of an unrevoked token, or None."""

    @abc.abstractmethod
    def revoke_token(self, tenant_id, token_id, now): """Mark a tenant's token revoked; False if it has none such."""

    @abc.abstractmethod
    def list_tokens(self, tenant_id): """[{id, label, created, revoked_at}] of a tenant (never the hash)."""

    # devices
    @abc.abstractmethod
    def existing_serials(self, tenant_id, serials): """The subset of `serials` already in the tenant."""

    @abc.abstractmethod
    def insert_devices(self, rows): """Insert device tuples in DEVICE_COLUMNS order (executemany)."""

    @abc.abstractmethod
    def get_device(self, device_id, tenant_id=None): """Device dict (any tenant if tenant_id is None) or None."""

    @abc.abstractmethod
    def list_devices(self, tenant_id, status=None, group=None, tag=None, after=None, limit=100):
        """Devices of a tenant ordered by id, starting after id `after`."""

    @abc.abstractmethod
    def update_device(self, tenant_id, device_id, fields): """Update PATCHABLE columns; False if absent."""

    @abc.abstractmethod
    def set_psk(self, tenant_id, device_id, old_generation, generation, expires_at):
        """Move a device's DTLS PSK from `old_generation` to `generation` with a new expiry, only if it
        is still at `old_generation` (compare and set); False if not (absent, or rotated meanwhile)."""

    @abc.abstractmethod
    def record_auth(self, accepted, activated, audit_rows):
        """One transaction: accepted = [(last_ts, now, device_id)], activated = [(now, device_id)]
        (provisioning -> active), audit rows as for add_audit."""

    # audit
    @abc.abstractmethod
    def add_audit(self, rows): """Append audit tuples in AUDIT_COLUMNS order."""

    @abc.abstractmethod
    def list_audit(self, tenant_id, device_id=None, limit=100): """Newest first."""


    # signed OTA (verifier/ota.py)
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


class SQLiteStorage(Storage):
    """Storage on one SQLite file (WAL). Single instance: limits are in process memory."""

    def __init__(self, path):
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(SCHEMA)
            self._db.executescript(OTA_SCHEMA)
            self._migrate()
        except sqlite3.Error as e:
            raise StorageError(f"cannot open database {path}: {e}") from e
        self._db.row_factory = sqlite3.Row
        self._depth = 0
        self.limits = MemoryLimitStore()

    def _migrate(self):
        """Bring a database file made by an older release up to SCHEMA, in one transaction."""
        cols = {}
        for table in {m[0] for m in MIGRATIONS}:
            cols[table] = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
        todo = [m for m in MIGRATIONS if m[1] not in cols[m[0]]]
        if not todo:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for _, _, alter, fill in todo:
                self._db.execute(alter)
                if fill:
                    self._db.execute(fill)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self):
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._db.execute("COMMIT")

    def ping(self):
        try:
            self._db.execute("SELECT 1 FROM tenants LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise StorageError(f"database unreachable: {e}") from e

    def close(self):
        self._db.close()

    def _write(self, sql, args=()):
        with self.transaction():
            return self._db.execute(sql, args)

    # tenants and tokens
    def create_tenant(self, tenant_id, name, created, policy):
        try:
            self._write("INSERT INTO tenants VALUES (?, ?, ?, ?)", (tenant_id, name, created, json.dumps(policy)))
        except sqlite3.IntegrityError as e:
            raise Conflict(f"a tenant named {name!r} already exists") from e

    @staticmethod
    def _tenant(row):
        return None if row is None else {"id": row["id"], "name": row["name"], "created": row["created"],
                                         "policy": json.loads(row["policy"])}

    def get_tenant(self, tenant_id):
        return self._tenant(self._db.execute("SELECT * FROM tenants WHERE id = ?", (tenant_id,)).fetchone())

    def get_tenant_by_name(self, name):
        return self._tenant(self._db.execute("SELECT * FROM tenants WHERE name = ?", (name,)).fetchone())

    def count_tenants(self):
        return self._db.execute("SELECT count(*) FROM tenants").fetchone()[0]

    def set_tenant_policy(self, tenant_id, policy):
        self._write("UPDATE tenants SET policy = ? WHERE id = ?", (json.dumps(policy), tenant_id))

    def add_token(self, token_id, tenant_id, token_hash, label, created):
        self._write("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, NULL)", (token_id, tenant_id, token_hash, label, created))

    def find_token(self, token_hash):
        row = self._db.execute("SELECT id, tenant_id, hash FROM tokens WHERE hash = ? AND revoked_at IS NULL",
                               (token_hash,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def revoke_token(self, tenant_id, token_id, now):
        cur = self._write("UPDATE tokens SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL",
                          (now, token_id, tenant_id))
        return cur.rowcount == 1

    def list_tokens(self, tenant_id):
        return [dict(r) for r in self._db.execute(
            "SELECT id, label, created, revoked_at FROM tokens WHERE tenant_id = ? ORDER BY created, id",
            (tenant_id,))]

    # devices
    def existing_serials(self, tenant_id, serials):
        found = set()
        serials = list(serials)
        for i in range(0, len(serials), 500):
            chunk = serials[i:i + 500]
            q = ("SELECT serial_number FROM devices WHERE tenant_id = ? AND serial_number IN (%s)"
                 % ",".join("?" * len(chunk)))
            found.update(r[0] for r in self._db.execute(q, (tenant_id, *chunk)))
        return found

    def insert_devices(self, rows):
        try:
            with self.transaction():
                self._db.executemany(_DEVICE_INSERT, rows)
        except sqlite3.IntegrityError as e:
            raise Conflict(f"device insert conflicts with an existing row: {e}") from e

    @staticmethod
    def _device(row):
        if row is None:
            return None
        d = dict(row)
        d["metadata"] = json.loads(d["metadata"])
        d["compromised"] = bool(d["compromised"])
        d["quarantined"] = bool(d["quarantined"])
        return d

    def get_device(self, device_id, tenant_id=None):
        if tenant_id is None:
            row = self._db.execute(_DEVICE_SELECT + " WHERE d.id = ?", (device_id,)).fetchone()
        else:
            row = self._db.execute(_DEVICE_SELECT + " WHERE d.id = ? AND d.tenant_id = ?",
                                   (device_id, tenant_id)).fetchone()
        return self._device(row)

    def list_devices(self, tenant_id, status=None, group=None, tag=None, after=None, limit=100):
        q, args = [_DEVICE_SELECT + " WHERE d.tenant_id = ?"], [tenant_id]
        if status is not None:
            q.append("AND d.status = ?"); args.append(status)
        if group is not None:
            q.append("AND json_extract(d.metadata, '$.group') = ?"); args.append(group)
        if tag is not None:
            q.append("AND EXISTS (SELECT 1 FROM json_each(d.metadata, '$.tags') WHERE value = ?)")
            args.append(tag)
        if after is not None:
            q.append("AND d.id > ?"); args.append(after)
        q.append("ORDER BY d.id LIMIT ?"); args.append(limit)
        return [self._device(r) for r in self._db.execute(" ".join(q), args)]

    def update_device(self, tenant_id, device_id, fields):
        bad = set(fields) - PATCHABLE
        if bad:
            raise StorageError(f"not updatable: {sorted(bad)}")
        cols = sorted(fields)
        vals = [json.dumps(fields[c]) if c == "metadata" else fields[c] for c in cols]
        cur = self._write("UPDATE devices SET %s WHERE id = ? AND tenant_id = ?" % ", ".join(f"{c} = ?" for c in cols),
                          (*vals, device_id, tenant_id))
        return cur.rowcount == 1

    def set_psk(self, tenant_id, device_id, old_generation, generation, expires_at):
        cur = self._write("UPDATE devices SET psk_generation = ?, psk_expires_at = ? "
                          "WHERE id = ? AND tenant_id = ? AND psk_generation = ?",
                          (generation, expires_at, device_id, tenant_id, old_generation))
        return cur.rowcount == 1

    def record_auth(self, accepted, activated, audit_rows):
        db = self._db
        try:
            self._record_auth(db, accepted, activated, audit_rows)
        except sqlite3.Error as e:
            raise StorageError(f"could not persist auth state: {e}") from e

    def _record_auth(self, db, accepted, activated, audit_rows):
        with self.transaction():
            if accepted:
                db.executemany("INSERT INTO auth_state (last_ts, last_authenticated_at, id) VALUES (?, ?, ?) "
                               "ON CONFLICT (id) DO UPDATE SET last_ts = excluded.last_ts, "
                               "last_authenticated_at = excluded.last_authenticated_at", accepted)
            if activated:
                db.executemany("UPDATE devices SET status = 'active', status_changed_at = ? "
                               "WHERE id = ? AND status = 'provisioning'", activated)
            if audit_rows:
                db.executemany(_AUDIT_INSERT, audit_rows)

    # audit
    def add_audit(self, rows):
        with self.transaction():
            self._db.executemany(_AUDIT_INSERT, rows)

    def list_audit(self, tenant_id, device_id=None, limit=100):
        q, args = "SELECT * FROM audit WHERE tenant_id = ?", [tenant_id]
        if device_id is not None:
            q += " AND device_id = ?"; args.append(device_id)
        q += " ORDER BY seq DESC LIMIT ?"; args.append(limit)
        return [dict(r) for r in self._db.execute(q, args)]


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
        cols = ("id", "tenant_id", "kind", "name", "version", "counter", "kid", "size", "manifest", "sig",
                "manifest_sha256", "created")
        try:
            with self.transaction():
                self._db.execute("INSERT INTO ota_releases (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))),
                                 [release[c] for c in cols])
                self._db.executemany("INSERT INTO ota_files VALUES (?, ?, ?, ?)", files)
        except sqlite3.IntegrityError as e:
            raise Conflict(f"release conflicts with an existing one: {e}") from e

    def get_release(self, tenant_id, release_id):
        row = self._db.execute("SELECT * FROM ota_releases WHERE id = ? AND tenant_id = ?",
                               (release_id, tenant_id)).fetchone()
        return None if row is None else dict(row)

    def find_release(self, tenant_id, kind, version):
        row = self._db.execute("SELECT * FROM ota_releases WHERE tenant_id = ? AND kind = ? AND version = ?",
                               (tenant_id, kind, version)).fetchone()
        return None if row is None else dict(row)

    def list_releases(self, tenant_id, kind=None, limit=100):
        q, args = "SELECT * FROM ota_releases WHERE tenant_id = ?", [tenant_id]
        if kind is not None:
            q += " AND kind = ?"; args.append(kind)
        q += " ORDER BY created DESC, rowid DESC"
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

    _ROLLOUT_COLS = ("id", "tenant_id", "release_id", "state", "phases", "phase", "phase_started_at", "created",
                     "started_at", "health_threshold", "halt_threshold", "halt_min_reports", "halt_reason",
                     "updated_at")

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
        return self._rollout(self._db.execute("SELECT * FROM ota_rollouts WHERE id = ? AND tenant_id = ?",
                                              (rollout_id, tenant_id)).fetchone())

    def get_rollout_for_release(self, tenant_id, release_id):
        return self._rollout(self._db.execute("SELECT * FROM ota_rollouts WHERE release_id = ? AND tenant_id = ?",
                                              (release_id, tenant_id)).fetchone())

    def list_rollouts(self, tenant_id, state=None):
        q, args = "SELECT * FROM ota_rollouts WHERE tenant_id = ?", [tenant_id]
        if state is not None:
            q += " AND state = ?"; args.append(state)
        return [self._rollout(r) for r in self._db.execute(q + " ORDER BY created DESC, rowid DESC", args)]

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


_AUDIT_INSERT = "INSERT INTO audit (%s) VALUES (%s)" % (",".join(AUDIT_COLUMNS), ",".join("?" * len(AUDIT_COLUMNS)))
_DEVICE_INSERT = "INSERT INTO devices (%s) VALUES (%s)" % (",".join(DEVICE_COLUMNS), ",".join("?" * len(DEVICE_COLUMNS)))
_DEVICE_SELECT = ("SELECT d.*, COALESCE(a.last_ts, 0) AS last_ts, a.last_authenticated_at, "
                  "a.last_authenticated_at AS last_seen_at FROM devices d LEFT JOIN auth_state a ON a.id = d.id")
