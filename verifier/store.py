"""The verifier's store: every feature's storage interface composed into one `Storage`, and its SQLite
implementation `SQLiteStorage` on one file (what a second verifier instance would share). Each feature
owns its part in verifier/<feature>/store.py (the interface, its SQLite implementation, its schema);
this module only lists them. A PostgreSQL store composes the features' PostgreSQL parts the same way."""

from verifier.alerts.store import ALERTS_SCHEMA, AlertsStorage, SQLiteAlertsStorage
from verifier.claims.store import CLAIMS_SCHEMA, ClaimsStorage, SQLiteClaimsStorage
from verifier.console.store import CONSOLE_INDEXES, CONSOLE_SCHEMA, ConsoleStorage, SQLiteConsoleStorage
from verifier.attest.store import ATTEST_MIGRATIONS, ATTEST_SCHEMA, AttestStorage, SQLiteAttestStorage
from verifier.fleet.store import FLEET_INDEXES, FLEET_SCHEMA, FleetStorage, SQLiteFleetStorage
from verifier.health.store import HEALTH_MIGRATIONS, HEALTH_SCHEMA, HealthStorage, SQLiteHealthStorage
from verifier.gateway.store import GATEWAY_SCHEMA, GatewayStorage, SQLiteGatewayStorage
from verifier.mqtt.store import X509_SCHEMA, SQLiteX509Storage, X509Storage
from verifier.notify.store import NOTIFY_SCHEMA, NotifyStorage, SQLiteNotifyStorage
from verifier.ota.store import OTA_SCHEMA, OTAStorage, SQLiteOTAStorage
from verifier.registry.store import CHANGE_TRIGGERS, MIGRATIONS, SCHEMA, RegistryStorage, SQLiteRegistryStorage
from verifier.tokens.store import TOKEN_INDEXES, TOKEN_MIGRATIONS, TOKEN_SCHEMA, SQLiteTokenStorage, TokenStorage


class Storage(RegistryStorage, OTAStorage, TokenStorage, X509Storage, NotifyStorage, GatewayStorage,
              AttestStorage, HealthStorage, FleetStorage, AlertsStorage, ConsoleStorage, ClaimsStorage):
    """What the verifier needs from its database. Device ids are 8 bytes; times are unix seconds."""


class SQLiteStorage(SQLiteRegistryStorage, SQLiteOTAStorage, SQLiteTokenStorage, SQLiteX509Storage,
                    SQLiteNotifyStorage, SQLiteGatewayStorage, SQLiteAttestStorage, SQLiteHealthStorage,
                    SQLiteFleetStorage, SQLiteAlertsStorage, SQLiteConsoleStorage, SQLiteClaimsStorage, Storage):
    """Storage on one SQLite file (WAL). Single instance: limits are in process memory."""

    SCHEMAS = (SCHEMA, OTA_SCHEMA, TOKEN_SCHEMA, X509_SCHEMA, NOTIFY_SCHEMA, GATEWAY_SCHEMA, ATTEST_SCHEMA,
               HEALTH_SCHEMA, FLEET_SCHEMA, ALERTS_SCHEMA, CONSOLE_SCHEMA, CLAIMS_SCHEMA)
    # the health migrations add devices.health_score and reported_version, which the fleet triggers read
    MIGRATIONS = MIGRATIONS + TOKEN_MIGRATIONS + ATTEST_MIGRATIONS + HEALTH_MIGRATIONS
    INDEXES = (CHANGE_TRIGGERS, TOKEN_INDEXES, FLEET_INDEXES, CONSOLE_INDEXES)   # the triggers read migrated columns
    # The registry file's schema version (PRAGMA user_version), written once SCHEMAS, MIGRATIONS and INDEXES have run.
    # 0 is every file made before versions were kept (the column checks of MIGRATIONS bring any of them up to date).
    # Raise it with every change of a schema, a migration or an index, so an older janua refuses the file.
    # 1: the schemas, migrations and indexes of janua 0.1.0.
    # 2: devices.changed_seq with its index and triggers, change_counter, device_tombstones (edge snapshot
    #    change markers, docs/tokens.md "Change markers").
    SCHEMA_VERSION = 2

    # a device delete spans every feature's tables, so it is implemented here, where they are all known
    def delete_unused_device(self, tenant_id, device_id, audit_row):
        db = self._db
        with self.transaction():
            if db.execute("SELECT 1 FROM devices WHERE id = ? AND tenant_id = ?", (device_id, tenant_id)).fetchone() is None:
                return "absent"
            if (db.execute("SELECT 1 FROM auth_state WHERE id = ?", (device_id,)).fetchone()
                    or db.execute("SELECT 1 FROM chain_used WHERE device_id = ? AND via != 'abandoned' LIMIT 1",
                                  (device_id,)).fetchone()
                    or db.execute("SELECT 1 FROM ota_reports WHERE device_id = ? LIMIT 1", (device_id,)).fetchone()
                    # a DTLS handshake leaves an auth_state row too (record_auth's seen); the audit row is
                    # kept for databases written before that (audit rows expire, so it is not the proof)
                    or db.execute("SELECT 1 FROM audit WHERE tenant_id = ? AND device_id = ? AND kind = 'auth' "
                                  "AND result = 'OK' LIMIT 1", (tenant_id, device_id.hex())).fetchone()):
                return "authenticated"
            # its credentials go with it: certificates revoked (they stay, so the tenant's CRL keeps listing
            # them), the MQTT password removed
            db.execute("UPDATE x509_certs SET revoked_at = ?, reason = 'cessation_of_operation' "
                       "WHERE device_id = ? AND tenant_id = ? AND revoked_at IS NULL",
                       (audit_row[0], device_id, tenant_id))
            db.execute("DELETE FROM mqtt_passwords WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM chain_used WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM chain_state WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM attest_challenges WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM attest_results WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM health_latest WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM health_history WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM health_state WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM devices WHERE id = ? AND tenant_id = ?", (device_id, tenant_id))
            self.add_audit([audit_row])              # nested: the same transaction
        return "deleted"

