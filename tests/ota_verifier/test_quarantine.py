"""Quarantine (issue #12: "a quarantined device may only reach attestation and OTA, so it can be
repaired, and nothing else"), over the app's HTTP routes in-process: the lifecycle actions quarantine
and release and their audit rows; a quarantined device checks, downloads and reports an OTA update,
and a replay of its check is still refused; POST /v1/binauth, device tokens, MQTT (HTTP auth, SAS,
http-basic) and the edge entry still refuse it; a compromised device is refused everywhere, OTA
included (a download capability issued before it was flagged too). UDP and the group commit are in
tests/verifier/test_quarantine_binauth.py; DTLS in tests/dtls_verifier/test_refusals.py."""

import base64

import pytest

from tests.ota_verifier.conftest import make_bundle, publish, trust
from verifier import keys
from verifier.binauth.core import NOT_ACTIVE, OK, REPLAY, decode_reply
from verifier.errors import NotFound, ValidationError
from verifier.mqtt import core as mqtt
from verifier.registry import core as registry
from verifier.appkeys import STORAGE


async def _release(client, tenant, signing, tmp_path):
    await trust(client, tenant, signing)
    rel = await publish(client, tenant, make_bundle(tmp_path, signing, "2.0.0", 2))
    r = await client.post(f"/v1/releases/{rel['id']}/rollout", json={"start": True,
                          "phases": [{"percent": 100, "hours": 0}]}, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return rel


async def _lifecycle(client, tenant, dev, action, reason=None, status=200):
    body = {"action": action} if reason is None else {"action": action, "reason": reason}
    r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json=body, headers=tenant.headers)
    out = await r.json()
    assert r.status == status, out
    return out


def _status(dev, req_hex, out):
    return decode_reply(dev.key, bytes.fromhex(req_hex), bytes.fromhex(out["auth"]))["status"]


def _rows(app, tenant, dev, actions):
    """(action, actor, result, reason) of the device's audit rows among `actions`, oldest first."""
    return [(e["action"], e["actor"], e["result"], e["reason"])
            for e in reversed(app[STORAGE].list_audit(tenant.id, dev.hex)) if e["action"] in actions]


# -- the lifecycle actions -----------------------------------------------------------------------

async def test_quarantine_and_release_keep_the_status_and_are_audited(client, tenant_a):
    dev = tenant_a.devices(1)[0]
    out = await _lifecycle(client, tenant_a, dev, "quarantine", "attestation: app.py differs")
    assert out["status"] == "active" and out["security"]["quarantined"] is True
    out = await _lifecycle(client, tenant_a, dev, "quarantine", status=409)           # already quarantined
    assert out["error"] == "invalid_transition"
    out = await _lifecycle(client, tenant_a, dev, "suspend")                           # status moves on its own
    assert out["status"] == "suspended" and out["security"]["quarantined"] is True
    out = await _lifecycle(client, tenant_a, dev, "release", "repaired by 2.0.1")
    assert out["status"] == "suspended" and out["security"]["quarantined"] is False
    out = await _lifecycle(client, tenant_a, dev, "release", status=409)                # not quarantined
    assert out["error"] == "invalid_transition"
    tok = tenant_a.token_id
    assert _rows(client.app, tenant_a, dev, {"device.quarantine", "device.release", "device.suspend"}) == [
        ("device.quarantine", tok, "ok", "attestation: app.py differs"),
        ("device.quarantine", tok, "error", "the device is already quarantined"),
        ("device.suspend", tok, "ok", "active -> suspended"),
        ("device.release", tok, "ok", "repaired by 2.0.1"),
        ("device.release", tok, "error", "the device is not quarantined")]


async def test_unknown_lifecycle_action_is_refused_with_every_action_named(client, tenant_a):
    dev = tenant_a.devices(1)[0]
    out = await _lifecycle(client, tenant_a, dev, "isolate", status=400)
    assert out["message"] == "action must be one of activate, suspend, resume, decommission, quarantine, release"


def test_set_quarantined_is_idempotent_and_writes_one_row_per_change(client, tenant_a, clock):
    st = client.app[STORAGE]
    dev = tenant_a.devices(1)[0]
    for _ in range(3):                                  # e.g. attestation failing on every appraisal
        got = registry.set_quarantined(st, tenant_a.id, dev.id, True, "contraindicated", "attest", clock())
        assert got["quarantined"] is True and got["status"] == "active"
    got = registry.set_quarantined(st, tenant_a.id, dev.id, False, None, "attest", clock())
    assert got["quarantined"] is False
    assert _rows(client.app, tenant_a, dev, {"device.quarantine", "device.release"}) == [
        ("device.quarantine", "attest", "ok", "contraindicated"), ("device.release", "attest", "ok", None)]


