"""The tenant-scoped admin API: provisioning, bulk, lifecycle, isolation, auth, audit, ops endpoints."""

import logging
import re
from pathlib import Path

import pytest

from tests.support import fail_inserts
from verifier import keys
from verifier.registry import core as registry
from verifier.appkeys import STORAGE
from verifier.binauth.core import NOT_ACTIVE, OK, TIME_SYNC, decode_reply, encode_request
from verifier.config import Config, load_kek
from verifier.errors import ConfigError
from verifier.app import create_app
from verifier.registry.routes import ROUTES

DEVICE = {"serial_number": "SN-1", "manufacturer_id": "acme", "model_id": "pico-w",
          "metadata": {"firmware_version": "1.0", "group": "lab", "tags": ["east", "test"], "capabilities": ["udp"]}}


async def provision(client, tenant, **row):
    r = await client.post("/v1/devices", json={**DEVICE, **row}, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def test_provision_one_returns_secret_once(client, tenant_a):
    pkg = await provision(client, tenant_a)
    assert re.fullmatch("[0-9a-f]{16}", pkg["device_id"]) and re.fullmatch("[0-9a-f]{64}", pkg["master_secret"])
    assert pkg["tenant"] == "tenant-a" and pkg["status"] == "provisioning" and pkg["permissions"] == 0x0F
    r = await client.get(f"/v1/devices/{pkg['device_id']}", headers=tenant_a.headers)
    dev = await r.json()
    assert r.status == 200 and dev["credential"] == {"type": "symmetric", "present": True}
    assert pkg["master_secret"] not in await r.text()
    assert dev["metadata"]["tags"] == ["east", "test"] and dev["serial_number"] == "SN-1"


@pytest.mark.parametrize("row, code", [
    ({"serial_number": ""}, 400),
    ({"serial_number": "x", "permissions": -1}, 400),
    ({"serial_number": "x", "trust_level": 101}, 400),
    ({"serial_number": "x", "credential_type": "x509"}, 400),
    ({"serial_number": "x", "metadata": {"colour": "red"}}, 400),
    ({"serial_number": "x", "status": "active"}, 400),
])
async def test_provision_rejects_bad_rows(client, tenant_a, row, code):
    r = await client.post("/v1/devices", json=row, headers=tenant_a.headers)
    assert r.status == code and (await r.json())["error"] == "invalid_request"


async def test_provision_duplicate_serial_409(client, tenant_a, tenant_b):
    await provision(client, tenant_a)
    r = await client.post("/v1/devices", json=DEVICE, headers=tenant_a.headers)
    assert r.status == 409 and (await r.json())["error"] == "duplicate_serial"
    await provision(client, tenant_b)             # serials are unique per tenant only


async def test_bulk_bad_rows_reported_others_created(client, tenant_a):
    await provision(client, tenant_a, serial_number="EXISTING")
    rows = [{"serial_number": f"B{i}"} for i in range(5)]
    rows[1] = {"serial_number": "B0"}             # repeats row 0
    rows[2] = {"serial_number": "EXISTING"}
    rows[3] = {"serial_number": "B3", "trust_level": "high"}
    r = await client.post("/v1/devices/bulk", json={"devices": rows}, headers=tenant_a.headers)
    out = await r.json()
    assert r.status == 200
    assert out["summary"] == {"requested": 5, "created": 2, "failed": 3}
    assert [x["ok"] for x in out["results"]] == [True, False, False, False, True]
    assert [x.get("error") for x in out["results"]][1:4] == ["duplicate_serial", "duplicate_serial", "invalid_request"]
    assert all(len(x["master_secret"]) == 64 for x in out["results"] if x["ok"])
    r = await client.get("/v1/devices?limit=100", headers=tenant_a.headers)
    assert sorted(d["serial_number"] for d in (await r.json())["devices"]) == ["B0", "B4", "EXISTING"]


async def test_bulk_is_all_or_nothing_for_valid_rows(client, tenant_a):
    st = client.app[STORAGE]
    fail_inserts(st._db, "devices", "boom", "NEW.serial_number = 'B2'")
    rows = [{"serial_number": f"B{i}"} for i in range(4)]
    r = await client.post("/v1/devices/bulk", json={"devices": rows}, headers=tenant_a.headers)
    assert r.status >= 400
    assert st.list_devices(tenant_a.id) == []      # nothing half-created


async def test_bulk_row_naming_unknown_fields_with_control_characters_is_refused_and_audited_escaped(client, tenant_a):
    # the names are echoed escaped: a NUL or an escape sequence never reaches the audit trail (nor PostgreSQL's TEXT,
    # which cannot hold a NUL)
    rows = [{"serial_number": "B0", "a\x00b": 1, "\x1b[2J": 2}, {"serial_number": "B1", "metadata": {"gr\x00up": "g"}}]
    r = await client.post("/v1/devices/bulk", json={"devices": rows}, headers=tenant_a.headers)
    out = await r.json()
    assert r.status == 200 and out["summary"] == {"requested": 2, "created": 0, "failed": 2}
    assert [x["message"] for x in out["results"]] == ["unknown fields: '\\x1b[2J', 'a\\x00b'",
                                                      "unknown metadata fields: 'gr\\x00up'"]
    r = await client.get("/v1/audit", headers=tenant_a.headers)
    assert [e["reason"] for e in (await r.json())["entries"] if e["action"] == "device.provision"] == [
        "row 1: unknown metadata fields: 'gr\\x00up'", "row 0: unknown fields: '\\x1b[2J', 'a\\x00b'"]   # newest first


@pytest.mark.parametrize("body", [{"devices": []}, {"devices": "x"}, {"rows": []},
                                  {"devices": [{"serial_number": "x"}] * 10_001}])
async def test_bulk_body_validated(client, tenant_a, body):
    r = await client.post("/v1/devices/bulk", json=body, headers=tenant_a.headers)
    assert r.status == 400


async def test_list_filters_and_pagination(client, tenant_a):
    for i in range(7):
        await provision(client, tenant_a, serial_number=f"S{i}",
                        metadata={"group": "g%d" % (i % 2), "tags": ["odd"] if i % 2 else []})
    seen, cursor = [], None
    while True:
        r = await client.get("/v1/devices", params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                             headers=tenant_a.headers)
        page = await r.json()
        seen += [d["device_id"] for d in page["devices"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 and seen == sorted(seen)
    r = await client.get("/v1/devices", params={"group": "g1"}, headers=tenant_a.headers)
    assert {d["serial_number"] for d in (await r.json())["devices"]} == {"S1", "S3", "S5"}
    r = await client.get("/v1/devices", params={"tag": "odd"}, headers=tenant_a.headers)
    assert len((await r.json())["devices"]) == 3
    r = await client.get("/v1/devices", params={"status": "active"}, headers=tenant_a.headers)
    assert (await r.json())["devices"] == []
    for bad in ({"status": "x"}, {"limit": "0"}, {"limit": "a"}, {"cursor": "zz"}):
        assert (await client.get("/v1/devices", params=bad, headers=tenant_a.headers)).status == 400


async def test_patch_device(client, tenant_a):
    pkg = await provision(client, tenant_a)
    url = f"/v1/devices/{pkg['device_id']}"
    r = await client.patch(url, json={"metadata": {"location": "shelf 3", "tags": ["x"]}, "trust_level": 80,
                                      "permissions": 3, "quarantined": True}, headers=tenant_a.headers)
    dev = await r.json()
    assert r.status == 200
    assert dev["metadata"]["location"] == "shelf 3" and dev["metadata"]["group"] == "lab"
    assert dev["metadata"]["tags"] == ["x"] and dev["permissions"] == 3
    assert dev["security"] == {"trust_level": 80, "compromised": False, "quarantined": True}
    for bad in ({"trust_level": 200}, {"compromised": "yes"}, {"status": "active"}, {"master_secret": "00"}, {}):
        assert (await client.patch(url, json=bad, headers=tenant_a.headers)).status == 400


async def test_lifecycle_unknown_action_400(client, tenant_a):
    pkg = await provision(client, tenant_a)
    r = await client.post(f"/v1/devices/{pkg['device_id']}/lifecycle", json={"action": "explode"},
                          headers=tenant_a.headers)
    assert r.status == 400


async def test_cross_tenant_isolation(client, tenant_a, tenant_b):
    pkg = await provision(client, tenant_a)
    url = f"/v1/devices/{pkg['device_id']}"
    missing = "/v1/devices/0000000000000000"
    for u in (url, missing):
        assert (await client.get(u, headers=tenant_b.headers)).status == 404
        assert (await client.patch(u, json={"trust_level": 1}, headers=tenant_b.headers)).status == 404
        assert (await client.post(u + "/lifecycle", json={"action": "suspend"}, headers=tenant_b.headers)).status == 404
    r = await client.get("/v1/devices", headers=tenant_b.headers)
    assert (await r.json())["devices"] == []
    r = await client.get("/v1/audit", params={"device_id": pkg["device_id"]}, headers=tenant_b.headers)
    assert (await r.json())["entries"] == []
    r = await client.get("/v1/audit", headers=tenant_b.headers)
    assert all(e["tenant_id"] == tenant_b.id for e in (await r.json())["entries"])
    r = await client.get("/v1/tenant", headers=tenant_b.headers)
    assert (await r.json())["name"] == "tenant-b"
    dev = (await (await client.get(url, headers=tenant_a.headers)).json())
    assert dev["security"]["trust_level"] == 50 and dev["status"] == "provisioning"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer jna_nope"},
                                     {"Authorization": "Basic jna_x"}, {"Authorization": "jna_x"}])
@pytest.mark.parametrize("method, path", [(m, p.replace("{device_id}", "0000000000000000"))
                                          for m, p, _ in ROUTES if p.startswith("/v1/") and p != "/v1/binauth"])
async def test_admin_token_required(client, tenant_a, headers, method, path):
    r = await client.request(method, path, json={}, headers=headers)
    assert r.status == 401 and (await r.json())["error"] == "unauthorized"


async def test_revoked_token_refused(client, tenant_a):
    registry.revoke_token(client.app[STORAGE], tenant_a.id, tenant_a.token_id, 0)
    assert (await client.get("/v1/tenant", headers=tenant_a.headers)).status == 401


async def test_tenant_policy_patch(client, tenant_a):
    r = await client.get("/v1/tenant", headers=tenant_a.headers)
    pol = (await r.json())["policy"]
    assert pol == {"drift_s": 300, "session_ttl_s": 3600, "device_rate": {"capacity": 10, "refill_per_s": 0.2},
                   "source_rate": {"capacity": 200, "refill_per_s": 100}, "lockout_failures": 5, "lockout_s": 300,
                   "token_ttl_s": 3600, "token_refresh_s": 300, "chain_period_s": 86400,
                   "chain_validity_s": 86400, "chain_len": 30, "chain_low_water": 10,
                   "audit_max_age_days": 90, "audit_max_rows": 1000000}
    r = await client.patch("/v1/tenant", json={"policy": {"drift_s": 60, "device_rate": {"capacity": 3}}},
                           headers=tenant_a.headers)
    pol = (await r.json())["policy"]
    assert r.status == 200 and pol["drift_s"] == 60 and pol["device_rate"] == {"capacity": 3, "refill_per_s": 0.2}
    for bad in ({"policy": {"drift_s": -1}}, {"policy": {"nope": 1}}, {"drift_s": 1}, {"policy": {"device_rate": 5}}):
        assert (await client.patch("/v1/tenant", json=bad, headers=tenant_a.headers)).status == 400


async def test_admin_changes_reach_binauth_at_once(client, tenant_a, clock):
    """Suspend, flags, permissions and policy changed over HTTP apply to the very next packet."""
    pkg = await provision(client, tenant_a)
    did, h = pkg["device_id"], tenant_a.headers
    key = keys.derive_key(bytes.fromhex(pkg["master_secret"]), keys.LABEL_BINAUTH)
    ts = [int(clock())]

    async def auth(offset=0):
        ts[0] += 1
        req = encode_request(key, bytes.fromhex(did), ts[0] + offset)
        r = await client.post("/v1/binauth", data=req)
        out = decode_reply(key, req, await r.read())
        assert out["authenticated"]
        return out

    assert (await auth())["status"] == OK                      # provisioning -> active, now cached
    await client.patch(f"/v1/devices/{did}", json={"permissions": 1}, headers=h)
    assert (await auth())["permissions"] == 1
    await client.post(f"/v1/devices/{did}/lifecycle", json={"action": "suspend"}, headers=h)
    assert (await auth())["status"] == NOT_ACTIVE
    await client.post(f"/v1/devices/{did}/lifecycle", json={"action": "resume"}, headers=h)
    assert (await auth())["status"] == OK
    await client.patch(f"/v1/devices/{did}", json={"compromised": True}, headers=h)
    assert (await auth())["status"] == NOT_ACTIVE
    await client.patch(f"/v1/devices/{did}", json={"compromised": False}, headers=h)
    await client.patch("/v1/tenant", json={"policy": {"drift_s": 10, "session_ttl_s": 60}}, headers=h)
    assert (await auth(offset=-30))["status"] == TIME_SYNC
    out = await auth()
    assert out["status"] == OK and out["expiry"] == int(clock()) + 60


async def test_audit_has_actions_and_no_secrets(client, tenant_a, clock, caplog, config):
    caplog.set_level(logging.DEBUG)
    pkg = await provision(client, tenant_a)
    did = pkg["device_id"]
    await client.post(f"/v1/devices/{did}/lifecycle", json={"action": "activate"}, headers=tenant_a.headers)
    key = keys.derive_key(bytes.fromhex(pkg["master_secret"]), keys.LABEL_BINAUTH)
    req = encode_request(key, bytes.fromhex(did), int(clock()))
    for _ in range(2):
        await client.post("/v1/binauth", data=req)
    bad = req[:19] + bytes((req[19] ^ 1,))
    await client.post("/v1/binauth", data=bad)
    clock.advance(60)                     # the forged tag is summarised once its 60 s window has passed
    await client.post("/v1/binauth", data=encode_request(key, bytes.fromhex(did), int(clock())))
    r = await client.get("/v1/audit", params={"device_id": did}, headers=tenant_a.headers)
    entries = (await r.json())["entries"]
    summary = [(e["kind"], e["action"], e["result"]) for e in reversed(entries)]
    assert summary == [("admin", "device.provision", "ok"), ("admin", "device.activate", "ok"),
                       ("auth", "binauth", "OK"), ("auth", "binauth", "REPLAY"), ("summary", "binauth", "SIGNATURE"),
                       ("auth", "binauth", "OK")]
    assert entries[1]["reason"].startswith("1 refused from 1 source host(s)")
    assert entries[-1]["actor"] == tenant_a.token_id and entries[0]["transport"] == "http"
    assert entries[0]["source"].startswith("127.0.0.1")
    # grep the whole database (and WAL) and the logs for secrets
    db = Path(config.db_path)
    blob = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.suffix != ".kek")
    text = caplog.text
    for secret in (pkg["master_secret"], key.hex(), tenant_a.token):
        assert secret.encode() not in blob and secret not in text
    for raw in (bytes.fromhex(pkg["master_secret"]), key):
        assert raw not in blob


