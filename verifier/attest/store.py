"""The attestation part of the storage interface (verifier/attest/core.py): outstanding challenges,
appraisal results (a bounded history per device), per-model reference values and the attestation
policy (per tenant, with per-group overrides), and the SQLite mixin of verifier.store.SQLiteStorage
(which owns the connection `_db` and `transaction()`).

Two device columns belong to this feature and are added by migration: `attestation_status`
(unknown|affirming|warning|contraindicated) and `attest_quarantine` (1 while the device's quarantine is
one that attestation set, so that an affirming result lifts only that one, never an operator's) and
`attest_missed_at` (when the device last let a challenge expire: the next periodic one waits interval_s
from then, so a device that never answers is not challenged, and notified about, at every check-in).
"""

import abc
import json
import sqlite3

from verifier.errors import Conflict

HISTORY = 50                  # results kept per device (the newest)

ATTEST_SCHEMA = """
CREATE TABLE IF NOT EXISTS attest_challenges (
    device_id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), nonce BLOB NOT NULL,
    issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, reason TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attest_challenges_expiry ON attest_challenges (expires_at);
CREATE TABLE IF NOT EXISTS attest_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    device_id BLOB NOT NULL, created INTEGER NOT NULL, status TEXT NOT NULL, trust_level INTEGER NOT NULL,
    vector TEXT NOT NULL, details TEXT NOT NULL, ear TEXT);
CREATE INDEX IF NOT EXISTS attest_results_device ON attest_results (device_id, id);
CREATE TABLE IF NOT EXISTS attest_refs (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), model TEXT NOT NULL,
    micropython TEXT NOT NULL DEFAULT '', build TEXT, modules TEXT, app_files TEXT, created INTEGER NOT NULL,
    UNIQUE (tenant_id, model, micropython));
CREATE TABLE IF NOT EXISTS attest_policy (
    tenant_id TEXT NOT NULL REFERENCES tenants(id), grp TEXT NOT NULL, interval_s INTEGER,
    deadline_s INTEGER, quarantine INTEGER, PRIMARY KEY (tenant_id, grp)) WITHOUT ROWID;
"""

# (table, column, ALTER TABLE, fill) as verifier.registry.store.MIGRATIONS
ATTEST_MIGRATIONS = (
    ("devices", "attestation_status",
     "ALTER TABLE devices ADD COLUMN attestation_status TEXT NOT NULL DEFAULT 'unknown'", None),
    ("devices", "attest_quarantine", "ALTER TABLE devices ADD COLUMN attest_quarantine INTEGER NOT NULL DEFAULT 0",
     None),
    ("devices", "attest_missed_at", "ALTER TABLE devices ADD COLUMN attest_missed_at INTEGER", None),
)


class AttestStorage(abc.ABC):
    # challenges
    @abc.abstractmethod
    def put_challenge(self, tenant_id, device_id, nonce, issued_at, expires_at, reason):
        """Make this the device's one outstanding challenge (replacing any older one)."""

    @abc.abstractmethod
    def get_challenge(self, device_id): """{nonce, issued_at, expires_at, reason} or None."""

    @abc.abstractmethod
    def consume_challenge(self, device_id, nonce, now):
        """Delete the device's challenge if its nonce is `nonce` and it has not expired at `now`: True
        iff a row was deleted (so two submissions of one evidence cannot both pass)."""

    @abc.abstractmethod
    def take_expired_challenges(self, now, limit):
        """Delete and return up to `limit` challenges with expires_at <= now:
        [{device_id, tenant_id, nonce, issued_at, expires_at, reason}]."""

    @abc.abstractmethod
    def take_expired_challenge(self, device_id, now):
        """Delete and return the device's challenge if it has expired at `now`, else None."""

    # results
    @abc.abstractmethod
    def add_attest_result(self, tenant_id, device_id, now, status, trust_level, vector, details, ear):
        """Append a result and keep only the device's newest HISTORY; return its id."""

    @abc.abstractmethod
    def list_attest_results(self, device_id, limit=HISTORY):
        """The device's results, newest first: [{id, created, status, trust_level, vector, details, ear}]."""

    @abc.abstractmethod
    def set_attestation_state(self, tenant_id, device_id, status, trust_level, attest_quarantine=None, missed_at=None):
        """Write the device's attestation_status and trust_level (and attest_quarantine, attest_missed_at
        when not None)."""

    # references
    @abc.abstractmethod
    def add_attest_ref(self, ref): """Insert a reference dict; Conflict if (model, micropython) exists."""

    @abc.abstractmethod
    def list_attest_refs(self, tenant_id, model=None): """The tenant's references, oldest first."""

    @abc.abstractmethod
    def delete_attest_ref(self, tenant_id, ref_id): """False if the tenant has no such reference."""

    # policy
    @abc.abstractmethod
    def get_attest_policy(self, tenant_id, group=""):
        """{interval_s, deadline_s, quarantine} as stored (None: not set) or None if no row."""

    @abc.abstractmethod
    def put_attest_policy(self, tenant_id, group, interval_s, deadline_s, quarantine): """Upsert a policy row."""


def _ref(row):
    d = dict(row)
    d["micropython"] = d["micropython"] or None
    d["modules"] = None if d["modules"] is None else json.loads(d["modules"])
    d["app_files"] = None if d["app_files"] is None else json.loads(d["app_files"])
    return d


