"""The X.509 and MQTT part of the storage interface (verifier/mqtt/x509.py, verifier/mqtt_*.py): tables,
abstract methods, and their SQLite implementation as a mixin of verifier.store.SQLiteStorage
(which owns the connection `_db`, `transaction()` and `_write()`)."""

import abc
import sqlite3

from verifier.errors import Conflict

# x509_ca: one CA per tenant (private key sealed under the KEK), with the CRL number counter.
# x509_certs: every certificate issued to a device (serial hex is the key); revoked_at/reason once revoked,
#   held_at while its device is suspended (listed in the CRL as certificateHold, removed on resume).
# mqtt_passwords: per-device MQTT password, SHA-256 of a 32-byte random secret (never the secret).
# mqtt_broker: the broker this verifier manages (written by `janua mqtt config`): config dir, dynsec admin.
X509_SCHEMA = """
CREATE TABLE IF NOT EXISTS x509_ca (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id), cert_der BLOB NOT NULL, sealed_key BLOB NOT NULL,
    created INTEGER NOT NULL, crl_number INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS x509_certs (
    serial TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), device_id BLOB NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE, key_type TEXT NOT NULL, not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL, next_key_rotation INTEGER NOT NULL, created INTEGER NOT NULL,
    revoked_at INTEGER, reason TEXT, held_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS x509_certs_device ON x509_certs (tenant_id, device_id, created);
CREATE TABLE IF NOT EXISTS mqtt_passwords (
    device_id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), hash BLOB NOT NULL,
    created INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mqtt_broker (
    id INTEGER PRIMARY KEY CHECK (id = 1), config_dir TEXT NOT NULL, host TEXT NOT NULL,
    dynsec_port INTEGER NOT NULL, admin_user TEXT NOT NULL, sealed_admin_password BLOB NOT NULL,
    tenant_ports TEXT NOT NULL, updated INTEGER NOT NULL);
"""
CERT_FIELDS = ("serial", "tenant_id", "device_id", "fingerprint", "key_type", "not_before", "not_after",
               "next_key_rotation", "created")


class X509Storage(abc.ABC):
    @abc.abstractmethod
    def get_ca(self, tenant_id): """{cert_der, sealed_key, created, crl_number} or None."""

    @abc.abstractmethod
    def put_ca(self, tenant_id, cert_der, sealed_key, created): """Store a tenant's CA unless it has one already."""

    @abc.abstractmethod
    def next_crl_number(self, tenant_id): """Increment and return the tenant's CRL number."""

    @abc.abstractmethod
    def list_tenants_brief(self): """[{id, name}] of every tenant, by name (for broker configuration)."""

    @abc.abstractmethod
    def add_certificate(self, cert): """Insert a certificate dict with CERT_FIELDS."""

    @abc.abstractmethod
    def list_certificates(self, tenant_id, device_id): """The device's certificates, newest first."""

    @abc.abstractmethod
    def revoke_certificates(self, tenant_id, device_id, now, reason, serial=None):
        """Revoke the device's unrevoked certificates (or only `serial`); return how many."""

    @abc.abstractmethod
    def hold_certificates(self, tenant_id, device_id, now, held):
        """Put (held=True) or take off (False) the device's unrevoked certificates on hold; return how many."""

    @abc.abstractmethod
    def list_revoked_certificates(self, tenant_id, now):
        """[{serial, revoked_at, reason}] of revoked or held certificates not yet expired at `now`."""

    @abc.abstractmethod
    def set_mqtt_password(self, tenant_id, device_id, pw_hash, now):
        """Insert or replace a device's password hash; False if the device id's row is another tenant's."""

    @abc.abstractmethod
    def get_mqtt_password(self, device_id): """{tenant_id, hash, created} or None."""

    @abc.abstractmethod
    def delete_mqtt_password(self, device_id): """Forget a device's password; False if it had none."""

    @abc.abstractmethod
    def touch_last_seen(self, device_id, now): """Record that the device authenticated at `now` (not replay state)."""

    @abc.abstractmethod
    def set_mqtt_broker(self, broker): """Store the managed broker's settings (dict with the table's columns)."""

    @abc.abstractmethod
    def get_mqtt_broker(self): """The managed broker's settings or None."""


