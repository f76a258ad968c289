"""The fleet part of the storage interface (docs/fleet.md "How the aggregates are kept"): counters per
tenant kept up to date by SQLite triggers as devices and auth_state change, so the fleet status reads a
few hundred rows whatever the fleet's size, and the SQLite mixin of verifier.store.SQLiteStorage.

- fleet_counts(tenant_id, dim, key, n): dims status, health, firmware, location (rules in HEALTH_SQL,
  FIRMWARE_SQL, LOCATION_SQL); kept by the triggers on devices (INSERT, DELETE, UPDATE OF the columns
  the rules read).
- fleet_seen(tenant_id, minute, n): devices by the minute of their last_authenticated_at (auth_state,
  which has no tenant: the trigger looks it up in devices). An update inside the same minute fires no
  trigger body (its WHEN), so the binary-auth hot path pays only the WHEN test. Minutes before
  fleet_fold.before are folded into minute 0 (`fold_seen`).
- fleet_perf(tenant_id, minute, ...): additive upserts of the in-process PerfCounters.

The triggers are created after the migrations (the INDEXES scripts), since they read health_score and
reported_version; on a database that has no aggregates yet, the same script builds them once from the
tables (fleet_built records that it did).
"""

import abc


FLEET_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_counts (
    tenant_id TEXT NOT NULL, dim TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dim, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fleet_seen (
    tenant_id TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, minute)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fleet_fold (id INTEGER PRIMARY KEY CHECK (id = 0), before INTEGER NOT NULL);
INSERT OR IGNORE INTO fleet_fold VALUES (0, 0);
CREATE TABLE IF NOT EXISTS fleet_built (id INTEGER PRIMARY KEY CHECK (id = 0), at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_perf (
    tenant_id TEXT NOT NULL, minute INTEGER NOT NULL, attempts INTEGER NOT NULL, failures INTEGER NOT NULL,
    latency_ms_sum REAL NOT NULL, latency_n INTEGER NOT NULL, rx_bytes INTEGER NOT NULL, tx_bytes INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, minute)) WITHOUT ROWID;
"""

# the bucket of a device row X (NEW or OLD in a trigger, the table in the one-off build)
HEALTH_SQL = ("CASE WHEN X.compromised != 0 OR X.attestation_status = 'contraindicated' THEN 'compromised' "
              "WHEN X.health_score IS NULL THEN 'unknown' WHEN X.health_score > 80 THEN 'healthy' "
              "WHEN X.health_score >= 50 THEN 'degraded' ELSE 'unhealthy' END")
FIRMWARE_SQL = ("COALESCE(X.reported_version, CASE WHEN json_valid(X.metadata) THEN "
                "CAST(json_extract(X.metadata, '$.firmware_version') AS TEXT) END, 'unknown')")
LOCATION_SQL = ("COALESCE(CASE WHEN json_valid(X.metadata) THEN "
                "CAST(json_extract(X.metadata, '$.location') AS TEXT) END, 'unknown')")
DIMS = (("status", "X.status"), ("health", HEALTH_SQL), ("firmware", FIRMWARE_SQL), ("location", LOCATION_SQL))
# the minute bucket of a last_authenticated_at value v of tenant t (folded minutes are minute 0); store_pg uses it too
MINUTE = "(CASE WHEN ({v}) / 60 < (SELECT before FROM fleet_fold WHERE id = 0) THEN 0 ELSE ({v}) / 60 END)"
_TENANT_OF = "(SELECT tenant_id FROM devices WHERE id = {id})"


def count_changes(row, sign, dims=DIMS, indent=""):
    """The statements that count device `row` (NEW or OLD) in (sign 1) or out of (sign -1) each bucket of `dims`
    (a trigger body's lines: SQLite's here, PostgreSQL's in store_pg with its dims and indent)."""
    out = []
    for dim, expr in dims:
        key = expr.replace("X.", row + ".")
        if sign > 0:
            out.append(f"{indent}INSERT INTO fleet_counts VALUES ({row}.tenant_id, '{dim}', {key}, 1)\n{indent}    "
                       "ON CONFLICT (tenant_id, dim, key) DO UPDATE SET n = fleet_counts.n + 1;")
        else:
            out.append(f"{indent}UPDATE fleet_counts SET n = n - 1 WHERE tenant_id = {row}.tenant_id AND dim = '{dim}' "
                       f"AND key = {key};")
    return "\n".join(out)


def _seen(tenant, v, sign):
    m = MINUTE.format(v=v)
    if sign > 0:
        # a device deleted before its auth_state row has no tenant: nothing to count
        return (f"INSERT INTO fleet_seen SELECT t, {m}, 1 FROM (SELECT {tenant} AS t) WHERE t IS NOT NULL "
                "ON CONFLICT (tenant_id, minute) DO UPDATE SET n = n + 1;")
    return f"UPDATE fleet_seen SET n = n - 1 WHERE tenant_id = {tenant} AND minute = {m};"


_OLD_SEEN = "(SELECT last_authenticated_at FROM auth_state WHERE id = OLD.id)"

FLEET_TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS fleet_dev_ins AFTER INSERT ON devices BEGIN
{count_changes("NEW", 1)}
END;
CREATE TRIGGER IF NOT EXISTS fleet_dev_del AFTER DELETE ON devices BEGIN
{count_changes("OLD", -1)}
UPDATE fleet_seen SET n = n - 1 WHERE tenant_id = OLD.tenant_id
    AND minute = {MINUTE.format(v=_OLD_SEEN)} AND {_OLD_SEEN} IS NOT NULL;
END;
CREATE TRIGGER IF NOT EXISTS fleet_dev_upd
AFTER UPDATE OF tenant_id, status, compromised, metadata, health_score, attestation_status, reported_version ON devices BEGIN
{count_changes("OLD", -1)}
{count_changes("NEW", 1)}
END;
CREATE TRIGGER IF NOT EXISTS fleet_seen_ins AFTER INSERT ON auth_state
WHEN {_TENANT_OF.format(id="NEW.id")} IS NOT NULL BEGIN
{_seen(_TENANT_OF.format(id="NEW.id"), "NEW.last_authenticated_at", 1)}
END;
CREATE TRIGGER IF NOT EXISTS fleet_seen_upd AFTER UPDATE OF last_authenticated_at ON auth_state
WHEN NEW.last_authenticated_at / 60 != OLD.last_authenticated_at / 60 BEGIN
{_seen(_TENANT_OF.format(id="OLD.id"), "OLD.last_authenticated_at", -1)}
{_seen(_TENANT_OF.format(id="NEW.id"), "NEW.last_authenticated_at", 1)}
END;
CREATE TRIGGER IF NOT EXISTS fleet_seen_del AFTER DELETE ON auth_state BEGIN
{_seen(_TENANT_OF.format(id="OLD.id"), "OLD.last_authenticated_at", -1)}
END;
"""


# One row while the aggregates are not built, none after: the outer loop of each build query (CROSS JOIN
# keeps it outside), so on a built file the query ends before it reads a row of devices. A WHERE NOT EXISTS
# on the devices scan instead still walked the whole table at every open (20 s at 1,000,000 devices).
_UNBUILT = "(SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM fleet_built)) AS unbuilt CROSS JOIN"


def _build_dim(dim, expr):
    key = expr.replace("X.", "d.")
    return (f"INSERT INTO fleet_counts SELECT d.tenant_id, '{dim}', {key} AS k, count(*) FROM {_UNBUILT} devices d "
            f"GROUP BY d.tenant_id, k;")


# the one-off build of a database that has no aggregates yet (a new file builds empty ones)
FLEET_BUILD = "BEGIN IMMEDIATE;\n" + "\n".join(_build_dim(d, e) for d, e in DIMS) + f"""
INSERT INTO fleet_seen SELECT d.tenant_id, a.last_authenticated_at / 60 AS m, count(*)
    FROM {_UNBUILT} auth_state a JOIN devices d ON d.id = a.id GROUP BY d.tenant_id, m;
INSERT OR IGNORE INTO fleet_built VALUES (0, CAST(strftime('%s', 'now') AS INTEGER));
COMMIT;
"""

FLEET_INDEXES = FLEET_TRIGGERS + FLEET_BUILD


class FleetStorage(abc.ABC):
    @abc.abstractmethod
    def fleet_counts(self, tenant_id):
        """{dim: {key: n}} of the tenant's aggregates (dims status, health, firmware, location)."""

    @abc.abstractmethod
    def fleet_seen(self, tenant_id):
        """[(minute, n)] of the tenant's last-seen histogram (minute 0: folded, older than 7 days)."""

    @abc.abstractmethod
    def fleet_perf(self, tenant_id, since_minute):
        """Sums since `since_minute`: {attempts, failures, latency_ms_sum, latency_n, rx_bytes, tx_bytes}."""

    @abc.abstractmethod
    def add_fleet_perf(self, minute, rows):
        """Add {tenant: (attempts, failures, latency_ms_sum, latency_n, rx, tx)} to the minute's rows."""

    @abc.abstractmethod
    def fold_seen(self, before_minute):
        """Fold every last-seen bucket before `before_minute` into minute 0; return the rows folded."""

    @abc.abstractmethod
    def prune_fleet_perf(self, before_minute): """Delete fleet_perf rows before `before_minute`."""

    @abc.abstractmethod
    def fleet_metrics(self, limit):
        """The gauges' rows, at most `limit` per dim: [(tenant, dim, key, n)] and [(tenant, online...)]."""

    @abc.abstractmethod
    def count_open_alerts(self, tenant_id):
        """Open alerts of the tenant (the alerts table, docs/health.md 5)."""


class SQLiteFleetStorage(FleetStorage):
    def fleet_counts(self, tenant_id):
        out = {}
        for dim, key, n in self._db.execute("SELECT dim, key, n FROM fleet_counts WHERE tenant_id = ? AND n > 0",
                                            (tenant_id,)):
            out.setdefault(dim, {})[key] = n
        return out

    def fleet_seen(self, tenant_id):
        return [tuple(r) for r in self._db.execute(
            "SELECT minute, n FROM fleet_seen WHERE tenant_id = ? AND n > 0 ORDER BY minute", (tenant_id,))]

    def fleet_perf(self, tenant_id, since_minute):
        r = self._db.execute("SELECT COALESCE(sum(attempts), 0), COALESCE(sum(failures), 0), "
                             "COALESCE(sum(latency_ms_sum), 0.0), COALESCE(sum(latency_n), 0), "
                             "COALESCE(sum(rx_bytes), 0), COALESCE(sum(tx_bytes), 0) FROM fleet_perf "
                             "WHERE tenant_id = ? AND minute >= ?", (tenant_id, since_minute)).fetchone()
        return dict(zip(("attempts", "failures", "latency_ms_sum", "latency_n", "rx_bytes", "tx_bytes"), tuple(r)))

    def add_fleet_perf(self, minute, rows):
        if not rows:
            return
        with self.transaction():
            self._db.executemany(
                "INSERT INTO fleet_perf VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, minute) DO UPDATE SET "
                "attempts = fleet_perf.attempts + excluded.attempts, failures = fleet_perf.failures + excluded.failures, "
                "latency_ms_sum = fleet_perf.latency_ms_sum + excluded.latency_ms_sum, "
                "latency_n = fleet_perf.latency_n + excluded.latency_n, "
                "rx_bytes = fleet_perf.rx_bytes + excluded.rx_bytes, tx_bytes = fleet_perf.tx_bytes + excluded.tx_bytes",
                [(t, minute) + tuple(v) for t, v in sorted(rows.items())])

    def fold_seen(self, before_minute):
        db = self._db
        with self.transaction():
            cur = db.execute("SELECT before FROM fleet_fold WHERE id = 0").fetchone()[0]
            if before_minute <= cur:
                return 0
            db.execute("UPDATE fleet_fold SET before = ? WHERE id = 0", (before_minute,))
            db.execute("INSERT INTO fleet_seen SELECT tenant_id, 0, sum(n) FROM fleet_seen "
                       "WHERE minute > 0 AND minute < ? GROUP BY tenant_id "
                       "ON CONFLICT (tenant_id, minute) DO UPDATE SET n = fleet_seen.n + excluded.n", (before_minute,))
            return db.execute("DELETE FROM fleet_seen WHERE minute > 0 AND minute < ?", (before_minute,)).rowcount

    def prune_fleet_perf(self, before_minute):
        self._write("DELETE FROM fleet_perf WHERE minute < ?", (before_minute,))

    def fleet_metrics(self, limit):
        rows = []
        for dim in ("status", "health", "firmware"):
            rows += [tuple(r) for r in self._db.execute(
                "SELECT tenant_id, dim, key, n FROM fleet_counts WHERE dim = ? AND n > 0 "
                "ORDER BY tenant_id, n DESC, key LIMIT ?", (dim, limit))]
        return rows

    def fleet_online(self, since_minute):
        """[(tenant, devices seen since since_minute)] for every tenant with any."""
        return [tuple(r) for r in self._db.execute(
            "SELECT tenant_id, sum(n) FROM fleet_seen WHERE minute >= ? AND minute > 0 GROUP BY tenant_id "
            "ORDER BY tenant_id", (since_minute,))]

    def count_open_alerts(self, tenant_id):
        # the partial index alerts_open (verifier/alerts/store.py) holds exactly the open alerts: counted
        # from it, whatever the number of resolved ones
        return self._db.execute("SELECT count(*) FROM alerts INDEXED BY alerts_open WHERE tenant_id = ? "
                                "AND resolved_at IS NULL",
                                (tenant_id,)).fetchone()[0]
