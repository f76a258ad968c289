"""The device-token part of the storage interface (verifier/tokens/core.py, verifier/tokens/chain.py): tables,
abstract methods, and their SQLite implementation as a mixin of verifier.store.SQLiteStorage
(which owns the connection `_db`, `transaction()` and `_write()`)."""

import abc

# token_keys: the verifier-wide ES256 signing keys (docs/tokens.md section 5). `sealed` is the private
# scalar sealed under the KEK; `signed_until` is an upper bound of the exp of every token (JWT or
# chain) the key has signed, so a retired key is published exactly as long as it is needed.
# chain_state: one row per device that holds an offline chain: nbf(i) = base + i * period,
# exp(i) = nbf(i) + validity for the indices of the current segment (i >= seg_first; a new segment
# starts when the device ran dry or the tenant's period/validity changed); next_index = last issued
# index + 1; last_hash = SHA-256(last token issued)[:16].
# chain_used: every chain index that may no longer be accepted (used offline here, reported used by
# the device or an edge, or abandoned because the device never received it). `expires` is an upper
# bound of that token's exp: once the clock is past expires + the largest drift_s, the token is refused
# as expired anyway and the row may go (prune_chain_used; docs/tokens.md section 3.3). Its index is
# created after the migrations (TOKEN_INDEXES), since a file from before the column has no `expires`
# when TOKEN_SCHEMA runs.
TOKEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS token_keys (
    kid TEXT PRIMARY KEY, sealed BLOB NOT NULL, pub BLOB NOT NULL, created INTEGER NOT NULL,
    retired_at INTEGER, signed_until INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chain_state (
    device_id BLOB PRIMARY KEY, base INTEGER NOT NULL, period INTEGER NOT NULL, validity INTEGER NOT NULL,
    seg_first INTEGER NOT NULL, next_index INTEGER NOT NULL, last_hash BLOB NOT NULL,
    updated_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chain_used (
    device_id BLOB NOT NULL, idx INTEGER NOT NULL, used_at INTEGER NOT NULL, via TEXT NOT NULL,
    expires INTEGER NOT NULL, PRIMARY KEY (device_id, idx)) WITHOUT ROWID;
"""
TOKEN_INDEXES = """
CREATE INDEX IF NOT EXISTS chain_used_expires ON chain_used (expires);
"""
# A chain_used row from a file made before `expires` existed gets this: never pruned (it is the largest
# exp a chain token can carry, u32).
EXPIRES_UNKNOWN = 0xFFFFFFFF
# Columns added to token tables after their first release (the shape of verifier.registry.store.MIGRATIONS).
TOKEN_MIGRATIONS = (
    ("chain_used", "expires",
     "ALTER TABLE chain_used ADD COLUMN expires INTEGER NOT NULL DEFAULT %d" % EXPIRES_UNKNOWN, None),
)
CHAIN_STATE_FIELDS = ("base", "period", "validity", "seg_first", "next_index", "last_hash", "updated_at")
USED_VIA = ("offline", "device", "edge", "abandoned")
REVOKED_SQL = "(status IN ('suspended', 'decommissioned') OR compromised = 1 OR quarantined = 1)"


class TokenStorage(abc.ABC):
    # signing keys
    @abc.abstractmethod
    def add_token_key(self, kid, sealed, pub, created, retire_others_at=None):
        """Insert a signing key; with retire_others_at, retire every active key in the same transaction
        (a rotation). Returns the kids retired."""

    @abc.abstractmethod
    def list_token_keys(self):
        """Every signing key {kid, sealed, pub, created, retired_at, signed_until}, oldest first."""

    @abc.abstractmethod
    def extend_token_key(self, kid, signed_until): """Raise a key's signed_until to at least `signed_until`."""

    # offline chains
    @abc.abstractmethod
    def get_chain_state(self, device_id):
        """{base, period, validity, seg_first, next_index, last_hash, updated_at} or None."""

    @abc.abstractmethod
    def put_chain_state(self, device_id, old_next_index, state):
        """Store a device's chain state if its next_index is still `old_next_index` (None: no row yet);
        False if another writer moved it first (compare and set)."""

    @abc.abstractmethod
    def use_chain_token(self, device_id, index, now, via, expires):
        """Atomically mark one chain index used; False if it already was (a replay). `expires`: an upper
        bound of the token's exp (unix seconds), kept for prune_chain_used."""

    @abc.abstractmethod
    def mark_chain_used(self, device_id, used, now, via):
        """Mark chain indices used, `used` = [(index, expires)] (expires as for use_chain_token); those
        already marked keep their first record."""

    @abc.abstractmethod
    def prune_chain_used(self, before, limit):
        """Delete at most `limit` chain_used rows with expires < `before` (one short transaction); returns
        how many went. The caller repeats while it gets `limit` (verifier.tokens.routes.prune_chain_used)."""

    @abc.abstractmethod
    def used_chain_indices(self, device_id, lo, hi): """The set of used indices in [lo, hi]."""

    @abc.abstractmethod
    def revoked_device_ids(self, tenant_id):
        """Ids (bytes) of the tenant's devices that may not authenticate: suspended, decommissioned,
        compromised or quarantined."""


class SQLiteTokenStorage:
    """SQLite implementations of TokenStorage (mixed into SQLiteStorage)."""

    def add_token_key(self, kid, sealed, pub, created, retire_others_at=None):
        with self.transaction():
            retired = []
            if retire_others_at is not None:
                retired = [r[0] for r in self._db.execute("SELECT kid FROM token_keys WHERE retired_at IS NULL")]
                self._db.execute("UPDATE token_keys SET retired_at = ? WHERE retired_at IS NULL", (retire_others_at,))
            self._db.execute("INSERT INTO token_keys VALUES (?, ?, ?, ?, NULL, ?)",
                             (kid, sealed, pub, created, created))
        return retired

    def list_token_keys(self):
        return [dict(r) for r in self._db.execute("SELECT * FROM token_keys ORDER BY created, kid")]

    def extend_token_key(self, kid, signed_until):
        self._write("UPDATE token_keys SET signed_until = ? WHERE kid = ? AND signed_until < ?",
                    (signed_until, kid, signed_until))

    def get_chain_state(self, device_id):
        row = self._db.execute("SELECT * FROM chain_state WHERE device_id = ?", (device_id,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d.pop("device_id")
        return d

    def put_chain_state(self, device_id, old_next_index, state):
        vals = [state[f] for f in CHAIN_STATE_FIELDS]
        with self.transaction():
            if old_next_index is None:
                cur = self._db.execute("INSERT OR IGNORE INTO chain_state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                       (device_id, *vals))
            else:
                cur = self._db.execute(
                    "UPDATE chain_state SET %s WHERE device_id = ? AND next_index = ?"
                    % ", ".join(f"{f} = ?" for f in CHAIN_STATE_FIELDS), (*vals, device_id, old_next_index))
        return cur.rowcount == 1

    def use_chain_token(self, device_id, index, now, via, expires):
        cur = self._write(_USED_INSERT, (device_id, index, now, via, expires))
        return cur.rowcount == 1

    def mark_chain_used(self, device_id, used, now, via):
        with self.transaction():
            self._db.executemany(_USED_INSERT, [(device_id, i, now, via, exp) for i, exp in used])

    def prune_chain_used(self, before, limit):
        # the inner SELECT walks the expires index (covering: it holds the primary key too)
        cur = self._write("DELETE FROM chain_used WHERE (device_id, idx) IN "
                          "(SELECT device_id, idx FROM chain_used WHERE expires < ? LIMIT ?)", (before, limit))
        return cur.rowcount

    def used_chain_indices(self, device_id, lo, hi):
        return {r[0] for r in self._db.execute(
            "SELECT idx FROM chain_used WHERE device_id = ? AND idx BETWEEN ? AND ?", (device_id, lo, hi))}

    def revoked_device_ids(self, tenant_id):
        return [r[0] for r in self._db.execute(
            f"SELECT id FROM devices WHERE tenant_id = ? AND {REVOKED_SQL} ORDER BY id", (tenant_id,))]


_USED_INSERT = "INSERT OR IGNORE INTO chain_used (device_id, idx, used_at, via, expires) VALUES (?, ?, ?, ?, ?)"
