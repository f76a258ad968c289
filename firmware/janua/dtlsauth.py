"""Authentication over DTLS-lite and CoAP (docs/protocol.md section 4): a DTLS 1.2 PSK session to
the verifier with identity `deviceId@tenant` and the device's derived `dtls-psk` key, then a
confirmable CoAP POST /auth over it. Returns the session the verifier issued.

It does not keep the session open (the boot flow only needs the proof) and it does not choose a
transport: app.py does. Timers come from the config (RFC 7925 suggests 9 s on lossy links; the
default here suits a LAN).
"""

import json
import os
from binascii import unhexlify
from janua import AuthError, JanuaError

_CHANGED = 68  # CoAP 2.04
_FORBIDDEN = 131  # CoAP 4.03


def identity(cfg):
    return ("%s@%s" % (cfg["device_id"], cfg["tenant"])).encode()


def psk(cfg):
    from janua.hkdf import derive
    gen = cfg.get("psk_generation", 0)
    # Generation 0 is the label "dtls-psk"; a rotated PSK g uses "dtls-psk/<g>" (section 4).
    return derive(unhexlify(cfg["master_secret"]), "dtls-psk" if not gen else "dtls-psk/%d" % gen)


def authenticate(cfg, report=None):
    """{"device_id", "session", "permissions", "expires"} from POST /auth; raises JanuaError. With a
    health `report` (bytes) it is sent next as POST /telemetry, Content-Format 42, in the same session
    (docs/health.md 2.2), and the answer's "health" is "ok" or the verifier's reason."""
    from janua import coap, dtls_udp
    srv = cfg["server"]
    chan = dtls_udp.connect(srv["host"], srv.get("dtls_port", 5684), identity(cfg), psk(cfg),
                            initial=cfg.get("dtls_timeout", 1.0), budget=cfg.get("dtls_budget", 30.0))
    try:
        r = os.urandom(6)
        m = coap.request(chan, coap.POST, "auth", mid=(r[0] << 8) | r[1], token=r[2:])
        h = _telemetry(coap, chan, report) if report and m[1] == _CHANGED else None
    finally:
        chan.close()
    code, body = m[1], m[5]
    if code == _FORBIDDEN and bytes(body) == b"quarantined":
        # the verifier knows this device and still serves its /ota and /attest (docs/protocol.md 4.4):
        # app.confirmable() tells an application in trial that this is no reason to roll back
        raise AuthError("quarantined")
    if code != _CHANGED:
        raise AuthError("CoAP /auth answered %d.%02d" % (code >> 5, code & 31))
    try:
        doc = json.loads(body)
    except ValueError:
        raise AuthError("CoAP /auth answered something that is not JSON")
    if type(doc) is not dict or "session" not in doc:
        raise AuthError("CoAP /auth answer has no session")
    if h:
        doc["health"] = h
    return doc


def _telemetry(coap, chan, report):
    # "ok", the verifier's refusal reason, or what went wrong: a lost report never fails the auth
    r = os.urandom(6)
    try:
        m = coap.request(chan, coap.POST, "telemetry", report, 42, (r[0] << 8) | r[1], r[2:])
    except (OSError, JanuaError) as e:
        return "%s" % e
    if m[1] == _CHANGED:
        return "ok"
    return bytes(m[5]).decode() or "CoAP %d.%02d" % (m[1] >> 5, m[1] & 31)
