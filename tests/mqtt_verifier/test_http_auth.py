"""The broker-facing HTTP authentication endpoints in EMQX 5's and mosquitto-go-auth's request shapes (MQTT
password, mqtt-sas, token:), their ACLs, and http-basic; negative cases named after what they prevent."""

import base64

import pytest

from verifier import keys
from verifier.mqtt import core as ma
from verifier.appkeys import STORAGE


def sas_for(dev, now, key=None, resource=None):
    key = key or keys.derive_key(dev.master, b"mqtt-sas")
    return ma.encode_sas(key, resource or ma.sas_resource(dev.tenant.id, dev.hex), now)


async def password_of(client, tenant, dev):
    r = await client.post(f"/v1/devices/{dev.hex}/mqtt-password", headers=tenant.headers)
    assert r.status == 201
    doc = await r.json()
    assert doc["broker"] is None                         # no broker configured: the password serves HTTP auth
    return doc["password"]


async def emqx(client, username, password, clientid=None):
    r = await client.post("/v1/mqtt/auth", json={"clientid": username if clientid is None else clientid,
                                                 "username": username, "password": password,
                                                 "peerhost": "10.0.0.7"})
    assert r.status == 200
    return await r.json()


async def test_emqx_allows_mqtt_sas_with_the_devices_acl(client, acme, clock):
    dev = acme.device(clock)
    doc = await emqx(client, dev.hex, sas_for(dev, int(clock()) + 3600))
    assert doc == {"result": "allow", "is_superuser": False, "acl": [
        {"permission": "allow", "action": "all", "topic": dev.prefix + "/#"},
        {"permission": "deny", "action": "all", "topic": "#"}]}
    r = await client.get(f"/v1/devices/{dev.hex}", headers=acme.headers)
    assert (await r.json())["last_seen_at"] == int(clock())
    audit = client.server.app[STORAGE].list_audit(acme.id, dev.hex)
    assert audit[0]["action"] == "mqtt.connect" and audit[0]["reason"] == "mqtt-sas"


async def test_emqx_allows_the_mqtt_password(client, acme, clock):
    dev = acme.device(clock)
    assert (await emqx(client, dev.hex, await password_of(client, acme, dev)))["result"] == "allow"


async def test_emqx_ignores_usernames_that_are_not_devices(client):
    assert (await emqx(client, "backend-service", "secret"))["result"] == "ignore"


@pytest.mark.parametrize("attack", ["expired_sas", "wrong_mac", "other_devices_key", "other_devices_resource",
                                    "sas_lifetime_too_long", "malformed_sas", "suspended_device",
                                    "clientid_mismatch", "wrong_password", "unknown_device"])
async def test_emqx_denies(client, acme, clock, attack):
    dev, other = acme.device(clock), acme.device(clock)
    now = int(clock())
    user, clientid = dev.hex, dev.hex
    password = {
        "expired_sas": lambda: sas_for(dev, now - 301),  # past the tenant's drift allowance (300 s)
        "other_devices_key": lambda: sas_for(dev, now + 60, key=keys.derive_key(other.master, b"mqtt-sas")),
        "other_devices_resource": lambda: sas_for(other, now + 60, key=keys.derive_key(dev.master, b"mqtt-sas")),
        "sas_lifetime_too_long": lambda: sas_for(dev, now + 400 * 86400),
        "malformed_sas": lambda: "SharedAccessSignature sr=x&sig=&se=1&se=2",
    }.get(attack, lambda: sas_for(dev, now + 60))()
    if attack == "wrong_mac":
        password = sas_for(dev, now + 60).rsplit("&se=", 1)[0] + f"&se={now + 61}"
    if attack == "suspended_device":
        r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
        assert r.status == 200
    if attack == "clientid_mismatch":
        clientid = other.hex
    if attack == "wrong_password":
        password = (await password_of(client, acme, dev))[:-3] + "abc"
    if attack == "unknown_device":
        user = clientid = "00" * 8
    assert (await emqx(client, user, password, clientid))["result"] == "deny"


async def test_token_password_is_accepted_and_checked(client, acme, clock):
    """`token:<device JWT>` through verifier.tokens.validate_device_token (issue #5)."""
    pytest.importorskip("verifier.tokens.core")
    from verifier.tokens.routes import ROUTES
    if not any(p == "/v1/auth/device/token" for _, p, _ in ROUTES):
        pytest.skip("the device token route (issue #5) is not there yet")
    from verifier.binauth.core import encode_request
    dev = acme.device(clock)
    req = encode_request(keys.derive_key(dev.master, keys.LABEL_BINAUTH), dev.id, int(clock()))
    r = await client.post("/v1/auth/device/token", json={"auth": req.hex()})
    assert r.status == 200, await r.text()
    token = (await r.json())["token"]
    assert (await emqx(client, dev.hex, "token:" + token))["result"] == "allow"
    assert (await emqx(client, dev.hex, "token:" + token[:-4] + "AAAA"))["result"] == "deny"
    other = acme.device(clock)
    assert (await emqx(client, other.hex, "token:" + token))["result"] == "deny"     # someone else's token
    r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
    assert (await emqx(client, dev.hex, "token:" + token))["result"] == "deny"


