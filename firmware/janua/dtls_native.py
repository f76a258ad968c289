"""The firmware's native DTLS-PSK client (mbedTLS through `tls`), behind the same channel API.

`available()` probes for DTLS client contexts with the PSK attributes (MicroPython 1.29+);
`connect(sock, ...)` runs the handshake on a connected UDP socket (mbedTLS answers the
HelloVerifyRequest itself; a failed first attempt is retried) and returns a channel with
send/recv/close. The suites are mbedTLS's (GCM/CBC in stock builds, no CCM). Used by
dtls_udp.connect(prefer_native=True); the pure path does not load this module.
"""

import time
from janua import DTLSError


def _left(start, ms):
    return ms - time.ticks_diff(time.ticks_ms(), start)


class NativeChannel:
    """The firmware's mbedTLS DTLS session, with the same three methods."""

    def __init__(self, sock, tsock, mtu):
        import select
        self._s = sock
        self._t = tsock
        self._mtu = mtu
        tsock.setblocking(False)  # read(n) blocks until n bytes; recv on a polled socket does not
        self._p = select.poll()
        self._p.register(sock, select.POLLIN)

    def send(self, data):
        self._t.write(data)

    def recv(self, timeout=None):
        start = time.ticks_ms()
        ms = int(timeout * 1000) if timeout is not None else 1 << 29
        while True:
            left = _left(start, ms)
            if left <= 0 or not self._p.poll(left):
                return None
            try:
                d = self._t.recv(self._mtu)
            except OSError:
                continue  # a record that carried no data (or EAGAIN): keep waiting
            if d is not None:
                return d  # b"" once the peer has closed

    def close(self):
        try:
            self._t.close()  # sends close_notify
        except OSError:
            pass
        self._s.close()


def available():
    """True when this firmware's `tls` has DTLS client contexts with PSK attributes."""
    try:
        import tls
        ctx = tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT)
        return hasattr(ctx, "psk_identity") and hasattr(ctx, "psk_key")
    except (ImportError, AttributeError, OSError, ValueError):
        return False


def connect(sock, identity, psk, mtu, budget):
    import tls
    ctx = tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT)
    ctx.verify_mode = tls.CERT_NONE
    ctx.psk_identity = identity
    ctx.psk_key = psk
    sock.settimeout(budget)
    for _ in range(3):
        try:
            return NativeChannel(sock, ctx.wrap_socket(sock), mtu)
        except OSError as e:
            err = e  # HELLO_VERIFY_REQUIRED on some builds: try again
    raise DTLSError("native DTLS handshake failed: %s" % (err,))
