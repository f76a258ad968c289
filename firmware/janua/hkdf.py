"""HKDF-SHA256 (RFC 5869) and the janua per-protocol key derivation (docs/protocol.md section 1).

Used at boot or provisioning only, so it favours clarity over heap. It does not store keys and
does not know which protocols exist beyond the label it is given.
"""

from janua.mac import HMAC

SALT = b"janua/v1"


def extract(salt, ikm):
    # RFC 5869 section 2.2; an empty salt means HashLen zero bytes.
    return HMAC(salt or bytes(32)).digest(ikm)


def expand(prk, info, length=32):
    # RFC 5869 section 2.3: T(i) = HMAC(PRK, T(i-1) || info || i).
    if not 0 < length <= 255 * 32:
        raise ValueError("hkdf length")
    m = HMAC(prk)
    out = b""
    t = b""
    i = 1
    while len(out) < length:
        t = m.digest(t + info, bytes((i,)))
        out += t
        i += 1
    return out[:length]


def derive(master, label):
    """K_label = HKDF-SHA256(salt="janua/v1", IKM=master, info=label, L=32)."""
    if isinstance(label, str):
        label = label.encode()
    return expand(extract(SALT, master), label, 32)
