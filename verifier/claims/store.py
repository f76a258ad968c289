"""The claims part of the storage interface and its SQLite mixin (docs/claims.md "Storage"): claim batches (the
batch secret and the hook secret sealed under the KEK) and the claims made from them.

A new claim is one transaction (`commit_new_claims`: the claims that arrive together share it, each under a
savepoint): the batch's claimed_count moves up only by a conditional
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
_STATE = ("SELECT b.status, b.claimed_count, c.device_id, c.claimed_at, c.nonces, c.resumed FROM claim_batches b "
          "LEFT JOIN claims c ON c.batch_id = b.id AND c.serial = ? WHERE b.id = ?")
_CLAIM_INSERT_NEW = ("INSERT OR IGNORE INTO claims (batch_id, serial, device_id, claimed_at, nonces, resumed) "
                     "VALUES (?, ?, ?, ?, ?, 0)")
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
    def claim_batch_state(self, batch_id, serial=None):
        """(status, claimed_count, the claim of `serial` or None) of a batch: what a claim reads every time, in one
        query; None for an unknown batch."""

    @abc.abstractmethod
    def commit_new_claims(self, items):
        """New claims (batch_id, serial, device_row, nonces, now, audit_row) in ONE transaction (group commit,
        verifier/claims/writer.py), each under a savepoint of its own: take a slot of the batch (BatchExhausted when
        none is left or the batch was revoked meanwhile), insert the claim (DuplicateClaim when (batch, serial) has
        one), the device (registry insert_devices; Conflict when the tenant has a device with this serial) and the
        audit row; a claim that fails is rolled back alone. Returns per item None (committed) or the refusal."""

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

    def claim_batch_state(self, batch_id, serial=None):
        row = self._db.execute(_STATE, (serial, batch_id)).fetchone()
        if row is None:
            return None
        claim = None
        if row[2] is not None:
            claim = {"batch_id": batch_id, "serial": serial, "device_id": bytes(row[2]), "claimed_at": row[3],
                     "nonces": json.loads(row[4]), "resumed": row[5]}
        return row[0], row[1], claim

    def commit_new_claims(self, items):
        try:
            return self._commit_together(items)
        except Conflict:       # a device row the pre-check did not see (another instance's, just committed)
            return self._commit_each(items)

    def _commit_together(self, items):
        """The fast path: per claim its claims row and its slot; then every device and audit row in one statement
        each. A serial the tenant has already is found before (existing_serials); one that appears meanwhile makes
        insert_devices raise Conflict and the whole transaction is rolled back (the caller takes _commit_each)."""
        db = self._db
        out = [None] * len(items)
        devices, audits = [], []
        with self._claim_transaction():
            taken = set()
            for tenant_id in {it[2][1] for it in items}:
                taken.update((tenant_id, s) for s in self.existing_serials(
                    tenant_id, {it[1] for it in items if it[2][1] == tenant_id}))
            for k, (batch_id, serial, device_row, nonces, now, audit_row) in enumerate(items):
                if db.execute(_CLAIM_INSERT_NEW, (batch_id, serial, device_row[0], now, json.dumps(nonces))).rowcount != 1:
                    out[k] = DuplicateClaim("this serial was claimed concurrently")
                    continue
                if (device_row[1], serial) in taken:
                    out[k] = Conflict("a device with this serial exists in the tenant")
                elif db.execute(_TAKE_SLOT, (batch_id,)).rowcount != 1:
                    out[k] = BatchExhausted("this claim batch has no claims left")
                else:
                    taken.add((device_row[1], serial))
                    devices.append(device_row)
                    audits.append(audit_row)
                    continue
                db.execute("DELETE FROM claims WHERE batch_id = ? AND serial = ?", (batch_id, serial))
            if devices:
                self.insert_devices(devices)
                self.add_audit(audits)
        return out

    def _commit_each(self, items):
        """The slow path: each claim under a savepoint of its own."""
        db = self._db
        out = []
        with self._claim_transaction():
            for batch_id, serial, device_row, nonces, now, audit_row in items:
                db.execute("SAVEPOINT claim")
                try:
                    if db.execute(_TAKE_SLOT, (batch_id,)).rowcount != 1:
                        raise BatchExhausted("this claim batch has no claims left")
                    try:
                        db.execute(_CLAIM_INSERT, (batch_id, serial, device_row[0], now, json.dumps(nonces)))
                    except sqlite3.IntegrityError as e:
                        raise DuplicateClaim("this serial was claimed concurrently") from e
                    self.insert_devices([device_row])
                    self.add_audit([audit_row])
                except (BatchExhausted, Conflict) as e:     # DuplicateClaim is a Conflict
                    db.execute("ROLLBACK TO claim")
                    db.execute("RELEASE claim")
                    out.append(e)
                    continue
                db.execute("RELEASE claim")
                out.append(None)
        return out

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
