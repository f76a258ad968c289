"""The registry store on PostgreSQL (issue #15): the PostgreSQL mixin of verifier.store_pg.PGStorage, for what
verifier/registry/store.py says in SQLite's own dialect: the device list's filters on the metadata JSON, and
the change markers' triggers (CHANGE_TRIGGERS), and bulk inserts by COPY (insert_devices, existing_serials).
Everything else of the registry runs on both as it is."""

import sqlite3

from verifier.errors import Conflict
from verifier.registry.store import DEVICE_COLUMNS, EDGE_COLUMNS

# CHANGE_TRIGGERS on PostgreSQL, sent as is after the migrations: the same markers in the same transaction. An
# insert and an update of an edge column take the next marker BEFORE the row is written (NEW.changed_seq: no
# second write of the row); a delete leaves its tombstone AFTER. The counter's row lock, held to the commit,
# orders the markers as the commits, as SQLite's single writer does. `UPDATE OF ... WHEN` fires exactly where
# SQLite's `AFTER UPDATE OF ... WHEN OLD.c IS NOT NEW.c` does (IS DISTINCT FROM is SQLite's IS NOT).
PG_CHANGE_TRIGGERS = f"""
CREATE INDEX IF NOT EXISTS devices_changed ON devices (tenant_id, changed_seq);
CREATE OR REPLACE FUNCTION janua_devices_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    marker BIGINT;
BEGIN
    UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO marker;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO device_tombstones (tenant_id, seq, id) VALUES (OLD.tenant_id, marker, OLD.id);
        RETURN NULL;
    END IF;
    NEW.changed_seq := marker;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER devices_changed_ins BEFORE INSERT ON devices
    FOR EACH ROW WHEN (NEW.changed_seq = 0) EXECUTE FUNCTION janua_devices_changed();
CREATE OR REPLACE TRIGGER devices_changed_upd BEFORE UPDATE OF {", ".join(EDGE_COLUMNS)} ON devices
    FOR EACH ROW WHEN ({" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in EDGE_COLUMNS)})
    EXECUTE FUNCTION janua_devices_changed();
CREATE OR REPLACE TRIGGER devices_changed_del AFTER DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION janua_devices_changed();
"""


class PGRegistryStorage:
    """The registry's PostgreSQL statements (mixed into PGStorage before SQLiteStorage)."""

    # metadata is TEXT holding what verifier.registry.model.validate_metadata made: an object whose group is a
    # string and whose tags are a list of strings. `->>` and the array's text elements compare as json_extract and
    # json_each's value do for those; a tags value that is not an array matches nothing (SQLite would look into an
    # object's values, which validate_metadata never writes).
    DEVICE_GROUP_SQL = "(d.metadata::jsonb ->> 'group') = ?"
    DEVICE_TAG_SQL = ("EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(d.metadata::jsonb -> "
                      "'tags') = 'array' THEN d.metadata::jsonb -> 'tags' END) AS t (value) WHERE t.value = ?)")

    def existing_serials(self, tenant_id, serials):
        # one query for any number (SQLite's IN lists go by 500): an array keeps the plan on the unique index
        return {r[0] for r in self._db.execute(
            "SELECT serial_number FROM devices WHERE tenant_id = ? AND serial_number = ANY(?::text[])",
            (tenant_id, list(serials)))}

    def insert_devices(self, rows):
        """RegistryStorage.insert_devices by COPY (bulk provisioning of a million devices, issue #15): one statement
        for all the rows, in the caller's transaction. As on SQLite it is all or nothing: a row that repeats an id or
        a (tenant, serial number) already there, or another row of the same call, fails the whole call with
        Conflict and nothing of it stays.

        The change markers: one UPDATE of the counter takes a block of len(rows) markers (its row lock held to the
        commit, as the trigger's would be), and the rows carry them in their order, which the insert trigger keeps.
        A marker per row from the trigger would update the counter's row once per device in one transaction: each
        update walks the row's versions left by the ones before, quadratic in the rows of the call."""
        rows = list(rows)
        if not rows:
            return
        try:
            with self.transaction():
                top = self._db.execute("UPDATE change_counter SET seq = seq + ? WHERE id = 1 RETURNING seq",
                                       (len(rows),)).fetchone()[0]
                first = top - len(rows) + 1
                self._db.copy_rows("devices", DEVICE_COLUMNS + ("changed_seq",),
                                   (r + (first + k,) for k, r in enumerate(rows)))
        except sqlite3.IntegrityError as e:
            raise Conflict(f"device insert conflicts with an existing row: {e}") from e
