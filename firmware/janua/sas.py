"""Credentials the device computes from its master secret for the mqtt-sas and http-basic paths
(docs/mqtt.md).

mqtt-sas (Azure's shared-access-signature shape), the MQTT password:
    SharedAccessSignature sr=<resource>&sig=<base64url(HMAC-SHA256(K, resource "\\n" expiry))>&se=<expiry>
with K = HKDF(master, "mqtt-sas"), resource = "<tenant short>/<device id>", expiry in unix seconds
(decimal) and base64url without padding (RFC 4648 section 5). User name and client id: the device id.
The expiry needs a trusted clock: set it from the binary-auth reply (clock.py) before signing.

http-basic, for the verifier's HTTP API:
    Authorization: Basic base64("<device id>:" hex(HKDF(master, "http-basic")))

Nothing here does I/O, keeps keys, or checks a token: the verifier does that.
"""

from binascii import b2a_base64, hexlify, unhexlify
from micropython import const
from janua import JanuaError
from janua.hkdf import derive
from janua.mac import HMAC

PREFIX = "SharedAccessSignature "
DEFAULT_TTL = const(3600)
_MAX_TTL = const(366 * 86400)


def b64url(data):
    """base64url of `data` without padding or newline (str)."""
    s = b2a_base64(data).decode().rstrip("\n").rstrip("=")
    return s.replace("+", "-").replace("/", "_")


def resource(cfg):
    """"<tenant short>/<device id>": the topic prefix without its "janua/" root."""
    prefix = cfg["mqtt"]["topic_prefix"]
    parts = prefix.split("/")
    if len(parts) != 3 or parts[2] != cfg["device_id"]:
        raise JanuaError("mqtt.topic_prefix is not janua/<tenant>/<device id>")
    return parts[1] + "/" + parts[2]


def sas_signature(key, res, expiry):
    """base64url(HMAC-SHA256(key, res "\\n" expiry)) with `key` the derived mqtt-sas key."""
    return b64url(HMAC(key).digest(res.encode(), ("\n%d" % expiry).encode()))


def sas_token(master, res, expiry):
    """The whole SAS password for `res` valid until `expiry` (unix seconds)."""
    if not isinstance(expiry, int) or expiry <= 0:
        raise JanuaError("expiry must be a positive unix time")
    sig = sas_signature(derive(master, "mqtt-sas"), res, expiry)
    return "%ssr=%s&sig=%s&se=%d" % (PREFIX, res, sig, expiry)


def mqtt_sas(cfg, now, ttl=DEFAULT_TTL):
    """(client id, user name, password) for an MQTT login with an SAS token valid for `ttl` s
    from `now` (a trusted time: an unset clock would make a token the verifier rejects)."""
    if not 0 < ttl <= _MAX_TTL:
        raise JanuaError("ttl out of range")
    dev = cfg["device_id"]
    token = sas_token(unhexlify(cfg["master_secret"]), resource(cfg), int(now) + ttl)
    return dev, dev, token


def basic_credentials(master, device_id):
    """(user, password) of the http-basic path: the device id and hex of K_http-basic."""
    return device_id, hexlify(derive(master, "http-basic")).decode()


def basic_authorization(master, device_id):
    """The value of the Authorization header: "Basic <base64(user:password)>"."""
    user, pw = basic_credentials(master, device_id)
    return "Basic " + b2a_base64((user + ":" + pw).encode()).decode().rstrip("\n")
