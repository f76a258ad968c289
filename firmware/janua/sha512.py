"""SHA-512 (FIPS 180-4 §6.4) in pure Python, for Ed25519 on ports whose hashlib lacks it.

Stock MicroPython hashlib has sha256 but no sha512, and Ed25519 (RFC 8032) is defined over
SHA-512. This is a small incremental hasher: `SHA512(data).update(more).digest()`. It is slow
(64-bit words are big ints on a 32-bit port), so it is meant for short inputs such as R || A || M
of a signature over a digest; it is not for hashing images (use hashlib.sha256 there).
"""

from micropython import const

_M = const(0xFFFFFFFFFFFFFFFF)

_K = (
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
)

_H0 = (
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
)


def _compress(h, block):
    # 64-bit words are big ints here, and every operation on one allocates: the rounds are written
    # to use few of them. A rotation reads a 128-bit copy x | x << 64 (two operations for any
    # number of rotations of x); bits above 64 are dropped by the masks where sums are kept. No
    # value is ever negative (no ~), so there are no two's-complement big ints.
    w = [0] * 80
    for t in range(16):
        w[t] = int.from_bytes(block[8 * t:8 * t + 8], "big")
    for t in range(16, 80):
        x = w[t - 15]
        xx = x | (x << 64)
        y = w[t - 2]
        yy = y | (y << 64)
        w[t] = (w[t - 16] + w[t - 7] + ((xx >> 1) ^ (xx >> 8) ^ (x >> 7))
                + ((yy >> 19) ^ (yy >> 61) ^ (y >> 6))) & _M
    a, b, c, d, e, f, g, hh = h
    K = _K
    for t in range(80):
        ee = e | (e << 64)
        t1 = hh + ((ee >> 14) ^ (ee >> 18) ^ (ee >> 41)) + (g ^ (e & (f ^ g))) + K[t] + w[t]
        aa = a | (a << 64)
        t2 = ((aa >> 28) ^ (aa >> 34) ^ (aa >> 39)) + ((a & b) | (c & (a | b)))
        hh = g
        g = f
        f = e
        e = (d + t1) & _M
        d = c
        c = b
        b = a
        a = (t1 + t2) & _M
    return [(x + y) & _M for x, y in zip(h, (a, b, c, d, e, f, g, hh))]


class SHA512:
    """Incremental SHA-512: update(bytes) any number of times, then digest() once."""

    def __init__(self, data=b""):
        self._h = list(_H0)
        self._buf = b""
        self._n = 0
        self.update(data)

    def update(self, data):
        self._n += len(data)
        buf = self._buf + bytes(data)
        i = 0
        while len(buf) - i >= 128:
            self._h = _compress(self._h, buf[i:i + 128])
            i += 128
        self._buf = buf[i:]
        return self

    def digest(self):
        n = self._n
        pad = b"\x80" + bytes((111 - n) % 128) + (n * 8).to_bytes(16, "big")
        h = self._h
        buf = self._buf + pad
        for i in range(0, len(buf), 128):
            h = _compress(h, buf[i:i + 128])
        return b"".join(x.to_bytes(8, "big") for x in h)


def sha512(data):
    return SHA512(data).digest()
