"""HTTP/1.1 requests for the device's calls to the verifier other than binary auth: OTA check, report
and downloads (otaclient), device tokens and chain sync (token, chain, chainsync).

`request()` sends one request and returns (status, HTTPBody): a body stream that stops at
Content-Length, so a download can go straight through one preallocated buffer. `call()` is the JSON
form: the body is read into one capped bytearray and parsed from it (no second copy on the heap).
One request per connection (Connection: close), Content-Length bodies only (chunked is refused),
a capped header block, HTTPS with a janua.https context, no redirects. janua.http (binary auth over HTTP) stays separate so
the boot path does not load this.
"""

import json
import socket
from micropython import const
from janua import TransportError
from janua.http import parse_head

_MAX_HEAD = const(1024)       # status line + headers
_MAX_JSON = const(2048)       # a check/report/token answer is a few hundred bytes


class HTTPBody:
    """A response body: readinto() stops at Content-Length; bytes read with the headers come first."""

    def __init__(self, sock, early, length):
        self.sock = sock
        self.early = early
        self.left = length

    def readinto(self, buf):
        if not self.left:
            return 0
        mv = memoryview(buf)
        want = len(mv) if len(mv) < self.left else self.left
        if self.early:
            n = len(self.early) if len(self.early) < want else want
            mv[:n] = self.early[:n]
            self.early = self.early[n:]
        else:
            n = self.sock.readinto(mv[:want]) or 0
            if not n:
                raise TransportError("connection closed %d bytes early" % self.left)
        self.left -= n
        return n

    def read_all(self, cap):
        """The whole (rest of the) body as one bytearray; TransportError if it is over `cap`."""
        if self.left > cap:
            raise TransportError("http body over %d bytes" % cap)
        out = bytearray(self.left)
        mv = memoryview(out)
        got = 0
        while got < len(out):
            got += self.readinto(mv[got:])
        return out

    def close(self):
        self.sock.close()


def hostport(url):
    """(host, port) of "http://host:port[/...]" or "host:port"."""
    if url.startswith("http://"):
        url = url[7:]
    elif "://" in url:
        raise TransportError("only http:// URLs are supported")
    url = url.split("/", 1)[0]
    host, sep, port = url.rpartition(":")
    if not sep:
        return url, 80
    try:
        return host, int(port)
    except ValueError:
        raise TransportError("bad port in %s" % url)


def request(host, port, method, path, body=None, timeout=10.0, headers="", ctype="application/json", tls=None):
    """(status, HTTPBody) of one request; the caller closes the body. `headers`: extra header lines,
    each ending in CRLF; `ctype`: the body's Content-Type; `tls`: a janua.https context (HTTPS) or None.
    TransportError on resolve or framing problems."""
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    except OSError as e:
        raise TransportError("cannot resolve %s: %s" % (host, e))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(addr)
        if tls is not None:
            from janua.https import wrap
            s = wrap(s, tls, host)
        head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s" % (method, path, host, port, headers)
        if body is not None:
            head += "Content-Type: %s\r\nContent-Length: %d\r\n" % (ctype, len(body))
        s.write(head.encode() + b"\r\n")
        if body is not None:
            s.write(body)
        raw = b""
        while True:
            chunk = s.recv(256)
            if not chunk:
                raise TransportError("http response without end of headers")
            raw += chunk
            end = raw.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(raw) > _MAX_HEAD:
                raise TransportError("http headers over %d bytes" % _MAX_HEAD)
        status, length = parse_head(raw[:end])
        if length is None or length < 0:
            raise TransportError("http response without a valid content-length")
        return status, HTTPBody(s, raw[end + 4:], length)
    except BaseException:
        s.close()
        raise


def call(host, port, method, path, doc=None, bearer=None, cap=_MAX_JSON, timeout=10.0, tls=None):
    """(status, parsed JSON body or None if empty) of one request with an optional JSON body and
    bearer token. TransportError on framing, size or a body that is not JSON."""
    body = json.dumps(doc).encode() if doc is not None else None
    status, resp = request(host, port, method, path, body, timeout,
                           "Authorization: %s\r\n" % bearer if bearer else "", tls=tls)
    body = None    # sent: let its memory go before the answer's buffer is allocated
    try:
        data = resp.read_all(cap) if resp.left else None
    finally:
        resp.close()
    if data is None:
        return status, None
    try:
        return status, json.loads(data)
    except ValueError:
        raise TransportError("%s: http %d, not JSON" % (path, status))
