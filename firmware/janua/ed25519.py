"""Ed25519 signature verification (RFC 8032 §5.1.7) in pure Python, for stock MicroPython.

Verify only: this module never holds a private key and cannot sign. `valid(pub, msg, sig)` is
True for a good signature and False for anything else, malformed input included; it never raises
on untrusted bytes. The check is the cofactorless one RFC 8032 §5.1.7 allows: [S]B - [k]A is
computed and encoded, then compared with R's 32 bytes (R is never decompressed, so a
non-canonical R simply fails to match). S >= L and a non-canonical A (y >= p, or x = 0 with the
sign bit set) are rejected.

How it stays fast and small enough for a microcontroller. On MicroPython every big-int operation
allocates a new object (two heap blocks), so the cost that matters is the number of big-int
operations, and the heap they churn through (each pass of the garbage collector scans the heap):
- extended twisted-Edwards coordinates (X:Y:Z:T), RFC 8032 §5.1.4 formulas: no inversion in
  the loop, one inversion at the end;
- one joint pass for [S]B + [k](-A) (Straus/Shamir) over width-5 NAF digits (odd, -15..15, at
  least 4 zeros between two non-zero ones): about 253 doublings and 2 x 42 additions;
- tables of the odd multiples 1, 3, ..., 15 of B and of -A in the cached form (Y-X, Y+X, 2dT, 2Z),
  so an addition costs 8 multiplications; a negative digit swaps Y-X and Y+X and the sign of 2dT,
  which costs nothing. The B table is constants (affine, Z = 1: one multiplication fewer per
  addition), not computed at import. T is computed only when an addition follows;
- every product is reduced with one `% p` (two operations, one short-lived result; folding
  2^255 = 19 by hand takes eight); subtractions add p first, so no big int is ever negative
  (negative big ints are slow and allocation-hungry on MicroPython). The coordinates stay in local
  variables: no tuple per point operation.
One verification allocates about 1 MB on the unix port (64-bit, 32-byte heap blocks; less on a
32-bit board), a fifth of it in SHA-512, all of it short-lived: live data stays at a few KiB.
"""

import gc
from janua.sha512 import SHA512

_P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED  # 2^255 - 19
_MASK = (1 << 255) - 1
_D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3
_D2 = 0x2406D9DC56DFFCE7198E80F2EEF3D13000E0149A8283B156EBD69B9426B2F159
_SQRTM1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0
_L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED

# (y-x, y+x, 2dxy) mod p of the affine odd multiples 1B, 3B, ..., 15B (the cached form with
# 2Z = 2), generated once with exact arithmetic; any wrong entry fails the RFC 8032 vectors.
_BTAB = (
    (0x44fd2f9298f81267a5c18434688f8a09fd399f05d140beb39d103905d740913e,
     0x07cf9d3a33d4ba65270b4898643d42c2cf932dc6fb8c0e192fbc93c6f58c3b85,
     0x6f117b689f0c65a85a1b7dcbdd43598c26d9e823ccaac49eabc91205877aaa68),
    (0x2ab91587555bda628131f31a214bd6bd3bd353fde5c1ba7d56611fe8a4fcd265,
     0x7a164e1b9a80f8f4c11b50029f016732025a8430e8864b8aaf25b0a84cee9730,
     0x5a2826af12b9b4c6d170e5458cf2db4c589423221c35da6214ae933f0dd0d889),
    (0x154a7e73eb1b55f3e33cf11cb864a087d50014d14b2729b77f9182c3a447d6ba,
     0x2945ccf146e206ebdd1beb0c5abfec448d5048c3c75eed02a212bc4408a5bb33,
     0x43aabe696b3bb69ab41b670b1bbda72d270e0807d0bdd1fcbcbbdbf1812a8285),
    (0x1d6edd5d2e5317e09dea764f92192c3a6ca021533bba23a7ba6f2c9aaa3221b1,
     0x461bea69283c927e71b2528228542e497470353ab39dc0d26b1a5cd0944ea3bf,
     0x7a9fbb1c6a0f90a7529c41ba5877adf3b3035f47053ea49af1836dc801b8b3a2),
    (0x49c05a51fadc9c8f96cbc608e75eb04498a081b6f520419bf36e217e039d8064,
     0x34b9ed338add7f59ceb233c9c686f5b5a6509e6f51bc46c59b2e678aa6a8632f,
     0x73c172021b008b06aaf6fc2993d4cf16e2ff83e8a719d22f06b4e8bf9045af1b),
    (0x18ab598029d5c77fa3a075556a8deb953ed6b36977088381315f5b0249864348,
     0x4275aae2546d8faf113e847117703406e5d9fecf02302e272fbf00848a802ade,
     0x3dc65522b53df94844311199b51a8622031eb4a13282e4a4d82b2cc5fd6089e9),
    (0x0267882d176024a79d12b232aaad5968aefcebc99b776f6b506f013b327fbf93,
     0x234fd7eec346f241537a0e12fb07ba07bf84b39ab5bcdedbbf70c222a2007f6d,
     0x497ba6fdaa097863a2ef37f891a7e5332437e6b1df8dd4715360a119732ea378),
    (0x43b5cd4218d05ebf7508300807b25192d3829ba42a9910d6040bcd86468ccf0b,
     0x61e22917f12de72b2dbdbdfac1f2d4d08648c28d189c246d24cecc0313cfeaa0,
     0x511d61210ae4d842032e5a7d93d64270eb38af4e373fdeee5d9a762f9bd0b516),
)


