"""Health tables (docs/health.md 3): the latest report per device, a bounded history (one row per
device per 15-minute slot), and the two device columns the fleet aggregates read."""

import abc
import json

HEALTH_SCHEMA = """
CREATE TABLE IF NOT EXISTS health_latest (
    device_id BLOB PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    via TEXT NOT NULL,
    report BLOB NOT NULL,
    fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS health_history (
    device_id BLOB NOT NULL,
    slot INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (device_id, slot)
);
CREATE INDEX IF NOT EXISTS health_history_slot ON health_history (slot);
"""

HEALTH_MIGRATIONS = (
    ("devices", "health_score", "ALTER TABLE devices ADD COLUMN health_score INTEGER", None),
    ("devices", "reported_version", "ALTER TABLE devices ADD COLUMN reported_version TEXT", None),
)


class HealthStorage(abc.ABC):
    @abc.abstractmethod
    def add_health_reports(self, rows):
        """rows: (device_id, tenant_id, received_at, via, report, fields dict, slot, score, version); one
        transaction; the device columns are written only when they change."""

    @abc.abstractmethod
    def get_health(self, device_id):
        """{received_at, via, report, fields, score} of the latest report, or None."""

    @abc.abstractmethod
    def health_history(self, device_id, since):
        """[{slot, received_at, fields}] oldest first."""

    @abc.abstractmethod
    def prune_health(self, before):
        """Delete history rows of slots before `before`; the count."""


class SQLiteHealthStorage(HealthStorage):
    def add_health_reports(self, rows):
        db = self._db
        latest = [(r[0], r[1], r[2], r[3], bytes(r[4]), json.dumps(r[5])) for r in rows]
        hist = [(r[0], r[6], r[2], json.dumps(r[5])) for r in rows]
        cols = [(r[7], r[8], r[0], r[7], r[8]) for r in rows]
        with self.transaction():
            db.executemany("INSERT OR REPLACE INTO health_latest VALUES (?, ?, ?, ?, ?, ?)", latest)
            db.executemany("INSERT OR REPLACE INTO health_history VALUES (?, ?, ?, ?)", hist)
            db.executemany("UPDATE devices SET health_score = ?, reported_version = coalesce(?, reported_version) "
                           "WHERE id = ? AND (health_score IS NOT ? OR "
                           "(? IS NOT NULL AND reported_version IS NOT ?))",
                           [(c[0], c[1], c[2], c[3], c[4], c[4]) for c in cols])

    def get_health(self, device_id):
        row = self._db.execute("SELECT h.received_at, h.via, h.report, h.fields, d.health_score FROM health_latest h "
                               "JOIN devices d ON d.id = h.device_id WHERE h.device_id = ?", (device_id,)).fetchone()
        if row is None:
            return None
        return {"received_at": row[0], "via": row[1], "report": row[2], "fields": json.loads(row[3]),
                "score": row[4]}

    def health_history(self, device_id, since):
        rows = self._db.execute("SELECT slot, received_at, fields FROM health_history WHERE device_id = ? "
                                "AND slot >= ? ORDER BY slot", (device_id, since)).fetchall()
        return [{"slot": s, "received_at": t, "fields": json.loads(f)} for s, t, f in rows]

    def prune_health(self, before):
        with self.transaction():
            return self._db.execute("DELETE FROM health_history WHERE slot < ?", (before,)).rowcount
