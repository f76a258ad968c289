"""AES-128-CCM with an 8-byte tag and a 12-byte nonce (RFC 3610 section 2, RFC 6655), for DTLS.

Built on `cryptolib.aes` in ECB mode only (mode 1), which every stock firmware has: the CBC-MAC
and the CTR keystream are computed block by block in two preallocated 16-byte scratch buffers, so
a record costs its output buffer and little else. L = 3 (15 - 12-byte nonce), M = 8.
It does not frame records or build nonces (dtls.py does) and does not support other tag sizes.
"""

try:
    from micropython import const
except ImportError:  # CPython (tests with a cryptolib stand-in)
    def const(x):
        return x

from cryptolib import aes
from janua.mac import ct_eq

_TAG = const(8)


class CCM8:
    """One AES-128 key. `encrypt` returns ct || tag; `decrypt` returns the plaintext or None."""

    def __init__(self, key):
        self._e = aes(key, 1).encrypt  # ECB keeps no state between calls
        self._x = bytearray(16)  # CBC-MAC state
        self._s = bytearray(16)  # keystream block

    def _absorb(self, data):
        # x = E(x XOR block) over data zero-padded to 16 bytes.
        x = self._x
        e = self._e
        n = len(data)
        o = 0
        while o < n:
            k = min(16, n - o)
            for i in range(k):
                x[i] ^= data[o + i]
            e(x, x)
            o += 16

    def _mac(self, nonce, aad, m):
        # T (8 bytes, left in self._x) = CBC-MAC over B0 || uint16(len(aad)) || aad || m.
        x = self._x
        x[0] = (0x40 if aad else 0) | ((_TAG - 2) // 2) << 3 | 2
        x[1:13] = nonce
        n = len(m)
        x[13] = n >> 16
        x[14] = (n >> 8) & 0xFF
        x[15] = n & 0xFF
        self._e(x, x)
        if aad:
            self._absorb(bytes((len(aad) >> 8, len(aad) & 0xFF)) + aad)
        self._absorb(m)

    def _ctr(self, nonce, buf):
        # XOR buf in place with S1 || S2 || ...; return with self._s = S0.
        s = self._s
        blk = bytearray(16)
        blk[0] = 2
        blk[1:13] = nonce
        n = len(buf)
        o = 0
        i = 1
        while o < n:
            blk[14] = (i >> 8) & 0xFF
            blk[15] = i & 0xFF
            self._e(blk, s)
            for j in range(min(16, n - o)):
                buf[o + j] ^= s[j]
            o += 16
            i += 1
        blk[14] = 0
        blk[15] = 0
        self._e(blk, s)

    def encrypt(self, nonce, aad, m):
        if len(nonce) != 12 or len(aad) > 0xFEFF:
            raise ValueError("ccm")
        self._mac(nonce, aad, m)
        out = bytearray(len(m) + _TAG)
        out[0:len(m)] = m
        c = memoryview(out)[0:len(m)]
        self._ctr(nonce, c)
        x = self._x
        s = self._s
        n = len(m)
        for i in range(_TAG):
            out[n + i] = x[i] ^ s[i]
        return out

    def decrypt(self, nonce, aad, c):
        """The plaintext of c = ct || tag, or None when the tag does not verify."""
        n = len(c) - _TAG
        if n < 0 or len(nonce) != 12 or len(aad) > 0xFEFF:
            return None
        m = bytearray(c[0:n])
        self._ctr(nonce, m)
        self._mac(nonce, aad, m)  # uses only self._x: self._s still holds S0
        x = self._x
        s = self._s
        t = bytearray(_TAG)
        for i in range(_TAG):
            t[i] = x[i] ^ s[i]
        if not ct_eq(t, c[n:]):
            return None
        return m
