"""The registry store on PostgreSQL (issue #15): the PostgreSQL mixin of verifier.store_pg.PGStorage, for what
verifier/registry/store.py says in SQLite's own dialect: the device list's filters on the metadata JSON, and
the change markers' triggers (CHANGE_TRIGGERS). Everything else of the registry runs on both as it is."""

from verifier.registry.store import EDGE_COLUMNS

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
    FOR EACH ROW EXECUTE FUNCTION janua_devices_changed();
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
