"""Lossy links: a UDP proxy between a real DTLS client and the verifier drops, duplicates and reorders
datagrams in a fixed pattern in each direction; the handshake still completes within the clients'
timer budget and a CoAP POST /auth is answered. Also, in-process: a client flight whose Finished is
lost, then resent whole, still completes (the resent ChangeCipherSpec is not an unexpected message)."""

import asyncio

import pytest
from aiocoap import Code

from tests.dtls_verifier.conftest import run
from tests.dtls_verifier.peers import MbedTLSTimedClient, coap_request
from tests.dtls_verifier.rawclient import RawClient
from tests.dtls_verifier.test_interop import auth_rows, s_client
from verifier.dtls.server import DTLSServer, Established, PSKGrant

PSK = bytes(range(32))


class LossyProxy(asyncio.DatagramProtocol):
    """Forwards one client's datagrams to `target` and the replies back. In each direction, counting
    datagrams from 1: `drop` are dropped, `dup` are sent twice, and for each (a, b) in `swap` datagram a
    is held until b has been sent (or until `hold_s` passes, so that a lost b cannot stall it)."""

    def __init__(self, target, drop=(2,), dup=(3,), swap=((4, 5),), hold_s=1.5):
        self.target, self.drop, self.dup, self.hold_s = target, set(drop), set(dup), hold_s
        self.swap = dict(swap)
        self.count = {"up": 0, "down": 0}
        self.held = {}
        self.log = []                     # (direction, n, what happened)
        self.client = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if addr == self.target:
            direction, dest = "down", self.client
        else:
            self.client = addr
            direction, dest = "up", self.target
        if dest is None:
            return
        self.count[direction] += 1
        n = self.count[direction]
        if n in self.drop:
            self.log.append((direction, n, "drop"))
            return
        if n in self.swap:
            self.log.append((direction, n, "hold"))
            handle = asyncio.get_running_loop().call_later(self.hold_s, self._release, direction, n)
            self.held[(direction, self.swap[n])] = (data, dest, handle, n)
            return
        self.transport.sendto(data, dest)
        self.log.append((direction, n, "send"))
        if n in self.dup:
            self.transport.sendto(data, dest)
            self.log.append((direction, n, "dup"))
        if (direction, n) in self.held:
            self._release(direction, n, by=n)

    def _release(self, direction, n, by=None):
        key = (direction, by) if by is not None else next((k for k, v in self.held.items() if v[3] == n), None)
        item = self.held.pop(key, None)
        if item is not None:
            item[2].cancel()
            self.transport.sendto(item[0], item[1])
            self.log.append((direction, item[3], "late"))


@pytest.fixture
async def proxy(verifier):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: LossyProxy(("127.0.0.1", verifier.port)), local_addr=("127.0.0.1", 0))
    proto.port = transport.get_extra_info("sockname")[1]
    yield proto
    transport.close()


def _coap_over(port, dev):
    # RFC 6347 timers as Mbed TLS runs them: 1 s initial, doubling, 60 s cap; the test budget is 20 s
    client = MbedTLSTimedClient(port, dev.identity, dev.psk, budget_s=20).handshake()
    try:
        return client.request(Code.POST, "auth")
    finally:
        client.close()


async def test_mbedtls_handshake_and_coap_survive_drop_duplicate_and_reorder(verifier, device, proxy):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    reply = await asyncio.wait_for(asyncio.to_thread(_coap_over, proxy.port, device), 30)
    elapsed = loop.time() - t0
    assert reply.code == Code.CHANGED, reply
    assert auth_rows(verifier) == [("OK", device.hex)] and auth_rows(verifier, "coap.auth") == [("OK", device.hex)]
    # the pattern really hit the handshake in both directions
    hits = {(d, what) for d, _, what in proxy.log}
    assert {("up", "drop"), ("up", "dup"), ("down", "drop"), ("down", "dup")} <= hits, proxy.log
    for d in ("up", "down"):                 # 4 really went out after 5
        assert proxy.log.index((d, 5, "send")) < proxy.log.index((d, 4, "late")), proxy.log
    assert elapsed < 20


async def test_openssl_handshake_and_coap_survive_drop_duplicate_and_reorder(verifier, device, proxy):
    request = coap_request(Code.POST, "auth", payload=b"\n")
    rc, out, err = await run(s_client(proxy.port, device.identity, device.psk.hex()), stdin=request, timeout=30)
    assert rc == 0 and "Cipher is PSK-AES128-CCM8" in out, (err, proxy.log)
    assert auth_rows(verifier) == [("OK", device.hex)]
    assert auth_rows(verifier, "coap.auth") == [("OK", device.hex)]
    assert {("up", "drop"), ("down", "drop")} <= {(d, what) for d, _, what in proxy.log}, proxy.log


def test_resent_flight_after_a_lost_finished_completes_the_handshake():
    # a client that sends ClientKeyExchange, ChangeCipherSpec and Finished in separate datagrams, whose
    # Finished is lost: its timer resends the whole flight (CCS included) with fresh record numbers
    server = DTLSServer(lambda identity, addr, now: PSKGrant(PSK), now=0.0)
    c = RawClient(server, ("10.0.0.1", 5000), b"dev@t", PSK)
    c.hello()
    c.finish_items = None
    cke, ccs, fin = (c._rec(*item) for item in _f5_items(c))
    assert c.send(cke) == [] and c.send(ccs) == []          # the Finished datagram is lost
    replies = c.send(c.flight5())                           # resent: the CCS is a duplicate, not an error
    assert [type(e) for e in c.events] == [Established]
    assert server.session_count == 1 and replies


def _f5_items(c):
    """Build F5 on the RawClient without sending it (finish() would send it as one datagram)."""
    send, c.send = c.send, lambda datagram: []
    try:
        c.finish()
    finally:
        c.send = send
    c.rec_seq = [c.rec_seq[0] - 2, 0]                       # nothing of it went out: reuse the numbers
    return c.f5
