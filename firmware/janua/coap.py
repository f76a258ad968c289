"""A small CoAP codec (RFC 7252 section 3) and one confirmable exchange over a channel.

`encode` builds a message (options sorted, deltas and lengths with their 13/14 extensions, the
0xFF payload marker); `decode` parses one with size caps and raises PacketError for anything
malformed. `request` sends a confirmable request over any object with send(bytes) and
recv(timeout) (a DTLS channel), resends it on silence (ACK_TIMEOUT doubling, section 4.2) and
returns the matching response, piggybacked or separate (which it acknowledges).
Not done: block-wise transfer, observe, proxying, multicast, deduplication of server requests.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from janua import PacketError, TransportError

CON = const(0)
NON = const(1)
ACK = const(2)
RST = const(3)
GET = const(1)
POST = const(2)
PUT = const(3)
DELETE = const(4)
URI_PATH = const(11)
CONTENT_FORMAT = const(12)
URI_QUERY = const(15)

MAX_MESSAGE = const(1152)  # RFC 7252 4.6 without block-wise
MAX_OPTIONS = const(16)


def _ext(v):
    # (nibble, extension bytes) for an option delta or length.
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes((v - 13,))
    v -= 269
    return 14, bytes((v >> 8, v & 0xFF))


def encode(mtype, code, mid, token=b"", options=(), payload=b""):
    """One message (a bytearray); `options` are (number, value bytes) pairs in any order."""
    if len(token) > 8 or not 0 <= mid <= 0xFFFF:
        raise PacketError("bad token or message id")
    out = bytearray(4)
    out[0] = 0x40 | mtype << 4 | len(token)
    out[1] = code
    out[2] = mid >> 8
    out[3] = mid & 0xFF
    out += token
    last = 0
    # Sorted by number, keeping the given order of repeated options (Uri-Path segments):
    # MicroPython's sort is not stable, so the index breaks ties.
    for num, _, val in sorted([(o[0], i, o[1]) for i, o in enumerate(options)]) if options else ():
        dn, dx = _ext(num - last)
        ln, lx = _ext(len(val))
        out.append(dn << 4 | ln)
        out += dx
        out += lx
        out += val
        last = num
    if payload:
        out.append(0xFF)
        out += payload
    return out


def encode_request(code, path, mid, token, payload=b"", content_format=None, confirmable=True):
    """A request for `path` ("a/b", split into Uri-Path options) with an optional body."""
    opts = [(URI_PATH, s.encode()) for s in path.split("/") if s] if path else []
    if content_format is not None:
        cf = content_format
        opts.append((CONTENT_FORMAT, bytes((cf >> 8, cf & 0xFF)) if cf > 255 else
                     (bytes((cf,)) if cf else b"")))
    return encode(CON if confirmable else NON, code, mid, token, opts, payload)


def _nib(d, o, v):
    # Resolve an extended delta/length nibble at d[o:]; (value, new offset).
    if v < 13:
        return v, o
    if v == 13:
        if o >= len(d):
            raise PacketError("bad option")
        return d[o] + 13, o + 1
    if v == 14:
        if o + 2 > len(d):
            raise PacketError("bad option")
        return (d[o] << 8 | d[o + 1]) + 269, o + 2
    raise PacketError("bad option")


def decode(d, max_len=MAX_MESSAGE, max_options=MAX_OPTIONS):
    """(type, code, mid, token, [(number, value)], payload) of one message. Token, values and
    payload are slices of d: bytes from bytes, bytearrays from a bytearray (a DTLS record)."""
    n = len(d)
    if n < 4 or n > max_len:
        raise PacketError("bad CoAP length")
    if d[0] >> 6 != 1:
        raise PacketError("bad CoAP version")
    tkl = d[0] & 0x0F
    if tkl > 8 or 4 + tkl > n:
        raise PacketError("bad token length")
    o = 4 + tkl
    opts = []
    num = 0
    payload = b""
    while o < n:
        b = d[o]
        o += 1
        if b == 0xFF:
            if o == n:
                raise PacketError("empty payload")
            payload = d[o:]
            break
        delta, o = _nib(d, o, b >> 4)
        ln, o = _nib(d, o, b & 0x0F)
        if o + ln > n or len(opts) >= max_options:
            raise PacketError("bad option")
        num += delta
        opts.append((num, d[o:o + ln]))
        o += ln
    return d[0] >> 4 & 3, d[1], d[2] << 8 | d[3], d[4:4 + tkl], opts, payload


def option(opts, number, default=None):
    for num, val in opts:
        if num == number:
            return val
    return default


def request(chan, code, path, payload=b"", content_format=None, mid=0, token=b"",
            ack_timeout=2.0, max_retransmit=4):
    """Send a confirmable request on `chan` and return the decoded response."""
    msg = encode_request(code, path, mid, token, payload, content_format)
    wait = ack_timeout
    acked = False
    for _ in range(max_retransmit + 1):
        if not acked:
            chan.send(msg)
        while True:
            d = chan.recv(wait)
            if d is None:
                break  # silence: resend (or, once acknowledged, keep waiting)
            if d == b"":
                raise TransportError("channel closed")
            try:
                m = decode(d)
            except PacketError:
                continue
            mt, mc, mm, mtok = m[0], m[1], m[2], m[3]
            if mt == RST and mm == mid:
                raise TransportError("request reset by the server")
            if mt == ACK and mm == mid and mc == 0:
                acked = True  # empty ACK: the response comes separately
                continue
            if mtok != token or mc < 64:
                continue
            if mt == ACK and mm == mid:
                return m
            if mt in (CON, NON):
                if mt == CON:
                    chan.send(encode(ACK, 0, mm))
                return m
        wait *= 2
    raise TransportError("no CoAP response")
