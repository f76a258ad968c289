"""A device's authenticated JSON calls to the verifier: POST a JSON body that carries a fresh binary-auth
request (docs/protocol.md 3; binauth.Client), answered once the reply in the answer authenticates.

The OTA check and report (otaclient.OTAClient is a DeviceCaller) and the attestation challenge
(attestnet.py) use it. TIME_SYNC/REPLAY are retried with a new request; the server time of an
authenticated reply sets the clock. `persist(last_sent)` (optional) is called with each timestamp
before it is sent. It keeps no connection and does not parse anything but the `auth` field.
"""

import json
from binascii import hexlify, unhexlify
from micropython import const
from janua import JanuaError, TransportError
from janua.httpreq import request

_MAX_JSON = const(2048)       # a check/report/challenge answer is a few hundred bytes


class CallError(JanuaError):
    """The verifier refused an authenticated call, or its answer carried no usable binary-auth reply."""


class DeviceCaller:
    """One device talking JSON to its verifier over HTTP (cfg = janua.json's config)."""

    def __init__(self, cfg, clock, last_sent=0, timeout=10.0):
        from janua.hkdf import derive
        from janua.mac import HMAC
        self.mac = HMAC(derive(unhexlify(cfg["master_secret"]), "binauth"))
        self.device_id = unhexlify(cfg["device_id"])
        srv = cfg["server"]
        self.host, self.port = srv["host"], srv.get("http_port", 8080)
        self.tls = None
        if srv.get("tls") is True:          # HTTPS (janua.https), loaded only then
            from janua.https import context
            self.tls = context(cfg)
        self.clock = clock
        self.last_sent = last_sent
        self.timeout = timeout
        self.persist = None  # persist(last_sent): write-ahead of each request's timestamp

    def _refused(self, msg):
        return CallError(msg)

    def call(self, path, doc):
        """POST doc plus a fresh binary auth request; the answer once the reply authenticates."""
        from janua.binauth import Client, DONE, RETRY
        client = Client(self.device_id, self.mac, self.clock, self.last_sent)
        while True:
            doc["auth"] = hexlify(client.request()).decode()
            self.last_sent = client.last_sent
            if self.persist is not None:
                # before sending: after a power cut the next timestamp is still above every one
                # the verifier saw (else it answers REPLAY until the clock catches up)
                self.persist(self.last_sent)
            status, body = request(self.host, self.port, "POST", path, json.dumps(doc).encode(), self.timeout,
                                   tls=self.tls)
            try:
                out = json.loads(body.read_all(_MAX_JSON))
            except ValueError:
                raise TransportError("%s: http %d, not JSON" % (path, status))
            finally:
                body.close()
            auth = out.get("auth") if isinstance(out, dict) else None
            if not isinstance(auth, str):
                raise self._refused("%s: http %d: %s" % (path, status, out.get("message") if isinstance(out, dict) else "?"))
            state = client.receive(unhexlify(auth))
            if state == DONE:
                return out
            if state != RETRY:
                if client.reason is None:
                    client.give_up("http %d" % status)
                raise self._refused("%s: %s" % (path, client.reason))