class SQLiteAttestStorage(AttestStorage):
    def put_challenge(self, tenant_id, device_id, nonce, issued_at, expires_at, reason):
        with self.transaction():
            self._db.execute("INSERT INTO attest_challenges VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE "
                             "SET tenant_id = excluded.tenant_id, nonce = excluded.nonce, "
                             "issued_at = excluded.issued_at, expires_at = excluded.expires_at, "
                             "reason = excluded.reason",
                             (device_id, tenant_id, nonce, int(issued_at), int(expires_at), reason))

    def get_challenge(self, device_id):
        row = self._db.execute("SELECT nonce, issued_at, expires_at, reason FROM attest_challenges WHERE device_id = ?",
                               (device_id,)).fetchone()
        return None if row is None else dict(row)

    def consume_challenge(self, device_id, nonce, now):
        with self.transaction():
            cur = self._db.execute("DELETE FROM attest_challenges WHERE device_id = ? AND nonce = ? AND expires_at > ?",
                                   (device_id, nonce, int(now)))
            return cur.rowcount == 1

    def take_expired_challenges(self, now, limit):
        with self.transaction():
            rows = [dict(r) for r in self._db.execute(
                "SELECT device_id, tenant_id, nonce, issued_at, expires_at, reason FROM attest_challenges "
                "WHERE expires_at <= ? ORDER BY expires_at, device_id LIMIT ?", (int(now), int(limit)))]
            self._db.executemany("DELETE FROM attest_challenges WHERE device_id = ? AND nonce = ?",
                                 [(r["device_id"], r["nonce"]) for r in rows])
        return rows

    def take_expired_challenge(self, device_id, now):
        with self.transaction():
            row = self._db.execute("SELECT device_id, tenant_id, nonce, issued_at, expires_at, reason "
                                   "FROM attest_challenges WHERE device_id = ? AND expires_at <= ?",
                                   (device_id, int(now))).fetchone()
            if row is None:
                return None
            self._db.execute("DELETE FROM attest_challenges WHERE device_id = ?", (device_id,))
            return dict(row)

    def add_attest_result(self, tenant_id, device_id, now, status, trust_level, vector, details, ear):
        with self.transaction():
            cur = self._db.execute(
                "INSERT INTO attest_results (tenant_id, device_id, created, status, trust_level, vector, details, ear) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (tenant_id, device_id, int(now), status, int(trust_level), json.dumps(vector, sort_keys=True),
                 json.dumps(details, sort_keys=True), ear))
            result_id = cur.fetchone()[0]
            self._db.execute("DELETE FROM attest_results WHERE device_id = ? AND id <= (SELECT id FROM attest_results "
                             "WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (device_id, device_id, HISTORY))
            return result_id

    def list_attest_results(self, device_id, limit=HISTORY):
        rows = self._db.execute("SELECT id, created, status, trust_level, vector, details, ear FROM attest_results "
                                "WHERE device_id = ? ORDER BY id DESC LIMIT ?", (device_id, int(limit))).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["vector"], d["details"] = json.loads(d["vector"]), json.loads(d["details"])
            out.append(d)
        return out

    def set_attestation_state(self, tenant_id, device_id, status, trust_level, attest_quarantine=None, missed_at=None):
        q, args = "UPDATE devices SET attestation_status = ?, trust_level = ?", [status, int(trust_level)]
        if attest_quarantine is not None:
            q += ", attest_quarantine = ?"; args.append(int(bool(attest_quarantine)))
        if missed_at is not None:
            q += ", attest_missed_at = ?"; args.append(int(missed_at))
        with self.transaction():
            self._db.execute(q + " WHERE id = ? AND tenant_id = ?", (*args, device_id, tenant_id))

    def add_attest_ref(self, ref):
        try:
            with self.transaction():
                self._db.execute(
                    "INSERT INTO attest_refs (id, tenant_id, model, micropython, build, modules, app_files, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (ref["id"], ref["tenant_id"], ref["model"], ref["micropython"] or "", ref["build"],
                     None if ref["modules"] is None else json.dumps(ref["modules"]),
                     None if ref["app_files"] is None else json.dumps(ref["app_files"]), int(ref["created"])))
        except sqlite3.IntegrityError:
            raise Conflict(f"a reference for model {ref['model']!r} and micropython "
                           f"{ref['micropython'] or 'any'} already exists: delete it first") from None

    def list_attest_refs(self, tenant_id, model=None):
        q, args = "SELECT * FROM attest_refs WHERE tenant_id = ?", [tenant_id]
        if model is not None:
            q += " AND model = ?"; args.append(model)
        return [_ref(r) for r in self._db.execute(q + " ORDER BY created, id", args)]

    def delete_attest_ref(self, tenant_id, ref_id):
        with self.transaction():
            return self._db.execute("DELETE FROM attest_refs WHERE id = ? AND tenant_id = ?",
                                    (ref_id, tenant_id)).rowcount == 1

    def get_attest_policy(self, tenant_id, group=""):
        row = self._db.execute("SELECT interval_s, deadline_s, quarantine FROM attest_policy "
                               "WHERE tenant_id = ? AND grp = ?", (tenant_id, group)).fetchone()
        if row is None:
            return None
        d = dict(row)
        if d["quarantine"] is not None:
            d["quarantine"] = bool(d["quarantine"])
        return d

    def put_attest_policy(self, tenant_id, group, interval_s, deadline_s, quarantine):
        with self.transaction():
            self._db.execute("INSERT INTO attest_policy VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, grp) DO UPDATE "
                             "SET interval_s = excluded.interval_s, deadline_s = excluded.deadline_s, "
                             "quarantine = excluded.quarantine",
                             (tenant_id, group, interval_s, deadline_s,
                              None if quarantine is None else int(bool(quarantine))))
