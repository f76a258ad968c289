"""DTLS 1.2 PSK cryptography (RFC 5246 §5, §6.2.3.3, §8.1; RFC 4279 §2; RFC 6655; RFC 7627; RFC 6347
§4.1.2.6): the PRF, the key schedule, AEAD record protection for the two suites, the replay window
and the stateless cookie. Pure functions and small objects over bytes; randomness and time injected.

It does not do CBC/HMAC suites, certificates or any key exchange but plain PSK.
"""

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from verifier.errors import VerifierError

PSK_WITH_AES_128_CCM_8 = 0xC0A8           # RFC 6655 §4; CoAP's mandatory suite (RFC 7252 §9.1.3.1)
PSK_WITH_AES_128_GCM_SHA256 = 0x00A8      # RFC 5487 §3.1; what MicroPython's native tls offers
SUITES = (PSK_WITH_AES_128_CCM_8, PSK_WITH_AES_128_GCM_SHA256)   # server preference order
TAG_LEN = {PSK_WITH_AES_128_CCM_8: 8, PSK_WITH_AES_128_GCM_SHA256: 16}
EXPLICIT_NONCE_LEN = 8
MAX_PSK_LEN = 64                          # RFC 4279 §5.3


class DTLSError(VerifierError):
    """A DTLS record or handshake is malformed, unexpected or fails verification."""

    code = "dtls_error"

    def __init__(self, message, alert=None):
        super().__init__(message)
        self.alert = alert               # the alert description to send, or None to drop silently


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_sha256 = hashlib.sha256


class HMACKey:
    """HMAC-SHA256 (RFC 2104) under one key, the padded key hashed once: each `digest(msg)` then costs
    two hash-state copies. (hmac.digest re-fetches the algorithm and re-pads the key on every call,
    about four times slower with OpenSSL 3; the PRF and the cookie reuse one key many times.)"""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key):
        if len(key) > 64:
            key = _sha256(key).digest()
        key = key.ljust(64, b"\x00")
        self._inner = _sha256(key.translate(_IPAD))
        self._outer = _sha256(key.translate(_OPAD))

    def digest(self, msg):
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def prf(secret, label, seed, length):
    """TLS 1.2 PRF with P_SHA256 (RFC 5246 §5); `secret` is bytes or an HMACKey (to reuse one)."""
    mac = (secret if type(secret) is HMACKey else HMACKey(secret)).digest
    seed = label + seed
    a = mac(seed)
    out = mac(a + seed)
    while len(out) < length:
        a = mac(a)
        out += mac(a + seed)
    return out[:length]


def premaster_secret(psk):
    """RFC 4279 §2: uint16(N) || N zero bytes || uint16(N) || psk."""
    n = len(psk).to_bytes(2, "big")
    return n + bytes(len(psk)) + n + psk


def master_secret(psk, client_random, server_random, session_hash=None):
    """48-byte master secret; with `session_hash` the extended master secret of RFC 7627 §4."""
    pms = premaster_secret(psk)
    if session_hash is not None:
        return prf(pms, b"extended master secret", session_hash, 48)
    return prf(pms, b"master secret", client_random + server_random, 48)


def key_block(master, client_random, server_random):
    """(client_write_key, server_write_key, client_write_IV, server_write_IV) for the AEAD suites;
    `master` is bytes or an HMACKey of it."""
    kb = prf(master, b"key expansion", server_random + client_random, 40)
    return kb[0:16], kb[16:32], kb[32:36], kb[36:40]


def verify_data(master, label, transcript):
    """Finished.verify_data (RFC 5246 §7.4.9): `label` is b"client finished" or b"server finished"."""
    return prf(master, label, hashlib.sha256(transcript).digest(), 12)


_AAD = struct.Struct(">8sBHH")       # seq_num (epoch + sequence), type, version, length (RFC 5246 §6.2.3.3)


class RecordCipher:
    """AEAD protection of one direction of epoch 1 (RFC 5246 §6.2.3.3, RFC 6347 §4.1.2.1)."""

    __slots__ = ("_aead", "_salt", "_tag_len")

    def __init__(self, suite, key, salt):
        self._tag_len = TAG_LEN[suite]
        self._aead = AESCCM(key, tag_length=8) if suite == PSK_WITH_AES_128_CCM_8 else AESGCM(key)
        self._salt = salt

    @property
    def overhead(self):
        return EXPLICIT_NONCE_LEN + self._tag_len

    def seal(self, seq8, content_type, plaintext):
        """Fragment = seq8 (the explicit nonce) || ciphertext || tag."""
        aad = _AAD.pack(seq8, content_type, 0xFEFD, len(plaintext))
        return seq8 + self._aead.encrypt(self._salt + seq8, plaintext, aad)

    def open(self, seq8, content_type, fragment):
        """The plaintext, or DTLSError (no alert: bad records are dropped silently, §4.1.2.7)."""
        n = len(fragment) - EXPLICIT_NONCE_LEN - self._tag_len
        if n < 0:
            raise DTLSError("protected record too short")
        aad = _AAD.pack(seq8, content_type, 0xFEFD, n)
        try:
            return self._aead.decrypt(self._salt + fragment[:EXPLICIT_NONCE_LEN], fragment[EXPLICIT_NONCE_LEN:], aad)
        except InvalidTag:
            raise DTLSError("record does not authenticate") from None


class ReplayWindow:
    """RFC 6347 §4.1.2.6 sliding window: check before decrypting, update only after the tag verifies."""

    SIZE = 64
    __slots__ = ("top", "bits")

    def __init__(self):
        self.top = -1
        self.bits = 0

    def check(self, n):
        """True if record number `n` is new (not seen, not left of the window)."""
        if n > self.top:
            return True
        d = self.top - n
        return d < self.SIZE and not (self.bits >> d) & 1

    def update(self, n):
        if n > self.top:
            shift = n - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << self.SIZE) - 1) if shift < self.SIZE else 1
            self.top = n
        else:
            self.bits |= 1 << (self.top - n)


class CookieJar:
    """Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1): HMAC(secret, client address || hello),
    the secret rotated every `period_s`, the previous one still accepted (the grace period)."""

    LEN = 16

    def __init__(self, now, period_s=60.0, rand=os.urandom):
        self._rand = rand
        self._period = period_s
        self._secret = HMACKey(rand(32))
        self._previous = self._secret
        self._rotated = now

    def _rotate(self, now):
        if now - self._rotated >= self._period:
            # after two periods without traffic the old secret is as stale as the current one
            self._previous = self._secret if now - self._rotated < 2 * self._period else HMACKey(self._rand(32))
            self._secret = HMACKey(self._rand(32))
            self._rotated = now

    @staticmethod
    def _mac(secret, addr, hello):
        return secret.digest(repr(addr).encode() + b"\x00" + hello)[:CookieJar.LEN]

    def make(self, addr, hello, now):
        self._rotate(now)
        return self._mac(self._secret, addr, hello)

    def verify(self, addr, hello, cookie, now):
        self._rotate(now)
        if len(cookie) != self.LEN:
            return False
        if hmac.compare_digest(self._mac(self._secret, addr, hello), cookie):
            return True
        # which secret matched is no secret; each comparison is constant-time
        return (self._previous is not self._secret
                and hmac.compare_digest(self._mac(self._previous, addr, hello), cookie))
