"""Refusals and abuse on real sockets: OpenSSL clients with an unknown identity, a wrong key or a
device that may not authenticate; hello floods; a replayed record through a recording UDP proxy."""

import asyncio
import os
import socket

import pytest
from aiocoap import Code

from tests.dtls_verifier.conftest import run
from tests.dtls_verifier.peers import MbedTLSClient
from tests.dtls_verifier.rawclient import client_hello
from tests.dtls_verifier.test_interop import auth_rows, s_client
from verifier.appkeys import DTLS
from verifier.registry import core as registry


async def test_unknown_identity_gets_unknown_psk_identity_alert(verifier, device):
    rc, out, err = await run(s_client(verifier.port, "0123456789abcdef@acme", device.psk.hex()))
    assert rc != 0 and "alert unknown psk identity" in err, err
    rc, out, err = await run(s_client(verifier.port, f"{device.hex}@other-tenant", device.psk.hex()))
    assert rc != 0 and "alert unknown psk identity" in err, err
    rows = [r for r in verifier.all_audit() if r["action"] == "dtls"]
    assert [(r["kind"], r["result"], r["tenant_id"]) for r in rows] == [("summary", "UNKNOWN_DEVICE", None)]
    assert rows[0]["reason"].startswith("2 refused from 1 source host(s)")
    assert verifier.audit(device) == verifier.audit(device)[-1:]   # only its provisioning row


async def test_wrong_key_fails_the_handshake(verifier, device):
    rc, out, err = await run(s_client(verifier.port, device.identity, "11" * 32))
    assert rc != 0 and "alert decrypt error" in err, err
    assert auth_rows(verifier) == [("SIGNATURE", device.hex)]
    assert verifier.dtls.session_count == 0 and verifier.dtls.half_open_count == 0


@pytest.mark.parametrize("change", [{"status": "suspended"}, {"status": "decommissioned"},
                                    {"compromised": True}, {"compromised": True, "quarantined": True}])
async def test_device_that_may_not_authenticate_is_refused(verifier, device, change):
    verifier.storage.update_device(verifier.tenant["id"], device.id, change)
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc != 0 and "alert access denied" in err, err
    assert auth_rows(verifier) == [("NOT_ACTIVE", device.hex)]


async def test_quarantined_device_reaches_only_ota_over_coap(verifier, device):
    """Issue #12: the handshake completes (the device can be repaired: /ota, /attest), but /auth and every
    other resource answer 4.03 "quarantined"; a release applies to the open session at once."""
    registry.set_quarantined(verifier.storage, verifier.tenant["id"], device.id, True, "test", "t", verifier.clock())

    def session():
        client = MbedTLSClient(verifier.port, device.identity, device.psk).handshake()
        try:
            got = [client.request(code, path, mid=i) for i, (code, path) in enumerate((
                (Code.POST, "auth"), (Code.GET, "ota"), (Code.POST, "telemetry"), (Code.GET, "config"),
                (Code.GET, "commands"), (Code.GET, ".well-known/core")), 1)]
            registry.set_quarantined(verifier.storage, verifier.tenant["id"], device.id, False, None, "t",
                                     verifier.clock())
            return got, client.request(Code.POST, "auth", mid=9)
        finally:
            client.close()
    got, after = await asyncio.to_thread(session)
    assert [(m.code, m.payload) for m in got] == [
        (Code.FORBIDDEN, b"quarantined"), (Code.CONTENT, b'{"available":false}'),
        (Code.FORBIDDEN, b"quarantined"), (Code.FORBIDDEN, b"quarantined"), (Code.FORBIDDEN, b"quarantined"),
        (Code.FORBIDDEN, b"quarantined")]
    assert after.code == Code.CHANGED
    assert auth_rows(verifier) == [("OK", device.hex)]
    assert auth_rows(verifier, "coap.auth") == [("NOT_ACTIVE", device.hex), ("OK", device.hex)]
    reasons = [r["reason"] for r in verifier.all_audit() if r["action"] in ("dtls", "coap.auth")]
    assert reasons[:2] == ["handshake, suite C0A8, quarantined", "quarantined"]


