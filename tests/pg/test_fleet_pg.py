"""The fleet aggregates on PostgreSQL (verifier/fleet/store_pg.py), against the private cluster: an older database
gets its aggregates built once, in the opening transaction; a rolled-back write leaves them as they were; two
storages on one database see the same counts. (tests/fleet run under JANUA_TEST_BACKEND=postgresql checks the
triggers against a full recount.)"""

import psycopg
import pytest

from tests.pgcluster import fresh_database
from verifier.store_pg import PGStorage

DEVICE_COLUMNS = ("id, tenant_id, serial_number, credential_type, sealed_secret, metadata, status, provisioned_at, "
                  "status_changed_at, trust_level, compromised, quarantined, permissions")


def _device(conn, i, meta, status="active"):
    conn.execute(f"INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (%s, 't1', %s, 'psk', '\\x00'::bytea, %s, %s, "
                 "0, 0, 0, 0, 0, 0)", (bytes([i] * 8), f"s{i}", meta, status))


def test_upgrade_builds_aggregates_once(pg_url):
    url = fresh_database(pg_url)
    s = PGStorage(url)
    s._db.execute("INSERT INTO tenants VALUES ('t1', 'one', 0, '{}')")
    s.close()
    # an older database: no fleet tables, no triggers, no health columns, two devices and one auth_state row
    with psycopg.connect(url, autocommit=True) as conn:
        for name, table in (("fleet_dev_ins", "devices"), ("fleet_dev_del", "devices"), ("fleet_dev_upd", "devices"),
                            ("fleet_seen_ins", "auth_state"), ("fleet_seen_upd", "auth_state"),
                            ("fleet_seen_del", "auth_state")):
            conn.execute(f"DROP TRIGGER {name} ON {table}")
        for table in ("fleet_counts", "fleet_seen", "fleet_built", "fleet_fold", "fleet_perf"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("ALTER TABLE devices DROP COLUMN health_score")
        conn.execute("ALTER TABLE devices DROP COLUMN reported_version")
        _device(conn, 1, '{"firmware_version": "0.9"}')
        _device(conn, 2, '{"location": "Rome"}')
        conn.execute("INSERT INTO auth_state VALUES (%s, 600, 600)", (bytes([1] * 8),))
    s = PGStorage(url)
    assert s.fleet_counts("t1") == {"status": {"active": 2}, "health": {"unknown": 2},
                                    "firmware": {"0.9": 1, "unknown": 1}, "location": {"unknown": 1, "Rome": 1}}
    assert s.fleet_seen("t1") == [(10, 1)]
    s.close()
    s = PGStorage(url)                        # opened again: not built a second time
    assert s.fleet_counts("t1")["status"] == {"active": 2}
    assert s.fleet_seen("t1") == [(10, 1)]
    # and the triggers are back: a third device and its first auth count at once
    with psycopg.connect(url, autocommit=True) as conn:
        _device(conn, 3, '{"firmware_version": "0.9"}', "suspended")
        conn.execute("INSERT INTO auth_state VALUES (%s, 660, 660)", (bytes([3] * 8),))
    assert s.fleet_counts("t1")["status"] == {"active": 2, "suspended": 1}
    assert s.fleet_counts("t1")["firmware"] == {"0.9": 2, "unknown": 1}
    assert s.fleet_seen("t1") == [(10, 1), (11, 1)]
    s.close()


def test_rolled_back_write_leaves_the_aggregates(pg_url):
    s = PGStorage(fresh_database(pg_url))
    s._db.execute("INSERT INTO tenants VALUES ('t1', 'one', 0, '{}')")
    with pytest.raises(RuntimeError):
        with s.transaction():
            _device(s._db._conn, 1, '{"location": "Oslo"}')
            assert s.fleet_counts("t1")["location"] == {"Oslo": 1}      # inside: counted by the trigger
            raise RuntimeError("abandoned")
    assert s.fleet_counts("t1") == {}
    s.close()


def test_update_within_the_minute_and_across(pg_url):
    s = PGStorage(fresh_database(pg_url))
    s._db.execute("INSERT INTO tenants VALUES ('t1', 'one', 0, '{}')")
    _device(s._db._conn, 1, "{}")
    s._db.execute("INSERT INTO auth_state VALUES (?, 0, 6000)", (bytes([1] * 8),))
    s._db.execute("UPDATE auth_state SET last_authenticated_at = 6059 WHERE id = ?", (bytes([1] * 8),))
    assert s.fleet_seen("t1") == [(100, 1)]
    s._db.execute("UPDATE auth_state SET last_authenticated_at = 6060 WHERE id = ?", (bytes([1] * 8),))
    assert s.fleet_seen("t1") == [(101, 1)]
    s._db.execute("UPDATE devices SET status = 'suspended', metadata = ? WHERE id = ?",
                  ('{"location": "Lima"}', bytes([1] * 8)))
    assert s.fleet_counts("t1") == {"status": {"suspended": 1}, "health": {"unknown": 1}, "firmware": {"unknown": 1},
                                    "location": {"Lima": 1}}
    s._db.execute("DELETE FROM devices WHERE id = ?", (bytes([1] * 8),))
    assert s.fleet_counts("t1") == {} and s.fleet_seen("t1") == []
    s.close()
