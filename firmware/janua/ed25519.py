"""Ed25519 signature verification (RFC 8032 §5.1.7) in pure Python, for stock MicroPython.

Verify only: no private key, no signing. `valid(pub, msg, sig)` is True for a good signature and
False for anything else, malformed input included; it never raises on untrusted bytes. The check
is the cofactorless one RFC 8032 §5.1.7 allows: [S]B - [k]A is encoded and compared with R's 32
bytes (R is never decompressed: a non-canonical R fails to match). S >= L and a non-canonical A
(y >= p, or x = 0 with the sign bit set) are rejected.

Speed and heap on a microcontroller, where every big-int operation allocates (MicroPython):
- extended coordinates (X:Y:Z:T), RFC 8032 §5.1.4 formulas, one inversion at the end; the
  inversion and A's square root use the 2^250 - 1 addition chain (faster than pow());
- one joint pass for [S]B + [k](-A) (Straus) over width-4 NAF digits of both scalars, packed in
  one bytearray: 253 doublings, about 2 x 51 additions; tables of 1, 3, 5, 7 times B (constant
  bytes, affine) and -A (4 x 4 ints), cached form (Y-X, Y+X, 2dT, 2Z); a negative digit swaps
  Y-X and Y+X and the sign of 2dT;
- `% p` (a long division: twice a product's cost) only for point coordinates, after a fold
  x = (x & (2^255-1)) + 19 (x >> 255) (2^255 = 19 mod p) that leaves under 2^278; a product that
  only goes into sums multiplied again gets just the fold (< 2^262). Subtractions add a multiple
  of p first, so no big int is negative (slow on MicroPython).
Heap peak: the A table being built (about 6.3 KiB on the unix port, this module's 4.8 KiB
included; manifest.py unloads SHA-512 before importing it); 1.9 MB of short-lived big ints.
"""

import gc
from micropython import const

_P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED  # 2^255 - 19
_D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3
_D2 = 0x2406D9DC56DFFCE7198E80F2EEF3D13000E0149A8283B156EBD69B9426B2F159
_SQRTM1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0
_WB = const(4)  # NAF width for [S]B: _BTAB holds 2^(_WB-2) multiples (_naf: widths <= 4)
_WA = const(4)  # NAF width for [k]A: a table of 2^(_WA-2) multiples (4 big ints each) on the heap
_L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED

