"""Device credentials checked by the verifier for brokers and HTTP clients (docs/mqtt.md sections 4-6):
MQTT passwords, mqtt-sas tokens, `token:<device JWT>` passwords, and http-basic.

`authenticate_mqtt` is the one decision behind POST /v1/mqtt/auth (EMQX) and /v1/mqtt/go-auth/user: it
returns the device or raises Refused(reason). Outward a refusal is opaque; the reason goes to the audit log.
Time is always the caller's `now`.
"""

import base64
import binascii
import hashlib
import hmac

from verifier import keys
from verifier.errors import Unauthorized
from verifier.registry.model import AUTHENTICATABLE, Policy, parse_device_id
from verifier.mqtt.broker import tenant_short_id, topic_allowed, topic_prefix
from verifier.policy import core as policies

SAS_PREFIX = "SharedAccessSignature "
TOKEN_PREFIX = "token:"
MAX_PASSWORD = 2048
SAS_MAX_LIFETIME_S = 366 * 86400
LABEL_SAS = b"mqtt-sas"
LABEL_BASIC = b"http-basic"


class Refused(Unauthorized):
    """A device credential was refused; `reason` is for the audit log only."""

    code = "unauthenticated"

    def __init__(self, reason):
        super().__init__("refused")
        self.reason = reason


def hash_password(password):
    """MQTT passwords are 32 random bytes (base64url): one SHA-256 is enough to store them."""
    return hashlib.sha256(password.encode()).digest()


# -- mqtt-sas ---------------------------------------------------------------------------------------

def sas_resource(tenant_id, device_id_hex):
    return f"{tenant_short_id(tenant_id)}/{device_id_hex}"


def sas_mac(key, resource, expiry):
    return hmac.digest(key, f"{resource}\n{int(expiry)}".encode(), "sha256")


def encode_sas(key, resource, expiry):
    """What the device computes: `SharedAccessSignature sr=<resource>&sig=<b64url MAC>&se=<expiry>`."""
    sig = base64.urlsafe_b64encode(sas_mac(key, resource, expiry)).rstrip(b"=").decode()
    return f"{SAS_PREFIX}sr={resource}&sig={sig}&se={int(expiry)}"


def decode_sas_unverified(text):
    """{"sr", "sig" (bytes), "se" (int)} of a SAS string, or Refused("malformed")."""
    if not text.startswith(SAS_PREFIX) or len(text) > 512:
        raise Refused("malformed")
    fields = {}
    for part in text[len(SAS_PREFIX):].split("&"):
        name, eq, value = part.partition("=")
        if not eq or name not in ("sr", "sig", "se") or name in fields:
            raise Refused("malformed")
        fields[name] = value
    if len(fields) != 3 or not fields["se"].isdigit() or len(fields["se"]) > 12:
        raise Refused("malformed")
    try:
        sig = base64.urlsafe_b64decode(fields["sig"] + "=" * (-len(fields["sig"]) % 4))
    except (binascii.Error, ValueError):
        raise Refused("malformed") from None
    if len(sig) != 32:
        raise Refused("malformed")
    return {"sr": fields["sr"], "sig": sig, "se": int(fields["se"])}


def verify_sas(text, key, resource, now, drift_s):
    """MAC first (constant time, over the resource the verifier expects), then freshness."""
    sas = decode_sas_unverified(text)
    expect = hmac.digest(key, f"{resource}\n{sas['se']}".encode(), "sha256")
    if not keys.ct_eq(expect, sas["sig"]) or not keys.ct_eq(sas["sr"].encode(), resource.encode()):
        raise Refused("bad_mac")
    if now > sas["se"] + drift_s:
        raise Refused("expired")
    if sas["se"] > now + drift_s + SAS_MAX_LIFETIME_S:
        raise Refused("lifetime_too_long")


# -- the decision ----------------------------------------------------------------------------------

def _device(storage, device_id_hex):
    did = parse_device_id(device_id_hex) if isinstance(device_id_hex, str) else None
    dev = storage.get_device(did) if did is not None else None
    if dev is None:
        raise Refused("unknown_device")
    return dev


def _active(dev):
    """The device may authenticate: active or still in provisioning (its first success activates it, as on
    binary auth and DTLS: the caller does that), neither compromised nor quarantined."""
    if dev["status"] not in AUTHENTICATABLE:
        raise Refused(f"device_{dev['status']}")
    if dev["compromised"] or dev["quarantined"]:
        raise Refused("device_compromised" if dev["compromised"] else "device_quarantined")


def _master(sealer, dev):
    return sealer.unseal(dev["sealed_secret"], dev["id"], dev["tenant_id"])


