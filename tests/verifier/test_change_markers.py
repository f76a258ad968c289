"""The registry's change markers for edge snapshots (docs/tokens.md "Change markers"): devices.changed_seq from
the database's counter, set by triggers in the changing transaction, tombstones of deletes, the migration of a
version 1 file, and the snapshot's queries going by the (tenant_id, changed_seq) index."""

import sqlite3

import pytest

from tests.support import app_storage
from verifier.registry.store import CHANGED_DEVICES, DELETED_DEVICES
from verifier.store import SQLiteStorage

T = "ten_1"


def _row(n, tenant_id=T):
    did = n.to_bytes(8, "big")
    return (did, tenant_id, f"SN-{n}", None, None, "psk", b"\x00" * 60, "{}", "active", 100, 100, 0, 0, 0, 15, 0,
            1000)


def _store(tmp_path, n=0, tenants=(T,)):
    st = app_storage(tmp_path / "r.db")          # PostgreSQL's triggers under JANUA_TEST_BACKEND=postgresql
    for t in tenants:
        st.create_tenant(t, t, 1, {})
    if n:
        st.insert_devices([_row(i + 1) for i in range(n)])
    return st


def _marks(st, tenant_id=T, after=0, limit=100):
    changes, current = st.device_changes(tenant_id, after, limit)
    return [(m, None if d is None else d["status"], did[-1]) for m, d, did in changes], current


def test_inserts_get_markers_in_order_and_the_counter_follows(tmp_path):
    st = _store(tmp_path, 3)
    assert _marks(st) == ([(1, "active", 1), (2, "active", 2), (3, "active", 3)], 3)
    assert _marks(st, after=3) == ([], 3)


def test_each_column_of_an_entry_moves_the_device_to_the_next_marker(tmp_path):
    st = _store(tmp_path, 2)
    two = (2).to_bytes(8, "big")
    for fields, marker in [({"status": "suspended"}, 3), ({"compromised": True}, 4), ({"quarantined": True}, 5),
                           ({"permissions": 1}, 6), ({"status_changed_at": 200}, 7)]:
        assert st.update_device(T, two, fields)
        assert _marks(st, after=2) == ([(marker, "suspended", 2)], marker)
    st._db.execute("UPDATE devices SET sealed_secret = ? WHERE id = ?", (b"\x01" * 60, two))
    assert _marks(st, after=2) == ([(8, "suspended", 2)], 8)


def test_what_an_entry_does_not_hold_and_same_values_are_no_change(tmp_path):
    st = _store(tmp_path, 1)
    one = (1).to_bytes(8, "big")
    st.update_device(T, one, {"metadata": {"group": "g"}, "trust_level": 4})
    st.update_device(T, one, {"status": "active", "permissions": 15, "quarantined": False})   # their values
    assert st.set_psk(T, one, 0, 1, 5000)
    st.record_auth([(50, 60, one)], [], [])
    st.set_attestation_state(T, one, "warning", 2, attest_quarantine=False)
    assert _marks(st) == ([(1, "active", 1)], 1)


def test_a_delete_leaves_a_tombstone_under_the_next_marker(tmp_path):
    st = _store(tmp_path, 2)
    one = (1).to_bytes(8, "big")
    audit = (5, T, "admin", one.hex(), "tok", "device.delete", None, None, "ok", None)
    assert st.delete_unused_device(T, one, audit) == "deleted"
    assert _marks(st) == ([(2, "active", 2), (3, None, 1)], 3)
    assert _marks(st, after=2) == ([(3, None, 1)], 3)


def test_changes_are_the_tenants_only_and_paged_in_marker_order(tmp_path):
    st = _store(tmp_path, 0, tenants=(T, "ten_2"))
    st.insert_devices([_row(1), _row(2, "ten_2"), _row(3), _row(4)])
    st.update_device(T, (1).to_bytes(8, "big"), {"permissions": 3})
    assert _marks(st, limit=2) == ([(3, "active", 3), (4, "active", 4)], 5)
    assert _marks(st, after=4, limit=2) == ([(5, "active", 1)], 5)
    assert _marks(st, "ten_2") == ([(2, "active", 2)], 5)


@pytest.mark.sqlite_only   # SQLite's query plans
def test_the_snapshot_queries_use_the_index(tmp_path):
    st = _store(tmp_path, 200)
    st._db.execute("ANALYZE")
    plans = [[r[3] for r in st._db.execute("EXPLAIN QUERY PLAN " + q, (T, 0, 99, 10))] for q in (CHANGED_DEVICES,
                                                                                            DELETED_DEVICES)]
    assert plans == [["SEARCH d USING INDEX devices_changed (tenant_id=? AND changed_seq>? AND changed_seq<?)",
                      "SEARCH a USING PRIMARY KEY (id=?) LEFT-JOIN"],
                     ["SEARCH device_tombstones USING PRIMARY KEY (tenant_id=? AND seq>? AND seq<?)"]]


@pytest.mark.sqlite_only   # counts SQLite VM instructions
def test_three_changes_among_20000_devices_are_read_without_visiting_the_others(tmp_path):
    st = _store(tmp_path, 20_000)
    for n in (7, 9_000, 19_999):
        st.update_device(T, n.to_bytes(8, "big"), {"status": "suspended"})
    steps = []
    st._db.set_progress_handler(lambda: steps.append(1), 1)      # one call per VM instruction
    try:
        changes, current = st.device_changes(T, 20_000, 101)
    finally:
        st._db.set_progress_handler(None, 1)
    assert [(m, did) for m, _, did in changes] == [(20_001, (7).to_bytes(8, "big")),
                                                    (20_002, (9_000).to_bytes(8, "big")),
                                                    (20_003, (19_999).to_bytes(8, "big"))]
    assert current == 20_003
    assert len(steps) < 1_000        # a scan of the tenant's 20,000 devices takes well over 20,000


@pytest.mark.sqlite_only   # a SQLite file of version 1
def test_a_version_1_file_gets_markers_1_to_n_in_id_order(tmp_path):
    st = _store(tmp_path, 0)
    st.insert_devices([_row(3), _row(1), _row(2)])
    st.close()
    # back to what janua 0.1.0 wrote: no column, index, triggers, counter or tombstones; version 1
    db = sqlite3.connect(tmp_path / "r.db")
    db.executescript("DROP TRIGGER devices_changed_ins; DROP TRIGGER devices_changed_upd; "
                     "DROP TRIGGER devices_changed_del; DROP INDEX devices_changed; DROP TABLE change_counter; "
                     "DROP TABLE device_tombstones; ALTER TABLE devices DROP COLUMN changed_seq; "
                     "PRAGMA user_version = 1;")
    db.close()
    st = SQLiteStorage(str(tmp_path / "r.db"))
    assert _marks(st) == ([(1, "active", 1), (2, "active", 2), (3, "active", 3)], 3)
    st.update_device(T, (2).to_bytes(8, "big"), {"status": "suspended"})
    assert _marks(st, after=3) == ([(4, "suspended", 2)], 4)
    assert st._db.execute("PRAGMA user_version").fetchone()[0] == 3
    st.close()
