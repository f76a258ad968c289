"""Device tokens (docs/tokens.md): the verifier-wide ES256 signing keys (sealed at rest, rotated with
an overlap), the JWKS, and compact JWTs (RFC 7519 / RFC 7515, ES256 with raw r||s signatures).

The JWT codec (encode_jwt / verify_jwt) is pure; validate_device_token adds the device's current
status from storage, so a suspended or decommissioned device's token stops working at once. What this
module deliberately does not do: accept any algorithm but ES256, any key id it does not hold, or a
token without exp; there is no "none", no HMAC, no key from the token itself (jwk/jku/x5u).
"""

import base64
import binascii
import hashlib
import json
import logging
import os
import re

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization

from verifier.appkeys import SEALER, STORAGE
from verifier.tokens.chain import es256_sign, es256_verify
from verifier.errors import CryptoError, Unauthorized
from verifier.registry.model import Policy, parse_device_id

log = logging.getLogger("janua.verifier.tokens")

MAX_JWT = 1024                   # characters; ours are about 290
KID_BYTES = 4
RELOAD_S = 60                    # a running verifier re-reads the key table this often (CLI rotation)
PUBLISH_GRACE_S = 86400          # a retired key stays published until signed_until + this (the largest drift_s)
SIGNED_UNTIL_STEP_S = 3600       # signed_until is persisted ahead of need in steps of this, not per token
ALLOWED_HEADER = frozenset(("alg", "kid", "typ"))
SCOPES = ("telemetry", "config", "ota", "commands")          # permission bits 0..3 (docs/protocol.md 3.6)
ACTIVE = "active"
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
SEAL_TENANT = ""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tenant_short_id(tenant_id):
    """The `tid` claim: base64url(SHA-256(tenant id)[:6]), 8 characters, stable."""
    return b64url(hashlib.sha256(tenant_id.encode()).digest()[:6])


def scopes_of(permissions):
    """The `scp` claim: the names of the device's permission bits, space-separated, bit order."""
    return " ".join(name for bit, name in enumerate(SCOPES) if permissions >> bit & 1)


def device_may_authenticate(dev):
    return dev is not None and dev["status"] == ACTIVE and not dev["compromised"] and not dev["quarantined"]


# -- keys -----------------------------------------------------------------------------------------

class SigningKey:
    """One ES256 key: `private` is None when it could not be unsealed (it still verifies)."""

    __slots__ = ("kid", "kid_bytes", "private", "public", "created", "retired_at", "signed_until")

    def published_until(self):
        """None while active; else the last second the key is published and trusted."""
        if self.retired_at is None:
            return None
        return max(self.signed_until, self.retired_at) + PUBLISH_GRACE_S


def seal_id(kid):
    return b"token-key/" + bytes.fromhex(kid)


def new_key_row(sealer, now, rand=os.urandom):
    """(kid, sealed private scalar, X9.62 uncompressed public point) of a fresh P-256 key."""
    kid = rand(KID_BYTES).hex()
    priv = ec.generate_private_key(ec.SECP256R1())
    scalar = priv.private_numbers().private_value.to_bytes(32, "big")
    pub = priv.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return kid, sealer.seal(scalar, seal_id(kid), SEAL_TENANT), pub


def rotate(storage, sealer, now):
    """Create a new active key and retire the current one(s) in one transaction; (new kid, retired kids)."""
    kid, sealed, pub = new_key_row(sealer, now)
    retired = storage.add_token_key(kid, sealed, pub, int(now), retire_others_at=int(now))
    storage.add_audit([(int(now), None, "admin", None, "cli", "token.key.rotate", None, None, "ok",
                        f"new kid {kid}; retired {', '.join(retired) or 'none'}")])
    return kid, retired


