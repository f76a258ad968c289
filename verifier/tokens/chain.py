"""Offline chain tokens (docs/tokens.md section 3): the 107-byte codec, ES256 signing over raw r||s,
chain building and offline verification.

Pure functions over bytes: no storage, no clock (every check takes `now`), no I/O. Shared by the cloud
verifier (verifier/tokens/routes.py), the edge verifier and the tests. What this module deliberately does
not decide: whether a token was already used, and whether its device is still active; the caller
checks those against its own state and raises ChainTokenRefused("replayed" / "revoked" / ...).

Layout, big-endian:
    off len
    0   1   version = 1
    1   4   kid (the signing key's 4 bytes)
    5   8   device id
    13  2   index (u16)
    15  4   nbf (u32 unix seconds) = chain start + index * period
    19  4   exp (u32) = nbf + validity
    23  4   tenant hash = SHA-256(tenant id)[:4]
    27  16  prev = SHA-256(previous token's 107 bytes)[:16], zeros for index 0
    43  64  ES256 signature (raw r||s, RFC 7518 section 3.4) over bytes 0..42
"""

import hashlib
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from verifier.errors import Unauthorized

VERSION = 1
TOKEN_LEN = 107
SIGNED_LEN = 43
SIG_LEN = 64
PREV_LEN = 16
KID_LEN = 4
TENANT_HASH_LEN = 4
MAX_INDEX = 0xFFFF
MAX_U32 = 0xFFFFFFFF
ZERO_PREV = bytes(PREV_LEN)
_HEAD = struct.Struct(">B4s8sHII4s16s")          # the 43 signed bytes

REASONS = ("malformed", "unknown_key", "bad_signature", "not_yet_valid", "expired", "replayed", "revoked",
           "unknown_device")


# refused before the signature is checked: anyone can cause these (their audit rows are bounded)
UNAUTHENTICATED_REASONS = frozenset(("malformed", "unknown_key", "bad_signature"))


class ChainTokenRefused(Unauthorized):
    """An offline chain token was refused; `.reason` is one of REASONS, `.detail` optional free text (both
    audit only, never sent out)."""

    code = "unauthenticated"

    def __init__(self, reason, detail=None):
        if reason not in REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__("refused")
        self.reason, self.detail = reason, detail


# -- ES256 over raw r||s (shared with the JWT code in verifier/tokens/core.py) ------------------------

def es256_sign(private_key, data):
    """ECDSA P-256 / SHA-256 signature of `data` as 64 raw bytes r||s."""
    r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def es256_verify(public_key, signature, data):
    """True iff `signature` (64 raw bytes r||s) is a valid ES256 signature of `data` under `public_key`."""
    if len(signature) != SIG_LEN:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def signer(private_key):
    """The `sign` callable encode_chain_token wants: bytes -> 64-byte raw signature."""
    return lambda data: es256_sign(private_key, data)


# -- codec ----------------------------------------------------------------------------------------

def tenant_hash(tenant_id):
    """The 4-byte tenant binding of a chain token: SHA-256(tenant id as UTF-8)[:4]."""
    return hashlib.sha256(tenant_id.encode()).digest()[:TENANT_HASH_LEN]


def chain_link(token):
    """The `prev` field the next token carries: SHA-256(token's 107 bytes)[:16]."""
    return hashlib.sha256(token).digest()[:PREV_LEN]


def encode_chain_token(kid, device_id, index, nbf, exp, tenant_hash_, prev, sign):
    """The 107-byte token; `sign(bytes) -> 64 bytes` signs bytes 0..42."""
    if len(kid) != KID_LEN or len(device_id) != 8 or len(tenant_hash_) != TENANT_HASH_LEN or len(prev) != PREV_LEN:
        raise ValueError("kid 4, device id 8, tenant hash 4 and prev 16 bytes")
    if not 0 <= index <= MAX_INDEX or not 0 <= nbf <= exp <= MAX_U32:
        raise ValueError("index must fit u16, 0 <= nbf <= exp must fit u32")
    head = _HEAD.pack(VERSION, kid, device_id, index, nbf, exp, tenant_hash_, prev)
    sig = sign(head)
    if len(sig) != SIG_LEN:
        raise ValueError("the signature must be 64 bytes r||s")
    return head + sig


