"""EAT Attestation Results (draft-ietf-rats-ear) as ES256 JWTs, and the AR4SI trustworthiness vector
(draft-ietf-rats-ar4si). Sans-IO: the caller passes the signing key and the time.

The EAR is signed with the verifier's token signing key (the JWKS at /.well-known/jwks.json verifies
it). Its header says `"typ": "ear+jwt"`, which a device token never has, so an EAR can never pass as
a device token (verifier.tokens.core.verify_jwt accepts only typ JWT) and a device token never as an
EAR (`verify_ear` wants this typ and the EAR profile).
"""
import binascii
import json

from verifier.errors import Unauthorized
from verifier.tokens.core import b64url, b64url_decode
from verifier.tokens.chain import es256_sign, es256_verify

PROFILE = "tag:github.com,2023:veraison/ear"
TYP = "ear+jwt"
DEVELOPER = "https://janua.invalid/verifier"

STATUSES = ("none", "affirming", "warning", "contraindicated")
CLAIMS = ("instance-identity", "configuration", "executables", "file-system", "hardware",
          "runtime-opaque", "storage-opaque", "sourced-data")

# AR4SI claim values this verifier emits (draft-ietf-rats-ar4si section 2.3); 0 means "no claim".
NO_CLAIM = 0
VERIFIER_MALFUNCTION = 1
TRUSTWORTHY_INSTANCE, UNTRUSTWORTHY_INSTANCE, UNRECOGNIZED_INSTANCE = 2, 96, 97
APPROVED_CONFIG, UNSAFE_CONFIG, UNSUPPORTABLE_CONFIG = 2, 32, 96
APPROVED_RUNTIME, APPROVED_BOOT, UNSAFE_RUNTIME, UNRECOGNIZED_RUNTIME, CONTRAINDICATED_RUNTIME = 2, 3, 32, 33, 96
APPROVED_FILES, UNRECOGNIZED_FILES, CONTRAINDICATED_FILES = 2, 32, 96
GENUINE_HARDWARE, UNSAFE_HARDWARE, CONTRAINDICATED_HARDWARE, UNRECOGNIZED_HARDWARE = 2, 32, 96, 97


def tier(value):
    """The AR4SI tier of one claim value: none (0, 1), affirming (2..31), warning (32..95),
    contraindicated (96..127)."""
    if value < 2:
        return "none"
    if value < 32:
        return "affirming"
    if value < 96:
        return "warning"
    return "contraindicated"


def status_of(vector):
    """The worst tier over the claims made; `none` when no claim is made."""
    tiers = {tier(v) for v in vector.values()}
    for t in ("contraindicated", "warning", "affirming"):
        if t in tiers:
            return t
    return "none"


def _compact(doc):
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def encode_ear(key, *, submod, status, vector, policy_id, nonce, iat, exp, build, extra=None):
    """An EAR JWT with one submodule `submod` (the attester: a device id or gateway id). `vector` maps
    CLAIMS names to values (claims left out are not made); `nonce` is bytes (base64url in eat_nonce)."""
    if status not in STATUSES:
        raise ValueError(f"unknown EAR status {status}")
    appraisal = {"ear.status": status, "ear.appraisal-policy-id": policy_id,
                 "ear.trustworthiness-vector": {k: v for k, v in vector.items() if v != NO_CLAIM}}
    if extra:
        appraisal.update(extra)
    claims = {"eat_profile": PROFILE, "iat": int(iat), "exp": int(exp),
              "ear.verifier-id": {"developer": DEVELOPER, "build": build},
              "eat_nonce": b64url(nonce), "submods": {submod: appraisal}}
    signing_input = b64url(_compact({"alg": "ES256", "kid": key.kid, "typ": TYP})) + "." + b64url(_compact(claims))
    return signing_input + "." + b64url(es256_sign(key.private, signing_input.encode()))


def verify_ear(token, public_keys, now):
    """Verify an EAR against {kid: EC public key} (from a JWKS); return its claims or raise Unauthorized."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise Unauthorized("malformed EAR")
    h64, p64, s64 = token.split(".")
    try:
        header = json.loads(b64url_decode(h64))
        claims = json.loads(b64url_decode(p64))
        sig = b64url_decode(s64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed EAR") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256" or header.get("typ") != TYP:
        raise Unauthorized("an EAR is ES256 with typ ear+jwt")
    pub = public_keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if pub is None:
        raise Unauthorized("unknown EAR key")
    if not es256_verify(pub, sig, (h64 + "." + p64).encode()):
        raise Unauthorized("bad EAR signature")
    if not isinstance(claims, dict) or claims.get("eat_profile") != PROFILE:
        raise Unauthorized("not an EAR of this profile")
    if type(claims.get("exp")) is not int or now > claims["exp"]:
        raise Unauthorized("EAR expired")
    return claims