def authenticate_mqtt(app, storage, sealer, username, password, clientid, now):
    """Return (device, method) for a broker's authentication request, else raise Refused.
    Every path: the device id is the username and the client id, the device is active."""
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD:
        raise Refused("no_password")
    if password.startswith(TOKEN_PREFIX):
        from verifier.tokens import core as tokens     # written with issue #5; imported when a token is presented
        try:
            dev, claims = tokens.validate_device_token(app, password[len(TOKEN_PREFIX):], now)
        except Unauthorized as e:
            raise Refused(getattr(e, "reason", "bad_token")) from None
        method = "token"
        if username not in (None, "", dev["id"].hex()):
            raise Refused("username_mismatch")
    else:
        dev = _device(storage, username)
        if password.startswith(SAS_PREFIX):
            policy = Policy.from_json(storage.get_tenant(dev["tenant_id"])["policy"])
            key = keys.derive_key(_master(sealer, dev), LABEL_SAS)
            verify_sas(password, key, sas_resource(dev["tenant_id"], dev["id"].hex()), now, policy.drift_s)
            method = "mqtt-sas"
        else:
            row = storage.get_mqtt_password(dev["id"])
            if row is None or not keys.ct_eq(row["hash"], hash_password(password)):
                raise Refused("bad_password")
            method = "password"
    if clientid != dev["id"].hex():
        raise Refused("clientid_mismatch")
    _active(dev)
    return dev, method


# the policy protocol of each way to authenticate to the broker (docs/policies.md "MQTT")
METHOD_PROTOCOL = {"password": "mqtt_password", "mqtt-sas": "mqtt_password", "token": "token"}


def verify_policy(policy, dev, method):
    """The device's effective policy (verifier.policy) allows `method`'s protocol and its trust; else Refused."""
    why = policies.protocol_refusal(policy["auth"], METHOD_PROTOCOL[method], dev["trust_level"],
                                    dev.get("attestation_status") or "unknown")
    if why is not None:
        raise Refused(why)


def device_acl(dev, policy=None):
    """EMQX 5 `acl` rules: the device's own subtree (or, under a policy's access.mqtt_topics, its publish and
    subscribe patterns below the device's prefix), then deny everything else."""
    prefix = topic_prefix(dev["tenant_id"], dev["id"].hex())
    topics = policy["access"]["mqtt_topics"] if policy is not None else None
    if topics is None:
        rules = [{"permission": "allow", "action": "all", "topic": prefix + "/#"}]
    else:
        rules = [{"permission": "allow", "action": action, "topic": f"{prefix}/{p}"}
                 for action in ("publish", "subscribe") for p in topics[action]]
    return rules + [{"permission": "deny", "action": "all", "topic": "#"}]


def check_acl(storage, username, clientid, topic, acc=3, policy_of=None):
    """go-auth ACL check: the device (username = client id) may authenticate and the topic is inside its subtree,
    and (`policy_of(device)`: its effective policy) allowed for `acc` by access.mqtt_topics."""
    dev = _device(storage, username)
    if clientid is not None and clientid != username:
        raise Refused("clientid_mismatch")
    _active(dev)
    prefix = topic_prefix(dev["tenant_id"], dev["id"].hex())
    if not isinstance(topic, str) or not topic_allowed(prefix, topic):
        raise Refused("topic_denied")
    if policy_of is not None:
        policy = policy_of(dev)
        verify_any_mqtt(policy, dev)
        topics = policy["access"]["mqtt_topics"]
        if not policies.mqtt_topic_allowed(topics, topic[len(prefix) + 1:], int(acc)):
            raise Refused("topic_denied_by_policy")
    return dev


MQTT_PROTOCOLS = frozenset(("mqtt_cert", "mqtt_password", "token"))


def verify_any_mqtt(policy, dev):
    """What an ACL check can enforce without knowing how the client authenticated (go-auth's ACL request does not
    say; a certificate client reaches only this hook): the device's trust and attestation meet the policy, and it
    allows at least one way onto the broker (mqtt_cert, mqtt_password, token); else Refused (docs/policies.md 4)."""
    auth = policy["auth"]
    why = policies.auth_refusal(auth, dev["trust_level"], dev.get("attestation_status") or "unknown")
    if why is None and not policies.allowed_protocols(auth) & MQTT_PROTOCOLS:
        why = "policy: no MQTT protocol allowed"
    if why is not None:
        raise Refused(why)


# -- http-basic ------------------------------------------------------------------------------------

def basic_secret(master):
    """The http-basic password: lowercase hex of K_http-basic."""
    return keys.derive_key(master, LABEL_BASIC).hex()


def parse_basic_unverified(authorization):
    """(device id hex, secret) from `Authorization: Basic ...`, or Refused("malformed")."""
    if not authorization or not authorization.startswith("Basic ") or len(authorization) > 200:
        raise Refused("malformed")
    try:
        raw = base64.b64decode(authorization[6:].strip(), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise Refused("malformed") from None
    user, colon, secret = raw.partition(":")
    if not colon or parse_device_id(user) is None:
        raise Refused("malformed")
    return user, secret


def verify_basic(storage, sealer, user, secret):
    dev = _device(storage, user)
    if not keys.ct_eq(basic_secret(_master(sealer, dev)).encode(), secret.encode()):
        raise Refused("bad_secret")
    _active(dev)
    return dev
