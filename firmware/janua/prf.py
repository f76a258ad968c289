"""The TLS 1.2 PRF with SHA-256 (RFC 5246 section 5) and the DTLS-PSK key schedule (RFC 4279 section 2).

PRF(secret, label, seed) = P_SHA256(secret, label || seed), truncated to n bytes, written into a
caller's buffer. Allocation is the floor of stock hashlib (no .copy(), digest() allocates): two
fresh sha256 objects and two digests per HMAC, 448 B on the unix port. The key pads live in two
module buffers, set once per PRF call; A(i) is the previous digest; label and seed parts are fed
to the hash separately, never concatenated.
The key block is split for TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655: 16-byte keys, 4-byte IVs).
It does not hash transcripts or build Finished messages (dtls.py does). Not reentrant.
"""

from hashlib import sha256

_IP = bytearray(64)
_OP = bytearray(64)


def _key(k):
    # The HMAC pads of key k (hashed first if longer than a block, RFC 2104).
    n = len(k)
    if n > 64:
        k = sha256(k).digest()
        n = 32
    _IP[0:n] = k
    for i in range(64):
        c = _IP[i] if i < n else 0
        _IP[i] = c ^ 0x36
        _OP[i] = c ^ 0x5C


def _hmac(a, b=b"", c=b"", d=b""):
    h = sha256(_IP)
    h.update(a)
    h.update(b)
    h.update(c)
    h.update(d)
    o = sha256(_OP)
    o.update(h.digest())
    return o.digest()


def _p(label, s1, s2, n, out, o=0):
    # P_SHA256(key in the pads, label || s1 || s2): n bytes into out[o:] (a new buffer if None).
    if out is None:
        out = bytearray(n)
    a = _hmac(label, s1, s2)  # A(1)
    p = 0
    while p < n:
        d = _hmac(a, label, s1, s2)
        for i in range(min(32, n - p)):
            out[o + p + i] = d[i]
        p += 32
        if p < n:
            a = _hmac(a)
    return out


def prf(secret, label, seed, n, out=None, o=0):
    _key(secret)
    return _p(label, seed, b"", n, out, o)


def premaster(psk):
    # uint16(N) || N zero bytes || uint16(N) || psk, in one buffer
    n = len(psk)
    p = bytearray(2 * n + 4)
    p[0] = p[n + 2] = n >> 8
    p[1] = p[n + 3] = n & 0xFF
    p[n + 4:] = psk
    return p


def master_secret(psk, client_random, server_random, session_hash=None, out=None):
    """48 bytes; with `session_hash` (SHA-256 of the transcript up to ClientKeyExchange) the
    extended master secret of RFC 7627 section 4."""
    _key(premaster(psk))
    if session_hash is not None:
        return _p(b"extended master secret", session_hash, b"", 48, out)
    return _p(b"master secret", client_random, server_random, 48, out)


def key_block(master, client_random, server_random, out=None):
    """40 bytes: client_write_key(16) | server_write_key(16) | client_write_IV(4) | server_write_IV(4)."""
    _key(master)
    return _p(b"key expansion", server_random, client_random, 40, out)
