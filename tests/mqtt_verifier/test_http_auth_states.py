"""The broker-facing HTTP authentication endpoints and http-basic, against the device's lifecycle and lockout:
a lockout is audited as `locked_out` (it said `rate_limited`), and a device still in provisioning is treated
as binary auth and DTLS treat it (its first success activates it) instead of being refused and counted as a
failure while the broker already accepts its certificate."""

import base64

from tests.support import AuthDevice
from verifier import keys
from verifier.mqtt import core as ma, broker as mb
from verifier.appkeys import CORE, STORAGE
from verifier.binauth.core import OK


def basic_header(user, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def sas_for(tenant, hex_id, master, expiry):
    return ma.encode_sas(keys.derive_key(master, b"mqtt-sas"), ma.sas_resource(tenant.id, hex_id), expiry)


def _audit(app, tenant, hex_id):
    return app[STORAGE].list_audit(tenant.id, hex_id)          # newest first


def _summaries(app, hex_id, action):
    """(result, reason) of the device's open refusal summaries of `action` (docs/api.md "Audit trail")."""
    return sorted((r[8], r[9].split(";")[0]) for r in app[CORE].summary.drain() if r[3] == hex_id and r[5] == action)


def _provisioning(tenant):
    (hex_id, master_hex), = tenant.provision([{}], status="provisioning")
    return hex_id, bytes.fromhex(master_hex)


async def test_http_basic_lockout_is_audited_as_locked_out_not_rate_limited(client, app, acme, clock):
    dev = acme.device(clock)
    for _ in range(5):                                           # lockout_failures 5
        r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, "00" * 32))
        assert r.status == 401
    r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, ma.basic_secret(dev.master)))
    assert r.status == 401
    t = int(clock())
    assert _summaries(app, dev.hex, "http.basic") == [
        ("locked_out", f"1 refused from 1 source host(s) in [{t}, {t}]"),
        ("refused", f"5 refused from 1 source host(s) in [{t}, {t}]")]


async def test_mqtt_auth_lockout_is_audited_as_locked_out_not_rate_limited(client, app, acme, clock):
    dev = acme.device(clock)
    now = int(clock())
    for _ in range(5):
        r = await client.post("/v1/mqtt/go-auth/user", json={"username": dev.hex, "clientid": dev.hex,
                                                             "password": "wrong"})
        assert r.status == 403
    r = await client.post("/v1/mqtt/auth", json={"username": dev.hex, "clientid": dev.hex, "peerhost": "10.0.0.7",
                                                 "password": sas_for(acme, dev.hex, dev.master, now + 60)})
    assert (await r.json())["result"] == "deny"
    # another peer than the one that failed: the device's failure budget is what refuses it (protocol.md 3.4)
    got = [(r[6], r[8], r[9].rsplit("last reason: ", 1)[1]) for r in app[CORE].summary.drain()
           if r[3] == dev.hex and r[8] == "locked_out"]
    assert got == [("mqtt-emqx", "locked_out", "locked_out (failure budget)")]


async def test_provisioning_device_is_not_refused_on_http_basic_and_becomes_active(client, app, acme, clock):
    hex_id, master = _provisioning(acme)
    r = await client.get("/v1/auth/device/basic", headers=basic_header(hex_id, ma.basic_secret(master)))
    assert r.status == 200 and await r.json() == {"device_id": hex_id, "status": "active"}
    r = await client.get(f"/v1/devices/{hex_id}", headers=acme.headers)
    assert (await r.json())["status"] == "active"
    rows = [(a["action"], a["result"], a["reason"]) for a in _audit(app, acme, hex_id)[:2]]
    assert rows == [("device.activate", "ok", "provisioning -> active: first successful authentication"),
                    ("http.basic", "ok", None)]


async def test_provisioning_device_is_never_locked_out_by_its_own_valid_credential(client, app, acme, clock):
    hex_id, master = _provisioning(acme)
    now = int(clock())
    for i in range(6):                                           # more than lockout_failures
        r = await client.post("/v1/mqtt/auth", json={"username": hex_id, "clientid": hex_id, "peerhost": "10.0.0.7",
                                                     "password": sas_for(acme, hex_id, master, now + 60 + i)})
        assert (await r.json())["result"] == "allow"
    actions = [a["action"] for a in _audit(app, acme, hex_id)]
    assert actions.count("device.activate") == 1 and actions.count("mqtt.connect") == 6


async def test_suspended_device_is_still_refused_on_http_basic(client, acme, clock):
    dev = acme.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
    assert r.status == 200
    r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, ma.basic_secret(dev.master)))
    assert r.status == 401


async def test_binary_auth_after_an_mqtt_activation_does_not_activate_twice(client, app, acme, clock):
    hex_id, master = _provisioning(acme)
    dev = AuthDevice(hex_id, master.hex(), clock)
    forged = bytearray(dev.request())
    forged[-1] ^= 1                                              # loads the binary-auth cache ("provisioning")
    await client.post("/v1/binauth", data=bytes(forged), headers={"Content-Type": "application/octet-stream"})
    r = await client.get("/v1/auth/device/basic", headers=basic_header(hex_id, ma.basic_secret(master)))
    assert r.status == 200
    clock.advance(1)
    req = dev.request()
    r = await client.post("/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
    assert dev.reply(req, await r.read())["status"] == OK
    actions = [a["action"] for a in _audit(app, acme, hex_id)]
    assert actions.count("device.activate") == 1


async def test_go_auth_acl_lets_a_provisioning_device_reach_its_topics_like_the_broker(client, app, acme):
    hex_id, _ = _provisioning(acme)
    prefix = mb.topic_prefix(acme.id, hex_id)
    r = await client.post("/v1/mqtt/go-auth/acl", json={"username": hex_id, "clientid": hex_id,
                                                        "topic": prefix + "/telemetry", "acc": 2})
    assert r.status == 200
    r = await client.post("/v1/mqtt/go-auth/acl", json={"username": hex_id, "clientid": hex_id,
                                                        "topic": "janua/other/x", "acc": 2})
    assert r.status == 403
    assert app[STORAGE].get_device(bytes.fromhex(hex_id))["status"] == "provisioning"   # an ACL check activates nothing