async def test_go_auth_user_acl_and_superuser(client, acme, clock):
    dev = acme.device(clock)
    acme.device(clock)   # a second device of the tenant exists
    body = {"username": dev.hex, "clientid": dev.hex, "password": sas_for(dev, int(clock()) + 60)}
    r = await client.post("/v1/mqtt/go-auth/user", json=body)
    assert r.status == 200 and await r.json() == {"ok": True}
    for topic, acc in ((dev.prefix + "/telemetry", 2), (dev.prefix + "/#", 4), (dev.prefix + "/cmd", 1)):
        r = await client.post("/v1/mqtt/go-auth/acl", json={"username": dev.hex, "clientid": dev.hex,
                                                            "topic": topic, "acc": acc})
        assert r.status == 200, topic
    r = await client.post("/v1/mqtt/go-auth/superuser", json={"username": dev.hex})
    assert r.status == 403


@pytest.mark.parametrize("topic", ["{other}/cmd", "{other}/#", "janua/{short}/#", "#", "janua/+/{dev}/x",
                                   "{prefix}x", "janua"])
async def test_go_auth_acl_prevents_reaching_other_topics(client, acme, clock, topic):
    dev, other = acme.device(clock), acme.device(clock)
    topic = topic.format(other=other.prefix, short=dev.prefix.split("/")[1], dev=dev.hex, prefix=dev.prefix)
    r = await client.post("/v1/mqtt/go-auth/acl", json={"username": dev.hex, "clientid": dev.hex,
                                                        "topic": topic, "acc": 2})
    assert r.status == 403 and (await r.json())["ok"] is False


@pytest.mark.parametrize("attack", ["expired_sas", "suspended_device", "clientid_mismatch"])
async def test_go_auth_user_denies(client, acme, clock, attack):
    dev = acme.device(clock)
    now = int(clock())
    body = {"username": dev.hex, "clientid": dev.hex, "password": sas_for(dev, now + 60)}
    if attack == "expired_sas":
        body["password"] = sas_for(dev, now - 3600)
    if attack == "clientid_mismatch":
        body["clientid"] = "ab" * 8
    if attack == "suspended_device":
        await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
    r = await client.post("/v1/mqtt/go-auth/user", json=body)
    assert r.status == 403


async def test_go_auth_acl_refuses_suspended_device(client, acme, clock):
    dev = acme.device(clock)
    await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
    r = await client.post("/v1/mqtt/go-auth/acl", json={"username": dev.hex, "clientid": dev.hex,
                                                        "topic": dev.prefix + "/x", "acc": 2})
    assert r.status == 403


def basic_header(user, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def test_http_basic_accepts_the_derived_secret(client, acme, clock):
    dev = acme.device(clock)
    r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, ma.basic_secret(dev.master)))
    assert r.status == 200 and await r.json() == {"device_id": dev.hex, "status": "active"}


@pytest.mark.parametrize("attack", ["wrong_secret", "other_devices_secret", "master_secret_itself",
                                    "suspended_device", "malformed", "missing"])
async def test_http_basic_refuses(client, acme, clock, attack):
    dev, other = acme.device(clock), acme.device(clock)
    secret = {"wrong_secret": "00" * 32, "other_devices_secret": ma.basic_secret(other.master),
              "master_secret_itself": dev.master.hex()}.get(attack, ma.basic_secret(dev.master))
    headers = basic_header(dev.hex, secret)
    if attack == "suspended_device":
        await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
    if attack == "malformed":
        headers = {"Authorization": "Basic !!!"}
    if attack == "missing":
        headers = {}
    r = await client.get("/v1/auth/device/basic", headers=headers)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


async def test_http_basic_locks_out_after_repeated_failures(client, acme, clock):
    dev = acme.device(clock)
    for _ in range(5):                                   # tenant policy lockout_failures = 5
        r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, "00" * 32))
        assert r.status == 401
    r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, ma.basic_secret(dev.master)))
    assert r.status == 401                               # locked out even with the right secret
    clock.now += 301
    r = await client.get("/v1/auth/device/basic", headers=basic_header(dev.hex, ma.basic_secret(dev.master)))
    assert r.status == 200