async def test_expired_psk_is_refused(verifier, device, clock):
    clock.advance(366 * 86400)
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc != 0 and "alert access denied" in err, err
    assert [r["reason"] for r in verifier.all_audit() if r["action"] == "dtls"] == ["PSK expired"]


async def test_suspension_applies_to_an_open_session(verifier, device):
    def session():
        client = MbedTLSClient(verifier.port, device.identity, device.psk).handshake()
        try:
            first = client.request(Code.POST, "auth")
            verifier.storage.update_device(verifier.tenant["id"], device.id, {"status": "suspended"})
            return first, client.request(Code.POST, "auth", mid=2)
        finally:
            client.close()
    first, second = await asyncio.to_thread(session)
    assert first.code == Code.CHANGED and second.code == Code.FORBIDDEN
    assert auth_rows(verifier, "coap.auth") == [("OK", device.hex), ("NOT_ACTIVE", device.hex)]


async def test_lockout_after_repeated_wrong_keys(verifier, device):
    for _ in range(5):                        # the tenant's default lockout_failures
        await run(s_client(verifier.port, device.identity, "22" * 32))
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc != 0 and "alert decrypt error" in err   # even the right key, and no hint why
    assert auth_rows(verifier)[-1] == ("LOCKED_OUT", device.hex)


async def test_hello_flood_without_cookies_creates_no_state(verifier):
    def flood():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for i in range(500):
                s.sendto(client_hello(os.urandom(32), rec_seq=i), ("127.0.0.1", verifier.port))
                s.recv(2048)                  # a HelloVerifyRequest for each
    await asyncio.to_thread(flood)
    assert verifier.dtls.half_open_count == 0 and verifier.dtls.session_count == 0


class RecordingProxy(asyncio.DatagramProtocol):
    """Client <-> proxy <-> verifier; keeps every client datagram so a test can replay one."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.from_client, self.to_client = [], 0
        self.client = None

    async def start(self):
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.up, _ = await loop.create_datagram_endpoint(lambda: _Upstream(self),
                                                         remote_addr=("127.0.0.1", self.upstream_port))
        return self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data, addr):
        self.client = addr
        self.from_client.append(data)
        self.up.sendto(data)

    def close(self):
        self.transport.close()
        self.up.close()


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, proxy):
        self.proxy = proxy

    def datagram_received(self, data, addr):
        self.proxy.to_client += 1
        self.proxy.transport.sendto(data, self.proxy.client)


async def test_replayed_application_record_is_dropped(verifier, device):
    proxy = RecordingProxy(verifier.port)
    port = await proxy.start()
    try:
        client = await asyncio.to_thread(lambda: MbedTLSClient(port, device.identity, device.psk).handshake())
        reply = await asyncio.to_thread(client.request, Code.POST, "auth")
        assert reply.code == Code.CHANGED
        seen = proxy.to_client
        proxy.up.sendto(proxy.from_client[-1])             # the POST /auth record, again
        proxy.up.sendto(proxy.from_client[-1])
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert proxy.to_client == seen
        assert auth_rows(verifier, "coap.auth") == [("OK", device.hex)]
        client.close()
    finally:
        proxy.close()


def test_made_up_identities_leave_no_cached_state(verifier, device):
    auth = verifier.app[DTLS].auth
    for i in range(500):
        assert auth.lookup(f"{i:016x}@acme".encode(), ("192.0.2.1", i), verifier.clock()) is None
        assert auth.lookup(f"{device.hex}@other-{i}".encode(), ("192.0.2.1", i), verifier.clock()) is None
    assert auth.cached_count == 0


def test_the_psk_cache_is_bounded(verifier):
    auth = verifier.app[DTLS].auth
    auth.MAX_CACHED = 3
    devices = [verifier.device() for _ in range(5)]
    for dev in devices:
        assert auth.lookup(dev.identity.encode(), ("192.0.2.1", 1), verifier.clock()).key == dev.psk
    assert auth.cached_count == 3
    assert auth.lookup(devices[0].identity.encode(), ("192.0.2.1", 1), verifier.clock()).key == devices[0].psk
