"""The TLS 1.2 PRF with SHA-256 (RFC 5246 section 5) and the DTLS-PSK key schedule (RFC 4279 section 2).

PRF(secret, label, seed) = P_SHA256(secret, label || seed), truncated to n bytes. The key block is
split for TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655: 16-byte keys, 4-byte implicit IVs, no MAC keys).
It does not hash transcripts or build Finished messages (dtls.py does).
"""

from janua.mac import HMAC


def prf(secret, label, seed, n):
    m = HMAC(secret)
    s = label + seed
    a = s
    out = b""
    while len(out) < n:
        a = m.digest(a)  # A(i) = HMAC(secret, A(i-1))
        out += m.digest(a, s)
    return out[:n]


def premaster(psk):
    # uint16(N) || N zero bytes || uint16(N) || psk
    n = len(psk)
    z = bytes((n >> 8, n & 0xFF))
    return z + bytes(n) + z + psk


def master_secret(psk, client_random, server_random, session_hash=None):
    """48 bytes; with `session_hash` (SHA-256 of the transcript up to ClientKeyExchange) the
    extended master secret of RFC 7627 section 4."""
    if session_hash is not None:
        return prf(premaster(psk), b"extended master secret", session_hash, 48)
    return prf(premaster(psk), b"master secret", client_random + server_random, 48)


def key_block(master, client_random, server_random):
    """(client_write_key, server_write_key, client_write_IV, server_write_IV)."""
    k = prf(master, b"key expansion", server_random + client_random, 40)
    return k[0:16], k[16:32], k[32:36], k[36:40]
