"""The asyncio UDP driver of the DTLS endpoint: datagrams in, the sans-IO core's replies out, events
handed to the registry side (audit) and to the CoAP resources. Nothing here parses or decides.

When the socket becomes readable the driver drains it (up to MAX_BATCH datagrams) and runs each through
the core. Replies that come with nothing to record (HelloVerifyRequest, the ServerHello flight) go out
at once; the others (a handshake's final flight, a refusal's alert, CoAP responses) wait until the
batch's audit rows and activations are committed in one transaction (DTLSAuth.flush), so nothing is
told to a peer before the record of it is durable. (An asyncio DatagramProtocol delivers one datagram
per event-loop iteration, which would make every commit a batch of one; see verifier/binauth/udp.py.)
"""

import asyncio
import logging

from verifier.dtls.auth import DTLSAuth
from verifier.dtls.coap import CoAPResources
from verifier.dtls.server import AppData, DTLSServer, Established, Refused
from verifier.binauth.udp import bind_udp

log = logging.getLogger("janua.verifier.dtls")

MAX_DATAGRAM = 2048
MAX_BATCH = 64           # bounds the time a datagram waits for its batch


class DTLSEndpoint:
    """Owns the socket; `.server` is the DTLSServer core, `.port` the bound port."""

    def __init__(self, server, auth, coap, clock, sock, loop):
        self.server, self.auth, self.coap, self._clock = server, auth, coap, clock
        self._sock, self._loop = sock, loop
        self.port = sock.getsockname()[1]
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self):
        recvfrom = self._sock.recvfrom
        receive = self.server.receive
        now = self._clock()
        held = []                # (datagram, addr) that wait for the batch's commit
        held_addrs = set()       # once one reply to an address waits, the later ones wait too (order)
        for _ in range(MAX_BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:         # e.g. ICMP port unreachable reported on the socket
                log.debug("dtls recv: %s", e)
                break
            try:
                replies, events = receive(data, addr, now)
                if events or addr in held_addrs:
                    held_addrs.add(addr)
                    for reply in replies:
                        held.append((reply, addr))
                    for ev in events:
                        self._event(ev, now, held)
                else:                    # nothing to record (HelloVerifyRequest, ServerHello flight): send now
                    for reply in replies:
                        self._send(reply, addr)
            except Exception:            # one bad datagram must not stop the endpoint
                log.exception("dtls %s: unexpected error", addr)
        try:
            self.auth.flush()            # returns at once when nothing is queued
        except Exception:
            log.exception("dtls: audit flush failed")
        for reply, addr in held:
            self._send(reply, addr)

    def _send(self, datagram, addr):
        try:
            self._sock.sendto(datagram, addr)
        except OSError as e:             # a full send buffer drops the reply; DTLS peers retransmit
            log.debug("dtls send to %s: %s", addr, e)

    def _event(self, ev, now, out):
        cls = type(ev)
        if cls is Established:
            self.auth.established(ev, now)
        elif cls is Refused:
            self.auth.refused(ev, now)
        elif cls is AppData:
            conn = self.server.session(ev.addr)
            if conn is None:
                return
            resp = self.coap.handle(conn.grant.context, ev.data, ev.addr, now)
            if resp is not None:
                out.append((self.server.seal(ev.addr, resp), ev.addr))

    def close(self):
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None


async def open_dtls(storage, sealer, core, clock, host, port, **limits):
    """Bind the DTLS endpoint; return the DTLSEndpoint (it has .port, .server and .close())."""
    loop = asyncio.get_running_loop()
    auth = DTLSAuth(storage, sealer, core)
    server = DTLSServer(auth.lookup, clock(), **limits)
    sock = await bind_udp(host, port)
    return DTLSEndpoint(server, auth, CoAPResources(auth), clock, sock, loop)
