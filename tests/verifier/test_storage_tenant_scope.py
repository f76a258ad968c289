"""Tenant scoping at the storage interface itself (verifier/registry/store.py, storage_ota.py, storage_tokens.py,
storage_x509.py), not through HTTP: every method that takes a tenant id, called with tenant B's id and
tenant A's device, token, key, release, rollout or certificate, finds nothing, changes nothing (the
whole database is compared row by row before and after) and says so (None, [], False, 0).
Two tenants with one of everything each, on a real SQLite file."""

import pytest

from tests.support import KEK, T0
from verifier.registry import core as registry
from verifier.store import SQLiteStorage

NOW = T0 + 100


def dump(st):
    """Every row of every table, in a stable order."""
    tables = [r[0] for r in st._db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: sorted(tuple(r) for r in st._db.execute(f"SELECT * FROM {t}")) for t in tables}


class World:
    """Tenant A and tenant B, each with devices, an admin token, audit rows, a release key, a release with
    a rollout, a CA, a certificate and an MQTT password."""

    def __init__(self, st):
        self.st = st
        for name, label, counter, version in (("a", "tenant-a", 9, "1.0.0"), ("b", "tenant-b", 7, "2.0.0")):
            t = registry.create_tenant(st, label, T0)
            tid = t["id"]
            out = registry.provision_bulk(st, KEK, tid, [{"serial_number": f"SN-{name}-1"},
                                                         {"serial_number": f"SN-{name}-2"}], T0)
            d1, d2 = (bytes.fromhex(r["device_id"]) for r in out["results"])
            st.update_device(tid, d1, {"status": "active"})
            if name == "a":
                st.update_device(tid, d2, {"status": "suspended"})
            tok, _ = registry.issue_token(st, tid, T0)
            st.add_audit([(T0, tid, "admin", d1.hex(), tok, "test.row", "http", "127.0.0.1", "ok", None)])
            kid = f"key-{name}"
            st.add_release_key(tid, kid, bytes([ord(name)]) * 32, "release key", T0)
            rid = f"rel-{name}"
            st.add_release({"id": rid, "tenant_id": tid, "kind": "app", "name": "app", "version": version,
                            "counter": counter, "kid": kid, "size": 3, "manifest": b"{}", "sig": bytes(64),
                            "manifest_sha256": "00" * 32, "created": T0},
                           [(rid, "main.py", 3, "11" * 32)])
            roid = f"ro-{name}"
            st.add_rollout({"id": roid, "tenant_id": tid, "release_id": rid, "state": "draft", "phases": [100],
                            "phase": 0, "phase_started_at": None, "created": T0, "started_at": None,
                            "health_threshold": 0.9, "halt_threshold": 0.2, "halt_min_reports": 5,
                            "halt_reason": None, "updated_at": T0})
            st.put_ca(tid, b"ca-der-" + name.encode(), b"sealed-" + name.encode(), T0)
            serial = f"5e{ord(name):02x}"
            st.add_certificate({"serial": serial, "tenant_id": tid, "device_id": d1,
                                "fingerprint": "ff" * 31 + f"{ord(name):02x}", "key_type": "ec-p256",
                                "not_before": T0, "not_after": T0 + 86400 * 365, "next_key_rotation": T0 + 86400,
                                "created": T0})
            if name == "a":
                st.revoke_certificates(tid, d1, T0, "key_compromise")
                st.add_certificate({"serial": "5e6102", "tenant_id": tid, "device_id": d1,     # not revoked
                                    "fingerprint": "ee" * 32, "key_type": "ec-p256", "not_before": T0 + 1,
                                    "not_after": T0 + 86400 * 365, "next_key_rotation": T0 + 86400,
                                    "created": T0 + 1})
            st.set_mqtt_password(tid, d1, bytes([ord(name)]) * 32, T0)
            setattr(self, name, dict(tid=tid, d1=d1, d2=d2, tok=tok, kid=kid, rid=rid, roid=roid, serial=serial))


@pytest.fixture
def world(tmp_path):
    st = SQLiteStorage(str(tmp_path / "janua.db"))
    yield World(st)
    st.close()


def test_the_world_is_what_the_scoping_tests_assume(world):
    """Control: with the right tenant, every read below finds the row (so None/[] elsewhere means scoped)."""
    st, a = world.st, world.a
    assert st.get_device(a["d1"], a["tid"])["serial_number"] == "SN-a-1"
    assert sorted(d["serial_number"] for d in st.list_devices(a["tid"])) == ["SN-a-1", "SN-a-2"]
    assert st.existing_serials(a["tid"], ["SN-a-1", "SN-b-1"]) == {"SN-a-1"}
    assert [t["id"] for t in st.list_tokens(a["tid"])] == [a["tok"]]
    assert [e["action"] for e in st.list_audit(a["tid"], a["d1"].hex())] == ["test.row"]
    assert st.get_release_key(a["tid"], "key-a")["name"] == "release key"
    assert st.get_release(a["tid"], "rel-a")["version"] == "1.0.0"
    assert st.find_release(a["tid"], "app", "1.0.0")["id"] == "rel-a"
    assert st.max_release_counter(a["tid"], "app") == 9
    assert st.get_rollout(a["tid"], "ro-a")["release_id"] == "rel-a"
    assert st.get_rollout_for_release(a["tid"], "rel-a")["id"] == "ro-a"
    assert st.revoked_device_ids(a["tid"]) == [a["d2"]]
    assert st.get_ca(a["tid"])["cert_der"] == b"ca-der-a"
    assert [c["serial"] for c in st.list_certificates(a["tid"], a["d1"])] == ["5e6102", "5e61"]
    assert [c["serial"] for c in st.list_revoked_certificates(a["tid"], NOW)] == ["5e61"]
    assert st.get_mqtt_password(a["d1"])["hash"] == b"a" * 32


