"""AES-128-CCM with an 8-byte tag and a 12-byte nonce (RFC 3610 section 2, RFC 6655), for DTLS.

Built on `cryptolib.aes` in ECB mode only (mode 1), which every stock firmware has: the CBC-MAC
and the CTR keystream are computed block by block in preallocated 16-byte scratch buffers and the
data is read and written by offset, so a record costs its output buffer and nothing else; the
scratch blocks are shared by all keys (one record at a time; not reentrant).
L = 3 (15 - 12-byte nonce), M = 8, AAD shorter than 0xFF00 bytes.
It does not frame records or build nonces (dtls_record.py does) and has no other tag sizes.
"""

from cryptolib import aes


_X = bytearray(16)  # CBC-MAC state
_S = bytearray(16)  # keystream block
_B = bytearray(16)  # counter block


def _absorb(a, src, o, n, p):
    # XOR src[o:o+n] into _X from position p, encrypting each full block; the final position.
    x = _X
    for i in range(o, o + n):
        x[p] ^= src[i]
        p += 1
        if p == 16:
            a.encrypt(x, x)
            p = 0
    return p


class CCM8:
    """One AES-128 key. `seal` and `open` work on buffers by offset."""

    def __init__(self, key):
        self._a = aes(key, 1)  # ECB keeps no state between calls

    def _mac(self, nonce, aad, m, o, n):
        # T (first 8 bytes of _X) = CBC-MAC over B0 || uint16(len(aad)) || aad || m[o:o+n].
        x = _X
        a = self._a
        la = len(aad)
        x[0] = 0x5A if la else 0x1A  # Adata | (M-2)/2 << 3 | L-1
        x[1:13] = nonce
        x[13] = n >> 16
        x[14] = (n >> 8) & 0xFF
        x[15] = n & 0xFF
        a.encrypt(x, x)
        if la:
            x[0] ^= la >> 8
            x[1] ^= la & 0xFF
            if _absorb(a, aad, 0, la, 2):
                a.encrypt(x, x)
        if _absorb(a, m, o, n, 0):
            a.encrypt(x, x)

    def _ctr(self, nonce, src, so, dst, do, n):
        # dst[do:do+n] = src[so:so+n] XOR S1 || S2 || ...; return with _S = S0.
        s = _S
        b = _B
        b[0] = 2
        b[1:13] = nonce
        i = 0
        while i < n:
            c = (i >> 4) + 1
            b[14] = c >> 8
            b[15] = c & 0xFF
            self._a.encrypt(b, s)
            for j in range(min(16, n - i)):
                dst[do + i + j] = src[so + i + j] ^ s[j]
            i += 16
        b[14] = b[15] = 0
        self._a.encrypt(b, s)

    def seal(self, nonce, aad, buf, o, n):
        """Encrypt buf[o:o+n] in place and write the tag at buf[o+n:o+n+8]."""
        self._mac(nonce, aad, buf, o, n)
        self._ctr(nonce, buf, o, buf, o, n)
        x = _X
        s = _S
        for i in range(8):
            buf[o + n + i] = x[i] ^ s[i]

    def open(self, nonce, aad, c, o, n, out):
        """Decrypt c[o:o+n] (followed by its tag) into out[0:n]; False if the tag fails."""
        self._ctr(nonce, c, o, out, 0, n)
        self._mac(nonce, aad, out, 0, n)  # uses only _X: _S still holds S0
        x = _X
        s = _S
        r = 0
        for i in range(8):
            r |= x[i] ^ s[i] ^ c[o + n + i]  # constant time
        return r == 0