def _load_key(sealer, row):
    k = SigningKey()
    k.kid, k.kid_bytes = row["kid"], bytes.fromhex(row["kid"])
    k.public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), row["pub"])
    k.created, k.retired_at, k.signed_until = row["created"], row["retired_at"], row["signed_until"]
    try:
        scalar = sealer.unseal(row["sealed"], seal_id(k.kid), SEAL_TENANT)
        k.private = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    except CryptoError:
        log.error("token key %s does not open under this KEK; it will only verify", k.kid)
        k.private = None
    return k


class TokenKeys:
    """The signing keys of a running verifier, re-read from storage every RELOAD_S seconds."""

    def __init__(self, storage, sealer):
        self._storage, self._sealer = storage, sealer
        self._keys, self._loaded_at = {}, None
        self._persisted = {}           # kid -> signed_until as stored

    def load(self, now):
        """Read the key table; create the first key if there is none."""
        rows = self._storage.list_token_keys()
        if not any(r["retired_at"] is None for r in rows):
            kid, sealed, pub = new_key_row(self._sealer, now)
            self._storage.add_token_key(kid, sealed, pub, int(now))
            log.info("created token signing key %s", kid)
            rows = self._storage.list_token_keys()
        self._keys = {r["kid"]: _load_key(self._sealer, r) for r in rows}
        self._persisted = {k: v.signed_until for k, v in self._keys.items()}
        self._loaded_at = now

    def _fresh(self, now):
        if self._loaded_at is None or not 0 <= now - self._loaded_at < RELOAD_S:
            self.load(now)

    def active(self, now):
        """The newest unretired key that can sign."""
        self._fresh(now)
        live = [k for k in self._keys.values() if k.retired_at is None and k.private is not None]
        if not live:
            raise CryptoError("no token signing key can be unsealed with this KEK")
        return max(live, key=lambda k: (k.created, k.kid))

    def trusted(self, now):
        """{kid: SigningKey} of every key still published at `now` (active or within its overlap)."""
        self._fresh(now)
        return {kid: k for kid, k in self._keys.items()
                if k.retired_at is None or now <= k.published_until()}

    def chain_keys(self, now):
        """{kid bytes: public key} for verify_chain_token."""
        return {k.kid_bytes: k.public for k in self.trusted(now).values()}

    def jwks(self, now):
        """RFC 7517 JWK Set of the trusted keys: the active one first, then the retired, newest first."""
        keys = sorted(self.trusted(now).values(), key=lambda k: (k.retired_at is None, k.retired_at or 0, k.created),
                      reverse=True)
        return {"keys": [jwk(k.kid, k.public) for k in keys]}

    def max_signed_until(self):
        """An upper bound of the exp of every token any key has signed: the largest signed_until, in
        memory (this process's signing) or stored (any other writer's). Keys are never deleted."""
        stored = [r["signed_until"] for r in self._storage.list_token_keys()]
        return max([k.signed_until for k in self._keys.values()] + stored)

    def note_signed(self, key, exp):
        """Record that `key` signed something valid until `exp` (persisted in SIGNED_UNTIL_STEP_S steps)."""
        if exp > key.signed_until:
            key.signed_until = exp
        if exp > self._persisted.get(key.kid, 0):
            until = exp + SIGNED_UNTIL_STEP_S
            self._storage.extend_token_key(key.kid, until)
            self._persisted[key.kid] = until


def jwk(kid, public_key):
    nums = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64url(nums.x.to_bytes(32, "big")),
            "y": b64url(nums.y.to_bytes(32, "big")), "kid": kid, "alg": "ES256", "use": "sig"}


# -- JWT ------------------------------------------------------------------------------------------

def _compact_json(doc):
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_jwt(key, claims):
    """ES256 compact JWS of `claims` with header {"alg":"ES256","kid":kid}."""
    signing_input = b64url(_compact_json({"alg": "ES256", "kid": key.kid})) + "." + b64url(_compact_json(claims))
    return signing_input + "." + b64url(es256_sign(key.private, signing_input.encode()))


def _int_claim(claims, name, required=True):
    v = claims.get(name)
    if v is None and not required:
        return
    if type(v) is not int or v < 0:
        raise Unauthorized(f"token claim {name} must be a non-negative integer")


