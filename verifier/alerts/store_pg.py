"""The alerts store on PostgreSQL (issue #15): the PostgreSQL mixin of verifier.store_pg.PGStorage, for the one
statement of verifier/alerts/store.py that is SQLite's own."""


class PGAlertsStorage:
    def open_alerts_by_tenant(self):
        # SQLite is told INDEXED BY alerts_open; PostgreSQL's planner picks that partial index for this WHERE itself
        return [tuple(r) for r in self._db.execute(
            "SELECT tenant_id, count(*) FROM alerts WHERE resolved_at IS NULL GROUP BY tenant_id ORDER BY tenant_id")]
