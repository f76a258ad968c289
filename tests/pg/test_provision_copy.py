"""Bulk provisioning on both backends (issue #15): PostgreSQL's insert_devices is one COPY (verifier/registry/store_pg.py)
where SQLite's is an executemany; both refuse duplicates the same way, all or nothing, and give the same change markers
and fleet counts."""

import pytest

from tests.pgcluster import fresh_database
from verifier.errors import Conflict
from verifier.registry import core as registry
from verifier.registry.store import DEVICE_COLUMNS
from verifier.store import SQLiteStorage
from verifier.store_pg import PGStorage

KEK = bytes(range(32))


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        st = SQLiteStorage(str(tmp_path / "r.db"))
    else:
        st = PGStorage(fresh_database(request.getfixturevalue("pg_url")))
    yield st
    st.close()


def _row(i, tenant="t1", serial=None):
    did = bytes([0, 0, 0, 0, 0, 0, 0, i])
    return (did, tenant, serial or f"SN-{i}", None, None, "psk", b"sealed", "{}", "provisioning", 1, 1, 0, 0, 0, 0, 0, 99)


def _serials(st, tenant="t1"):
    return [d["serial_number"] for d in st.list_devices(tenant)]


def test_bulk_duplicates_are_refused_per_row(storage):
    tenant = registry.create_tenant(storage, "acme", 1_700_000_000)
    assert registry.provision_bulk(storage, KEK, tenant["id"], [{"serial_number": "A-1"}], now=1_700_000_000,
                                   actor="t")["summary"] == {"requested": 1, "created": 1, "failed": 0}
    out = registry.provision_bulk(storage, KEK, tenant["id"],
                                  [{"serial_number": "A-2"}, {"serial_number": "A-1"}, {"serial_number": "A-2"},
                                   {"serial_number": "A-3"}], now=1_700_000_001, actor="t")
    assert out["summary"] == {"requested": 4, "created": 2, "failed": 2}
    assert [(r["index"], r["ok"]) for r in out["results"]] == [(0, True), (1, False), (2, False), (3, True)]
    assert [(r["error"], r["message"]) for r in out["results"] if not r["ok"]] == [
        ("duplicate_serial", "serial_number 'A-1' already exists in this tenant"),
        ("duplicate_serial", "serial_number 'A-2' repeats row 0")]
    assert sorted(_serials(storage, tenant["id"])) == ["A-1", "A-2", "A-3"]
    assert storage.fleet_counts(tenant["id"])["status"] == {"provisioning": 3}


def test_insert_devices_is_all_or_nothing_on_a_taken_serial_or_id(storage):
    storage.create_tenant("t1", "t1", 1, {})
    storage.insert_devices([_row(1), _row(2)])
    for rows in ([_row(3), _row(4, serial="SN-1")],      # a serial number the tenant has
                 [_row(5), _row(2, serial="SN-9")],      # a device id that exists
                 [_row(6), _row(7, serial="SN-6")]):     # two rows of the call with one serial number
        with pytest.raises(Conflict, match="^device insert conflicts with an existing row: "):
            storage.insert_devices(rows)
    assert _serials(storage) == ["SN-1", "SN-2"]
    storage.insert_devices([_row(8)])
    assert _serials(storage) == ["SN-1", "SN-2", "SN-8"]


def test_bulk_insert_takes_markers_in_row_order(storage):
    storage.create_tenant("t1", "t1", 1, {})
    storage.insert_devices([_row(1), _row(2), _row(3)])
    storage.insert_devices([_row(4)])
    storage.update_device("t1", _row(2)[0], {"status": "active"})
    changes, current = storage.device_changes("t1", 0, 10)
    assert [(m, did[-1]) for m, _, did in changes] == [(1, 1), (3, 3), (4, 4), (5, 2)]
    assert current == 5
    assert storage.fleet_counts("t1")["status"] == {"provisioning": 3, "active": 1}


def test_device_columns_are_the_ones_copied():
    # the COPY names DEVICE_COLUMNS and changed_seq: a column added to devices must be added there too
    assert len(DEVICE_COLUMNS) == 17
