"""HMAC-SHA256 (RFC 2104) with precomputed pads, and a constant-time compare.

Stock MicroPython has no `hmac` module, no `compare_digest` and no `sha256().copy()`, so each MAC
costs two fresh hash objects; what can be precomputed (the key XOR ipad/opad blocks) is, once per
key. This module does not truncate, encode or parse anything: that is packet.py's job.
"""

from hashlib import sha256


class HMAC:
    """One HMAC-SHA256 key. `digest(a, b)` is HMAC(key, a || b) without concatenating."""

    def __init__(self, key):
        if len(key) > 64:
            key = sha256(key).digest()
        ip = bytearray(64)
        op = bytearray(64)
        n = len(key)
        for i in range(64):
            k = key[i] if i < n else 0
            ip[i] = k ^ 0x36
            op[i] = k ^ 0x5C
        self._ip = ip
        self._op = op

    def digest(self, a, b=None):
        h = sha256(self._ip)
        h.update(a)
        if b is not None:
            h.update(b)
        o = sha256(self._op)
        o.update(h.digest())
        return o.digest()

    def check(self, tag, off, n, a, b=None):
        # True when tag[off:off+n] equals the first n bytes of HMAC(key, a || b), compared in
        # constant time and without slicing (no allocation beyond the two hashes).
        return _diff(self.digest(a, b), 0, tag, off, n) == 0


def _diff(a, ao, b, bo, n):
    # OR of the XORs of n byte pairs: 0 iff equal. Time depends on n only.
    r = 0
    for i in range(n):
        r |= a[ao + i] ^ b[bo + i]
    return r


def ct_eq(a, b):
    """True iff a == b; time depends only on the lengths (which are not secret)."""
    if len(a) != len(b):
        return False
    return _diff(a, 0, b, 0, len(a)) == 0


def hmac_sha256(key, msg):
    return HMAC(key).digest(msg)