def test_reads_with_another_tenants_id_find_nothing_of_it(world):
    st, a, b = world.st, world.a, world.b
    before = dump(st)
    assert st.get_device(a["d1"], b["tid"]) is None
    assert sorted(d["id"] for d in st.list_devices(b["tid"])) == sorted([b["d1"], b["d2"]])
    assert st.list_devices(b["tid"], status="suspended") == []
    assert st.list_devices(b["tid"], after=b"\x00" * 8, limit=100) == st.list_devices(b["tid"])
    assert st.existing_serials(b["tid"], ["SN-a-1", "SN-a-2"]) == set()
    assert [t["id"] for t in st.list_tokens(b["tid"])] == [b["tok"]]
    assert st.list_audit(b["tid"], a["d1"].hex()) == []
    assert {e["tenant_id"] for e in st.list_audit(b["tid"])} == {b["tid"]}
    assert st.get_release_key(b["tid"], "key-a") is None
    assert [k["kid"] for k in st.list_release_keys(b["tid"])] == ["key-b"]
    assert st.get_release(b["tid"], "rel-a") is None
    assert st.find_release(b["tid"], "app", "1.0.0") is None
    assert [r["id"] for r in st.list_releases(b["tid"])] == ["rel-b"]
    assert [r["id"] for r in st.list_releases(b["tid"], kind="app", limit=None)] == ["rel-b"]
    assert st.max_release_counter(b["tid"], "app") == 7
    assert st.get_rollout(b["tid"], "ro-a") is None
    assert st.get_rollout_for_release(b["tid"], "rel-a") is None
    assert [r["id"] for r in st.list_rollouts(b["tid"])] == ["ro-b"]
    assert st.list_rollouts(b["tid"], state="draft")[0]["id"] == "ro-b"
    assert st.revoked_device_ids(b["tid"]) == []
    assert st.get_ca(b["tid"])["cert_der"] == b"ca-der-b"
    assert st.list_certificates(b["tid"], a["d1"]) == []
    assert st.list_revoked_certificates(b["tid"], NOW) == []
    assert dump(st) == before


def test_writes_with_another_tenants_id_change_none_of_its_rows(world):
    st, a, b = world.st, world.a, world.b
    before = dump(st)
    assert st.update_device(b["tid"], a["d1"], {"status": "decommissioned", "trust_level": 0,
                                                 "compromised": True, "metadata": {"tags": ["x"]}}) is False
    assert st.update_device(b["tid"], a["d2"], {"status": "active"}) is False
    assert st.set_psk(b["tid"], a["d1"], 0, 1, NOW + 86400) is False
    assert st.revoke_token(b["tid"], a["tok"], NOW) is False
    assert st.retire_release_key(b["tid"], "key-a", NOW) is False
    assert st.revoke_certificates(b["tid"], a["d1"], NOW, "superseded") == 0
    assert st.revoke_certificates(b["tid"], a["d1"], NOW, "superseded", serial="5e6102") == 0
    assert st.hold_certificates(b["tid"], a["d1"], NOW, True) == 0
    assert st.hold_certificates(b["tid"], a["d1"], NOW, False) == 0
    st.put_ca(b["tid"], b"other-der", b"other-sealed", NOW)          # B has a CA already: nothing changes
    assert st.set_mqtt_password(b["tid"], a["d1"], b"z" * 32, NOW) is False
    assert dump(st) == before
    assert st.get_mqtt_password(a["d1"]) == {"tenant_id": a["tid"], "hash": b"a" * 32, "created": T0}


def test_tenant_wide_writes_touch_only_that_tenant(world):
    st, a, b = world.st, world.a, world.b
    ca_a, policy_a = st.get_ca(a["tid"]), st.get_tenant(a["tid"])["policy"]
    assert st.next_crl_number(b["tid"]) == 1
    assert st.next_crl_number(b["tid"]) == 2
    st.set_tenant_policy(b["tid"], {"drift_s": 5})
    assert st.get_ca(a["tid"]) == ca_a and ca_a["crl_number"] == 0
    assert st.get_tenant(a["tid"])["policy"] == policy_a and st.get_tenant(b["tid"])["policy"] == {"drift_s": 5}


def test_right_tenant_writes_do_change_the_row(world):
    """Control for the no-op writes above: the same calls with the owner's id take effect."""
    st, a = world.st, world.a
    assert st.update_device(a["tid"], a["d1"], {"trust_level": 0}) is True
    assert st.get_device(a["d1"], a["tid"])["trust_level"] == 0
    assert st.set_psk(a["tid"], a["d1"], 0, 1, NOW + 86400) is True
    assert st.revoke_token(a["tid"], a["tok"], NOW) is True
    assert st.retire_release_key(a["tid"], "key-a", NOW) is True
    assert st.hold_certificates(a["tid"], a["d1"], NOW, True) == 1     # 5e6102 (5e61 is revoked)
    assert [c["serial"] for c in st.list_revoked_certificates(a["tid"], NOW)] == ["5e61", "5e6102"]
    assert st.revoke_certificates(a["tid"], a["d1"], NOW, "superseded", serial="5e6102") == 1
    assert st.set_mqtt_password(a["tid"], a["d1"], b"y" * 32, NOW) is True
    assert st.get_mqtt_password(a["d1"]) == {"tenant_id": a["tid"], "hash": b"y" * 32, "created": NOW}
