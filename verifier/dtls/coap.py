"""CoAP over the DTLS channel (RFC 7252; docs/protocol.md section 4.4): the verifier's resources,
with messages parsed and built by aiocoap's codec (`Message.decode` / `Message.encode`).

`CoAPResources.handle(ref, payload, addr, now)` takes the plaintext of one application-data record
from an established session whose device is `ref`, and returns the response bytes (or None: nothing
to send, e.g. an ACK or a reset from the client). Every request re-reads the device from the
registry, so a suspension, a quarantine or a permission change applies at once. A quarantined device
reaches only QUARANTINE_OPEN (OTA, attestation); anything else is 4.03 "quarantined". No sockets.

`/attest` (docs/attestation.md 2.3) is board attestation: its work is done by the hooks the attest
feature sets (`attest`), so this module imports no feature. Evidence must fit one message (MAX_MESSAGE).

Not done: block-wise transfer, observe, and deduplication of retransmitted confirmable requests
(each resource here is idempotent but POST /auth, which then issues a second session).
"""

import json
import logging
import os

import cbor2
from aiocoap import ACK, CON, NON, RST, Code, Message
from aiocoap.error import UnparsableMessage
from aiocoap.numbers import ContentFormat

from verifier.binauth.core import NOT_ACTIVE, OK
from verifier.policy.core import coap_allowed

log = logging.getLogger("janua.verifier.coap")

MAX_MESSAGE = 1024            # larger requests get 4.13
PERM_TELEMETRY, PERM_CONFIG, PERM_OTA, PERM_COMMANDS = 1, 2, 4, 8

# (path, method) -> (handler name, permission bit or 0). Listed in /.well-known/core.
RESOURCES = {
    (("auth",), Code.POST): ("auth", 0),
    (("telemetry",), Code.POST): ("telemetry", PERM_TELEMETRY),
    (("config",), Code.GET): ("config", PERM_CONFIG),
    (("ota",), Code.GET): ("ota", PERM_OTA),
    (("commands",), Code.GET): ("commands", PERM_COMMANDS),
    (("attest",), Code.GET): ("attest_challenge", 0),
    (("attest",), Code.POST): ("attest_evidence", 0),
    ((".well-known", "core"), Code.GET): ("core", 0),
}
# What a quarantined device may still reach (issue #12: it can be repaired, nothing else): OTA, and the
# attestation resource. Every other request, /auth included, is 4.03 with the payload "quarantined".
QUARANTINE_OPEN = frozenset((("ota",), ("attest",)))
LINKS = (b'</auth>;rt="janua.auth";ct="50 60",</telemetry>;rt="janua.telemetry",'
         b'</config>;rt="janua.config";ct=50,</ota>;rt="janua.ota";ct=50,</commands>;rt="janua.commands";ct=50,'
         b'</attest>;rt="janua.attest";ct=50')
# evidence refusals (docs/attestation.md 2.4) as CoAP response codes
ATTEST_REFUSAL_CODES = {"malformed": Code.BAD_REQUEST, "version": Code.BAD_REQUEST, "tag": Code.UNAUTHORIZED,
                        "unknown_device": Code.NOT_FOUND, "stale_nonce": Code.CONFLICT,
                        "too_large": Code.REQUEST_ENTITY_TOO_LARGE}


def bad_request(payload, rand=os.urandom):
    """4.00 Bad Request to a request whose header parses but whose options do not (RFC 7252 §5.4:
    not UTF-8 where a string is due); None when `payload` is no CON/NON request header at all."""
    if len(payload) < 4 or payload[0] >> 6 != 1:
        return None
    mtype, tkl, code = (payload[0] >> 4) & 3, payload[0] & 15, payload[1]
    if mtype not in (CON, NON) or tkl > 8 or len(payload) < 4 + tkl or not 1 <= code <= 31:
        return None
    msg = Message(code=Code.BAD_REQUEST, payload=b"malformed option")
    if mtype == CON:
        msg.mtype, msg.mid = ACK, int.from_bytes(payload[2:4], "big")
    else:
        msg.mtype, msg.mid = NON, int.from_bytes(rand(2), "big")
    msg.token = payload[4:4 + tkl]
    return msg.encode()


