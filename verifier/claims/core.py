"""The claim protocol v1, verifier side (docs/claims.md): the claim key, the request and answer codecs, the
serial rules of a batch, the refusal codes and the decision of a verified claim (new, resume or a refusal).

Sans-IO: bytes in, bytes out; `now` and randomness are arguments. It does not read the store, ask the
pre-claim hook or create the device (verifier/claims/service.py does, in one transaction)."""

import hmac
import json
import re

from verifier.errors import Conflict, Forbidden, RateLimited, Unauthorized, Unavailable, ValidationError
from verifier.keys import SALT, ct_eq

VERSION = 0x01
TYPE_REQUEST = 0x01
TYPE_ANSWER = 0x02
BATCH_ID_LEN = 8
NONCE_LEN = 16
TAG_LEN = 16
SECRET_LEN = 32
SERIAL_MAX = 64
REQUEST_MIN = 43 + 1
REQUEST_MAX = 43 + SERIAL_MAX
CONFIG_MAX = 1024
ANSWER_MIN = 76
KEY_CONTEXT = b"janua-claim-v1\x00"
LABEL_MAC = b"claim-mac"
LABEL_ENC = b"claim-enc"
NONCES_KEPT = 32              # request nonces kept per (batch, serial): accepted and resumed claims
PATTERN_MAX = 64
_SERIAL = re.compile(rb"[\x21-\x7e]{1,64}\Z")
_MAC_INFO, _ENC_INFO = LABEL_MAC + b"\x01", LABEL_ENC + b"\x01"
_digest = hmac.digest
_PATTERN = re.compile(r"[\x21-\x7e]{1,64}\Z")


# the refusals (docs/claims.md "Refusals"): HTTP status through the error class, the code is the wire name

class MalformedClaim(ValidationError):
    """The claim request's framing, length, version, type or serial charset is wrong."""
    code = "malformed_claim"


class ClaimInvalid(Unauthorized):
    """Unknown batch or wrong tag: indistinguishable on purpose."""
    code = "claim_invalid"


class BatchRevoked(Forbidden):
    """The batch was revoked by an operator."""
    code = "batch_revoked"


class BatchNotValid(Forbidden):
    """Now is before the batch's not_before or after its not_after."""
    code = "batch_not_valid"


class SerialNotAllowed(Forbidden):
    """The serial is outside the batch's list or pattern."""
    code = "serial_not_allowed"


class ClaimReplayed(Conflict):
    """This (batch, serial, nonce) was seen before."""
    code = "claim_replayed"


class AlreadyClaimed(Conflict):
    """The serial was claimed and its device has authenticated (or left 'provisioning') since."""
    code = "already_claimed"


class BatchExhausted(Forbidden):
    """The batch's max_count claims are used."""
    code = "batch_exhausted"


class ClaimDenied(Forbidden):
    """The pre-claim hook said deny."""
    code = "claim_denied"


class HookUnavailable(Unavailable):
    """The pre-claim hook could not be asked or gave no valid answer (fail closed)."""
    code = "hook_unavailable"


class ClaimRateLimited(RateLimited):
    """Too many claims from this source host or for this batch."""
    code = "rate_limited"


# keys

def claim_key(batch_secret, serial):
    """K_c = HMAC-SHA256(batch_secret, "janua-claim-v1" 0x00 serial): what the factory writes to the board."""
    if isinstance(serial, str):
        serial = serial.encode()
    return _digest(batch_secret, KEY_CONTEXT + serial, "sha256")


def claim_keys(k_c):
    """(K_mac, K_enc): HKDF-SHA256 of K_c, salt "janua/v1", info "claim-mac" / "claim-enc", 32 bytes each. Both share
    the extract step (one PRK); with L = 32 the expand step is one HMAC (RFC 5869 T(1)), as keys.hkdf_sha256 gives."""
    prk = _digest(SALT, k_c, "sha256")
    return _digest(prk, _MAC_INFO, "sha256"), _digest(prk, _ENC_INFO, "sha256")


def _tag(key, data):
    return _digest(key, data, "sha256")[:TAG_LEN]


# the request

class ClaimRequest:
    """A decoded request, not yet verified: batch_id (8 bytes), nonce (16), serial (str), signed, tag."""
    __slots__ = ("batch_id", "nonce", "serial", "signed", "tag")

    def __init__(self, batch_id, nonce, serial, signed, tag):
        self.batch_id, self.nonce, self.serial, self.signed, self.tag = batch_id, nonce, serial, signed, tag


