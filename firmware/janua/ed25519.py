"""Ed25519 signature verification (RFC 8032 §5.1.7) in pure Python, for stock MicroPython.

Verify only: this module never holds a private key and cannot sign. `valid(pub, msg, sig)` is
True for a good signature and False for anything else, malformed input included; it never raises
on untrusted bytes. The check is the cofactorless one RFC 8032 §5.1.7 allows: [S]B - [k]A is
computed and encoded, then compared with R's 32 bytes (R is never decompressed, so a
non-canonical R simply fails to match). S >= L and a non-canonical A (y >= p, or x = 0 with the
sign bit set) are rejected.

How it stays fast enough for a microcontroller:
- extended twisted-Edwards coordinates (X:Y:Z:T), RFC 8032 §5.1.4 formulas: no inversion in
  the loop, one inversion at the end;
- one joint pass for [S]B + [k](-A) (Straus/Shamir) with 4-bit fixed windows: 252 doublings and
  at most 128 additions;
- 16-entry tables of j*B (built once, at import) and j*(-A) (per call) in the cached form
  (Y-X, Y+X, 2dT, 2Z), so an addition costs 8 multiplications;
- lazy reduction: fold 2^255 = 19 twice instead of `%`; subtractions add 4p first so no big int
  ever goes negative (negative big ints are slow and allocation-hungry on MicroPython).
"""

from janua.sha512 import SHA512

_P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED  # 2^255 - 19
_P4 = 4 * _P
_BIAS = _P << 15  # > 2^269: larger than any once-folded value
_MASK = (1 << 255) - 1
_D = 0x52036CEE2B6FFE738CC740797779E89800700A4D4141D8AB75EB4DCA135978A3
_D2 = 0x2406D9DC56DFFCE7198E80F2EEF3D13000E0149A8283B156EBD69B9426B2F159
_SQRTM1 = 0x2B8324804FC1DF0B2B4D00993DFBD7A72F431806AD2FE478C4EE1B274A0EA0B0
_L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED
_BX = 0x216936D3CD6E53FEC0A4E231FDD6DC5C692CC7609525A7B2C9562D608F25D51A
_BY = 0x6666666666666666666666666666666666666666666666666666666666666658

def _r(x):
    # x mod p, not fully reduced: the result is < 2^255 + 2^11 for any x < 2^520.
    x = (x & _MASK) + 19 * (x >> 255)
    return (x & _MASK) + 19 * (x >> 255)


def _dbl(p, want_t):
    # 2P (RFC 8032 §5.1.4 "dbl-2008-hwcd"); T3 only when the next step is an addition.
    # Reductions are written out (a call per multiplication costs ~30% on MicroPython): the
    # inner products are folded once (< 2^268), the outputs twice (< 2^256); subtractions add
    # _BIAS, a multiple of p above 2^269, so nothing goes negative.
    x1, y1, z1, _ = p
    m = _MASK
    a = x1 * x1
    a = (a & m) + 19 * (a >> 255)
    b = y1 * y1
    b = (b & m) + 19 * (b >> 255)
    c = z1 * z1
    c = ((c & m) + 19 * (c >> 255)) << 1
    h = a + b
    s = x1 + y1
    s = s * s
    e = h - ((s & m) + 19 * (s >> 255)) + _BIAS
    g = a - b + _BIAS
    f = c + g
    x = e * f
    x = (x & m) + 19 * (x >> 255)
    y = g * h
    y = (y & m) + 19 * (y >> 255)
    z = f * g
    z = (z & m) + 19 * (z >> 255)
    if want_t:
        t = e * h
        t = (t & m) + 19 * (t >> 255)
        t = (t & m) + 19 * (t >> 255)
    else:
        t = 0
    return ((x & m) + 19 * (x >> 255), (y & m) + 19 * (y >> 255), (z & m) + 19 * (z >> 255), t)


def _add(p, q):
    # P + Q with Q in cached form (Y-X, Y+X, 2dT, 2Z) ("add-2008-hwcd-3"); folds as in _dbl.
    x1, y1, z1, t1 = p
    ym, yp, t2d, z2 = q
    m = _MASK
    a = (y1 - x1 + _P4) * ym
    a = (a & m) + 19 * (a >> 255)
    b = (y1 + x1) * yp
    b = (b & m) + 19 * (b >> 255)
    c = t1 * t2d
    c = (c & m) + 19 * (c >> 255)
    d = z1 * z2
    d = (d & m) + 19 * (d >> 255)
    e = b - a + _BIAS
    f = d - c + _BIAS
    g = d + c
    h = b + a
    x = e * f
    x = (x & m) + 19 * (x >> 255)
    y = g * h
    y = (y & m) + 19 * (y >> 255)
    z = f * g
    z = (z & m) + 19 * (z >> 255)
    t = e * h
    t = (t & m) + 19 * (t >> 255)
    return ((x & m) + 19 * (x >> 255), (y & m) + 19 * (y >> 255), (z & m) + 19 * (z >> 255),
            (t & m) + 19 * (t >> 255))


def _cached(p):
    x, y, z, t = p
    return (_r(y - x + _P4), y + x, _r(t * _D2), 2 * z)


def _table(x, y):
    # [(0), 1P, 2P, ..., 15P] in cached form for the affine point (x, y).
    p1 = (x, y, 1, x * y % _P)
    c1 = _cached(p1)
    tab = [None, c1]
    p = p1
    for _ in range(14):
        p = _add(p, c1)
        tab.append(_cached(p))
    return tab


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


def valid(pub, msg, sig):
    """True iff `sig` is a valid Ed25519 signature of `msg` under the 32-byte public key `pub`."""
    if len(pub) != 32 or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _L:
        return False  # RFC 8032 §5.1.7 step 1: reject S >= L (malleability)
    a = _decode_point(pub)
    if a is None:
        return False
    h = SHA512(sig[:32])
    h.update(pub)
    h.update(msg)
    k = int.from_bytes(h.digest(), "little") % _L
    btab = _BTAB
    atab = _table(_P - a[0], a[1])  # multiples of -A
    sb = sig[32:]
    kb = k.to_bytes(32, "little")
    q = (0, 1, 1, 0)  # the neutral element
    for i in range(63, -1, -1):
        if i != 63:
            q = _dbl(q, False)
            q = _dbl(q, False)
            q = _dbl(q, False)
            q = _dbl(q, True)
        sh = (i & 1) * 4
        j = (sb[i >> 1] >> sh) & 15
        if j:
            q = _add(q, btab[j])
        j = (kb[i >> 1] >> sh) & 15
        if j:
            q = _add(q, atab[j])
    x, y, z, _ = q
    zi = pow(z, _P - 2, _P)
    x = x * zi % _P
    y = y * zi % _P
    return (y | ((x & 1) << 255)) == int.from_bytes(sig[:32], "little")


# j*B for j = 0..15 in cached form, built at import (3-4 ms on the unix port) so that these long-
# lived big ints sit together at the bottom of the heap instead of being scattered among the
# garbage of a verification, which would leave no 4 KiB hole for the OTA buffer on a small heap.
_BTAB = _table(_BX, _BY)
