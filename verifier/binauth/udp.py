"""The UDP driver of binary auth: one request per datagram, one reply datagram back (section 3.5).

When the socket becomes readable, the driver drains it (up to MAX_BATCH datagrams) and hands the
whole batch to verifier.binauth.batch, which decides, commits once, and only then sends the replies. (An
asyncio DatagramProtocol delivers one datagram per event-loop iteration, which would make every
group commit a batch of one.) Nothing here parses or decides anything.
"""

import asyncio
import logging
import socket

log = logging.getLogger("janua.verifier.udp")

MAX_BATCH = 64        # bounds the time a datagram waits for its batch (p99 latency)
MAX_DATAGRAM = 2048      # anything longer is truncated by recvfrom and answered MALFORMED
RCVBUF = 4 * 1024 * 1024


class BinAuthUDP:
    def __init__(self, batcher, sock, loop):
        self._batcher = batcher
        self._sock = sock
        self._loop = loop
        self.port = sock.getsockname()[1]
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self):
        recvfrom = self._sock.recvfrom
        batch = []
        for _ in range(MAX_BATCH):
            try:
                batch.append(recvfrom(MAX_DATAGRAM))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:       # e.g. ICMP port unreachable reported on the socket
                log.debug("udp recv: %s", e)
                break
        if batch:
            self._batcher.process_udp(batch, self)

    def sendto(self, reply, addr):
        try:
            self._sock.sendto(reply, addr)
        except OSError as e:           # a full send buffer drops the reply; UDP clients retry
            log.debug("udp send to %s: %s", addr, e)

    def close(self):
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


async def open_udp(batcher, host, port):
    """Bind the endpoint; return the driver (it has .port and .close())."""
    sock = await bind_udp(host, port)
    return BinAuthUDP(batcher, sock, asyncio.get_running_loop())


async def bind_udp(host, port):
    """A bound, non-blocking UDP socket with a large receive buffer (binary auth and DTLS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        except OSError:
            pass
        sock.bind(addr)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