def verify_jwt(token, keys, now, leeway=0):
    """Verify a device JWT against {kid: SigningKey}; return its claims or raise Unauthorized.
    Order: shape, header (alg ES256, a known kid, nothing else), signature, then the claims
    (sub a device id, exp present and not passed, iat, scp, tid)."""
    if not isinstance(token, str) or len(token) > MAX_JWT or token.count(".") != 2:
        raise Unauthorized("malformed token")
    h64, p64, s64 = token.split(".")
    try:
        header = json.loads(b64url_decode(h64))
        sig = b64url_decode(s64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed token") from None
    if not isinstance(header, dict) or not set(header) <= ALLOWED_HEADER or header.get("alg") != "ES256" \
            or header.get("typ", "JWT") != "JWT":
        raise Unauthorized("token algorithm must be ES256")
    key = keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if key is None:
        raise Unauthorized("unknown token key")
    if not es256_verify(key.public, sig, (h64 + "." + p64).encode()):
        raise Unauthorized("bad token signature")
    try:
        claims = json.loads(b64url_decode(p64))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed token") from None
    if not isinstance(claims, dict):
        raise Unauthorized("malformed token")
    _int_claim(claims, "exp")
    _int_claim(claims, "iat")
    _int_claim(claims, "nbf", required=False)
    if parse_device_id(claims.get("sub")) is None:
        raise Unauthorized("token subject must be a device id")
    if not isinstance(claims.get("tid"), str) or not isinstance(claims.get("scp"), str):
        raise Unauthorized("token claims tid and scp must be strings")
    if now > claims["exp"] + leeway:
        raise Unauthorized("token expired")
    if now + leeway < claims.get("nbf", 0):
        raise Unauthorized("token not yet valid")
    return claims


# -- the verifier's API for other modules ---------------------------------------------------------

TOKEN_KEYS = web.AppKey("token_keys", TokenKeys)


def policy_of(storage, tenant_id):
    return Policy.from_json(storage.get_tenant(tenant_id)["policy"])


def issue_device_token(keys, dev, policy, now, scopes=None):
    """A new JWT for an active device: (token, claims, refresh_at). `scopes`: the scp claim's names (the device
    policy's access.token_scopes, docs/policies.md); None: the names of the device's permission bits."""
    now = int(now)
    key = keys.active(now)
    claims = {"sub": dev["id"].hex(), "iat": now, "exp": now + policy.token_ttl_s,
              "scp": scopes_of(dev["permissions"]) if scopes is None else " ".join(scopes),
              "tid": tenant_short_id(dev["tenant_id"])}
    token = encode_jwt(key, claims)
    keys.note_signed(key, claims["exp"])
    return token, claims, claims["exp"] - policy.token_refresh_s


def validate_device_token(app, token, now, leeway=0):
    """(device dict, claims) of a valid token whose device may still authenticate, else Unauthorized.
    Checked at every use: signature with a trusted key, exp (+ leeway), the device exists, is active,
    not compromised or quarantined, and still belongs to the tenant named by tid."""
    claims = verify_jwt(token, app[TOKEN_KEYS].trusted(now), now, leeway)
    dev = app[STORAGE].get_device(bytes.fromhex(claims["sub"]))
    if not device_may_authenticate(dev):
        raise Unauthorized("the token's device may not authenticate")
    if claims["tid"] != tenant_short_id(dev["tenant_id"]):
        raise Unauthorized("the token's tenant does not match its device")
    return dev, claims


def bearer(request):
    """The token of `Authorization: Bearer <token>`, else Unauthorized."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or len(auth) > MAX_JWT + 7:
        raise Unauthorized("a device token is required: Authorization: Bearer <token>")
    return auth[7:].strip()


def token_keys_for(app, now):
    """Build and load the app's TokenKeys (verifier.tokens.routes.ctx)."""
    keys = TokenKeys(app[STORAGE], app[SEALER])
    keys.load(now)
    return keys
