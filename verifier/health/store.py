"""Health tables (docs/health.md 3): the latest report per device, a bounded history (one row per
device per 15-minute slot), and the two device columns the fleet aggregates read."""

import abc
import json

from verifier.health import core

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
    report BLOB,
    PRIMARY KEY (device_id, slot)
);
CREATE INDEX IF NOT EXISTS health_history_slot ON health_history (slot);
"""

# `fields` held the decoded report as JSON; rows written since the report column exists keep only the raw
# report (46 bytes against ~330 of JSON: the ingest's writes halve) and fields ''; readers decode either.
HEALTH_MIGRATIONS = (
    ("health_history", "report", "ALTER TABLE health_history ADD COLUMN report BLOB", None),
    ("devices", "health_score", "ALTER TABLE devices ADD COLUMN health_score INTEGER", None),
    ("devices", "reported_version", "ALTER TABLE devices ADD COLUMN reported_version TEXT", None),
)


class HealthStorage(abc.ABC):
    @abc.abstractmethod
    def add_health_reports(self, rows):
        """rows: (device_id, tenant_id, received_at, via, report, fields dict, slot, score, version); one
        transaction; for several rows of one device (and slot) the newest wins (the last of equal times), and
        a stored row is not replaced by an older report (an edge delivers late: docs/health.md 2.1). score
        None: the device columns are not touched (the ingest knows they did not change, or the report is
        older than one it has); else they are written only when they differ."""

    @abc.abstractmethod
    def get_health(self, device_id):
        """{received_at, via, report, fields, score} of the latest report, or None."""

    @abc.abstractmethod
    def health_history(self, device_id, since):
        """[{slot, received_at, fields}] oldest first."""

    @abc.abstractmethod
    def prune_health(self, before):
        """Delete history rows of slots before `before`; the count."""


def _fields(text, report):
    # a row of before the report column (JSON), or of since (the raw report, accepted when it was written)
    return json.loads(text) if text else core.decode(report)


class SQLiteHealthStorage(HealthStorage):
    def add_health_reports(self, rows):
        db = self._db
        # a batch may hold several reports of one device (the ingest writes behind): only the newest of each
        # device (latest) and of each device and slot (history), and the last device columns, are written
        latest, hist, cols = {}, {}, {}
        for r in rows:
            if r[2] >= latest.get(r[0], (0, 0, 0))[2]:           # an older report arriving late is no "latest"
                latest[r[0]] = (r[0], r[1], r[2], r[3], bytes(r[4]))
            if r[2] >= hist.get((r[0], r[6]), (0, 0, 0))[2]:
                hist[(r[0], r[6])] = (r[0], r[6], r[2], bytes(r[4]))
            if r[7] is not None:
                cols[r[0]] = (r[7], r[8], r[0], r[7], r[8], r[8])
        latest, hist, cols = list(latest.values()), list(hist.values()), list(cols.values())
        with self.transaction():
            db.executemany("INSERT INTO health_latest VALUES (?, ?, ?, ?, ?, '') ON CONFLICT (device_id) DO UPDATE SET "
                           "received_at = excluded.received_at, via = excluded.via, report = excluded.report, "
                           "fields = '' WHERE excluded.received_at >= health_latest.received_at", latest)
            db.executemany("INSERT INTO health_history VALUES (?, ?, ?, '', ?) ON CONFLICT (device_id, slot) DO UPDATE "
                           "SET received_at = excluded.received_at, report = excluded.report, fields = '' "
                           "WHERE excluded.received_at >= health_history.received_at", hist)
            if cols:
                # CAST: a lone NULL parameter has no type PostgreSQL can infer (the same test on SQLite)
                db.executemany("UPDATE devices SET health_score = ?, reported_version = coalesce(?, reported_version) "
                               "WHERE id = ? AND (health_score IS NOT ? OR "
                               "(CAST(? AS TEXT) IS NOT NULL AND reported_version IS NOT ?))", cols)

    def get_health(self, device_id):
        row = self._db.execute("SELECT h.received_at, h.via, h.report, h.fields, d.health_score FROM health_latest h "
                               "JOIN devices d ON d.id = h.device_id WHERE h.device_id = ?", (device_id,)).fetchone()
        if row is None:
            return None
        return {"received_at": row[0], "via": row[1], "report": row[2], "fields": _fields(row[3], row[2]),
                "score": row[4]}

    def health_history(self, device_id, since):
        rows = self._db.execute("SELECT slot, received_at, fields, report FROM health_history WHERE device_id = ? "
                                "AND slot >= ? ORDER BY slot", (device_id, since)).fetchall()
        return [{"slot": s, "received_at": t, "fields": _fields(f, r)} for s, t, f, r in rows]

    def prune_health(self, before):
        with self.transaction():
            return self._db.execute("DELETE FROM health_history WHERE slot < ?", (before,)).rowcount