# (y-x, y+x, 2dxy) mod p of the affine 1B, 3B, 5B, 7B (cached form, 2Z = 2), 32 bytes little-endian
# each, made once with exact arithmetic (a wrong entry fails the RFC 8032 vectors). Bytes: big-int
# constants would each stay on the heap as an object while the module is loaded.
_BTAB = (
    b"\x3e\x91\x40\xd7\x05\x39\x10\x9d\xb3\xbe\x40\xd1\x05\x9f\x39\xfd\x09\x8a\x8f\x68\x34\x84\xc1\xa5"
    b"\x67\x12\xf8\x98\x92\x2f\xfd\x44\x85\x3b\x8c\xf5\xc6\x93\xbc\x2f\x19\x0e\x8c\xfb\xc6\x2d\x93\xcf"
    b"\xc2\x42\x3d\x64\x98\x48\x0b\x27\x65\xba\xd4\x33\x3a\x9d\xcf\x07\x68\xaa\x7a\x87\x05\x12\xc9\xab"
    b"\x9e\xc4\xaa\xcc\x23\xe8\xd9\x26\x8c\x59\x43\xdd\xcb\x7d\x1b\x5a\xa8\x65\x0c\x9f\x68\x7b\x11\x6f"
    b"\x65\xd2\xfc\xa4\xe8\x1f\x61\x56\x7d\xba\xc1\xe5\xfd\x53\xd3\x3b\xbd\xd6\x4b\x21\x1a\xf3\x31\x81"
    b"\x62\xda\x5b\x55\x87\x15\xb9\x2a\x30\x97\xee\x4c\xa8\xb0\x25\xaf\x8a\x4b\x86\xe8\x30\x84\x5a\x02"
    b"\x32\x67\x01\x9f\x02\x50\x1b\xc1\xf4\xf8\x80\x9a\x1b\x4e\x16\x7a\x89\xd8\xd0\x0d\x3f\x93\xae\x14"
    b"\x62\xda\x35\x1c\x22\x23\x94\x58\x4c\xdb\xf2\x8c\x45\xe5\x70\xd1\xc6\xb4\xb9\x12\xaf\x26\x28\x5a"
    b"\xba\xd6\x47\xa4\xc3\x82\x91\x7f\xb7\x29\x27\x4b\xd1\x14\x00\xd5\x87\xa0\x64\xb8\x1c\xf1\x3c\xe3"
    b"\xf3\x55\x1b\xeb\x73\x7e\x4a\x15\x33\xbb\xa5\x08\x44\xbc\x12\xa2\x02\xed\x5e\xc7\xc3\x48\x50\x8d"
    b"\x44\xec\xbf\x5a\x0c\xeb\x1b\xdd\xeb\x06\xe2\x46\xf1\xcc\x45\x29\x85\x82\x2a\x81\xf1\xdb\xbb\xbc"
    b"\xfc\xd1\xbd\xd0\x07\x08\x0e\x27\x2d\xa7\xbd\x1b\x0b\x67\x1b\xb4\x9a\xb6\x3b\x6b\x69\xbe\xaa\x43"
    b"\xb1\x21\x32\xaa\x9a\x2c\x6f\xba\xa7\x23\xba\x3b\x53\x21\xa0\x6c\x3a\x2c\x19\x92\x4f\x76\xea\x9d"
    b"\xe0\x17\x53\x2e\x5d\xdd\x6e\x1d\xbf\xa3\x4e\x94\xd0\x5c\x1a\x6b\xd2\xc0\x9d\xb3\x3a\x35\x70\x74"
    b"\x49\x2e\x54\x28\x82\x52\xb2\x71\x7e\x92\x3c\x28\x69\xea\x1b\x46\xa2\xb3\xb8\x01\xc8\x6d\x83\xf1"
    b"\x9a\xa4\x3e\x05\x47\x5f\x03\xb3\xf3\xad\x77\x58\xba\x41\x9c\x52\xa7\x90\x0f\x6a\x1c\xbb\x9f\x7a"
)


def _naf(b, w, out, sh):
    # Width-w NAF (w <= 4) of the 32-byte little-endian scalar b (< 2^253) into the bytearray `out`
    # of 256 digits, least significant first, as 4-bit codes at bit `sh`: 0 for a zero digit, else
    # 8 | 4 (negative) | n >> 1 for the digit +-n (n odd, < 2^(w-1)). Any two non-zero digits are at
    # least w apart. Small ints only: b is read w bits at a time.
    b = bytes(b) + b"\x00\x00"
    m = (1 << w) - 1
    i = c = 0  # c: the carry into bit i
    while i < 256:
        j = i >> 3
        v = (((b[j] | (b[j + 1] << 8)) >> (i & 7)) & m) + c
        if not v & 1:
            i += 1  # bit i equals the carry: digit 0, and the carry moves up unchanged
            continue
        if v >> (w - 1):
            out[i] |= (12 | (m + 1 - v) >> 1) << sh  # v - 2^w
            c = 1
        else:
            out[i] |= (8 | v >> 1) << sh
            c = 0
        i += w


def _sq(x, k):
    # x^(2^k) mod p: k squarings
    p = _P
    for _ in range(k):
        x = x * x % p
    return x


