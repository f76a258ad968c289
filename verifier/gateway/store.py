"""The gateway part of the storage interface (TPM attestation of edge gateways, docs/attestation.md
section 6): gateways, their pending credential activation and quote nonce (one each, single use,
expiring), per-model reference PCRs, the tenant's EK CA certificates and its gateway policy; the
SQLite implementation is a mixin of verifier.store.SQLiteStorage (which owns `_db` and `transaction()`).

No secret is stored: of the credential a gateway must decrypt only its SHA-256 is kept."""

import abc
import json

GATEWAY_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL, model TEXT NOT NULL,
    ek_public BLOB NOT NULL, ak_public BLOB NOT NULL, ek_cert BLOB NOT NULL, ek_chain TEXT NOT NULL,
    token_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    pcrs TEXT, attested_at INTEGER, passed INTEGER NOT NULL DEFAULT 0, last_result TEXT,
    UNIQUE (tenant_id, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gateways_tenant ON gateways (tenant_id, id);
CREATE TABLE IF NOT EXISTS gateway_pending (
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE, kind TEXT NOT NULL,
    value BLOB NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (gateway_id, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateway_ref_pcrs (
    tenant_id TEXT NOT NULL REFERENCES tenants(id), model TEXT NOT NULL, pcrs TEXT NOT NULL,
    updated INTEGER NOT NULL, PRIMARY KEY (tenant_id, model)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateway_ek_cas (
    tenant_id TEXT NOT NULL REFERENCES tenants(id), fingerprint TEXT NOT NULL, der BLOB NOT NULL,
    subject TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (tenant_id, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gateway_policy (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id), interval_s INTEGER NOT NULL, grace_s INTEGER NOT NULL,
    require_attested INTEGER NOT NULL) WITHOUT ROWID;
"""
GATEWAY_FIELDS = ("id", "tenant_id", "name", "model", "ek_public", "ak_public", "ek_cert", "ek_chain", "token_id",
                  "status", "created", "updated", "pcrs", "attested_at", "passed", "last_result")
PENDING_KINDS = ("activation", "nonce")
UPDATABLE = frozenset(GATEWAY_FIELDS) - {"id", "tenant_id", "token_id", "created"}


class GatewayStorage(abc.ABC):
    @abc.abstractmethod
    def add_gateway(self, row, activation_hash, expires):
        """Insert a gateway (a dict of GATEWAY_FIELDS) and its pending activation in one transaction.
        Conflict-free callers check name and token first; an integrity error is raised as is."""

    @abc.abstractmethod
    def get_gateway(self, tenant_id, gateway_id): """The gateway dict, or None."""

    @abc.abstractmethod
    def gateway_of_token(self, token_id): """The gateway an admin token is bound to, or None."""

    @abc.abstractmethod
    def find_gateway(self, tenant_id, name=None, token_id=None): """A tenant's gateway by name or token, or None."""

    @abc.abstractmethod
    def list_gateways(self, tenant_id, after=None, limit=100): """A tenant's gateways ordered by id."""

    @abc.abstractmethod
    def list_active_gateways(self, after=None, limit=100):
        """Gateways of every tenant whose status is active, ordered by id (the stale-attestation sweep)."""

    @abc.abstractmethod
    def update_gateway(self, gateway_id, fields): """Set some GATEWAY_FIELDS of one gateway."""

    @abc.abstractmethod
    def set_pending(self, gateway_id, kind, value, expires):
        """Store the one outstanding `kind` (activation or nonce) of a gateway, replacing the previous."""

    @abc.abstractmethod
    def take_pending(self, gateway_id, kind):
        """Delete and return (value, expires) of the outstanding `kind`, or None: a value is used once."""

    @abc.abstractmethod
    def set_reference_pcrs(self, tenant_id, model, pcrs, now): """Replace a model's reference ({index: hex})."""

    @abc.abstractmethod
    def get_reference_pcrs(self, tenant_id, model): """{index (int): hex} of a model, or None."""

    @abc.abstractmethod
    def add_ek_ca(self, tenant_id, fingerprint, der, subject, now): """Register an EK CA; False if it was there."""

    @abc.abstractmethod
    def list_ek_cas(self, tenant_id): """[{fingerprint, der, subject, created}] of a tenant, oldest first."""

    @abc.abstractmethod
    def get_gateway_policy(self, tenant_id): """{interval_s, grace_s, require_attested} or None (defaults)."""

    @abc.abstractmethod
    def set_gateway_policy(self, tenant_id, policy): """Replace a tenant's gateway policy."""


def _gateway(row):
    if row is None:
        return None
    g = dict(zip(GATEWAY_FIELDS, row))
    g["ek_chain"] = [bytes.fromhex(c) for c in json.loads(g["ek_chain"])]
    g["pcrs"] = json.loads(g["pcrs"]) if g["pcrs"] else None
    g["last_result"] = json.loads(g["last_result"]) if g["last_result"] else None
    g["passed"] = bool(g["passed"])
    return g


def _encode(fields):
    out = dict(fields)
    if "ek_chain" in out:
        out["ek_chain"] = json.dumps([c.hex() for c in out["ek_chain"]])
    for k in ("pcrs", "last_result"):
        if k in out and out[k] is not None:
            out[k] = json.dumps(out[k], separators=(",", ":"), sort_keys=True)
    if "passed" in out:
        out["passed"] = int(bool(out["passed"]))
    return out


_SELECT = f"SELECT {', '.join(GATEWAY_FIELDS)} FROM gateways"


class SQLiteGatewayStorage(GatewayStorage):
    def add_gateway(self, row, activation_hash, expires):
        row = _encode(row)
        cols = [c for c in GATEWAY_FIELDS if c in row]
        with self.transaction():
            self._db.execute(f"INSERT INTO gateways ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                             [row[c] for c in cols])
            self._db.execute("INSERT INTO gateway_pending (gateway_id, kind, value, expires) VALUES (?, 'activation', ?, ?)",
                             (row["id"], activation_hash, int(expires)))

    def get_gateway(self, tenant_id, gateway_id):
        return _gateway(self._db.execute(_SELECT + " WHERE id = ? AND tenant_id = ?", (gateway_id, tenant_id)).fetchone())

    def gateway_of_token(self, token_id):
        return _gateway(self._db.execute(_SELECT + " WHERE token_id = ?", (token_id,)).fetchone())

    def find_gateway(self, tenant_id, name=None, token_id=None):
        if name is not None:
            row = self._db.execute(_SELECT + " WHERE tenant_id = ? AND name = ?", (tenant_id, name)).fetchone()
        else:
            row = self._db.execute(_SELECT + " WHERE tenant_id = ? AND token_id = ?", (tenant_id, token_id)).fetchone()
        return _gateway(row)

    def list_gateways(self, tenant_id, after=None, limit=100):
        q, args = _SELECT + " WHERE tenant_id = ?", [tenant_id]
        if after is not None:
            q += " AND id > ?"; args.append(after)
        return [_gateway(r) for r in self._db.execute(q + " ORDER BY id LIMIT ?", (*args, int(limit)))]

    def list_active_gateways(self, after=None, limit=100):
        q, args = _SELECT + " WHERE status = 'active'", []
        if after is not None:
            q += " AND id > ?"; args.append(after)
        return [_gateway(r) for r in self._db.execute(q + " ORDER BY id LIMIT ?", (*args, int(limit)))]

    def update_gateway(self, gateway_id, fields):
        fields = _encode(fields)
        bad = set(fields) - UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        with self.transaction():
            self._db.execute(f"UPDATE gateways SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                             (*fields.values(), gateway_id))

    def set_pending(self, gateway_id, kind, value, expires):
        with self.transaction():
            self._db.execute("INSERT INTO gateway_pending (gateway_id, kind, value, expires) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (gateway_id, kind) DO UPDATE SET value = excluded.value, "
                             "expires = excluded.expires",
                             (gateway_id, kind, value, int(expires)))

    def take_pending(self, gateway_id, kind):
        with self.transaction():
            row = self._db.execute("DELETE FROM gateway_pending WHERE gateway_id = ? AND kind = ? RETURNING value, expires",
                                   (gateway_id, kind)).fetchone()
        return None if row is None else (bytes(row[0]), row[1])

    def set_reference_pcrs(self, tenant_id, model, pcrs, now):
        with self.transaction():
            self._db.execute("INSERT INTO gateway_ref_pcrs (tenant_id, model, pcrs, updated) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (tenant_id, model) DO UPDATE SET pcrs = excluded.pcrs, "
                             "updated = excluded.updated",
                             (tenant_id, model, json.dumps({str(k): v for k, v in pcrs.items()}, sort_keys=True),
                              int(now)))

    def get_reference_pcrs(self, tenant_id, model):
        row = self._db.execute("SELECT pcrs FROM gateway_ref_pcrs WHERE tenant_id = ? AND model = ?",
                               (tenant_id, model)).fetchone()
        return None if row is None else {int(k): v for k, v in json.loads(row[0]).items()}

    def add_ek_ca(self, tenant_id, fingerprint, der, subject, now):
        with self.transaction():
            cur = self._db.execute("INSERT OR IGNORE INTO gateway_ek_cas (tenant_id, fingerprint, der, subject, created) "
                                   "VALUES (?, ?, ?, ?, ?)", (tenant_id, fingerprint, der, subject, int(now)))
            return cur.rowcount == 1

    def list_ek_cas(self, tenant_id):
        rows = self._db.execute("SELECT fingerprint, der, subject, created FROM gateway_ek_cas WHERE tenant_id = ? "
                                "ORDER BY created, fingerprint", (tenant_id,)).fetchall()
        return [{"fingerprint": r[0], "der": bytes(r[1]), "subject": r[2], "created": r[3]} for r in rows]

    def get_gateway_policy(self, tenant_id):
        row = self._db.execute("SELECT interval_s, grace_s, require_attested FROM gateway_policy WHERE tenant_id = ?",
                               (tenant_id,)).fetchone()
        return None if row is None else {"interval_s": row[0], "grace_s": row[1], "require_attested": bool(row[2])}

    def set_gateway_policy(self, tenant_id, policy):
        with self.transaction():
            self._db.execute("INSERT INTO gateway_policy (tenant_id, interval_s, grace_s, require_attested) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET interval_s = excluded.interval_s, "
                             "grace_s = excluded.grace_s, require_attested = excluded.require_attested", (tenant_id, int(policy["interval_s"]), int(policy["grace_s"]),
                                                     int(bool(policy["require_attested"]))))
