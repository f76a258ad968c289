"""The device's compact token (docs/tokens.md): obtain, keep on flash, refresh on time, present.

    ts = TokenStore(cfg, clock)           # cfg = janua.json's config
    if ts.due(clock.now()):
        ts.ensure(clock.now())            # refresh while valid, else obtain with binary auth
    headers = {"Authorization": ts.bearer()}

The current JWT lives in "token.json" ({"token", "exp", "refresh_at"}), written atomically with
janua.store (temp file + rename), so a power cut keeps the old token or the new one. `obtain()` sends
a fresh 20-byte binary auth request (binauth.Client; an authenticated reply sets the clock, and
TIME_SYNC/REPLAY are retried) to POST /v1/auth/device/token; `refresh()` presents the still-valid
token to POST /v1/auth/device/refresh. The token is opaque here: the device neither decodes nor
verifies it (ES256 is the verifier's and the broker's business); it trusts only the times the
verifier sent with it. HTTP goes through janua.httpreq.call. Nothing here logs or prints a token.
"""

from binascii import hexlify, unhexlify
from micropython import const
from janua import AuthError, StoreError
from janua.store import PosixFS, read_json, write_json
from janua.httpreq import call

FILE = "token.json"
_MAX_TOKEN = const(1024)    # a compact JWT is about 250 characters
_REFRESH_S = const(300)     # used only when the verifier's answer lacks refresh_at


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class TokenStore:
    """The current token of this device: on flash, refreshed on time."""

    def __init__(self, cfg, clock, last_sent=0, fs=None, root="", timeout=10.0):
        self.cfg = cfg
        srv = cfg["server"]
        self.host, self.port = srv["host"], srv.get("http_port", 8080)
        self.tls = None
        if srv.get("tls") is True:          # HTTPS (janua.https), loaded only then
            from janua.https import context
            self.tls = context(cfg)
        self.clock = clock
        self.last_sent = last_sent      # binary auth timestamp; the caller persists it
        self.fs = fs or PosixFS()
        self.path = root + "/" + FILE if root else FILE
        self.timeout = timeout
        self.doc = None
        try:
            doc = read_json(self.fs, self.path)
        except StoreError:
            doc = None                  # unreadable: as if there were none (obtain a new one)
        if self._good(doc):
            self.doc = doc

    @staticmethod
    def _good(doc):
        return (isinstance(doc, dict) and isinstance(doc.get("token"), str)
                and 0 < len(doc["token"]) <= _MAX_TOKEN and _int(doc.get("exp"))
                and _int(doc.get("refresh_at")))

    def exp(self):
        return self.doc["exp"] if self.doc else None

    def valid(self, now):
        """True while the stored token has not expired (by this device's clock)."""
        return self.doc is not None and now < self.doc["exp"]

    def due(self, now):
        """True when there is no token or it is time to refresh it (refresh_at = exp - 300 s)."""
        return self.doc is None or now >= self.doc["refresh_at"]

    def bearer(self):
        """The Authorization header value; AuthError when there is no token."""
        if self.doc is None:
            raise AuthError("no device token (obtain one first)")
        return "Bearer " + self.doc["token"]

    def _keep(self, out, what):
        if not isinstance(out, dict):
            raise AuthError("%s: no answer" % what)
        exp = out.get("expires_at")
        doc = {"token": out.get("token"), "exp": exp,
               "refresh_at": out.get("refresh_at", exp - _REFRESH_S if _int(exp) else None)}
        if not self._good(doc):
            raise AuthError("%s: malformed token answer" % what)
        write_json(self.fs, self.path, doc)
        self.doc = doc
        return doc

    def obtain(self):
        """A new token for a fresh binary auth request (POST /v1/auth/device/token)."""
        from janua.hkdf import derive
        from janua.mac import HMAC
        from janua.binauth import Client, DONE, RETRY
        mac = HMAC(derive(unhexlify(self.cfg["master_secret"]), "binauth"))
        client = Client(unhexlify(self.cfg["device_id"]), mac, self.clock, self.last_sent)
        while True:
            doc = {"auth": hexlify(client.request()).decode()}
            self.last_sent = client.last_sent
            status, out = call(self.host, self.port, "POST", "/v1/auth/device/token", doc,
                               timeout=self.timeout, tls=self.tls)
            auth = out.get("auth") if isinstance(out, dict) else None
            if not isinstance(auth, str):
                raise AuthError("token: http %d without a binary auth reply" % status)
            try:
                reply = unhexlify(auth)
            except ValueError:
                raise AuthError("token: bad binary auth reply")
            state = client.receive(reply)
            if state == DONE:
                if status != 200:
                    raise AuthError("token: http %d" % status)
                return self._keep(out, "token")
            if state != RETRY:
                client.give_up("http %d" % status)
                raise AuthError("token: %s" % client.reason)

    def refresh(self):
        """A new token for the current one (POST /v1/auth/device/refresh with it as bearer)."""
        status, out = call(self.host, self.port, "POST", "/v1/auth/device/refresh", {},
                           bearer=self.bearer(), timeout=self.timeout, tls=self.tls)
        if status != 200:
            raise AuthError("refresh: http %d" % status)
        return self._keep(out, "refresh")

    def ensure(self, now):
        """Refresh when due; obtain when there is none, it expired, or the refresh was refused."""
        if not self.due(now):
            return self.doc
        if self.valid(now):
            try:
                return self.refresh()
            except AuthError:
                pass        # refused (suspended, rotated key, clock off): binary auth decides
        return self.obtain()

    def forget(self):
        """Drop the stored token (after the verifier refused it)."""
        self.doc = None
        try:
            self.fs.remove(self.path)
        except OSError:
            pass

    def whoami(self):
        """GET /v1/auth/device/whoami: what the verifier knows of the token's device."""
        status, out = call(self.host, self.port, "GET", "/v1/auth/device/whoami", None,
                           bearer=self.bearer(), timeout=self.timeout, tls=self.tls)
        if status != 200 or not isinstance(out, dict):
            raise AuthError("whoami: http %d" % status)
        return out