def _pow22501(z):
    # (z^(2^250 - 1), z^11) mod p: the common part of the chains for z^(p-2) (inverse) and
    # z^((p-5)/8) (square root). 254 squarings and 11 products in Python beat pow(), whose
    # square-and-multiply does about 250 of each for these all-ones exponents.
    p = _P
    t0 = z * z % p
    t1 = _sq(t0, 2) * z % p          # z^9
    t0 = t0 * t1 % p                 # z^11
    t1 = t0 * t0 % p * t1 % p        # z^31 = z^(2^5 - 1)
    t1 = _sq(t1, 5) * t1 % p         # 2^10 - 1
    t2 = _sq(t1, 10) * t1 % p        # 2^20 - 1
    t2 = _sq(t2, 20) * t2 % p        # 2^40 - 1
    t1 = _sq(t2, 10) * t1 % p        # 2^50 - 1
    t2 = _sq(t1, 50) * t1 % p        # 2^100 - 1
    t2 = _sq(t2, 100) * t2 % p       # 2^200 - 1
    return _sq(t2, 50) * t1 % p, t0  # 2^250 - 1


def _decode_point(b):
    # The affine (x, y) of a 32-byte encoding, or None when it is not a canonical point encoding.
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= _P | 31  # 2^255 - 1
    if y >= _P:
        return None
    yy = y * y % _P
    u, v = (yy + _P - 1) % _P, (_D * yy + 1) % _P
    v3 = v * v % _P * v % _P
    w = u * v3 % _P * v3 % _P * v % _P  # u v^7
    x = u * v3 % _P * (_sq(_pow22501(w)[0], 2) * w % _P) % _P  # u v^3 (u v^7)^((p-5)/8)
    vxx = v * x % _P * x % _P
    if vxx != u:
        if vxx != (_P - u) % _P:
            return None
        x = x * _SQRTM1 % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _put(tab, i, x, y, t, z2):
    # One cached entry (Y-X, Y+X, 2dT, 2Z) at tab[i:i+4], each int re-made at its own size: a
    # `% p` result keeps the buffer of the 510-bit product it reduced (twice the heap it needs).
    p = _P
    for v in (y - x + p, y + x, t * _D2 % p, z2):
        tab[i] = int.from_bytes(v.to_bytes(32, "little"), "little")
        i += 1


def _atab(pub):
    # The odd multiples 1, 3, ..., 2^(_WA-1) - 1 of -A, cached form, flat; None when `pub` is not
    # a canonical point. Names are reused so that few big ints are alive at once (the heap peak).
    p = _P
    x1 = _decode_point(pub)
    if x1 is None:
        return None
    y1 = x1[1]
    x1 = p - x1[0]
    tab = [0] * (4 << (_WA - 2))  # sized once: growing a list reallocates it
    t1 = x1 * y1 % p
    _put(tab, 0, x1, y1, t1, 2)
    # 2P (dbl-2008-hwcd, Z = 1), negated as in valid(), in cached form (ym2, yp2, td2, zz2)
    a = x1 * x1 % p
    b = y1 * y1 % p
    h = a + b
    e = t1 << 1
    g = b - a + p
    f = 2 - g + (p << 1)
    a = e * f % p
    b = g * h % p
    ym2 = b - a + p
    yp2 = b + a
    td2 = e * h % p * _D2 % p
    zz2 = f * g % p << 1
    z1 = 1
    for i in range(4, 4 << (_WA - 2), 4):
        # (x1, y1, z1, t1) += 2P (add-2008-hwcd-3)
        a = (y1 - x1 + p) * ym2 % p
        b = (y1 + x1) * yp2 % p
        e = b - a + p
        h = b + a
        a = t1 * td2 % p  # C
        b = z1 * zz2 % p  # D
        f = b - a + p
        g = b + a
        x1 = e * f % p
        y1 = g * h % p
        z1 = f * g % p
        t1 = e * h % p
        _put(tab, i, x1, y1, t1, z1 << 1)
    return tab


