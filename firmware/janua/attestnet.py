"""Attestation on the wire, device side (docs/attestation.md 2.3): get a challenge, measure
(janua.attest), send the evidence, return the verifier's JSON answer.

- HTTP: `http(cfg)` posts /v1/attest/challenge with a fresh binary-auth request (devcall), then the
  evidence to /v1/attest/evidence as application/octet-stream. `after_check` answers the challenge
  an OTA check answer carried (otaclient.poll calls it).
- CoAP over DTLS: `coap(cfg)`: GET /attest, then POST /attest, on one DTLS session (dtlsauth's
  identity and PSK). The verifier takes one CoAP message of at most 1,024 bytes and there is no
  block-wise transfer here, so evidence that does not fit is refused before anything is sent.
- MQTT: `mqtt_command(session, topic, msg, attester)`, for the application's on_message: a
  {"cmd": "attest", "nonce"} on <prefix>/cmd is answered with the evidence on <prefix>/attest.

Every failure is a JanuaError (AttestError for a challenge without a nonce, an answer that is not
JSON, a refusal, a measurement that failed); the evidence is sent whole or not at all. It does not
retry, keep sessions or appraise anything.
"""

import json
from binascii import unhexlify
from micropython import const
from janua import JanuaError
from janua.attest import Attester, AttestError

_MAX_ANSWER = const(4096)   # the answer carries an EAR (a signed JWT): larger than other answers
_MAX_CMD = const(512)
_COAP_MAX = const(1024)     # the verifier's CoAP message cap (verifier/dtls/coap.py MAX_MESSAGE)
_COAP_HEAD = const(16)      # header 4, token 4, Uri-Path "attest" 7, payload marker 1
_CONTENT = const(69)        # CoAP 2.05
_CHANGED = const(68)        # CoAP 2.04
EVIDENCE_PATH = "/v1/attest/evidence"
CHALLENGE_PATH = "/v1/attest/challenge"


def nonce_of(doc):
    """The 16-byte nonce of a challenge {"nonce": "<32 hex>", ...}; AttestError without one."""
    n = doc.get("nonce") if isinstance(doc, dict) else None
    if not isinstance(n, str) or len(n) != 32:
        raise AttestError("challenge without a nonce")
    # checked here: MicroPython's unhexlify skips some characters that are not hex digits (a form
    # feed, found by fuzzing), so "32 characters" alone could give a 15-byte nonce
    for c in n:
        if c not in "0123456789abcdefABCDEF":
            raise AttestError("challenge nonce is not hex")
    return unhexlify(n)


def drop_ear(data):
    """Blank, in place, the "ear" string of an answer in `data` (a bytearray): its value becomes 0
    and spaces, so json.loads makes no copy of it. For a board that only reads the status: on the
    esp32 heap after an OTA check the ~700-byte EAR string was the one allocation that failed (the
    heap is fragmented there: 24 KB free, no free block over ~770 bytes). An EAR is base64url and
    dots; a value with anything else (a backslash) is left as it is."""
    i = data.find(b'"ear"')
    if i < 0:
        return
    j = data.find(b'"', i + 5)
    if j < 0 or data[i + 5:j].strip() != b":":
        return
    k = data.find(b'"', j + 1)
    if k < 0 or data.find(b"\\", j, k) >= 0:
        return
    data[j] = 0x30   # "0"
    for p in range(j + 1, k + 1):
        data[p] = 0x20


