"""The registry's part of the PostgreSQL store (verifier/store_pg.py): the edge snapshot's change markers
(docs/tokens.md "Change markers"), whose SQLite triggers (verifier/registry/store.py CHANGE_TRIGGERS) have no
general translation.

One BEFORE INSERT OR UPDATE trigger gives a device the next value of the one-row change_counter when it is new or
when a column of EDGE_COLUMNS changed (IS DISTINCT FROM: a column written with its own value is no change), and an
AFTER DELETE trigger writes the tombstone under the next value. The counter is a row, not a SEQUENCE: its row lock,
held to commit, orders the markers as the commits, so a snapshot never steps past a marker that commits later."""

from verifier.registry.store import EDGE_COLUMNS

_OLD = ", ".join(f"OLD.{c}" for c in EDGE_COLUMNS)
_NEW = ", ".join(f"NEW.{c}" for c in EDGE_COLUMNS)

PG_CHANGE_SCRIPT = f"""
CREATE INDEX IF NOT EXISTS devices_changed ON devices (tenant_id, changed_seq);
CREATE OR REPLACE FUNCTION janua_devices_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' OR ({_NEW}) IS DISTINCT FROM ({_OLD}) THEN
        UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO NEW.changed_seq;
    END IF;
    RETURN NEW;
END $fn$;
CREATE OR REPLACE TRIGGER devices_changed_iu BEFORE INSERT OR UPDATE ON devices
    FOR EACH ROW EXECUTE FUNCTION janua_devices_changed();
CREATE OR REPLACE FUNCTION janua_devices_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE s BIGINT;
BEGIN
    UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq INTO s;
    INSERT INTO device_tombstones (tenant_id, seq, id) VALUES (OLD.tenant_id, s, OLD.id);
    RETURN OLD;
END $fn$;
CREATE OR REPLACE TRIGGER devices_changed_del AFTER DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION janua_devices_deleted();
"""
