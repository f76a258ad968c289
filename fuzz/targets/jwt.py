"""Device JWTs (verifier/tokens/core.py verify_jwt, docs/tokens.md). An input is the token's text (bytes
taken as Latin-1, so every input is some string). It is verified as it is, and again with its first
two parts signed by the trusted key, so that mutated headers and claims reach the checks behind
the signature. The one documented error is Unauthorized; an accepted token's claims have the types
docs/tokens.md gives (exp and iat non-negative integers, sub a device id, scp and tid strings).
"""

import base64
import json

from cryptography.hazmat.primitives.asymmetric import ec

from fuzz.harness import check
from fuzz.world import DEVICE_ID, T0
from verifier.tokens.chain import es256_sign
from verifier.errors import Unauthorized
from verifier.registry.model import parse_device_id
from verifier.tokens.core import SigningKey, b64url, encode_jwt, verify_jwt

ALLOWED = (Unauthorized,)
KID = "0a1b2c3d"


def _key():
    k = SigningKey()
    k.kid, k.kid_bytes = KID, bytes.fromhex(KID)
    k.private = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())
    k.public = k.private.public_key()
    k.created, k.retired_at, k.signed_until = T0, None, 0
    return k


KEY = _key()


def _accepted(claims):
    check(type(claims["exp"]) is int and type(claims["iat"]) is int and claims["exp"] >= 0, "exp/iat types")
    check(parse_device_id(claims["sub"]) is not None, "sub is not a device id")
    check(isinstance(claims["scp"], str) and isinstance(claims["tid"], str), "scp/tid types")


def make(workdir):
    keys = {KID: KEY}

    def one_input(data):
        text = data.decode("latin-1")
        try:
            _accepted(verify_jwt(text, keys, T0, 60))
        except Unauthorized:
            pass
        head, dot, rest = text.partition(".")
        body = rest.partition(".")[0]
        if dot and len(text) < 1024:
            signing_input = head + "." + body
            token = signing_input + "." + b64url(es256_sign(KEY.private, signing_input.encode("latin-1")))
            _accepted(verify_jwt(token, keys, T0, 60))

    return one_input


def seeds(workdir):
    claims = {"sub": DEVICE_ID.hex(), "iat": T0, "exp": T0 + 3600, "scp": "telemetry config", "tid": "AAAAAAAA"}
    out = [encode_jwt(KEY, claims).encode()]
    out.append(encode_jwt(KEY, dict(claims, nbf=T0 - 10)).encode())
    out.append(encode_jwt(KEY, dict(claims, exp=T0 - 3600)).encode())
    h = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    out.append(h + b"." + out[0].split(b".")[1] + b".")
    return out
