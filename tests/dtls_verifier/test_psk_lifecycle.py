"""The DTLS PSK lifecycle (docs/protocol.md 4.1): generations derived from the master secret, expiry,
rotation through POST /v1/devices/{id}/psk/rotate, tenant scoping, and the migration that adds the
columns to a database file made before they existed."""

import asyncio
import json
import sqlite3
import subprocess

import aiohttp
import pytest
from aiocoap import Code

from tests.dtls_verifier.conftest import MICROPYTHON, ROOT, T0, run
from tests.dtls_verifier.peers import MbedTLSClient
from tests.dtls_verifier.test_interop import auth_rows, s_client
from verifier.registry import core as registry
from verifier.dtls.auth import psk_for
from verifier.registry.model import PSK_LIFETIME_S
from verifier.store import SQLiteStorage

DAY = 86400


class Admin:
    """HTTP admin calls to the verifier under test, with a token of `tenant`."""

    def __init__(self, verifier, tenant):
        self.url = verifier.handle.url
        _, token = registry.issue_token(verifier.storage, tenant["id"], verifier.clock())
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method, path, body=None):
        async with aiohttp.ClientSession(headers=self.headers) as s:
            kw = {} if body is None else {"data": body if isinstance(body, bytes) else json.dumps(body)}
            async with s.request(method, self.url + path, **kw) as r:
                return r.status, await r.json()


@pytest.fixture
def admin(verifier):
    return Admin(verifier, verifier.tenant)


def _post_auth(port, identity, psk):
    client = MbedTLSClient(port, identity, psk).handshake()
    try:
        return client.request(Code.POST, "auth")
    finally:
        client.close()


