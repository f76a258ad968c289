"""Registry storage: the registry's part of everything a second verifier instance would share.

`RegistryStorage` is the abstract interface (tenants, admin tokens, devices, replay state, audit, and
rate-limit/lockout state through `limits`). `SQLiteRegistryStorage` implements it on the stdlib sqlite3
module: WAL, synchronous=NORMAL, one connection used only from the event-loop thread (every call is
short). Its rate-limit/lockout state lives in process memory, so it serves a single instance.
It opens the file and runs the SCHEMAS, MIGRATIONS and INDEXES of the class: verifier/store.py composes
it with the other features' stores into the verifier's Storage/SQLiteStorage. It knows nothing of the
wire protocol.
"""

import abc
import json
import sqlite3

from verifier.errors import Conflict, StorageError
from verifier.registry.limits import MemoryLimitStore
from verifier.sqlite_files import make_private
from verifier.sqlite_tx import SQLiteTransactions
from verifier.registry.model import PSK_LIFETIME_S

DEVICE_COLUMNS = ("id", "tenant_id", "serial_number", "manufacturer_id", "model_id", "credential_type",
                  "sealed_secret", "metadata", "status", "provisioned_at", "status_changed_at", "trust_level",
                  "compromised", "quarantined", "permissions", "psk_generation", "psk_expires_at")
AUDIT_COLUMNS = ("ts", "tenant_id", "kind", "device_id", "actor", "action", "transport", "source",
                 "result", "reason", "detail")
# `reason` is a bare code (what scripts match on); `detail` the free text that goes with it (e.g. "index 3").
# Rows written without a detail (10 values) get None.
PATCHABLE = frozenset(("metadata", "trust_level", "compromised", "quarantined", "permissions",
                       "status", "status_changed_at"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL, policy TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), hash BLOB NOT NULL UNIQUE,
    label TEXT, created INTEGER NOT NULL, revoked_at INTEGER, role TEXT NOT NULL DEFAULT 'admin');
CREATE TABLE IF NOT EXISTS devices (
    id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    serial_number TEXT NOT NULL, manufacturer_id TEXT, model_id TEXT,
    credential_type TEXT NOT NULL, sealed_secret BLOB NOT NULL, metadata TEXT NOT NULL,
    status TEXT NOT NULL, provisioned_at INTEGER NOT NULL, status_changed_at INTEGER NOT NULL,
    trust_level INTEGER NOT NULL, compromised INTEGER NOT NULL, quarantined INTEGER NOT NULL,
    permissions INTEGER NOT NULL,
    psk_generation INTEGER NOT NULL DEFAULT 0, psk_expires_at INTEGER,
    changed_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, serial_number)) WITHOUT ROWID;
-- replay state: narrow rows, written by every group commit of binary auth
CREATE TABLE IF NOT EXISTS auth_state (
    id BLOB PRIMARY KEY, last_ts INTEGER NOT NULL, last_authenticated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, tenant_id TEXT, kind TEXT NOT NULL,
    device_id TEXT, actor TEXT, action TEXT NOT NULL, transport TEXT, source TEXT,
    result TEXT NOT NULL, reason TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant_id, seq);
-- the change marker of edge snapshots (CHANGE_TRIGGERS): one counter per database, and the devices deleted
-- (a tombstone per delete, under the marker of the delete). The counter starts at the number of devices a
-- file already holds, which the changed_seq migration numbers 1..n (a new file: 0).
CREATE TABLE IF NOT EXISTS change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT OR IGNORE INTO change_counter (id, seq) SELECT 1, count(*) FROM devices;
CREATE TABLE IF NOT EXISTS device_tombstones (
    tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, id BLOB NOT NULL, PRIMARY KEY (tenant_id, seq)) WITHOUT ROWID;
