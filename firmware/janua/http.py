"""Binary auth over HTTP (docs/protocol.md 3.5): POST /v1/binauth with the 20 bytes as the body.

A minimal HTTP/1.1 client (no `requests` module on stock firmware): one POST per connection
(Connection: close), the status line, headers and body read with size caps. It does no crypto;
binauth.Client judges the body. With a TLS context (janua.https) it speaks HTTPS. It does not follow
redirects or keep connections.
"""

import socket
from janua import TransportError, health_c
from janua import binauth as _b

_MAX_RESPONSE = 1024  # status line + headers + body; a binauth reply body is at most 25 bytes
_MAX_BODY = 64
PATH = "/v1/binauth"


def post(host, port, path, body, timeout=5.0, tls=None, cap=_MAX_BODY):
    """(http_status, response_body) of one POST; raises TransportError on framing problems. `tls`: a
    context from janua.https.context(), or None for plain HTTP. `cap`: the largest body accepted (64
    bytes for binary auth; the claim answer asks for more); the whole response may be 960 bytes more."""
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
        head = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n") % (path, host, port, len(body))
        _send_all(s, head.encode())
        _send_all(s, body)
        raw = _read_capped(s, cap + _MAX_RESPONSE - _MAX_BODY)
        health_c[5] += len(head) + len(body)
        health_c[6] += len(raw)
    finally:
        s.close()
    return parse_response(raw, cap)


def _send_all(s, data):
    mv = memoryview(data)
    while mv:
        n = s.send(mv)
        mv = mv[n:]


def _read_capped(s, limit=_MAX_RESPONSE):
    # the response, up to the end of its Content-Length body (a TLS server may keep the connection open
    # after it; recv returns what has arrived, on plain and TLS sockets alike), or up to the close
    buf = b""
    want = None
    while want is None or len(buf) < want:
        chunk = s.recv(256)
        if not chunk:
            return buf
        buf += chunk
        if len(buf) > limit:
            raise TransportError("http response over %d bytes" % limit)
        if want is None:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                length = parse_head(buf[:end])[1]
                if length is not None and length >= 0:
                    want = end + 4 + length
    return buf


def parse_head(head):
    """(status, content-length or None) from the bytes before the blank line of a response."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
        raise TransportError("bad http status line")
    try:
        status = int(parts[1])
    except ValueError:
        raise TransportError("bad http status code")
    length = None
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        if not sep:
            raise TransportError("bad http header")
        k = k.strip().lower()
        if k == b"content-length":
            try:
                length = int(v.strip())
            except ValueError:
                raise TransportError("bad content-length")
        elif k == b"transfer-encoding":
            raise TransportError("chunked http response not supported")
    return status, length


def parse_response(raw, cap=_MAX_BODY):
    """(status, body) from a whole HTTP/1.x response; pure, so it is tested without sockets."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise TransportError("http response without end of headers")
    status, length = parse_head(raw[:end])
    body = raw[end + 4:]
    if length is not None:
        if length < 0 or length > len(body):
            raise TransportError("http body shorter than content-length")
        body = body[:length]
    if len(body) > cap:
        raise TransportError("http body over %d bytes" % cap)
    return status, body


def authenticate(client, host, port=8080, timeout=5.0, tls=None):
    """Run `client` to DONE or FAILED over HTTP (HTTPS with a `tls` context); returns the client. Never
    raises for the network."""
    req = client.request()
    while True:
        try:
            status, body = post(host, port, PATH, bytes(req), timeout, tls)
        except (OSError, TransportError) as e:
            client.give_up("http: %s" % e)
            return client
        state = client.receive(body)
        if state == _b.RETRY:
            req = client.request()
            continue
        if state == _b.WAITING:
            # Nothing more comes on this connection: an advisory or an unusable body ends it.
            client.give_up("http %d without a valid reply" % status)
        return client
