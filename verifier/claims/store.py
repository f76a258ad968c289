"""The claims part of the storage interface and its SQLite mixin (docs/claims.md "Storage"): claim batches (the
batch secret and the hook secret sealed under the KEK) and the claims made from them.

A new claim is one transaction (`commit_new_claim`): the batch's claimed_count moves up only by a conditional
UPDATE (`claimed_count < max_count`), the claims row is keyed by (batch, serial), and the device is inserted
through the registry's insert_devices, so two claims racing for the last slot or for one serial cannot both
win, on one SQLite file or on a PostgreSQL database several instances share (verifier/claims/store_pg.py)."""

import abc
import json
import sqlite3

from verifier.claims.core import BatchExhausted
from verifier.errors import Conflict

CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claim_batches (
    id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL,
    sealed_secret BLOB NOT NULL, serials TEXT, serial_pattern TEXT,
    not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, max_count INTEGER NOT NULL,
    claimed_count INTEGER NOT NULL DEFAULT 0, device TEXT NOT NULL,
    hook_url TEXT, sealed_hook_secret BLOB, status TEXT NOT NULL, created INTEGER NOT NULL,
    revoked_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claim_batches_tenant ON claim_batches (tenant_id, created);
CREATE TABLE IF NOT EXISTS claims (
    batch_id BLOB NOT NULL, serial TEXT NOT NULL, device_id BLOB NOT NULL, claimed_at INTEGER NOT NULL,
    nonces TEXT NOT NULL, resumed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, serial)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_device ON claims (device_id);
"""

BATCH_COLUMNS = ("id", "tenant_id", "name", "sealed_secret", "serials", "serial_pattern", "not_before", "not_after",
                 "max_count", "claimed_count", "device", "hook_url", "sealed_hook_secret", "status", "created",
                 "revoked_at")
_BATCH_INSERT = "INSERT INTO claim_batches (%s) VALUES (%s)" % (",".join(BATCH_COLUMNS), ",".join("?" * len(BATCH_COLUMNS)))
_TAKE_SLOT = ("UPDATE claim_batches SET claimed_count = claimed_count + 1 "
              "WHERE id = ? AND claimed_count < max_count AND status = 'active'")
_CLAIM_INSERT = "INSERT INTO claims (batch_id, serial, device_id, claimed_at, nonces, resumed) VALUES (?, ?, ?, ?, ?, 0)"


class DuplicateClaim(Conflict):
    """Another claim of this (batch, serial) committed first (the caller decides again: a resume)."""
    code = "already_claimed"


class ClaimsStorage(abc.ABC):
    @abc.abstractmethod
    def add_claim_batch(self, row, audit_row):
        """Insert a batch (a dict of BATCH_COLUMNS; serials a list or None, device a dict) with its audit row."""

    @abc.abstractmethod
    def get_claim_batch(self, batch_id, tenant_id=None):
        """The batch (any tenant if tenant_id is None) as a dict, serials a list or None, device a dict; or None."""

    @abc.abstractmethod
    def list_claim_batches(self, tenant_id, limit=100):
        """The tenant's batches, oldest first."""

    @abc.abstractmethod
    def revoke_claim_batch(self, tenant_id, batch_id, now, audit_row):
        """Mark an active batch revoked; False if the tenant has no such active batch."""

    @abc.abstractmethod
    def get_claim(self, batch_id, serial):
        """{batch_id, serial, device_id, claimed_at, nonces (list of hex), resumed} or None."""

    @abc.abstractmethod
    def list_claims(self, batch_id, after=None, limit=100):
        """The batch's claims in serial order, serials above `after` if given."""

    @abc.abstractmethod
    def commit_new_claim(self, batch_id, serial, device_row, nonces, now, audit_row):
        """One transaction: take a slot of the batch (BatchExhausted when none is left or the batch was revoked meanwhile), insert the claim
        (DuplicateClaim when (batch, serial) has one) and the device (registry insert_devices; Conflict when the
        tenant has a device with this serial), and the audit row."""

    @abc.abstractmethod
    def commit_resume(self, batch_id, serial, old_nonces, nonces, audit_row):
        """Store the claim's new nonces list if it is still `old_nonces` (False if another request changed it
        first: the caller decides again), and the audit row."""

    @abc.abstractmethod
    def delete_claim(self, batch_id, serial, device_update, audit_rows):
        """Forget a claim (the operator reset) and give its slot back to the batch. `device_update` (device_id, tenant_id, new serial_number, now) or
        None: decommission that device and move it off the serial. Returns False if there was no claim."""


class SQLiteClaimsStorage(ClaimsStorage):
    @staticmethod
    def _batch(row):
        if row is None:
            return None
        d = dict(row)
        d["id"] = bytes(d["id"])
        d["serials"] = None if d["serials"] is None else json.loads(d["serials"])
        d["device"] = json.loads(d["device"])
        return d

    def add_claim_batch(self, row, audit_row):
        vals = dict(row, serials=None if row["serials"] is None else json.dumps(row["serials"]),
                    device=json.dumps(row["device"], sort_keys=True))
        with self.transaction():
            self._db.execute(_BATCH_INSERT, tuple(vals[c] for c in BATCH_COLUMNS))
            self.add_audit([audit_row])

    def get_claim_batch(self, batch_id, tenant_id=None):
        if tenant_id is None:
            return self._batch(self._db.execute("SELECT * FROM claim_batches WHERE id = ?", (batch_id,)).fetchone())
        return self._batch(self._db.execute("SELECT * FROM claim_batches WHERE id = ? AND tenant_id = ?",
                                            (batch_id, tenant_id)).fetchone())

    def list_claim_batches(self, tenant_id, limit=100):
        return [self._batch(r) for r in self._db.execute(
            "SELECT * FROM claim_batches WHERE tenant_id = ? ORDER BY created, id LIMIT ?", (tenant_id, limit))]

    def revoke_claim_batch(self, tenant_id, batch_id, now, audit_row):
        with self.transaction():
            cur = self._db.execute("UPDATE claim_batches SET status = 'revoked', revoked_at = ? "
                                   "WHERE id = ? AND tenant_id = ? AND status = 'active'", (now, batch_id, tenant_id))
            if cur.rowcount != 1:
                return False
            self.add_audit([audit_row])
        return True

    @staticmethod
    def _claim(row):
        if row is None:
            return None
        d = dict(row)
        d["batch_id"], d["device_id"] = bytes(d["batch_id"]), bytes(d["device_id"])
        d["nonces"] = json.loads(d["nonces"])
        return d

    def get_claim(self, batch_id, serial):
        return self._claim(self._db.execute("SELECT * FROM claims WHERE batch_id = ? AND serial = ?",
                                            (batch_id, serial)).fetchone())

    def list_claims(self, batch_id, after=None, limit=100):
        if after is None:
            rows = self._db.execute("SELECT * FROM claims WHERE batch_id = ? ORDER BY serial LIMIT ?", (batch_id, limit))
        else:
            rows = self._db.execute("SELECT * FROM claims WHERE batch_id = ? AND serial > ? ORDER BY serial LIMIT ?",
                                    (batch_id, after, limit))
        return [self._claim(r) for r in rows]

    def _claim_transaction(self):
        return self.transaction()

    def commit_new_claim(self, batch_id, serial, device_row, nonces, now, audit_row):
        db = self._db
        with self._claim_transaction():
            if db.execute(_TAKE_SLOT, (batch_id,)).rowcount != 1:
                raise BatchExhausted("this claim batch has no claims left")
            try:
                db.execute(_CLAIM_INSERT, (batch_id, serial, device_row[0], now, json.dumps(nonces)))
            except sqlite3.IntegrityError as e:
                raise DuplicateClaim("this serial was claimed concurrently") from e
            self.insert_devices([device_row])
            self.add_audit([audit_row])

    def commit_resume(self, batch_id, serial, old_nonces, nonces, audit_row):
        with self._claim_transaction():
            cur = self._db.execute("UPDATE claims SET nonces = ?, resumed = resumed + 1 "
                                   "WHERE batch_id = ? AND serial = ? AND nonces = ?",
                                   (json.dumps(nonces), batch_id, serial, json.dumps(old_nonces)))
            if cur.rowcount != 1:
                return False
            self.add_audit([audit_row])
        return True

    def delete_claim(self, batch_id, serial, device_update, audit_rows):
        db = self._db
        with self.transaction():
            if db.execute("DELETE FROM claims WHERE batch_id = ? AND serial = ?", (batch_id, serial)).rowcount != 1:
                return False
            db.execute("UPDATE claim_batches SET claimed_count = claimed_count - 1 WHERE id = ? AND claimed_count > 0",
                       (batch_id,))
            if device_update is not None:
                device_id, tenant_id, new_serial, now = device_update
                db.execute("UPDATE devices SET serial_number = ?, status = 'decommissioned', "
                           "status_changed_at = CASE WHEN status = 'decommissioned' THEN status_changed_at ELSE ? END "
                           "WHERE id = ? AND tenant_id = ?", (new_serial, now, device_id, tenant_id))
            self.add_audit(audit_rows)
        return True