"""

# The device columns an edge's entry is made of (verifier/edge/routes.py edge_entry; the binary-auth key is
# derived from sealed_secret). A change of any of them, an insert and a delete take the next value of the
# database's change counter, in the same transaction (docs/tokens.md "Change markers"). A PSK rotation changes
# none of them (K_binauth does not depend on the PSK generation); neither do auth_state (last_ts, written by
# every authentication) and chain_used, which an entry carries but which a snapshot does not follow.
EDGE_COLUMNS = ("status", "status_changed_at", "compromised", "quarantined", "permissions", "sealed_secret")
_BUMP = "UPDATE change_counter SET seq = seq + 1 WHERE id = 1;"
_NEXT = "(SELECT seq FROM change_counter WHERE id = 1)"
# Created after the migrations (INDEXES: on changed_seq, which a migration may have added). The UPDATE a
# trigger makes sets only changed_seq, which fires no trigger of this list. A PostgreSQL store does the same
# with one BEFORE INSERT OR UPDATE trigger (NEW.changed_seq from `UPDATE change_counter ... RETURNING seq`)
# and an AFTER DELETE one; the counter is a row, not a SEQUENCE, so that its row lock orders the markers as
# the commits (a SEQUENCE hands out numbers that can commit out of order, and a reader would step past one).
CHANGE_TRIGGERS = f"""
CREATE INDEX IF NOT EXISTS devices_changed ON devices (tenant_id, changed_seq);
CREATE TRIGGER IF NOT EXISTS devices_changed_ins AFTER INSERT ON devices BEGIN
{_BUMP}
UPDATE devices SET changed_seq = {_NEXT} WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS devices_changed_upd AFTER UPDATE OF {", ".join(EDGE_COLUMNS)} ON devices
WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in EDGE_COLUMNS)} BEGIN
{_BUMP}
UPDATE devices SET changed_seq = {_NEXT} WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS devices_changed_del AFTER DELETE ON devices BEGIN
{_BUMP}
INSERT INTO device_tombstones (tenant_id, seq, id) VALUES (OLD.tenant_id, {_NEXT}, OLD.id);
END;
"""

# Columns added after the first release, with the ALTER TABLE that adds each to an older file and the
# UPDATE that fills it for the rows that file already holds (see SQLiteRegistryStorage._migrate).
MIGRATIONS = (
    ("devices", "psk_generation", "ALTER TABLE devices ADD COLUMN psk_generation INTEGER NOT NULL DEFAULT 0", None),
    ("devices", "psk_expires_at", "ALTER TABLE devices ADD COLUMN psk_expires_at INTEGER",
     "UPDATE devices SET psk_expires_at = provisioned_at + %d WHERE psk_expires_at IS NULL" % PSK_LIFETIME_S),
    ("audit", "detail", "ALTER TABLE audit ADD COLUMN detail TEXT", None),
    # scoped admin tokens (docs/api.md "Roles"): every token issued before roles existed could do everything
    ("tokens", "role", "ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'", None),
    # edge snapshot change markers: the devices of an older file get 1..n in id order (distinct, so that
    # paging by marker never splits a tie), the counter was seeded with n (SCHEMA)
    ("devices", "changed_seq", "ALTER TABLE devices ADD COLUMN changed_seq INTEGER NOT NULL DEFAULT 0",
     "UPDATE devices SET changed_seq = n.seq FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM devices) "
     "AS n WHERE devices.id = n.id"),
)


class RegistryStorage(abc.ABC):
    """What the registry needs from its database. Device ids are 8 bytes; times are unix seconds."""

    limits = None  # a verifier.registry.limits.LimitStore

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
    def add_token(self, token_id, tenant_id, token_hash, label, created, role="admin"):
        """Store a token hash with its role (docs/api.md "Roles")."""

    @abc.abstractmethod
    def find_token(self, token_hash): """(token_id, tenant_id, stored_hash, role) of an unrevoked token, or None."""

    @abc.abstractmethod
    def revoke_token(self, tenant_id, token_id, now): """Mark a tenant's token revoked; False if it has none such."""

    @abc.abstractmethod
    def list_tokens(self, tenant_id): """[{id, label, created, revoked_at, role}] of a tenant (never the hash)."""

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
    def device_changes(self, tenant_id, after, limit):
        """The tenant's device changes with a change marker above `after` (edge snapshots, docs/tokens.md
        "Change markers"): (changes, current). `current` is the database's marker, read first; `changes` are up
        to `limit` of those with a marker in (after, current], in marker order, each (marker, device dict or None
        when deleted, device id). Every such change committed before `current` was read, so a later change of
        the same device has a marker above `current`: no shared read snapshot of the statements is needed."""

    @abc.abstractmethod
    def update_device(self, tenant_id, device_id, fields): """Update PATCHABLE columns; False if absent."""

    @abc.abstractmethod
    def delete_unused_device(self, tenant_id, device_id, audit_row):
        """Delete a tenant's device that never authenticated, with `audit_row` (AUDIT_COLUMNS order), in one
        transaction that also revokes its unrevoked certificates at audit_row's time (they stay, for the CRL)
        and removes its MQTT password. Returns "deleted", "absent" or why not: "authenticated". It reads every
        feature's tables (chain tokens, OTA reports, certificates), so the SQLite one is verifier/store.py's."""

    @abc.abstractmethod
    def set_psk(self, tenant_id, device_id, old_generation, generation, expires_at):
        """Move a device's DTLS PSK from `old_generation` to `generation` with a new expiry, only if it
        is still at `old_generation` (compare and set); False if not (absent, or rotated meanwhile)."""

    @abc.abstractmethod
    def record_auth(self, accepted, activated, audit_rows, seen=()):
        """One transaction: accepted = [(last_ts, now, device_id)], activated = [(now, device_id)]
        (provisioning -> active), audit rows as for add_audit, seen = [(now, device_id)] authenticated
        by a protocol without a binary-auth timestamp (DTLS): last_authenticated_at only.

        Returns the device ids whose accepted timestamps were NOT written because the stored replay floor was
        already at or above the lowest of them: another verifier instance sharing the database accepted a packet
        of that device meanwhile (docs/protocol.md 3.4). Their OK replies must not be sent. One verifier alone on
        its SQLite file decides every timestamp itself, so there it is always empty."""

    # audit
    @abc.abstractmethod
    def add_audit(self, rows): """Append audit tuples in AUDIT_COLUMNS order."""

    @abc.abstractmethod
    def list_audit(self, tenant_id, device_id=None, limit=100, before=None, kind=None, result=None, after=None):
        """Newest first; only rows with seq below `before` (the cursor of GET /v1/audit) and above `after` if given,
        and of the given device, kind and result (the console's filters)."""

    # audit retention (verifier.registry.audit.prune); tenant_id None means the rows that have no tenant
    @abc.abstractmethod
    def list_tenants(self): """[{id, name, created, policy}] of every tenant."""

    @abc.abstractmethod
    def audit_bounds(self, tenant_id): """(smallest seq, largest seq) of the tenant's audit rows, or None."""

    @abc.abstractmethod
    def audit_seq_before(self, tenant_id, below, skip):
        """The seq of the tenant's row that has `skip` rows between it and `below` (newest end if None),
        going back in seq order; None if there are not that many."""

    @abc.abstractmethod
    def delete_audit(self, tenant_id, limit, older_than=None, below_seq=None):
        """Delete up to `limit` of the tenant's oldest rows, each only if ts < older_than (when given)
        and seq < below_seq (when given); stop at the first oldest row that fails. Return the count."""


