"""The binary auth codec (docs/protocol.md section 3): the 20-byte request and its reply.

Pure functions over bytes: no sockets, no clock, no state. `decode_reply` checks the tag before it
trusts any field and raises PacketError for anything malformed or spoofed. It does not decide what
to do with a reply (binauth.py does) and it does not know about transports.
The hot path allocates nothing beyond the hashes and the result tuple (heap budget).
"""

try:
    from micropython import const
except ImportError:  # CPython: the codec is also tested there against the shared vectors
    def const(x):
        return x

from struct import pack_into
from janua import PacketError

OK = const(0)
TIME_SYNC = const(1)
SIGNATURE = const(2)
UNKNOWN_DEVICE = const(3)
NOT_ACTIVE = const(4)
REPLAY = const(5)
RATE_LIMITED = const(6)
LOCKED_OUT = const(7)
MALFORMED = const(8)

_REQ = const(20)
_TAG = const(8)
_OK_LEN = const(25)
_ERR_LEN = const(13)
# Bit i set: status i is sent authenticated (OK, TIME_SYNC, NOT_ACTIVE, REPLAY).
_AUTH_SET = const(0x33)

# Scratch for the signed part of a reply (at most 17 bytes), preallocated once so that checking a
# reply allocates no memoryview or slice. Used only inside decode_reply, never returned; MicroPython
# runs one call at a time here, and a torn scratch could only make a tag fail (fail closed).
_signed = bytearray(_OK_LEN - _TAG)


def encode_request(dev_id, ts, mac, buf=None):
    """The 20-byte request dev_id(8) || ts(u32) || HMAC(K, first 12)[:8].

    `buf`, if given, is a bytearray of at least 20 bytes, reused; the request is returned in it."""
    if len(dev_id) != 8 or not 0 <= ts <= 0xFFFFFFFF:
        raise PacketError("bad device id or timestamp")
    if buf is None:
        buf = bytearray(_REQ)
    # Shrink to the 12 signed bytes, hash them, then append the tag: a bytearray keeps its
    # capacity, so neither a slice nor a memoryview is allocated.
    buf[12:] = b""
    buf[0:8] = dev_id
    pack_into(">I", buf, 8, ts)
    d = mac.digest(buf)
    for i in range(_TAG):
        buf.append(d[i])
    return buf


def _u32(b, o):
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]


def decode_reply(request, reply, mac):
    """(status, server_time, session_id, expiry, permissions, authenticated) of a reply to `request`.

    Raises PacketError for a wrong length, an unknown status, a status that must be authenticated
    whose tag does not verify (spoofed, or bound to another request), or an unauthenticated reply
    that is not in the canonical form (zero time, zero tag)."""
    n = len(reply)
    if len(request) != _REQ or n > _OK_LEN or n < _ERR_LEN:
        raise PacketError("bad length")
    status = reply[0]
    if status > MALFORMED or n != (_OK_LEN if status == OK else _ERR_LEN):
        raise PacketError("bad status or length")
    t = n - _TAG
    s = _signed
    s[0:] = b""  # keeps its capacity
    for i in range(t):
        s.append(reply[i])
    if mac.check(reply, t, _TAG, request, s):
        auth = True
    elif (_AUTH_SET >> status) & 1 or _u32(reply, 1) or _u32(reply, t) or _u32(reply, t + 4):
        raise PacketError("tag does not verify")
    else:
        auth = False
    if status == OK:
        return (OK, _u32(reply, 1), _u32(reply, 5), _u32(reply, 9), _u32(reply, 13), True)
    return (status, _u32(reply, 1), 0, 0, 0, auth)