def _naf(b):
    # Width-5 NAF of the 32-byte little-endian scalar b (< 2^253): a bytearray of 256 digits, least
    # significant first; a digit is 0, n (+n) or 128|n (-n) for odd n in 1..15, and any two non-zero
    # digits are at least 5 apart. Small ints only: the scalar is read 5 bits at a time from b.
    out = bytearray(256)
    b = bytes(b) + b"\x00\x00"
    i = 0
    c = 0  # carry into bit i
    while i < 256:
        j = i >> 3
        v = (((b[j] | (b[j + 1] << 8)) >> (i & 7)) & 31) + c
        if not v & 1:
            i += 1  # bit i equals the carry: digit 0, and the carry moves up unchanged
        elif v < 16:
            out[i] = v
            c = 0
            i += 5
        else:
            out[i] = 128 | (32 - v)  # v - 32
            c = 1
            i += 5
    return out


def _decode_point(b):
    # The affine (x, y) of a 32-byte encoding, or None when it is not a canonical point encoding.
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= _MASK
    if y >= _P:
        return None
    yy = y * y % _P
    u = (yy + _P - 1) % _P
    v = (_D * yy + 1) % _P
    v3 = v * v % _P * v % _P
    x = u * v3 % _P * pow(u * v3 % _P * v3 % _P * v % _P, (_P - 5) // 8, _P) % _P
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


def _atab(x1, y1):
    # The odd multiples 1, 3, ..., 15 of the affine point (x1, y1) in cached form (Y-X, Y+X, 2dT, 2Z).
    p = _P
    t1 = x1 * y1 % p
    # 2P (dbl-2008-hwcd), then its cached form
    a = x1 * x1 % p
    b = y1 * y1 % p
    h = a + b
    s = x1 + y1
    e = h - s * s % p + p
    g = a - b + p
    f = g + 2
    x2 = e * f % p
    y2 = g * h % p
    z2 = f * g % p
    ym2 = (y2 - x2 + p)
    yp2 = y2 + x2
    td2 = e * h % p * _D2 % p
    zz2 = z2 << 1
    tab = [(y1 - x1 + p, y1 + x1, t1 * _D2 % p, 2)]
    z1 = 1
    for _ in range(7):
        # (x1, y1, z1, t1) += 2P (add-2008-hwcd-3)
        a = (y1 - x1 + p) * ym2 % p
        b = (y1 + x1) * yp2 % p
        c = t1 * td2 % p
        d = z1 * zz2 % p
        e = b - a + p
        f = d - c + p
        g = d + c
        h = b + a
        x1 = e * f % p
        y1 = g * h % p
        z1 = f * g % p
        t1 = e * h % p
        tab.append((y1 - x1 + p, y1 + x1, t1 * _D2 % p, z1 << 1))
    return tab


def valid(pub, msg, sig):
    """True iff `sig` is a valid Ed25519 signature of `msg` under the 32-byte public key `pub`."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False  # RFC 8032 §5.1.7 step 1: reject S >= L (malleability)
    # Start from a collected heap: the few long-lived values of this call then sit together, and
    # the collector has the least to scan when the short-lived ones fill the heap.
    gc.collect()
    a = _decode_point(pub)
    if a is None:
        return False
    h = SHA512(sig[:32])
    h.update(pub)
    h.update(msg)
    k = int.from_bytes(h.digest(), "little") % _L
    h = None
    p = _P
    btab = _BTAB
    atab = _atab(p - a[0], a[1])  # multiples of -A
    nb = _naf(sig[32:])
    na = _naf(k.to_bytes(32, "little"))
    i = 255
    while i >= 0 and not (nb[i] or na[i]):
        i -= 1
    x = 0  # the neutral element (0:1:1:0)
    y = 1
    z = 1
    t = 0
    while i >= 0:
        db = nb[i]
        da = na[i]
        # 2P (dbl-2008-hwcd); T only when an addition follows
        a = x * x % p
        b = y * y % p
        c = z * z % p << 1
        hh = a + b
        e = x + y
        e = hh - e * e % p + p
        g = a - b + p
        f = c + g
        x = e * f % p
        y = g * hh % p
        z = f * g % p
        if db or da:
            t = e * hh % p
        if db:
            # + (+-) odd multiple of B, cached and affine: 2Z = 2
            if db & 128:
                yp, ym, c = btab[(db & 127) >> 1]
            else:
                ym, yp, c = btab[db >> 1]
            a = (y - x + p) * ym % p
            b = (y + x) * yp % p
            c = t * c % p
            d = z << 1
            if db & 128:
                f = d + c
                g = d - c + p
            else:
                f = d - c + p
                g = d + c
            e = b - a + p
            hh = b + a
            x = e * f % p
            y = g * hh % p
            z = f * g % p
            if da:
                t = e * hh % p
        if da:
            # + (+-) odd multiple of -A; T is not needed next (a doubling follows)
            if da & 128:
                yp, ym, c, d = atab[(da & 127) >> 1]
            else:
                ym, yp, c, d = atab[da >> 1]
            a = (y - x + p) * ym % p
            b = (y + x) * yp % p
            c = t * c % p
            d = z * d % p
            if da & 128:
                f = d + c
                g = d - c + p
            else:
                f = d - c + p
                g = d + c
            e = b - a + p
            hh = b + a
            x = e * f % p
            y = g * hh % p
            z = f * g % p
        i -= 1
    zi = pow(z, p - 2, p)
    x = x * zi % p
    y = y * zi % p
    return (y | ((x & 1) << 255)) == int.from_bytes(sig[:32], "little")