class SQLiteX509Storage:
    def get_ca(self, tenant_id):
        row = self._db.execute("SELECT cert_der, sealed_key, created, crl_number FROM x509_ca WHERE tenant_id = ?",
                               (tenant_id,)).fetchone()
        return None if row is None else dict(row)

    def put_ca(self, tenant_id, cert_der, sealed_key, created):
        self._write("INSERT OR IGNORE INTO x509_ca (tenant_id, cert_der, sealed_key, created) VALUES (?, ?, ?, ?)",
                    (tenant_id, cert_der, sealed_key, created))

    def next_crl_number(self, tenant_id):
        with self.transaction():
            self._db.execute("UPDATE x509_ca SET crl_number = crl_number + 1 WHERE tenant_id = ?", (tenant_id,))
            return self._db.execute("SELECT crl_number FROM x509_ca WHERE tenant_id = ?", (tenant_id,)).fetchone()[0]

    def list_tenants_brief(self):
        return [dict(r) for r in self._db.execute("SELECT id, name FROM tenants ORDER BY name")]

    def add_certificate(self, cert):
        try:
            self._write("INSERT INTO x509_certs (%s) VALUES (%s)" % (",".join(CERT_FIELDS), ",".join("?" * len(CERT_FIELDS))),
                        tuple(cert[f] for f in CERT_FIELDS))
        except sqlite3.IntegrityError as e:
            raise Conflict(f"certificate conflicts with an existing one: {e}") from e

    def list_certificates(self, tenant_id, device_id):
        return [dict(r) for r in self._db.execute(
            "SELECT * FROM x509_certs WHERE tenant_id = ? AND device_id = ? ORDER BY created DESC, not_after DESC",
            (tenant_id, device_id))]

    def revoke_certificates(self, tenant_id, device_id, now, reason, serial=None):
        q = ("UPDATE x509_certs SET revoked_at = ?, reason = ? "
             "WHERE tenant_id = ? AND device_id = ? AND revoked_at IS NULL")
        args = [now, reason, tenant_id, device_id]
        if serial is not None:
            q += " AND serial = ?"
            args.append(serial)
        return self._write(q, args).rowcount

    def hold_certificates(self, tenant_id, device_id, now, held):
        return self._write("UPDATE x509_certs SET held_at = ? WHERE tenant_id = ? AND device_id = ? "
                           "AND revoked_at IS NULL", (now if held else None, tenant_id, device_id)).rowcount

    def list_revoked_certificates(self, tenant_id, now):
        return [dict(r) for r in self._db.execute(
            "SELECT serial, COALESCE(revoked_at, held_at) AS revoked_at, "
            "CASE WHEN revoked_at IS NULL THEN 'certificate_hold' ELSE reason END AS reason "
            "FROM x509_certs WHERE tenant_id = ? AND (revoked_at IS NOT NULL OR held_at IS NOT NULL) "
            "AND not_after >= ? ORDER BY serial", (tenant_id, now))]

    def set_mqtt_password(self, tenant_id, device_id, pw_hash, now):
        # a row of the same device id under another tenant is left alone (False)
        return self._write("INSERT INTO mqtt_passwords VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
                           "hash = excluded.hash, created = excluded.created "
                           "WHERE mqtt_passwords.tenant_id = excluded.tenant_id",
                           (device_id, tenant_id, pw_hash, now)).rowcount == 1

    def get_mqtt_password(self, device_id):
        row = self._db.execute("SELECT tenant_id, hash, created FROM mqtt_passwords WHERE device_id = ?",
                               (device_id,)).fetchone()
        return None if row is None else dict(row)

    def delete_mqtt_password(self, device_id):
        return self._write("DELETE FROM mqtt_passwords WHERE device_id = ?", (device_id,)).rowcount == 1

    def touch_last_seen(self, device_id, now):
        # last_ts (binary-auth replay state) is left alone; only the time of the last authentication moves
        self._write("INSERT INTO auth_state (id, last_ts, last_authenticated_at) VALUES (?, 0, ?) "
                    "ON CONFLICT (id) DO UPDATE SET last_authenticated_at = excluded.last_authenticated_at",
                    (device_id, now))

    def set_mqtt_broker(self, broker):
        cols = ("config_dir", "host", "dynsec_port", "admin_user", "sealed_admin_password", "tenant_ports", "updated")
        self._write("INSERT INTO mqtt_broker (id, %s) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET %s"
                    % (",".join(cols), ",".join("?" * len(cols)), ", ".join(f"{c} = excluded.{c}" for c in cols)),
                    tuple(broker[c] for c in cols))

    def get_mqtt_broker(self):
        row = self._db.execute("SELECT * FROM mqtt_broker WHERE id = 1").fetchone()
        return None if row is None else dict(row)