def valid(pub, msg, sig, h=None):
    """True iff `sig` is a valid Ed25519 signature of `msg` under the 32-byte public key `pub`.
    `h`: SHA-512(sig[:32] || pub || msg) when the caller computed it (and unloaded janua.sha512
    before importing this module, so that the two never occupy the heap together)."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False  # RFC 8032 §5.1.7 step 1: reject S >= L (malleability)
    # Start from a collected heap: the few long-lived values of this call then sit together, and
    # the collector has the least to scan when the short-lived ones fill the heap.
    gc.collect()
    if h is None:
        from janua.sha512 import SHA512
        h = SHA512(sig[:32]).update(pub).update(msg).digest()
    k = int.from_bytes(h, "little") % _L
    h = s = None
    p = _P
    btab, fb = _BTAB, int.from_bytes
    atab = _atab(pub)  # multiples of -A
    if atab is None:
        return False
    nn = bytearray(256)  # both scalars' digits: [S] in the low nibble, [k] in the high one
    _naf(sig[32:], _WB, nn, 0)
    _naf(k.to_bytes(32, "little"), _WA, nn, 4)
    k = None
    i = 255
    while i >= 0 and not nn[i]:
        i -= 1
    x, y, z, t = 0, 1, 1, 0  # the neutral element
    m, pk, pk2 = _P | 31, _P << 8, _P << 9  # 2^255-1; 256p, 512p exceed what is subtracted
    while i >= 0:
        da = nn[i]
        db = da & 15
        da >>= 4
        # 2P (dbl-2008-hwcd); T only when an addition follows
        a = x * x
        a = (a & m) + (a >> 255) * 19
        b = y * y
        b = (b & m) + (b >> 255) * 19
        c = z * z
        c = ((c & m) + (c >> 255) * 19) << 1
        hh, g = a + b, b - a + pk  # -H, -G
        e = x * y
        e = ((e & m) + (e >> 255) * 19) << 1  # -E = 2XY: G and so the whole point are negated
        f = c - g + pk2  # F = C + G
        x = e * f
        x = ((x & m) + (x >> 255) * 19) % p
        y = g * hh
        y = ((y & m) + (y >> 255) * 19) % p
        z = f * g
        z = ((z & m) + (z >> 255) * 19) % p
        if db or da:
            t = e * hh
            t = ((t & m) + (t >> 255) * 19) % p
            for dd in (db, da | 16):  # + (+-) an odd multiple of B, then of -A
                if not dd & 15:
                    continue
                o = dd & 3
                if dd & 16:
                    o <<= 2
                    ym, yp, c = atab[o], atab[o + 1], atab[o + 2]
                    d = z * atab[o + 3]
                    d = (d & m) + (d >> 255) * 19
                else:  # B: constant and affine, 2Z = 2
                    o *= 96
                    ym = fb(btab[o:o + 32], "little")
                    yp = fb(btab[o + 32:o + 64], "little")
                    c = fb(btab[o + 64:o + 96], "little")
                    d = z << 1
                if dd & 4:  # a negative digit: -(x, y) = (-x, y) swaps Y-X and Y+X, negates 2dT
                    ym, yp = yp, ym
                a = (y - x + p) * ym
                a = (a & m) + (a >> 255) * 19
                b = (y + x) * yp
                b = (b & m) + (b >> 255) * 19
                c = t * c
                c = (c & m) + (c >> 255) * 19
                if dd & 4:
                    c = pk - c  # = -c (mod p), >= 0
                f, g = d - c + pk, d + c
                e, hh = b - a + pk, b + a
                x = e * f
                x = ((x & m) + (x >> 255) * 19) % p
                y = g * hh
                y = ((y & m) + (y >> 255) * 19) % p
                z = f * g
                z = ((z & m) + (z >> 255) * 19) % p
                if da and not dd & 16:
                    t = e * hh  # the A addition follows; after it, a doubling (no T needed)
                    t = ((t & m) + (t >> 255) * 19) % p
        i -= 1
    zi = _pow22501(z)
    zi = _sq(zi[0], 5) * zi[1] % p  # z^(2^255 - 21) = z^(p-2) = 1/z
    x = x * zi % p
    y = y * zi % p
    return (y | ((x & 1) << 255)) == int.from_bytes(sig[:32], "little")
