"""The asyncio UDP driver of the DTLS endpoint: datagrams in, the sans-IO core's replies out, events
handed to the registry side (audit) and to the CoAP resources. Nothing here parses or decides.
"""

import asyncio
import logging
import socket

from verifier.dtls.auth import DTLSAuth
from verifier.dtls.coap import CoAPResources
from verifier.dtls.server import AppData, DTLSServer, Established, Refused

log = logging.getLogger("janua.verifier.dtls")

MAX_DATAGRAM = 2048


class DTLSEndpoint(asyncio.DatagramProtocol):
    """Owns the socket; `.server` is the DTLSServer core, `.port` the bound port."""

    def __init__(self, server, auth, coap, clock):
        self.server, self.auth, self.coap, self._clock = server, auth, coap, clock
        self.transport = None
        self.port = 0

    def connection_made(self, transport):
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data, addr):
        now = self._clock()
        try:
            replies, events = self.server.receive(data[:MAX_DATAGRAM], addr, now)
            for reply in replies:
                self.transport.sendto(reply, addr)
            for ev in events:
                self._event(ev, now)
        except Exception:           # one bad datagram must not stop the endpoint
            log.exception("dtls %s: unexpected error", addr)

    def _event(self, ev, now):
        if isinstance(ev, Established):
            self.auth.established(ev, now)
        elif isinstance(ev, Refused):
            self.auth.refused(ev, now)
        elif isinstance(ev, AppData):
            conn = self.server.session(ev.addr)
            if conn is None:
                return
            resp = self.coap.handle(conn.grant.context, ev.data, ev.addr, now)
            if resp is not None:
                self.transport.sendto(self.server.seal(ev.addr, resp), ev.addr)

    def error_received(self, exc):
        log.debug("dtls: %s", exc)

    def close(self):
        if self.transport is not None:
            self.transport.close()


async def open_dtls(storage, sealer, core, clock, host, port, **limits):
    """Bind the DTLS endpoint; return the DTLSEndpoint (it has .port, .server and .close())."""
    loop = asyncio.get_running_loop()
    auth = DTLSAuth(storage, sealer, core)
    server = DTLSServer(auth.lookup, clock(), **limits)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: DTLSEndpoint(server, auth, CoAPResources(auth), clock), local_addr=addr, family=family)
    return endpoint