def answer_of(data, where):
    """The verifier's JSON object in `data`; AttestError if it is not one."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise AttestError("%s: the answer is not JSON" % where)
    if not isinstance(doc, dict):
        raise AttestError("%s: the answer is not a JSON object" % where)
    return doc


def post_evidence(host, port, ev, timeout=10.0, ear=True, tls=None):
    """POST the evidence bytes; the JSON answer {"status", "trust_level", "quarantined", "ear"}
    (with ear=False its "ear" is 0: see drop_ear)."""
    from janua.httpreq import request
    status, body = request(host, port, "POST", EVIDENCE_PATH, ev, timeout, ctype="application/octet-stream",
                           tls=tls)
    ev = None
    try:
        data = body.read_all(_MAX_ANSWER) if body.left else b""
    finally:
        body.close()
    if not ear and data:
        drop_ear(data)
    doc = answer_of(data, "%s: http %d" % (EVIDENCE_PATH, status))
    if status != 200:
        raise AttestError("evidence refused: http %d: %s (%s)" % (status, doc.get("error"), doc.get("message")))
    return doc


def http(cfg, store=None, clock=None, attester=None, timeout=10.0):
    """Challenge, measure, send over HTTP: the verifier's answer. The binary-auth timestamp is
    persisted in the state file before each request (as otaclient.poll does)."""
    from janua.devcall import DeviceCaller
    if store is None:
        from janua.store import Store
        store = Store()
    if clock is None:
        from janua.clock import Clock
        clock = Clock()
    state = store.load_state()
    c = DeviceCaller(cfg, clock, state.get("last_sent", 0), timeout)

    def persist(last_sent):
        state["last_sent"] = last_sent
        store.save_state(state)
    c.persist = persist
    nonce = nonce_of(c.call(CHALLENGE_PATH, {}))
    ev = (attester or Attester(cfg)).evidence(nonce, clock.now())
    return post_evidence(c.host, c.port, ev, timeout, tls=c.tls)


def after_check(caller, cfg, challenge):
    """Answer the challenge of an OTA check answer (`caller`: the OTAClient that checked). A suffix
    for poll()'s line; never raises for the network or a failed measurement."""
    try:
        ev = Attester(cfg).evidence(nonce_of(challenge), caller.clock.now())
        return "; attested: %s" % post_evidence(caller.host, caller.port, ev, caller.timeout, False,
                                                caller.tls).get("status")
    except (JanuaError, OSError, MemoryError) as e:
        return "; attest failed: %s" % e


def _coap(chan, code, payload=b""):
    import os
    from janua.coap import request
    r = os.urandom(6)
    return request(chan, code, "attest", payload, mid=(r[0] << 8) | r[1], token=r[2:])


def coap(cfg, attester=None, now=None, chan=None):
    """GET /attest, measure, POST /attest over one DTLS session (or `chan`, any object with send,
    recv(timeout) and close): the verifier's answer."""
    from janua import coap as _c
    attester = attester or Attester(cfg)
    if chan is None:
        from janua import dtls_udp
        from janua.dtlsauth import identity, psk
        srv = cfg["server"]
        chan = dtls_udp.connect(srv["host"], srv.get("dtls_port", 5684), identity(cfg), psk(cfg),
                                initial=cfg.get("dtls_timeout", 1.0), budget=cfg.get("dtls_budget", 30.0))
    try:
        m = _coap(chan, _c.GET)
        if m[1] != _CONTENT:
            raise AttestError("CoAP GET /attest answered %d.%02d" % (m[1] >> 5, m[1] & 31))
        ev = attester.evidence(nonce_of(answer_of(m[5], "CoAP GET /attest")), now)
        if len(ev) + _COAP_HEAD > _COAP_MAX:
            raise AttestError("evidence of %d bytes does not fit one CoAP message of %d bytes (no "
                              "block-wise transfer): attest over HTTP or MQTT" % (len(ev), _COAP_MAX))
        m = _coap(chan, _c.POST, ev)
        if m[1] != _CHANGED:
            raise AttestError("CoAP POST /attest answered %d.%02d" % (m[1] >> 5, m[1] & 31))
        return answer_of(m[5], "CoAP POST /attest")
    finally:
        chan.close()


def mqtt_command(session, topic, msg, attester, now=None):
    """For on_message: True when msg on <prefix>/cmd is an attest command and the evidence went out on
    <prefix>/attest; False for another topic or command. AttestError (nothing published) for a
    command that is not JSON, too long or without a nonce."""
    t = topic.decode() if isinstance(topic, (bytes, bytearray)) else topic
    if t != session.topic("cmd"):
        return False
    if len(msg) > _MAX_CMD:
        raise AttestError("command over %d bytes" % _MAX_CMD)
    doc = answer_of(msg, "MQTT command")
    if doc.get("cmd") != "attest":
        return False
    ev = attester.evidence(nonce_of(doc), now)
    session.publish("attest", ev)
    return True