def decode_chain_token_unverified(b):
    """The fields of a token, before any signature check. Raises ChainTokenRefused("malformed")."""
    if not isinstance(b, (bytes, bytearray, memoryview)) or len(b) != TOKEN_LEN:
        raise ChainTokenRefused("malformed", f"{len(b) if isinstance(b, (bytes, bytearray, memoryview)) else 0} "
                                             f"bytes, not {TOKEN_LEN}")
    b = bytes(b)
    version, kid, device_id, index, nbf, exp, th, prev = _HEAD.unpack_from(b)
    if version != VERSION:
        raise ChainTokenRefused("malformed", f"version {version}")
    if exp < nbf:
        raise ChainTokenRefused("malformed", "exp before nbf")
    return {"version": version, "kid": kid, "device_id": device_id, "index": index, "nbf": nbf, "exp": exp,
            "tenant_hash": th, "prev": prev, "signature": b[SIGNED_LEN:], "signed": b[:SIGNED_LEN]}


def verify_chain_token(b, public_keys, now, drift_s):
    """Decode, then check the signature with the key named by kid, then the window
    nbf - drift_s <= now <= exp + drift_s. Returns the decoded fields (decode_chain_token_unverified).
    public_keys: {kid bytes: EllipticCurvePublicKey}. Raises ChainTokenRefused with reason malformed,
    unknown_key, bad_signature, not_yet_valid or expired, in that order of checking."""
    tok = decode_chain_token_unverified(b)
    key = public_keys.get(tok["kid"])
    if key is None:
        raise ChainTokenRefused("unknown_key")
    if not es256_verify(key, tok["signature"], tok["signed"]):
        raise ChainTokenRefused("bad_signature")
    if now < tok["nbf"] - drift_s:
        raise ChainTokenRefused("not_yet_valid")
    if now > tok["exp"] + drift_s:
        raise ChainTokenRefused("expired")
    return tok


def verify_chain_link(previous, token):
    """True iff `token` carries prev = chain_link(previous) and follows it by one index."""
    p, t = decode_chain_token_unverified(previous), decode_chain_token_unverified(token)
    return t["index"] == p["index"] + 1 and t["device_id"] == p["device_id"] and t["prev"] == chain_link(previous)


def build_chain(kid, device_id, tenant_id, start, period, validity, first_index, count, prev, sign):
    """`count` consecutive tokens from `first_index`: nbf = start + index * period, exp = nbf + validity,
    each linked to the one before (`prev` links the first; ZERO_PREV for index 0)."""
    th, out = tenant_hash(tenant_id), []
    for index in range(first_index, first_index + count):
        nbf = start + index * period
        tok = encode_chain_token(kid, device_id, index, nbf, nbf + validity, th, prev, sign)
        out.append(tok)
        prev = chain_link(tok)
    return out


# -- what the cloud and the edge both record for a used chain index (docs/tokens.md section 3.3) ---

REVOCATION_REFRESH_S = 3600     # next_update of the revocation lists the cloud hands out


def used_expires(state, index, signed_until):
    """chain_used.expires for chain index `index` of a device whose chain state is `state`: an upper
    bound of the exp of the token with that index. `signed_until`: a callable returning
    TokenKeys.max_signed_until() (called only if needed; callers memoize it).
    - Current segment (seg_first <= index < next_index): exact, the exp the verifier gave the token when
      it issued it (a segment's base, period and validity never change once tokens are issued in it).
    - An older segment (index < seg_first), whose schedule is gone: the largest signed_until of the
      signing keys. It is safe: every token a key signed has exp <= that key's signed_until (note_signed
      raises and persists it before the token leaves the verifier), keys are never deleted, and a token
      whose kid is not in the table cannot verify at all.
    - Not issued (yet): no bound exists (a future segment may give it any exp), so the row stays for good."""
    if state is not None and state["seg_first"] <= index < state["next_index"]:
        return state["base"] + index * state["period"] + state["validity"]
    if state is not None and index < state["seg_first"]:
        return signed_until()
    return MAX_U32
