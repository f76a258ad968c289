"""Health reports over MQTT (docs/health.md 2.3) against a real mosquitto running the generated config: a
device publishes its report on `<prefix>/health`, the verifier's status subscriber hands it to the health
ingest (via "mqtt"); a malformed report is counted and kept nowhere; the broker's ACLs keep another device
(certificate or password listener) off the topic."""

import asyncio
import time

from tests.mqtt_verifier.conftest import write_identity
from tests.mqtt_verifier.test_broker import issue, lifecycle, password_client, tls_client
from tests.mqtt_verifier.test_status import listening
from verifier.appkeys import HEALTH
from verifier.mqtt import status

# docs/vectors/health.json "full"
FULL = bytes.fromhex("017fffd5f8029cf201808054bda305030cbd02050b4f534572726f722031313005818040e8fb0305312e342e3201")


async def health(client, tenant, dev):
    r = await client.get(f"/v1/devices/{dev.hex}/health", headers=tenant.headers)
    assert r.status == 200
    return await r.json()


async def wait_health(client, tenant, dev, timeout=20.0):
    """The device's health document once a report was ingested, else None after `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        doc = await health(client, tenant, dev)
        if doc["received_at"] is not None:
            return doc
        await asyncio.sleep(0.1)
    return None


async def wait_metric(client, line, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = await (await client.get("/metrics")).text()
        if line in text:
            return True
        await asyncio.sleep(0.1)
    return False


async def cert_client(client, tenant, broker, dev, tmp_path):
    await listening(client.server.app)
    c = tls_client(broker, tenant, dev, write_identity(tmp_path / dev.hex, await issue(client, tenant, dev)))
    assert c.connect() == "ok", broker.mq.log[-2000:]
    return c


async def test_report_published_on_health_topic_is_ingested_via_mqtt(client, app, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    c = await cert_client(client, acme, broker, dev, tmp_path)
    try:
        await asyncio.to_thread(c.publish, dev.prefix + "/health", FULL)
        doc = await wait_health(client, acme, dev)
    finally:
        c.close()
    assert doc is not None, broker.mq.log[-2000:]
    assert doc["via"] == "mqtt"
    assert doc["received_at"] == int(clock())
    assert doc["resources"] == {"heap_free": 48213, "heap_min": 31004, "flash_free": 1376256}
    assert doc["network"]["rssi"] == -67 and doc["network"]["bytes_tx"] == 1048577
    assert doc["operational"]["reset_cause"] == "watchdog" and doc["app_version"] == "1.4.2"
    assert app[HEALTH].counts[("mqtt", "ok")] == 1


async def test_malformed_report_is_refused_and_counted(client, app, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    c = await cert_client(client, acme, broker, dev, tmp_path)
    try:
        await asyncio.to_thread(c.publish, dev.prefix + "/health", bytes.fromhex("010001"))  # heap_free cut short
        assert await wait_metric(client, 'janua_health_reports_total{result="malformed",via="mqtt"} 1.0')
    finally:
        c.close()
    doc = await health(client, acme, dev)
    assert (doc["received_at"], doc["via"], doc["bucket"]) == (None, None, "unknown")
    assert app[HEALTH].counts[("mqtt", "ok")] == 0


async def test_report_on_another_devices_health_topic_is_dropped_by_the_broker(client, app, acme, broker, clock,
                                                                               tmp_path):
    """a (certificate listener) and p (password listener, dynamic security) each publish on b's health topic,
    then on their own on the same connection: their own reports arrive, so b's forged ones would have too."""
    a, b, p = acme.device(clock), acme.device(clock), acme.device(clock)
    c = await cert_client(client, acme, broker, a, tmp_path)
    pc, _ = await password_client(client, acme, p, broker)
    assert pc.connect() == "ok"
    try:
        for cl, own in ((c, a), (pc, p)):
            await asyncio.to_thread(cl.publish, b.prefix + "/health", FULL)
            await asyncio.to_thread(cl.publish, own.prefix + "/health", FULL)
        assert (await wait_health(client, acme, a))["via"] == "mqtt"
        assert (await wait_health(client, acme, p))["via"] == "mqtt"
    finally:
        c.close()
        pc.close()
    assert (await health(client, acme, b))["received_at"] is None
    assert app[HEALTH].counts[("mqtt", "ok")] == 2


async def test_record_health_hands_only_an_active_device_of_the_topics_tenant_to_the_ingest(client, app, acme,
                                                                                           other, clock):
    """The subscriber's decision without a broker: the topic must name a device of its own tenant, and the
    device must be active (a session opened before a suspension keeps publishing)."""
    dev, foreign, suspended = acme.device(clock), other.device(clock), acme.device(clock)
    await lifecycle(client, acme, suspended, "suspend")
    now = int(clock())
    assert status.record_health(app, dev.prefix + "/health", FULL, now) == "ok"
    assert status.record_health(app, dev.prefix + "/health", b"\x02\x00\x00", now) == "version"
    wrong_tenant = foreign.prefix.rsplit("/", 1)[0] + "/" + dev.hex + "/health"
    assert status.record_health(app, wrong_tenant, FULL, now) == "unknown device"
    assert status.record_health(app, "janua/00000000/zz/health", FULL, now) == "unknown device"
    assert status.record_health(app, dev.prefix + "/health/x", FULL, now) == "not a health topic"
    assert status.record_health(app, suspended.prefix + "/health", FULL, now) == "suspended"
    assert app[HEALTH].counts[("mqtt", "ok")] == 1 and app[HEALTH].counts[("mqtt", "version")] == 1