def test_set_quarantined_refuses_another_tenants_device_and_bad_arguments(client, tenant_a, tenant_b, clock):
    st = client.app[STORAGE]
    dev = tenant_a.devices(1)[0]
    with pytest.raises(NotFound):
        registry.set_quarantined(st, tenant_b.id, dev.id, True, None, "attest", clock())
    with pytest.raises(ValidationError):
        registry.set_quarantined(st, tenant_a.id, dev.id, 1, None, "attest", clock())
    with pytest.raises(ValidationError):
        registry.set_quarantined(st, tenant_a.id, dev.id, True, "x" * 501, "attest", clock())
    assert st.get_device(dev.id)["quarantined"] is False
    assert _rows(client.app, tenant_a, dev, {"device.quarantine"}) == []


# -- OTA stays open --------------------------------------------------------------------------------

async def test_quarantined_device_can_check_download_and_report_an_update(client, tenant_a, signing, tmp_path):
    rel = await _release(client, tenant_a, signing, tmp_path)
    dev = tenant_a.devices(1)[0]
    await _lifecycle(client, tenant_a, dev, "quarantine", "bad file")
    req = dev.auth()
    r = await client.post("/v1/ota/check", json={"auth": req, "version": "1.0.0", "counter": 1})
    out = await r.json()
    assert r.status == 200 and _status(dev, req, out) == OK
    up = out["update"]
    assert up["release_id"] == rel["id"] and up["version"] == "2.0.0"
    bundle = tmp_path / "bundle-2.0.0-2"
    assert await (await client.get(up["manifest_url"])).read() == (bundle / "manifest.json").read_bytes()
    assert await (await client.get(up["sig_url"])).read() == (bundle / "manifest.sig").read_bytes()
    f = await client.get(up["files_url"].replace("{path}", "lib/util.py"))
    assert f.status == 200 and await f.read() == (bundle / "files" / "lib" / "util.py").read_bytes()
    for state in ("downloading", "installed", "confirmed"):
        req = dev.auth()
        r = await client.post("/v1/ota/report", json={"auth": req, "release_id": rel["id"], "state": state})
        out = await r.json()
        assert r.status == 200 and _status(dev, req, out) == OK and out["state"] == state
    rows = [(e["action"], e["result"], e["reason"]) for e in client.app[STORAGE].list_audit(tenant_a.id, dev.hex)]
    assert rows[0] == ("ota.report", "confirmed", f"{rel['id']} (2.0.0)")
    assert ("binauth", "OK", "quarantined: admitted to a repair route (OTA, attestation)") in rows
    dev_now = client.app[STORAGE].get_device(dev.id)
    assert dev_now["quarantined"] is True and dev_now["status"] == "active"    # OTA lifts nothing


async def test_replayed_ota_check_of_a_quarantined_device_is_refused(client, tenant_a, signing, tmp_path):
    await _release(client, tenant_a, signing, tmp_path)
    dev = tenant_a.devices(1)[0]
    await _lifecycle(client, tenant_a, dev, "quarantine")
    req = dev.auth()
    r = await client.post("/v1/ota/check", json={"auth": req})
    assert r.status == 200 and (await r.json())["update"] is not None
    r = await client.post("/v1/ota/check", json={"auth": req})
    out = await r.json()
    assert r.status == 409 and out["message"] == "replay" and "update" not in out
    assert _status(dev, req, out) == REPLAY
    r = await client.post("/v1/ota/check", json={"auth": dev.auth()})           # a fresh one still works
    assert r.status == 200


