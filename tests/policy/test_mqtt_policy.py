"""MQTT under device policies (docs/policies.md "MQTT"): the broker's HTTP authentication refuses a method whose
protocol the policy does not allow (mqtt_password for passwords and mqtt-sas, token for `token:` passwords), and the
ACLs follow access.mqtt_topics (EMQX's rule list, go-auth's per-topic check). Expected rules are written out."""

import pytest

from tests.mqtt_verifier.conftest import Tenant as MQTTTenant, clock, client, config  # noqa: F401 (fixtures)
from tests.mqtt_verifier.test_http_auth import emqx, sas_for
from verifier.appkeys import STORAGE


@pytest.fixture
def acme(client, clock):
    return MQTTTenant(client.app, "acme", clock)


async def _put(client, tenant, scope, key, doc):
    r = await client.put(f"/v1/policies/{scope}/{key}", json=doc, headers=tenant.headers)
    assert r.status in (200, 201), await r.text()


async def test_a_policy_without_mqtt_password_denies_sas_and_passwords(client, acme, clock):
    dev = acme.device(clock)
    await _put(client, acme, "device", dev.hex, {"auth": {"protocols": ["mqtt_cert", "token"]}})
    assert (await emqx(client, dev.hex, sas_for(dev, int(clock()) + 3600)))["result"] == "deny"
    rows = client.server.app[STORAGE].list_audit(acme.id, dev.hex, limit=1)
    assert (rows[0]["action"], rows[0]["reason"]) == ("mqtt.connect", "policy: protocol mqtt_password not allowed")
    body = {"username": dev.hex, "clientid": dev.hex, "password": sas_for(dev, int(clock()) + 60)}
    r = await client.post("/v1/mqtt/go-auth/user", json=body)
    assert r.status == 403
    await _put(client, acme, "device", dev.hex, {"auth": {"protocols": ["mqtt_password"]}})
    assert (await emqx(client, dev.hex, sas_for(dev, int(clock()) + 3600)))["result"] == "allow"


async def test_a_token_password_needs_the_token_protocol(client, acme, clock):
    dev = acme.device(clock)
    from tests.support import AuthDevice
    r = await client.post("/v1/auth/device/token", json={"auth": AuthDevice(dev.hex, dev.master.hex(), clock).auth()})
    token = (await r.json())["token"]
    await _put(client, acme, "device", dev.hex, {"auth": {"protocols": ["mqtt_password"]}})
    assert (await emqx(client, dev.hex, "token:" + token))["result"] == "deny"
    rows = client.server.app[STORAGE].list_audit(acme.id, dev.hex, limit=1)
    assert rows[0]["reason"] == "policy: protocol token not allowed"


async def test_emqx_acl_follows_the_policy_topics(client, acme, clock):
    dev = acme.device(clock)
    await _put(client, acme, "group", "meters", {"access": {"mqtt_topics": {"publish": ["telemetry/#", "status"],
                                                                            "subscribe": ["cmd/+"]}}})
    r = await client.patch(f"/v1/devices/{dev.hex}", json={"metadata": {"group": "meters"}}, headers=acme.headers)
    assert r.status == 200
    doc = await emqx(client, dev.hex, sas_for(dev, int(clock()) + 3600))
    assert doc["acl"] == [
        {"permission": "allow", "action": "publish", "topic": dev.prefix + "/telemetry/#"},
        {"permission": "allow", "action": "publish", "topic": dev.prefix + "/status"},
        {"permission": "allow", "action": "subscribe", "topic": dev.prefix + "/cmd/+"},
        {"permission": "deny", "action": "all", "topic": "#"}]


@pytest.mark.parametrize("suffix, acc, ok", [
    ("/telemetry/temp", 2, True), ("/telemetry", 2, True), ("/status", 2, True), ("/status/x", 2, False),
    ("/cmd/reboot", 1, True), ("/cmd/reboot", 2, False), ("/cmd/+", 4, True), ("/cmd/#", 4, False),
    ("/telemetry/temp", 4, False), ("/telemetry/temp", 3, False), ("", 2, False), ("/#", 4, False)])
async def test_go_auth_acl_follows_the_policy_topics(client, acme, clock, suffix, acc, ok):
    dev = acme.device(clock)
    await _put(client, acme, "device", dev.hex, {"access": {"mqtt_topics": {"publish": ["telemetry/#", "status"],
                                                                            "subscribe": ["cmd/+"]}}})
    r = await client.post("/v1/mqtt/go-auth/acl", json={"username": dev.hex, "clientid": dev.hex,
                                                        "topic": dev.prefix + suffix, "acc": acc})
    assert (r.status == 200) is ok


# go-auth's ACL request does not say how the client authenticated (a certificate client reaches only this hook), so
# the ACL check refuses what no MQTT method may do: a trust or attestation refusal, or a policy without any of
# mqtt_cert, mqtt_password, token (docs/policies.md 4). A new device's trust level is 50.
@pytest.mark.parametrize("auth, ok", [
    ({}, True),
    ({"protocols": ["mqtt_cert"]}, True),
    ({"protocols": ["binauth_udp", "token"]}, True),
    ({"protocols": ["binauth_udp", "dtls"]}, False),
    ({"protocols": ["mqtt_cert", "mqtt_password"], "credential_types": ["symmetric"]}, False),
    ({"min_trust_level": 50}, True),
    ({"min_trust_level": 51}, False),
    ({"attestation": "affirming"}, False),
], ids=["none", "cert_only", "token", "no_mqtt", "no_mqtt_credential", "trust_met", "trust_below", "attestation"])
async def test_go_auth_acl_refuses_what_no_mqtt_method_may_do(client, acme, clock, auth, ok):
    dev = acme.device(clock)
    await _put(client, acme, "device", dev.hex, {"auth": auth})
    r = await client.post("/v1/mqtt/go-auth/acl", json={"username": dev.hex, "clientid": dev.hex,
                                                        "topic": dev.prefix + "/telemetry", "acc": 2})
    assert r.status == (200 if ok else 403)
