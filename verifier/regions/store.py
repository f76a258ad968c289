"""The regions part of the storage interface (docs/regions.md) and its SQLite mixin: one row per tenant and region,
the checked document as JSON, and which region is the tenant's default (at most one: a partial unique index says
so, for every instance sharing the database)."""

import abc
import json

REGIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS regions (
    tenant_id TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, is_default INTEGER NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (tenant_id, name));
CREATE UNIQUE INDEX IF NOT EXISTS regions_default ON regions (tenant_id) WHERE is_default = 1;
"""

_SELECT = "SELECT name, doc, is_default, created, updated FROM regions"


def _region(r):
    return {**json.loads(r[1]), "name": r[0], "default": bool(r[2]), "created": r[3], "updated": r[4]}


class RegionsStorage(abc.ABC):
    @abc.abstractmethod
    def put_region(self, tenant_id, region, now):
        """Insert or replace the tenant's region (a verifier.regions.core.check_region document); a default one
        takes the default from any other. True if it was created. The caller holds the transaction."""

    @abc.abstractmethod
    def list_regions(self, tenant_id):
        """The tenant's regions, by name."""

    @abc.abstractmethod
    def get_region(self, tenant_id, name):
        """One of the tenant's regions, or None."""

    @abc.abstractmethod
    def delete_region(self, tenant_id, name):
        """Delete the region; whether there was one."""

    @abc.abstractmethod
    def count_region_devices(self, tenant_id, name):
        """How many of the tenant's devices name the region in metadata.region (decommissioned ones too)."""


class SQLiteRegionsStorage(RegionsStorage):
    REGION_DEVICES_SQL = "json_extract(metadata, '$.region') = ?"

    def put_region(self, tenant_id, region, now):
        db = self._db
        doc = json.dumps({k: v for k, v in region.items() if k not in ("name", "default")}, sort_keys=True,
                         separators=(",", ":"))
        with self.transaction():
            if region["default"]:
                db.execute("UPDATE regions SET is_default = 0 WHERE tenant_id = ? AND is_default = 1 AND name != ?",
                           (tenant_id, region["name"]))
            n = db.execute("UPDATE regions SET doc = ?, is_default = ?, updated = ? WHERE tenant_id = ? AND name = ?",
                           (doc, int(region["default"]), int(now), tenant_id, region["name"])).rowcount
            if n == 0:
                db.execute("INSERT INTO regions VALUES (?, ?, ?, ?, ?, ?)",
                           (tenant_id, region["name"], doc, int(region["default"]), int(now), int(now)))
            return n == 0

    def list_regions(self, tenant_id):
        # sorted here, not by ORDER BY: the same order on SQLite and on PostgreSQL whatever its collation
        return sorted((_region(r) for r in self._db.execute(_SELECT + " WHERE tenant_id = ?", (tenant_id,))),
                      key=lambda r: r["name"])

    def get_region(self, tenant_id, name):
        r = self._db.execute(_SELECT + " WHERE tenant_id = ? AND name = ?", (tenant_id, name)).fetchone()
        return None if r is None else _region(r)

    def delete_region(self, tenant_id, name):
        with self.transaction():
            return self._db.execute("DELETE FROM regions WHERE tenant_id = ? AND name = ?",
                                    (tenant_id, name)).rowcount == 1

    def count_region_devices(self, tenant_id, name):
        return self._db.execute(f"SELECT count(*) FROM devices WHERE tenant_id = ? AND {self.REGION_DEVICES_SQL}",
                                (tenant_id, name)).fetchone()[0]