async def test_quarantined_device_still_gets_not_active_on_post_binauth(client, tenant_a):
    dev = tenant_a.devices(1)[0]
    await _lifecycle(client, tenant_a, dev, "quarantine")
    r = await client.post("/v1/ota/check", json={"auth": dev.auth()})        # admitted here first
    assert r.status == 200
    req = dev.request()
    r = await client.post("/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 403 and decode_reply(dev.key, req, await r.read())["status"] == NOT_ACTIVE
    await _lifecycle(client, tenant_a, dev, "release")
    req = dev.request()
    r = await client.post("/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200 and decode_reply(dev.key, req, await r.read())["status"] == OK


# -- everything else stays refused ------------------------------------------------------------------

async def test_quarantined_device_gets_no_token(client, tenant_a):
    dev = tenant_a.devices(1)[0]
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    assert r.status == 200
    bearer = {"Authorization": "Bearer " + (await r.json())["token"]}
    await _lifecycle(client, tenant_a, dev, "quarantine")
    req = dev.auth()
    r = await client.post("/v1/auth/device/token", json={"auth": req})
    out = await r.json()
    assert r.status == 403 and out["message"] == "not_active" and "token" not in out
    r = await client.get("/v1/auth/device/whoami", headers=bearer)       # the token issued before: revoked
    assert r.status == 401
    r = await client.post("/v1/tokens/introspect", json={"token": bearer["Authorization"][7:]},
                          headers=tenant_a.headers)
    assert (await r.json())["active"] is False


async def test_quarantined_device_is_refused_by_mqtt_auth(client, tenant_a, clock):
    dev = tenant_a.devices(1)[0]
    sas = mqtt.encode_sas(keys.derive_key(dev.master, b"mqtt-sas"), mqtt.sas_resource(tenant_a.id, dev.hex),
                          int(clock()) + 60)
    body = {"username": dev.hex, "clientid": dev.hex, "peerhost": "10.0.0.7", "password": sas}
    basic = {"Authorization": "Basic " + base64.b64encode(
        f"{dev.hex}:{mqtt.basic_secret(dev.master)}".encode()).decode()}
    assert (await (await client.post("/v1/mqtt/auth", json=body)).json())["result"] == "allow"
    assert (await client.get("/v1/auth/device/basic", headers=basic)).status == 200
    await _lifecycle(client, tenant_a, dev, "quarantine")
    assert (await (await client.post("/v1/mqtt/auth", json=body)).json())["result"] == "deny"
    assert (await client.post("/v1/mqtt/go-auth/user", json=body)).status == 403
    assert (await client.get("/v1/auth/device/basic", headers=basic)).status == 401
    reasons = [e["reason"] for e in client.app[STORAGE].list_audit(tenant_a.id, dev.hex)
               if e["action"] in ("mqtt.connect", "http.basic") and e["result"] == "refused"]
    assert reasons == ["device_quarantined"] * 3


async def test_quarantined_device_is_blocked_in_its_edge_entry(client, tenant_a):
    dev = tenant_a.devices(1)[0]
    await _lifecycle(client, tenant_a, dev, "quarantine")
    r = await client.get(f"/v1/edge/devices/{dev.hex}", headers=tenant_a.headers)
    assert r.status == 200 and (await r.json())["blocked"] is True


# -- a compromised device: refused everywhere, OTA included -------------------------------------------

async def test_compromised_device_is_refused_by_ota_check_report_and_downloads(client, tenant_a, signing, tmp_path):
    rel = await _release(client, tenant_a, signing, tmp_path)
    dev = tenant_a.devices(1)[0]
    r = await client.post("/v1/ota/check", json={"auth": dev.auth()})
    up = (await r.json())["update"]                      # a capability issued while it was fine
    assert (await client.get(up["manifest_url"])).status == 200
    r = await client.patch(f"/v1/devices/{dev.hex}", json={"compromised": True, "quarantined": True},
                           headers=tenant_a.headers)
    assert r.status == 200
    for path, body in (("/v1/ota/check", {}), ("/v1/ota/report", {"release_id": rel["id"], "state": "failed"})):
        req = dev.auth()
        r = await client.post(path, json=dict(body, auth=req))
        out = await r.json()
        assert r.status == 403 and out["message"] == "not_active" and _status(dev, req, out) == NOT_ACTIVE, path
    for url in (up["manifest_url"], up["sig_url"], up["files_url"].replace("{path}", "lib/util.py")):
        assert (await client.get(url)).status == 404, url


@pytest.mark.parametrize("action", ["suspend", "decommission"])
async def test_quarantine_admits_no_suspended_or_decommissioned_device_to_ota(client, tenant_a, action):
    dev = tenant_a.devices(1)[0]
    await _lifecycle(client, tenant_a, dev, "quarantine")
    await _lifecycle(client, tenant_a, dev, action)
    r = await client.post("/v1/ota/check", json={"auth": dev.auth()})
    assert r.status == 403 and (await r.json())["message"] == "not_active"