async def test_metrics_exposed(client, tenant_a, clock):
    await provision(client, tenant_a)
    await client.post("/v1/binauth", data=bytes(20))
    await client.post("/v1/binauth", data=bytes(3))
    r = await client.get("/metrics")
    text = await r.text()
    assert r.status == 200
    assert 'janua_auth_decisions_total{result="UNKNOWN_DEVICE",transport="http"} 1.0' in text
    assert 'janua_auth_decisions_total{result="MALFORMED",transport="http"} 1.0' in text
    assert "janua_devices_provisioned_total 1.0" in text
    assert 'janua_auth_latency_seconds_count{transport="http"} 2.0' in text


async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status == 200 and (await r.json()) == {"status": "ok"}
    client.app[STORAGE].close()
    r = await client.get("/healthz")
    assert r.status == 503


async def test_unknown_route_is_json_404(client):
    r = await client.get("/v2/nothing")
    assert r.status == 404 and (await r.json())["error"] == "not_found"


def test_refuses_to_start_without_kek(tmp_path, monkeypatch):
    monkeypatch.delenv("JANUA_KEK", raising=False)
    with pytest.raises(ConfigError):
        create_app(Config(db_path=str(tmp_path / "x.db")))


def test_dev_mode_writes_kek_file_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("JANUA_KEK", raising=False)
    cfg = Config(db_path=str(tmp_path / "x.db"), dev=True)
    kek = load_kek(cfg)
    path = tmp_path / "x.db.kek"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_kek(cfg) == kek and len(kek) == 32


def test_kek_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("JANUA_KEK", "11" * 32)
    assert load_kek(Config()) == b"\x11" * 32
    monkeypatch.setenv("JANUA_KEK", "11" * 31)
    with pytest.raises(ConfigError):
        load_kek(Config())
    monkeypatch.delenv("JANUA_KEK")
    f = tmp_path / "kek"
    f.write_text("22" * 32 + "\n")
    assert load_kek(Config(kek_file=str(f))) == b"\x22" * 32