class SQLiteRegistryStorage(SQLiteTransactions, RegistryStorage):
    """RegistryStorage on one SQLite file (WAL). Single instance: limits are in process memory."""

    SCHEMAS = (SCHEMA,)        # what a composed store runs at open (verifier/store.py adds the features')
    MIGRATIONS = MIGRATIONS
    INDEXES = (CHANGE_TRIGGERS,)  # created after the migrations (on columns a migration may have added)
    # The schema version a file is brought to (PRAGMA user_version; verifier/store.py sets the composed one). A
    # file of a higher version was written by a newer janua, whose columns this one does not know: refused.
    SCHEMA_VERSION = 0
    # list_devices' filters on the metadata JSON (SQLite's JSON functions; verifier/registry/store_pg.py has
    # PostgreSQL's)
    DEVICE_GROUP_SQL = "json_extract(d.metadata, '$.group') = ?"
    DEVICE_TAG_SQL = "EXISTS (SELECT 1 FROM json_each(d.metadata, '$.tags') WHERE value = ?)"

    def __init__(self, path):
        try:
            make_private(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            found = self._db.execute("PRAGMA user_version").fetchone()[0]
            if found > self.SCHEMA_VERSION:
                self._db.close()
                raise StorageError(
                    f"cannot open database {path}: its schema version is {found}, written by a newer janua; this "
                    f"janua knows versions up to {self.SCHEMA_VERSION} (upgrade janua, or restore a backup taken "
                    f"before the upgrade: docs/operations.md 5)")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA cache_size=-65536")
            for script in self.SCHEMAS:
                self._db.executescript(script)
            self._migrate()
            for script in self.INDEXES:                    # on a column a migration may have added
                self._db.executescript(script)
            if found != self.SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {int(self.SCHEMA_VERSION)}")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open database {path}: {e}") from e
        except OSError as e:
            raise StorageError(f"cannot open database {path}: {e.strerror}") from e
        self._db.row_factory = sqlite3.Row
        self._depth = 0
        self.limits = MemoryLimitStore()

    def _migrate(self):
        """Bring a database file made by an older release up to SCHEMA, in one transaction."""
        cols = {}
        for table in {m[0] for m in self.MIGRATIONS}:
            cols[table] = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
        todo = [m for m in self.MIGRATIONS if m[1] not in cols[m[0]]]
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

    def add_token(self, token_id, tenant_id, token_hash, label, created, role="admin"):
        self._write("INSERT INTO tokens (id, tenant_id, hash, label, created, revoked_at, role) "
                    "VALUES (?, ?, ?, ?, ?, NULL, ?)", (token_id, tenant_id, token_hash, label, created, role))

    def find_token(self, token_hash):
        row = self._db.execute("SELECT id, tenant_id, hash, role FROM tokens WHERE hash = ? AND revoked_at IS NULL",
                               (token_hash,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def revoke_token(self, tenant_id, token_id, now):
        cur = self._write("UPDATE tokens SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL",
                          (now, token_id, tenant_id))
        return cur.rowcount == 1

    def list_tokens(self, tenant_id):
        return [dict(r) for r in self._db.execute(
            "SELECT id, label, created, revoked_at, role FROM tokens WHERE tenant_id = ? ORDER BY created, id",
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
            q.append("AND " + self.DEVICE_GROUP_SQL); args.append(group)
        if tag is not None:
            q.append("AND " + self.DEVICE_TAG_SQL); args.append(tag)
        if after is not None:
            q.append("AND d.id > ?"); args.append(after)
        q.append("ORDER BY d.id LIMIT ?"); args.append(limit)
        return [self._device(r) for r in self._db.execute(" ".join(q), args)]

    def device_changes(self, tenant_id, after, limit):
        db = self._db
        current = db.execute("SELECT seq FROM change_counter WHERE id = 1").fetchone()[0]
        # each by its (tenant_id, marker) index, then the first `limit` of both
        devs = db.execute(CHANGED_DEVICES, (tenant_id, after, current, limit)).fetchall()
        gone = db.execute(DELETED_DEVICES, (tenant_id, after, current, limit)).fetchall()
        changes = [(r["changed_seq"], self._device(r), r["id"]) for r in devs] + [(r[0], None, r[1]) for r in gone]
        changes.sort(key=lambda c: c[0])
        return changes[:limit], current

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

    def record_auth(self, accepted, activated, audit_rows, seen=()):
        db = self._db
        try:
            self._record_auth(db, accepted, activated, audit_rows, seen)
        except sqlite3.Error as e:
            raise StorageError(f"could not persist auth state: {e}") from e
        return ()

    def _record_auth(self, db, accepted, activated, audit_rows, seen=()):
        with self.transaction():
            if seen:                      # leaves last_ts (the binary-auth replay floor) as it is
                db.executemany("INSERT INTO auth_state (last_ts, last_authenticated_at, id) VALUES (0, ?, ?) "
                               "ON CONFLICT (id) DO UPDATE SET last_authenticated_at = excluded.last_authenticated_at",
                               seen)
            if accepted:
                db.executemany("INSERT INTO auth_state (last_ts, last_authenticated_at, id) VALUES (?, ?, ?) "
                               "ON CONFLICT (id) DO UPDATE SET last_ts = excluded.last_ts, "
                               "last_authenticated_at = excluded.last_authenticated_at", accepted)
            if activated:
                db.executemany("UPDATE devices SET status = 'active', status_changed_at = ? "
                               "WHERE id = ? AND status = 'provisioning'", activated)
            if audit_rows:
                db.executemany(_AUDIT_INSERT, audit_rows_full(audit_rows))

    # audit
    def add_audit(self, rows):
        with self.transaction():
            self._db.executemany(_AUDIT_INSERT, audit_rows_full(rows))

    def list_audit(self, tenant_id, device_id=None, limit=100, before=None, kind=None, result=None, after=None):
        q, args = "SELECT * FROM audit WHERE tenant_id = ?", [tenant_id]
        for col, v in (("device_id", device_id), ("kind", kind), ("result", result)):
            if v is not None:
                q += f" AND {col} = ?"; args.append(v)
        if before is not None:
            q += " AND seq < ?"; args.append(before)
        if after is not None:
            q += " AND seq > ?"; args.append(after)
        q += " ORDER BY seq DESC LIMIT ?"; args.append(limit)
        return [dict(r) for r in self._db.execute(q, args)]

    def list_tenants(self):
        return [self._tenant(r) for r in self._db.execute("SELECT * FROM tenants ORDER BY id")]

    def audit_bounds(self, tenant_id):
        # two index probes (min() and max() in one statement would scan the tenant's whole range)
        lo = self._db.execute("SELECT seq FROM audit WHERE tenant_id IS ? ORDER BY seq LIMIT 1", (tenant_id,)).fetchone()
        if lo is None:
            return None
        hi = self._db.execute("SELECT seq FROM audit WHERE tenant_id IS ? ORDER BY seq DESC LIMIT 1",
                              (tenant_id,)).fetchone()
        return lo[0], hi[0]

    def audit_seq_before(self, tenant_id, below, skip):
        q, args = "SELECT seq FROM audit WHERE tenant_id IS ?", [tenant_id]
        if below is not None:
            q += " AND seq < ?"; args.append(below)
        row = self._db.execute(q + " ORDER BY seq DESC LIMIT 1 OFFSET ?", (*args, skip)).fetchone()
        return None if row is None else row[0]

    def delete_audit(self, tenant_id, limit, older_than=None, below_seq=None):
        # the oldest `limit` rows by the (tenant_id, seq) index; among them the first that must stay
        # ends the run, so rows a non-monotonic clock wrote out of order are kept, never skipped over
        cond, args = [], []
        if older_than is not None:
            cond.append("ts >= ?"); args.append(older_than)
        if below_seq is not None:
            cond.append("seq >= ?"); args.append(below_seq)
        keep = " OR ".join(cond) or "0"
        try:
            with self.transaction():
                stop = self._db.execute(
                    "SELECT seq FROM (SELECT seq, ts FROM audit WHERE tenant_id IS ? ORDER BY seq LIMIT ?) AS oldest "
                    f"WHERE {keep} ORDER BY seq LIMIT 1", (tenant_id, limit, *args)).fetchone()
                q, qargs = "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE tenant_id IS ?", [tenant_id]
                if stop is not None:
                    q += " AND seq < ?"; qargs.append(stop[0])
                return self._db.execute(q + " ORDER BY seq LIMIT ?)", (*qargs, limit)).rowcount
        except sqlite3.Error as e:
            raise StorageError(f"could not prune the audit trail: {e}") from e


def audit_rows_full(rows):
    """Audit tuples with every AUDIT_COLUMNS value: a row without its trailing detail gets None."""
    n = len(AUDIT_COLUMNS)
    return [r if len(r) == n else tuple(r) + (None,) * (n - len(r)) for r in rows]


_AUDIT_INSERT = "INSERT INTO audit (%s) VALUES (%s)" % (",".join(AUDIT_COLUMNS), ",".join("?" * len(AUDIT_COLUMNS)))
_DEVICE_INSERT = "INSERT INTO devices (%s) VALUES (%s)" % (",".join(DEVICE_COLUMNS), ",".join("?" * len(DEVICE_COLUMNS)))
_DEVICE_SELECT = ("SELECT d.*, COALESCE(a.last_ts, 0) AS last_ts, a.last_authenticated_at, "
                  "a.last_authenticated_at AS last_seen_at FROM devices d LEFT JOIN auth_state a ON a.id = d.id")
# the edge snapshot's queries (device_changes): by the devices_changed index and the tombstones' primary key
CHANGED_DEVICES = (_DEVICE_SELECT + " WHERE d.tenant_id = ? AND d.changed_seq > ? AND d.changed_seq <= ? "
                   "ORDER BY d.changed_seq LIMIT ?")
DELETED_DEVICES = ("SELECT seq, id FROM device_tombstones WHERE tenant_id = ? AND seq > ? AND seq <= ? "
                   "ORDER BY seq LIMIT ?")