def test_generation_zero_is_the_firmware_dtls_psk_key():
    # the device derives its PSK with janua.hkdf.derive(M, label): generation 0 is label "dtls-psk",
    # generation g is "dtls-psk/<g>" (run on the MicroPython unix port, the firmware's own code)
    master = bytes(range(32))
    script = ("import sys; sys.path.insert(0, 'firmware'); from janua.hkdf import derive\n"
              "from binascii import hexlify\n"
              "m = bytes(range(32))\n"
              "print(hexlify(derive(m, 'dtls-psk')).decode(), hexlify(derive(m, 'dtls-psk/7')).decode())\n")
    if not MICROPYTHON.exists():
        pytest.skip("the MicroPython unix port is not installed")
    out = subprocess.run([str(MICROPYTHON), "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=30)
    g0, g7 = out.stdout.split()
    assert bytes.fromhex(g0) == psk_for(master) == psk_for(master, 0)
    assert bytes.fromhex(g7) == psk_for(master, 7)
    assert len({psk_for(master, g) for g in range(4)}) == 4


async def test_device_view_shows_psk_generation_and_expiry(verifier, device, admin):
    status, view = await admin.call("GET", f"/v1/devices/{device.hex}")
    assert status == 200
    assert view["psk"] == {"generation": 0, "expires_at": T0 + PSK_LIFETIME_S}
    assert "key" not in json.dumps(view["psk"])


async def test_rotation_refuses_the_old_psk_and_accepts_the_new_one(verifier, device, admin):
    assert (await asyncio.to_thread(_post_auth, verifier.port, device.identity, device.psk)).code == Code.CHANGED
    verifier.clock.advance(10 * DAY)
    status, out = await admin.call("POST", f"/v1/devices/{device.hex}/psk/rotate")
    assert status == 200, out
    assert out["psk_identity"] == device.identity and out["psk_generation"] == 1
    assert out["psk_expires_at"] == int(verifier.clock()) + PSK_LIFETIME_S
    new = bytes.fromhex(out["psk"])
    assert new == psk_for(device.master, 1) != device.psk

    rc, _, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc != 0 and "alert decrypt error" in err, err
    assert (await asyncio.to_thread(_post_auth, verifier.port, device.identity, new)).code == Code.CHANGED
    # the refused old PSK is an unauthenticated refusal: a summary row, written after the open windows close
    assert auth_rows(verifier) == [("OK", device.hex), ("OK", device.hex), ("SIGNATURE", device.hex)]

    status, view = await admin.call("GET", f"/v1/devices/{device.hex}")
    assert view["psk"] == {"generation": 1, "expires_at": out["psk_expires_at"]}
    rows = [r for r in verifier.audit(device) if r["action"] == "device.psk.rotate"]
    assert len(rows) == 1 and rows[0]["result"] == "ok" and rows[0]["actor"].startswith("tok_")
    assert out["psk"] not in json.dumps(verifier.all_audit())        # the key is never audited

    status, again = await admin.call("POST", f"/v1/devices/{device.hex}/psk/rotate", {"lifetime_days": 30})
    assert status == 200 and again["psk_generation"] == 2
    assert again["psk_expires_at"] == int(verifier.clock()) + 30 * DAY
    rc, _, err = await run(s_client(verifier.port, device.identity, new.hex()))
    assert rc != 0 and "alert decrypt error" in err, err


async def test_expired_psk_is_refused_until_rotated(verifier, device, admin):
    status, out = await admin.call("POST", f"/v1/devices/{device.hex}/psk/rotate", {"lifetime_days": 1})
    assert status == 200
    psk = bytes.fromhex(out["psk"])
    verifier.clock.advance(DAY - 1)
    rc, _, err = await run(s_client(verifier.port, device.identity, psk.hex()))
    assert rc == 0, err
    verifier.clock.advance(1)                                        # expires_at itself is expired
    rc, _, err = await run(s_client(verifier.port, device.identity, psk.hex()))
    assert rc != 0 and "alert access denied" in err, err
    assert [r["reason"] for r in verifier.all_audit() if r["action"] == "dtls"][-1] == "PSK expired"
    status, out = await admin.call("POST", f"/v1/devices/{device.hex}/psk/rotate")
    rc, _, err = await run(s_client(verifier.port, device.identity, out["psk"]))
    assert rc == 0, err


async def test_rotating_another_tenants_device_is_not_found(verifier, device):
    other = registry.create_tenant(verifier.storage, "other", verifier.clock())
    status, out = await Admin(verifier, other).call("POST", f"/v1/devices/{device.hex}/psk/rotate")
    assert status == 404 and out["error"] == "not_found"
    assert verifier.storage.get_device(device.id)["psk_generation"] == 0
    status, _ = await Admin(verifier, other).call("POST", "/v1/devices/0123456789abcdef/psk/rotate")
    assert status == 404


@pytest.mark.parametrize("body", [{"lifetime_days": 0}, {"lifetime_days": 3651}, {"lifetime_days": "30"},
                                  {"lifetime_days": True}, {"other": 1}, [], b"not json"])
async def test_rotation_rejects_a_bad_body(verifier, device, admin, body):
    status, out = await admin.call("POST", f"/v1/devices/{device.hex}/psk/rotate", body)
    assert status == 400, out
    assert verifier.storage.get_device(device.id)["psk_generation"] == 0


async def test_rotation_needs_an_admin_token(verifier, device):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{verifier.handle.url}/v1/devices/{device.hex}/psk/rotate") as r:
            assert r.status == 401


OLD_DEVICES = """CREATE TABLE devices (
    id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    serial_number TEXT NOT NULL, manufacturer_id TEXT, model_id TEXT,
    credential_type TEXT NOT NULL, sealed_secret BLOB NOT NULL, metadata TEXT NOT NULL,
    status TEXT NOT NULL, provisioned_at INTEGER NOT NULL, status_changed_at INTEGER NOT NULL,
    trust_level INTEGER NOT NULL, compromised INTEGER NOT NULL, quarantined INTEGER NOT NULL,
    permissions INTEGER NOT NULL,
    UNIQUE (tenant_id, serial_number)) WITHOUT ROWID"""


def test_migration_adds_psk_columns_to_an_existing_database(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:      # the devices table as the first release made it
        c.execute("CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL,"
                  " policy TEXT NOT NULL)")
        c.execute(OLD_DEVICES)
        c.execute("INSERT INTO tenants VALUES ('t1', 'acme', 1, '{}')")
        c.execute("INSERT INTO devices VALUES (?, 't1', 'SN-1', NULL, NULL, 'symmetric', ?, '{}', 'active',"
                  " 1000, 1000, 50, 0, 0, 15)", (bytes(8), b"sealed"))
    for _ in range(2):                  # opening it again finds nothing left to do
        st = SQLiteStorage(str(db))
        dev = st.get_device(bytes(8), "t1")
        assert dev["psk_generation"] == 0 and dev["psk_expires_at"] == 1000 + PSK_LIFETIME_S
        assert dev["serial_number"] == "SN-1" and dev["sealed_secret"] == b"sealed"
        st.close()
    st = SQLiteStorage(str(db))
    assert st.set_psk("t1", bytes(8), 0, 1, 5000) and not st.set_psk("t1", bytes(8), 0, 1, 6000)
    assert st.get_device(bytes(8))["psk_expires_at"] == 5000
    st.close()


async def test_suspension_through_the_api_refuses_the_next_handshake_although_the_key_is_cached(verifier, device,
                                                                                                 admin):
    rc, _, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc == 0, err                                              # the device's PSK state is now cached
    status, _ = await admin.call("POST", f"/v1/devices/{device.hex}/lifecycle", {"action": "suspend"})
    assert status == 200
    rc, _, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc != 0 and "alert access denied" in err, err
    status, _ = await admin.call("POST", f"/v1/devices/{device.hex}/lifecycle", {"action": "resume"})
    assert status == 200
    rc, _, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc == 0, err
    assert auth_rows(verifier) == [("OK", device.hex), ("NOT_ACTIVE", device.hex), ("OK", device.hex)]


async def test_activation_by_a_handshake_is_durable_and_audited_once(verifier):
    dev = verifier.device(status="provisioning")
    for _ in range(2):
        rc, _, err = await run(s_client(verifier.port, dev.identity, dev.psk.hex()))
        assert rc == 0, err
    assert verifier.storage.get_device(dev.id)["status"] == "active"
    assert [r["action"] for r in verifier.audit(dev) if r["action"] == "device.activate"] == ["device.activate"]
