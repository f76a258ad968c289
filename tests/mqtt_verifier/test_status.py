"""The TLS password listener and last-seen on the certificate path, against a real mosquitto running the config
the verifier generates: the verifier's status subscriber (verifier/mqtt/status.py) sees a device's `status`
message and updates its last-seen; forged status messages, plain TCP and other tenants are refused."""

import asyncio
import time

from tests.mqtt_verifier.conftest import Client, Mosquitto, write_identity
from tests.mqtt_verifier.test_broker import issue, tls_client
from verifier.appkeys import STORAGE
from verifier.mqtt.routes import MQTT


async def device_view(client, tenant, dev):
    r = await client.get(f"/v1/devices/{dev.hex}", headers=tenant.headers)
    assert r.status == 200
    return await r.json()


async def wait_seen(client, tenant, dev, timeout=20.0):
    """The device's last_seen_at once the verifier recorded it, else None after `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen = (await device_view(client, tenant, dev))["last_seen_at"]
        if seen is not None:
            return seen
        await asyncio.sleep(0.1)
    return None


async def listening(app, after=0, timeout=40.0):
    """Wait until the verifier's status subscriber has its subscription (more than `after` SUBACKs): status
    messages are not retained, so only those sent from then on are heard. paho's reconnect delay is <= 30 s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sub = app[MQTT].status
        if sub is not None and sub.subscribed > after:
            return sub.subscribed
        await asyncio.sleep(0.05)
    raise AssertionError("the status subscriber did not subscribe")


async def online(client, tenant, broker, dev, tmp_path, topic=None):
    """Connect `dev` with a fresh certificate and publish its status message (QoS 1: acknowledged)."""
    await listening(client.server.app)
    c = tls_client(broker, tenant, dev, write_identity(tmp_path / dev.hex, await issue(client, tenant, dev)))
    assert c.connect() == "ok", broker.mq.log[-2000:]
    await asyncio.to_thread(c.publish, topic or dev.prefix + "/status", b"online")
    return c


async def test_certificate_login_updates_last_seen_and_audits_it(client, app, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    assert (await device_view(client, acme, dev))["last_seen_at"] is None
    c = await online(client, acme, broker, dev, tmp_path)
    try:
        assert await wait_seen(client, acme, dev) == int(clock()), broker.mq.log[-2000:]
    finally:
        c.close()
    audit = [a for a in app[STORAGE].list_audit(acme.id, dev.hex) if a["action"] == "mqtt.online"]
    assert [(a["kind"], a["transport"], a["result"]) for a in audit] == [("auth", "mqtt", "ok")]


async def test_status_on_another_devices_topic_does_not_mark_it_seen(client, acme, broker, clock, tmp_path):
    """The broker's ACL drops a's publish on b's status topic; a's own status (sent after it on the same
    connection) is recorded, so b's forged one would have been recorded first."""
    a, b = acme.device(clock), acme.device(clock)
    c = await online(client, acme, broker, a, tmp_path, topic=b.prefix + "/status")
    await asyncio.to_thread(c.publish, a.prefix + "/status", b"online")
    c.close()
    assert await wait_seen(client, acme, a) is not None
    assert (await device_view(client, acme, b))["last_seen_at"] is None


async def test_subscriber_reconnects_after_the_broker_restarts(client, app, acme, broker, clock, tmp_path):
    first, second = acme.device(clock), acme.device(clock)
    (await online(client, acme, broker, first, tmp_path)).close()
    assert await wait_seen(client, acme, first) is not None
    subs = app[MQTT].status.subscribed
    broker.mq.stop()
    broker.mq = Mosquitto(tmp_path / "mq2", conf=broker.dir).start()
    await listening(app, after=subs)
    (await online(client, acme, broker, second, tmp_path)).close()
    assert await wait_seen(client, acme, second) is not None


async def test_password_listener_refuses_plain_tcp(client, acme, broker, clock):
    r = await client.post(f"/v1/devices/{acme.device(clock).hex}/mqtt-password", headers=acme.headers)
    doc = await r.json()
    plain = Client(doc["client_id"], broker.password_port, username=doc["username"], password=doc["password"])
    assert plain.connect().startswith("refused")
    tls = Client(doc["client_id"], broker.password_port, ca=broker.ca_file(acme), username=doc["username"],
                 password=doc["password"])
    assert tls.connect() == "ok"
    tls.close()


async def test_password_port_is_given_only_to_the_tenant_whose_certificate_the_listener_shows(
        client, acme, other, broker, clock):
    for tenant, expected in ((acme, broker.password_port), (other, None)):
        ca = await (await client.get("/v1/ca", headers=tenant.headers)).json()
        assert ca["broker"]["password_port"] == expected
        r = await client.post(f"/v1/devices/{tenant.device(clock).hex}/mqtt-password", headers=tenant.headers)
        assert (await r.json())["broker"]["port"] == expected
