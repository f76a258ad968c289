"""janua.httpreq.call() for the one big answer (the chain top-up, ~7 KB): the JSON is parsed as it
arrives, json.load through a 128-byte buffer, so it needs no block of its size in one piece, which a
fragmented heap (LittleFS's small allocations at boot) may not have. Without io.IOBase it falls back to
httpreq.call. Kept out of janua.httpreq so that the other calls' path does not grow."""

import json
from janua import TransportError


def load(resp):
    """The JSON document of HTTPBody `resp` (ValueError if it is not JSON), or None without io.IOBase."""
    try:
        from io import IOBase
    except ImportError:
        return None

    class _Reader(IOBase):
        def __init__(self):
            self.buf = bytearray(128)
            self.at = self.n = 0

        def readinto(self, out):
            if self.at == self.n:
                if not resp.left:
                    return 0
                self.n = resp.readinto(self.buf)
                self.at = 0
            k = min(len(out), self.n - self.at)
            out[:k] = memoryview(self.buf)[self.at:self.at + k]
            self.at += k
            return k
    return json.load(_Reader())


def call(host, port, method, path, doc=None, bearer=None, cap=2048, timeout=10.0, tls=None):
    """As janua.httpreq.call, the body parsed as it arrives."""
    from janua import httpreq
    try:
        from io import IOBase  # noqa: F401 (probed: the stream parse needs it)
    except ImportError:
        return httpreq.call(host, port, method, path, doc, bearer, cap, timeout, tls)
    body = json.dumps(doc).encode() if doc is not None else None
    status, resp = httpreq.request(host, port, method, path, body, timeout,
                                   "Authorization: %s\r\n" % bearer if bearer else "", tls=tls)
    body = None
    try:
        if not resp.left:
            return status, None
        if resp.left > cap:
            raise TransportError("http body over %d bytes" % cap)
        try:
            return status, load(resp)
        except ValueError:
            raise TransportError("%s: http %d, not JSON" % (path, status))
    finally:
        resp.close()