def check_serial(serial):
    """A serial as bytes: 1..64 printable ASCII 0x21..0x7E; MalformedClaim otherwise."""
    raw = serial.encode("ascii", "replace") if isinstance(serial, str) else serial
    if not _SERIAL.match(raw):
        raise MalformedClaim("a serial is 1 to 64 printable ASCII characters without space")
    return raw


def encode_request(k_c, batch_id, nonce, serial):
    """The request bytes (the board's side; tests, benchmarks and tools use it)."""
    raw = check_serial(serial)
    if len(batch_id) != BATCH_ID_LEN or len(nonce) != NONCE_LEN:
        raise ValueError("batch_id is 8 bytes and nonce 16")
    body = bytes((VERSION, TYPE_REQUEST)) + batch_id + nonce + bytes((len(raw),)) + raw
    return body + _tag(claim_keys(k_c)[0], body)


def decode_request_unverified(data):
    """Parse the framing of a request; MalformedClaim for anything but a well-formed 44..107 byte v1 claim."""
    n = len(data)
    if not REQUEST_MIN <= n <= REQUEST_MAX:
        raise MalformedClaim(f"a claim request is {REQUEST_MIN} to {REQUEST_MAX} bytes, not {n}")
    if data[0] != VERSION or data[1] != TYPE_REQUEST:
        raise MalformedClaim("not a claim request of version 1")
    slen = data[26]
    if n != 43 + slen:
        raise MalformedClaim("the serial length does not match the request's length")
    raw = bytes(data[27:27 + slen])
    check_serial(raw)
    return ClaimRequest(bytes(data[2:10]), bytes(data[10:26]), raw.decode("ascii"), bytes(data[:27 + slen]),
                        bytes(data[27 + slen:]))


def verify_request(req, k_mac):
    """Nothing, or ClaimInvalid when the tag is not the request's under K_mac (constant time)."""
    if not ct_eq(_tag(k_mac, req.signed), req.tag):
        raise ClaimInvalid("the claim is not valid")


# the answer

def _keystream(k_enc, req_nonce, server_nonce, device_id):
    return _digest(k_enc, req_nonce + server_nonce + device_id, "sha256")


def encode_config(doc):
    """The answer's config: compact UTF-8 JSON, at most 1024 bytes (ValueError beyond)."""
    out = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if len(out) > CONFIG_MAX:
        raise ValueError(f"the claim config is {len(out)} bytes, more than {CONFIG_MAX}")
    return out


def encode_answer(k_c, req_nonce, device_id, server_nonce, master_secret, config, keys=None):
    """The answer bytes: device id, server nonce, the master secret under the keystream, the config (bytes),
    and the tag over the request nonce and all of it. `keys`: claim_keys(k_c) when the caller has them."""
    if len(device_id) != 8 or len(server_nonce) != NONCE_LEN or len(master_secret) != SECRET_LEN:
        raise ValueError("device_id is 8 bytes, server_nonce 16, master_secret 32")
    if len(config) > CONFIG_MAX:
        raise ValueError("config too long")
    k_mac, k_enc = keys or claim_keys(k_c)
    ks = _keystream(k_enc, req_nonce, server_nonce, device_id)
    enc = (int.from_bytes(master_secret, "big") ^ int.from_bytes(ks, "big")).to_bytes(SECRET_LEN, "big")
    body = (bytes((VERSION, TYPE_ANSWER)) + device_id + server_nonce + enc + len(config).to_bytes(2, "big") + config)
    return body + _tag(k_mac, req_nonce + body)


def decode_answer(k_c, req_nonce, data):
    """The board's check of an answer (reference for tools and benchmarks): (device_id, master_secret, config
    dict, None when empty); ValueError for anything not an answer to this request under K_c. The tag is checked first."""
    if not ANSWER_MIN <= len(data) <= ANSWER_MIN + CONFIG_MAX:
        raise ValueError("bad answer length")
    if data[0] != VERSION or data[1] != TYPE_ANSWER:
        raise ValueError("not a claim answer of version 1")
    n = int.from_bytes(data[58:60], "big")
    if len(data) != ANSWER_MIN + n:
        raise ValueError("config length does not match")
    k_mac, k_enc = claim_keys(k_c)
    if not ct_eq(_tag(k_mac, req_nonce + data[:60 + n]), data[60 + n:]):
        raise ValueError("bad answer tag")
    device_id, server_nonce = data[2:10], data[10:26]
    ks = _keystream(k_enc, req_nonce, server_nonce, device_id)
    secret = bytes(a ^ b for a, b in zip(data[26:58], ks))
    if not n:
        return device_id, secret, None
    try:
        config = json.loads(data[60:60 + n])
    except (ValueError, RecursionError):
        raise ValueError("the config is not UTF-8 JSON") from None
    if not isinstance(config, dict):
        raise ValueError("the config is not a JSON object")
    return device_id, secret, config


