"""CoAP POST /telemetry with Content-Format 42 over real DTLS (docs/health.md 2.2)."""

import asyncio

from aiocoap import CON, Code, Message

from tests.dtls_verifier.conftest import clock, verifier  # noqa: F401 (fixtures)
from tests.dtls_verifier.peers import MbedTLSClient
from verifier.appkeys import HEALTH

FULL = bytes.fromhex("017fffd5f8029cf201808054bda305030cbd02050b4f534572726f722031313005818040e8fb0305312e342e3201")


def _telemetry(port, dev, payloads):
    client = MbedTLSClient(port, dev.identity, dev.psk).handshake()
    out = []
    try:
        for mid, (payload, fmt) in enumerate(payloads, 1):
            msg = Message(code=Code.POST, payload=payload)
            msg.mtype, msg.mid, msg.token = CON, mid, b"\x01\x02"
            msg.opt.uri_path = ("telemetry",)
            if fmt is not None:
                msg.opt.content_format = fmt
            out.append(client.exchange(msg.encode()))
    finally:
        client.close()
    return out


async def test_coap_health_report(verifier):  # noqa: F811
    dev = verifier.device(permissions=0b0001)
    ok, bad, app_own = await asyncio.to_thread(_telemetry, verifier.port, dev,
                                               [(FULL, 42), (bytes.fromhex("020000"), 42), (b"21.5", None)])
    assert ok.code == Code.CHANGED
    assert bad.code == Code.BAD_REQUEST and bad.payload == b"version"
    assert app_own.code == Code.CHANGED
    verifier.app[HEALTH].sync()         # written behind (docs/health.md 3): what a read route does first
    got = verifier.storage.get_health(dev.id)
    assert got["via"] == "coap" and got["fields"]["heap_free"] == 48213
