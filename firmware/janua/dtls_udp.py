"""DTLS-PSK over UDP: the thin driver around dtls.DTLSClient, or the firmware's native `tls`.

`connect()` returns a channel with send(bytes), recv(timeout) and close(). The pure path runs the
sans-IO client with the retransmission timer of RFC 6347 section 4.2.4.1: the whole last flight
is resent when the timer fires, the timer doubles up to `max_timeout` and returns to `initial`
after each new flight, and the handshake gives up (DTLSError) after `budget` seconds. RFC 7925
section 11 suggests initial = 9 s on constrained links (the default); tests pass small values.
With prefer_native=True and a firmware whose `tls` has DTLS and PSK, mbedTLS does the work
instead (dtls_native.py; GCM/CBC suites: the server must offer one). It does no crypto of its own.
"""

import socket
import time
from janua import DTLSError, health_c
from janua import dtls as _d

_ECONNREFUSED = 111


def _ms():
    return time.ticks_ms()


def _left(start, ms):
    return ms - time.ticks_diff(_ms(), start)


class DTLSChannel:
    """A pure-Python DTLS session on a connected UDP socket."""

    def __init__(self, sock, client, mtu):
        self._s = sock
        self.client = client
        self._mtu = mtu

    def _out(self, d):
        self._s.send(d)
        health_c[5] += len(d)

    def _read(self, ms):
        # One datagram within ms milliseconds, or None.
        if ms <= 0:
            return None
        self._s.settimeout(ms / 1000)
        try:
            # (socket.readinto has stream semantics: it waits to fill the buffer, so recv it is)
            d = self._s.recv(self._mtu)
            health_c[6] += len(d)
            return d
        except OSError as e:
            if e.args and e.args[0] == _ECONNREFUSED:
                return b""  # ICMP port unreachable: the server is not (yet) there
            return None

    def handshake(self, initial, max_timeout, budget):
        c = self.client
        start = _ms()
        total = int(budget * 1000)
        wait = int(initial * 1000)
        self._out(c.start())
        flight = c.flights
        t0 = _ms()
        while c.state < _d.OPEN:
            d = self._read(min(_left(t0, wait), _left(start, total)))
            if d is None:
                if _left(start, total) <= 0:
                    raise DTLSError("handshake timed out")
                wait = min(wait * 2, int(max_timeout * 1000))
                self._out(c.retransmit())
                t0 = _ms()
                continue
            out = c.receive(d) if d else None
            if out:
                self._out(out)
            if c.flights != flight:  # a new flight: the timer starts again from `initial`
                flight = c.flights
                wait = int(initial * 1000)
                t0 = _ms()
        if c.state != _d.OPEN:
            raise DTLSError("handshake failed")

    def send(self, data):
        self._out(self.client.send(data))

    def recv(self, timeout=None):
        """The next application datagram; None on timeout, b"" once the peer has closed."""
        c = self.client
        start = _ms()
        ms = int(timeout * 1000) if timeout is not None else 1 << 29
        while not c.inbox:
            if c.state != _d.OPEN:
                return b""
            d = self._read(_left(start, ms))
            if d is None:
                return None
            if d:
                c.receive(d)
        return c.inbox.pop(0)

    def close(self):
        try:
            a = self.client.close()
            if a:
                self._out(a)
        except OSError:
            pass
        self._s.close()


def connect(host, port, identity, psk, prefer_native=False, initial=9.0, max_timeout=60.0,
            budget=150.0, rand=None, ems=True, mtu=1280):
    """A DTLS-PSK channel to host:port (identity and psk are bytes). Raises DTLSError."""
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    except OSError as e:
        raise DTLSError("cannot resolve %s: %s" % (host, e))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(addr)  # the kernel drops datagrams from other sources
        if prefer_native:
            from janua import dtls_native as _n  # loaded only when asked for
            if _n.available():
                return _n.connect(s, identity, psk, mtu, budget)
        ch = DTLSChannel(s, _d.DTLSClient(identity, psk, rand, ems), mtu)
        ch.handshake(initial, max_timeout, budget)
        return ch
    except BaseException:
        s.close()
        raise