def answer_config(tenant_name, device, server, region=None):
    """The configuration in a claim answer (docs/claims.md "Config"). `device` is the batch's device template,
    `server` {"host", "udp_port", "http_port", "dtls_port"} the auth endpoint. Regions (verifier/regions) are
    not wired yet: the integrator points this at regions.board_config(region_doc, server) for a template with a
    "region" and merges its mqtt/coap/update entries; until then "region" is the template's name as given and
    "server" the verifier's own device-facing endpoint."""
    doc = {"tenant": tenant_name, "region": device.get("region") if region is None else region,
           "server": dict(server), "transport": device.get("transport", "auto")}
    if device.get("board") is not None:
        doc["board"] = device["board"]
    return doc


# batches: serials and decisions

def check_pattern(pattern):
    """A serial pattern: 1..64 printable ASCII without space, `*` any run and `?` one character (nothing else
    is special: `[` is a plain character, unlike fnmatch)."""
    if not isinstance(pattern, str) or not _PATTERN.match(pattern):
        raise ValidationError("serial_pattern must be 1 to 64 printable ASCII characters without space")
    return pattern


def pattern_regex(pattern):
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z",
                      re.S)


def serial_allowed(batch, serial):
    """Whether the batch (its "serials" list or set, or "serial_pattern", compiled once as "serial_regex" when the
    caller keeps one) lets `serial` claim."""
    if batch.get("serials") is not None:
        return serial in batch["serials"]
    regex = batch.get("serial_regex") or pattern_regex(batch["serial_pattern"])
    return bool(regex.match(serial))


def batch_status(batch, now):
    """revoked, expired (after not_after), pending (before not_before) or active."""
    if batch["status"] == "revoked":
        return "revoked"
    if now > batch["not_after"]:
        return "expired"
    if now < batch["not_before"]:
        return "pending"
    return "active"


NEW, RESUME = "new", "resume"


def decide(batch, serial, nonce, claim, device, now):
    """The decision on a verified claim, steps 4 to 9 of the refusal table: NEW (a fresh device), RESUME (the
    claim's device again) or the refusal raised. `claim` is the (batch, serial) claims row or None (its "nonces":
    a list of hex), `device` the claimed device ({status, authenticated}) or None when it is gone."""
    if batch["status"] == "revoked":
        raise BatchRevoked("this claim batch was revoked")
    if now < batch["not_before"]:
        raise BatchNotValid("this claim batch is not valid yet (before not_before)")
    if now > batch["not_after"]:
        raise BatchNotValid("this claim batch has expired (after not_after)")
    if not serial_allowed(batch, serial):
        raise SerialNotAllowed("this serial is not in the claim batch")
    if claim is not None:
        if nonce.hex() in claim["nonces"]:
            raise ClaimReplayed("this claim was seen before")
        if device is None or device["status"] != "provisioning" or device["authenticated"]:
            raise AlreadyClaimed("this serial was claimed and its device has been used; an operator reset is needed")
        return RESUME
    if batch["claimed_count"] >= batch["max_count"]:
        raise BatchExhausted("this claim batch has no claims left")
    return NEW


def keep_nonces(nonces, nonce):
    """The nonces list after accepting `nonce` (the last NONCES_KEPT, oldest first)."""
    return (list(nonces) + [nonce.hex()])[-NONCES_KEPT:]


def hook_body(tenant, batch_id, serial, source, device_template):
    """The pre-claim hook's request body (compact JSON, keys sorted)."""
    return json.dumps({"tenant": tenant, "batch_id": batch_id, "serial": serial, "source": source,
                       "device_template": device_template}, separators=(",", ":"), sort_keys=True).encode()


def hook_answer(status, body):
    """(allow, reason) from the hook's HTTP status and JSON body; HookUnavailable for anything else."""
    if status != 200:
        raise HookUnavailable(f"the pre-claim hook answered HTTP {status}")
    try:
        doc = json.loads(body)
    except ValueError:
        raise HookUnavailable("the pre-claim hook's answer is not JSON") from None
    if not isinstance(doc, dict) or type(doc.get("allow")) is not bool:
        raise HookUnavailable('the pre-claim hook must answer {"allow": true|false, "reason": "..."}')
    reason = doc.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise HookUnavailable("the pre-claim hook's reason must be text")
    return doc["allow"], (reason or "")[:200]