class CoAPResources:
    def __init__(self, auth, rand=os.urandom, attest=None):
        self._auth = auth          # verifier.dtls.auth.DTLSAuth
        self._rand = rand
        # board attestation, set by the attest feature once the app runs (verifier/attest/routes.py
        # AttestHooks): .challenge(dev, now) -> {nonce, expires_at}; .evidence(data, source, now) ->
        # the JSON answer, or raises an error with a `reason` (docs/attestation.md 2.4)
        self.attest = attest
        # health reports (docs/health.md 2.2), set by the health feature: .ingest(device id, tenant id,
        # via, report, now) -> "ok" or the refusal reason
        self.health = None
        # device policies (docs/policies.md), set by the policy feature: .effective(device row) -> (policy,
        # sources); access.coap_resources limits the paths, access.permissions replaces the device's bits;
        # .update_gate(device row, now) -> None or /ota's `policy` object
        self.policy = None
        self.telemetry_received = 0

    def handle(self, ref, payload, addr, now):
        if len(payload) > MAX_MESSAGE:
            return None
        try:
            req = Message.decode(payload)
        except UnparsableMessage as e:
            log.debug("coap %s: unparsable: %s", addr, e)
            return None
        except ValueError as e:     # an option aiocoap cannot decode, e.g. a Uri-Path that is not UTF-8
            log.debug("coap %s: bad option: %s", addr, e)
            return bad_request(payload, self._rand)
        if req.mtype in (ACK, RST) or not req.code.is_request():
            return None
        resp = self._respond(req, ref, addr, now)
        if req.mtype == CON:
            resp.mtype, resp.mid = ACK, req.mid          # piggybacked response (RFC 7252 §5.2.1)
        else:
            resp.mtype, resp.mid = NON, int.from_bytes(self._rand(2), "big")
        resp.token = req.token
        return resp.encode()

    def _respond(self, req, ref, addr, now):
        # every string option (Uri-Host, Uri-Path, Uri-Query, Location-*, Proxy-*) is UTF-8 (RFC 7252
        # §3.2); aiocoap decodes them in Message.decode, so a request that got here has valid ones
        path = tuple(req.opt.uri_path)
        entry = RESOURCES.get((path, req.code))
        if entry is None:
            known = any(p == path for p, _ in RESOURCES)
            return Message(code=Code.METHOD_NOT_ALLOWED if known else Code.NOT_FOUND)
        name, bit = entry
        dev = self._auth.load(ref)
        refused = self._auth.refusal(dev, now) if dev is not None else (NOT_ACTIVE, "device removed")
        if refused:
            if name == "auth":
                self._auth.record_coap_auth(refused[0], now, ref, addr, refused[1])
            return Message(code=Code.FORBIDDEN, payload=b"device not active")
        if dev["quarantined"] and path not in QUARANTINE_OPEN:
            if name == "auth":
                self._auth.record_coap_auth(NOT_ACTIVE, now, ref, addr, "quarantined")
            return Message(code=Code.FORBIDDEN, payload=b"quarantined")
        permissions = dev["permissions"]
        if self.policy is not None:
            access = self.policy.effective(dev)[0]["access"]
            if not coap_allowed(access["coap_resources"], "/" + "/".join(path)):
                return Message(code=Code.FORBIDDEN, payload=b"resource not allowed by policy")
            permissions = access["permissions"]
        if bit and not permissions & bit:
            return Message(code=Code.FORBIDDEN, payload=b"permission missing")
        return getattr(self, "_on_" + name)(req, dev, ref, addr, now)

    @staticmethod
    def _body(req, doc):
        """JSON by default; CBOR if the request accepts CBOR (Accept option 60)."""
        if req.opt.accept == ContentFormat.CBOR:
            return cbor2.dumps(doc), ContentFormat.CBOR
        return json.dumps(doc, separators=(",", ":")).encode(), ContentFormat.JSON

    def _reply(self, code, req, doc):
        payload, fmt = self._body(req, doc)
        msg = Message(code=code, payload=payload)
        msg.opt.content_format = fmt
        return msg

    def _on_auth(self, req, dev, ref, addr, now):
        pol = self._auth.policy(ref.tenant_id)
        session = int.from_bytes(self._rand(4), "big")
        self._auth.record_coap_auth(OK, now, ref, addr, f"session {session:08x}")
        return self._reply(Code.CHANGED, req, {"device_id": ref.hex, "session": session,
                                               "permissions": dev["permissions"],
                                               "expires": int(now) + pol.session_ttl_s})

    def _on_telemetry(self, req, dev, ref, addr, now):
        self.telemetry_received += 1
        if req.opt.content_format == ContentFormat.OCTETSTREAM and self.health is not None:
            result = self.health.ingest(ref.device_id, ref.tenant_id, "coap", bytes(req.payload), int(now))
            if result != "ok":
                return Message(code=Code.BAD_REQUEST, payload=result.encode())
        return Message(code=Code.CHANGED)

    def _on_config(self, req, dev, ref, addr, now):
        return self._reply(Code.CONTENT, req, {"device_id": ref.hex, "metadata": dev["metadata"]})

    def _on_ota(self, req, dev, ref, addr, now):
        # no release is offered here (the HTTP check offers them, docs/ota.md 7.4); the device's update policy
        # is answered as by POST /v1/ota/check: `policy` {decision, reason, deferred_until} when it holds every
        # release back at this time (docs/policies.md 3)
        out = {"available": False}
        gate = self.policy.update_gate(dev, int(now)) if self.policy is not None else None
        if gate is not None:
            out["policy"] = gate
        return self._reply(Code.CONTENT, req, out)

    def _on_commands(self, req, dev, ref, addr, now):
        return self._reply(Code.CONTENT, req, {"commands": []})

    def _on_attest_challenge(self, req, dev, ref, addr, now):
        if self.attest is None:
            return Message(code=Code.SERVICE_UNAVAILABLE)
        return self._reply(Code.CONTENT, req, self.attest.challenge(dev, now))

    def _on_attest_evidence(self, req, dev, ref, addr, now):
        if self.attest is None:
            return Message(code=Code.SERVICE_UNAVAILABLE)
        if req.payload[1:9] != ref.device_id:          # only the session's own device's evidence
            return Message(code=Code.FORBIDDEN, payload=b"evidence of another device")
        out = self.attest.evidence(req.payload, f"{addr[0]}:{addr[1]}", now)
        if "reason" in out:
            return Message(code=ATTEST_REFUSAL_CODES[out["reason"]], payload=out["reason"].encode())
        return self._reply(Code.CHANGED, req, out)

    def _on_core(self, req, dev, ref, addr, now):
        msg = Message(code=Code.CONTENT, payload=LINKS)
        msg.opt.content_format = ContentFormat.LINKFORMAT
        return msg
