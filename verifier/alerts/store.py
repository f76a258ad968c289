"""The alerts part of the storage interface (docs/health.md 5) and its SQLite mixin: the alerts (at most
one open per tenant, device and rule: a partial unique index says so, for every instance sharing the
file) and health_state, the persisted copy of the per-device baselines the health ingest batch writes."""

import abc
import json

ALERTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, device_id BLOB, rule TEXT NOT NULL,
    severity TEXT NOT NULL, opened_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, count INTEGER NOT NULL,
    details TEXT NOT NULL, resolved_at INTEGER, resolved_by TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (tenant_id, rule, ifnull(device_id, x''))
    WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_tenant ON alerts (tenant_id, id);
CREATE INDEX IF NOT EXISTS alerts_stale ON alerts (last_seen_at) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS health_state (
    device_id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, hour INTEGER, reports_h INTEGER NOT NULL,
    resets_h INTEGER NOT NULL, failures_h INTEGER NOT NULL, ewma_reports REAL NOT NULL, ewma_resets REAL NOT NULL,
    ewma_failures REAL NOT NULL, hours INTEGER NOT NULL, reports INTEGER NOT NULL, boot_count INTEGER,
    auth_failures INTEGER, fired TEXT NOT NULL);
"""

STATE_COLUMNS = ("hour", "reports_h", "resets_h", "failures_h", "ewma_reports", "ewma_resets", "ewma_failures",
                 "hours", "reports", "boot_count", "auth_failures", "fired")
_ALERT_COLUMNS = ("id", "tenant_id", "device_id", "rule", "severity", "opened_at", "last_seen_at", "count",
                  "details", "resolved_at", "resolved_by")
_SELECT = "SELECT " + ", ".join(_ALERT_COLUMNS) + " FROM alerts"
# every column replaced, as INSERT OR REPLACE did (health_state has no other constraint and no trigger), in SQL
# that PostgreSQL runs too
_SAVE_STATE = ("INSERT INTO health_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) "
               "DO UPDATE SET tenant_id = excluded.tenant_id, " + ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS))


class AlertsStorage(abc.ABC):
    @abc.abstractmethod
    def get_health_state(self, device_id):
        """The device's baselines {STATE_COLUMNS...} (fired a dict), or None."""

    @abc.abstractmethod
    def save_health_states(self, rows):
        """rows: [(device_id, tenant_id, {STATE_COLUMNS...})]; replaces each device's row."""

    @abc.abstractmethod
    def raise_alert(self, tenant_id, device_id, rule, severity, details, now):
        """Bump the open alert of (tenant, device, rule) (count + 1, last_seen_at, details) or open one;
        (alert id, True if it was opened). The caller holds the transaction."""

    @abc.abstractmethod
    def list_alerts(self, tenant_id, state="open", device_id=None, rule=None, limit=100, before=None):
        """The tenant's alerts, newest first; `before`: only ids below it (the cursor)."""

    @abc.abstractmethod
    def get_alert(self, tenant_id, alert_id):
        """One of the tenant's alerts, or None."""

    @abc.abstractmethod
    def resolve_alert(self, tenant_id, alert_id, now, by):
        """Resolve the alert if it is open (resolved_at, resolved_by); the alert after it (None: no such
        alert of the tenant) and whether this call resolved it."""

    @abc.abstractmethod
    def stale_alerts(self, before, limit):
        """Up to `limit` open alerts (of every tenant) last seen before `before`, oldest first."""

    @abc.abstractmethod
    def open_alerts_by_tenant(self):
        """[(tenant, open alerts)] of every tenant that has any."""


def _alert(r):
    a = dict(zip(_ALERT_COLUMNS, r))
    a["device_id"] = a["device_id"].hex() if a["device_id"] is not None else None
    a["details"] = json.loads(a["details"])
    a["state"] = "open" if a["resolved_at"] is None else "resolved"
    return a


class SQLiteAlertsStorage(AlertsStorage):
    def get_health_state(self, device_id):
        r = self._db.execute("SELECT " + ", ".join(STATE_COLUMNS) + " FROM health_state WHERE device_id = ?",
                             (device_id,)).fetchone()
        if r is None:
            return None
        row = dict(zip(STATE_COLUMNS, r))
        row["fired"] = json.loads(row["fired"])
        return row

    def save_health_states(self, rows):
        if not rows:
            return
        with self.transaction():
            self._db.executemany(
                _SAVE_STATE,
                [(did, tid) + tuple(json.dumps(s["fired"], sort_keys=True) if c == "fired" else s[c]
                                    for c in STATE_COLUMNS) for did, tid, s in rows])

    def raise_alert(self, tenant_id, device_id, rule, severity, details, now):
        db = self._db
        text = json.dumps(details, separators=(",", ":"), sort_keys=True)
        with self.transaction():
            r = db.execute("SELECT id FROM alerts WHERE tenant_id = ? AND rule = ? AND ifnull(device_id, x'') = ? "
                           "AND resolved_at IS NULL", (tenant_id, rule, device_id or b"")).fetchone()
            if r is not None:
                db.execute("UPDATE alerts SET count = count + 1, last_seen_at = ?, details = ? WHERE id = ?",
                           (int(now), text, r[0]))
                return r[0], False
            cur = db.execute("INSERT INTO alerts (tenant_id, device_id, rule, severity, opened_at, last_seen_at, "
                             "count, details) VALUES (?, ?, ?, ?, ?, ?, 1, ?) RETURNING id",
                             (tenant_id, device_id, rule, severity, int(now), int(now), text))
            return cur.fetchone()[0], True

    def list_alerts(self, tenant_id, state="open", device_id=None, rule=None, limit=100, before=None):
        q, args = _SELECT + " WHERE tenant_id = ?", [tenant_id]
        if state == "open":
            q += " AND resolved_at IS NULL"
        elif state == "resolved":
            q += " AND resolved_at IS NOT NULL"
        if device_id is not None:
            q += " AND device_id = ?"; args.append(device_id)
        if rule is not None:
            q += " AND rule = ?"; args.append(rule)
        if before is not None:
            q += " AND id < ?"; args.append(before)
        q += " ORDER BY id DESC LIMIT ?"; args.append(limit)
        return [_alert(r) for r in self._db.execute(q, args)]

    def get_alert(self, tenant_id, alert_id):
        r = self._db.execute(_SELECT + " WHERE tenant_id = ? AND id = ?", (tenant_id, alert_id)).fetchone()
        return None if r is None else _alert(r)

    def resolve_alert(self, tenant_id, alert_id, now, by):
        with self.transaction():
            n = self._db.execute("UPDATE alerts SET resolved_at = ?, resolved_by = ? WHERE tenant_id = ? AND id = ? "
                                 "AND resolved_at IS NULL", (int(now), by, tenant_id, alert_id)).rowcount
            return self.get_alert(tenant_id, alert_id), n == 1

    def stale_alerts(self, before, limit):
        return [_alert(r) for r in self._db.execute(
            _SELECT + " WHERE resolved_at IS NULL AND last_seen_at < ? ORDER BY last_seen_at, id LIMIT ?",
            (int(before), int(limit)))]

    def open_alerts_by_tenant(self):
        return [tuple(r) for r in self._db.execute(
            "SELECT tenant_id, count(*) FROM alerts INDEXED BY alerts_open WHERE resolved_at IS NULL "
            "GROUP BY tenant_id ORDER BY tenant_id")]
