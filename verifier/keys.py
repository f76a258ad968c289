"""Key material: HKDF labels (docs/protocol.md section 1), sealing under the KEK, admin tokens.

Pure functions over bytes; no storage, no I/O except os.urandom. Secrets are never logged here.
"""

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from verifier.errors import CryptoError

SALT = b"janua/v1"
LABEL_BINAUTH = b"binauth"
LABELS = (b"binauth", b"dtls-psk", b"attest", b"token", b"offline", b"mqtt-sas", b"http-basic", b"health")
LABEL_HEALTH = b"health"
MASTER_SECRET_LEN = 32
DEVICE_ID_LEN = 8
KEK_LEN = 32
NONCE_LEN = 12
TOKEN_PREFIX = "jna_"


def hkdf_sha256(ikm, salt, info, length=32):
    """RFC 5869 extract-and-expand with HMAC-SHA256."""
    if length > 255 * 32:
        raise CryptoError("hkdf output too long")
    prk = hmac.digest(salt, ikm, "sha256")
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


def derive_key(master_secret, label):
    """K_label = HKDF-SHA256(salt="janua/v1", IKM=M, info=label, L=32)."""
    if label not in LABELS:
        raise CryptoError(f"unknown key label {label!r}")
    return hkdf_sha256(master_secret, SALT, label, 32)


def dtls_psk(master_secret, generation=0):
    """The DTLS PSK of key generation `generation`: K_dtls-psk for 0, else HKDF with info
    "dtls-psk/<generation>" (decimal), same salt and length (docs/protocol.md section 4.1)."""
    if not isinstance(generation, int) or generation < 0:
        raise CryptoError("a PSK generation is an integer >= 0")
    if generation == 0:
        return derive_key(master_secret, b"dtls-psk")
    return hkdf_sha256(master_secret, SALT, b"dtls-psk/%d" % generation, 32)


def seal_aad(device_id, tenant_id):
    """AAD binding a sealed secret to its device and tenant (cannot be moved to another row)."""
    return device_id + tenant_id.encode()


class Sealer:
    """AES-256-GCM under the key-encryption key. Sealed form: nonce(12) || ciphertext || tag(16).

    `old` are earlier KEKs (a KEK rotation, docs/api.md "KEK rotation"): seal always uses `kek`; unseal tries
    `kek` first, then each old key in order, and fails as before only when none opens the value."""

    def __init__(self, kek, old=()):
        aeads = []
        for k in (kek, *old):
            if len(k) != KEK_LEN:
                raise CryptoError("the KEK must be 32 bytes")
            aeads.append(AESGCM(k))
        self._aead, self._old = aeads[0], tuple(aeads[1:])

    def seal(self, secret, device_id, tenant_id, nonce=None):
        nonce = os.urandom(NONCE_LEN) if nonce is None else nonce
        return nonce + self._aead.encrypt(nonce, secret, seal_aad(device_id, tenant_id))

    def unseal(self, sealed, device_id, tenant_id):
        aad = seal_aad(device_id, tenant_id)
        for aead in (self._aead, *self._old):
            try:
                return aead.decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], aad)
            except Exception:  # cryptography raises InvalidTag; any failure means: not this key's
                continue
        raise CryptoError("sealed secret does not open under this KEK (wrong KEK or tampered row)")


def new_token():
    """A new admin token: 'jna_' + 32 random bytes, urlsafe base64 without padding."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def hash_token(token):
    """Tokens are stored only as SHA-256 hashes."""
    return hashlib.sha256(token.encode()).digest()


def ct_eq(a, b):
    """Constant-time equality for MACs and token hashes."""
    return hmac.compare_digest(a, b)
