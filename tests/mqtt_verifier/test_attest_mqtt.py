"""Board attestation over MQTT (docs/attestation.md 2.3) against a real mosquitto with the generated
config: a device that comes online gets its challenge on `<prefix>/cmd`, publishes the evidence on
`<prefix>/attest` and gets the answer (with the EAR) on `<prefix>/attest/result`; a replay is answered
stale_nonce; evidence naming another device on this device's topic is refused."""

import asyncio
import json

from tests.mqtt_verifier.conftest import write_identity
from tests.mqtt_verifier.test_broker import issue, tls_client
from tests.mqtt_verifier.test_status import listening
from verifier import keys
from verifier.appkeys import STORAGE
from verifier.attest import evidence


async def test_attestation_over_mqtt(client, app, acme, broker, clock, tmp_path):
    dev, other = acme.device(clock), acme.device(clock)
    await listening(client.server.app)
    c = tls_client(broker, acme, dev, write_identity(tmp_path / dev.hex, await issue(client, acme, dev)))
    assert c.connect() == "ok", broker.mq.log[-2000:]
    try:
        assert await asyncio.to_thread(c.subscribe, dev.prefix + "/cmd") == [1]
        assert await asyncio.to_thread(c.subscribe, dev.prefix + "/attest/result") == [1]
        await asyncio.to_thread(c.publish, dev.prefix + "/status", b"online")
        topic, payload = await asyncio.to_thread(c.receive, 20.0)
        cmd = json.loads(payload)
        assert (topic, cmd["cmd"], cmd["expires_at"]) == (dev.prefix + "/cmd", "attest", int(clock()) + 300)
        k = keys.derive_key(dev.master, b"attest")
        data = evidence.encode(k, dev.id, bytes.fromhex(cmd["nonce"]), 0, micropython="1.24.1", board="esp32",
                               app=(1, 0, "1.0.0"), files=[("main.py", 3, "ab" * 32)])
        foreign = evidence.encode(keys.derive_key(other.master, b"attest"), other.id, bytes.fromhex(cmd["nonce"]), 0)
        await asyncio.to_thread(c.publish, dev.prefix + "/attest", foreign)
        topic, payload = await asyncio.to_thread(c.receive, 20.0)
        assert (topic, json.loads(payload)) == (dev.prefix + "/attest/result", {"error": "unknown_device"})
        await asyncio.to_thread(c.publish, dev.prefix + "/attest", data)
        topic, payload = await asyncio.to_thread(c.receive, 20.0)
        answer = json.loads(payload)
        assert topic == dev.prefix + "/attest/result"
        assert (answer["status"], answer["trust_level"], answer["quarantined"]) == ("warning", 40, False)
        await asyncio.to_thread(c.publish, dev.prefix + "/attest", data)
        topic, payload = await asyncio.to_thread(c.receive, 20.0)
        assert json.loads(payload) == {"error": "stale_nonce"}
    finally:
        c.close()
    rows = [(a["action"], a["transport"], a["result"]) for a in app[STORAGE].list_audit(acme.id, dev.hex)]
    assert ("DEVICE_ATTESTATION", "mqtt", "warning") in rows
