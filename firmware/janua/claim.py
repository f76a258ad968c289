"""Zero-touch claim, the board's side (docs/claims.md, protocol v1): request codec, answer check, driver.

A board imaged offline holds {"claim": {"batch", "serial", "key"}} and no identity. `request()` builds
the claim (batch id, fresh nonce, serial, tag under K_mac); `open_answer()` checks the verifier's answer
(length cap, version, type, then the tag in constant time) before it decrypts the master secret or
parses the configuration. `claim()` is the thin driver: one HTTP(S) POST (or, when the claim image names a
CoAP endpoint, one confirmable CoAP POST by janua.claimcoap, loaded only then), then the new janua.json in ONE
atomic write (the claim key goes with the old file). This module does not authenticate, retry or sleep:
a failed claim leaves the claim config on flash and the next boot tries again (the verifier resumes).
"""

try:
    from micropython import const
except ImportError:  # CPython: the codec is also tested there against docs/vectors/claim.json
    def const(x):
        return x

from binascii import hexlify, unhexlify
from janua import ClaimError, JanuaError
from janua.mac import HMAC, ct_eq

PATH = "/v1/claim"
_SALT = b"janua/v1"     # janua.hkdf.SALT
_last = [None, None, None]  # the last claim key and its (HMAC under K_mac, K_enc): one derivation per claim
_V = const(1)           # protocol version
_REQ = const(1)         # type: claim request
_ANS = const(2)         # type: claim answer
_TAG = const(16)        # tag length (HMAC-SHA256 truncated)
_MAX_CONFIG = const(1024)
_ANS_FIXED = const(76)  # answer bytes besides the config
_MAX_ANSWER = const(1100)   # _ANS_FIXED + _MAX_CONFIG
_HTTP_CAP = const(1200)     # the HTTP body cap for the answer (a refusal's JSON body is smaller)


def _keys(key):
    # (HMAC under K_mac, K_enc) = janua's derive(K_c, "claim-mac" / "claim-enc") (janua.hkdf, docs/protocol.md
    # 1): HKDF-SHA256, salt "janua/v1", L = 32, so Expand is its first block T(1) = HMAC(PRK, info || 0x01).
    # Written out here to share one PRK and allocate no concatenation (heap budget); derived once per claim
    # (request() keeps them for open_answer(), claim() forgets them); the vectors' requests and answers check them.
    k = _last
    if k[0] is not None and ct_eq(k[0], key):
        return k[1], k[2]
    prk = HMAC(HMAC(_SALT).digest(key))
    k[0], k[1], k[2] = bytes(key), HMAC(prk.digest(b"claim-mac", b"\x01")), prk.digest(b"claim-enc", b"\x01")
    return k[1], k[2]


def request(claim, nonce):
    """The claim request (43 + n bytes) for the claim config `claim` ({"batch", "serial", "key"} hex/str)
    and a fresh 16-byte `nonce`. ClaimError when the config's fields have the wrong form."""
    try:
        batch = unhexlify(claim["batch"])
        key = unhexlify(claim["key"])
        serial = claim["serial"].encode()
    except (KeyError, ValueError, TypeError, AttributeError):
        raise ClaimError("claim config malformed")
    n = len(serial)
    if len(batch) != 8 or len(key) != 32 or len(nonce) != 16 or not 0 < n <= 64:
        raise ClaimError("claim config malformed")
    b = bytearray(43 + n)
    b[0] = _V
    b[1] = _REQ
    b[2:10] = batch
    b[10:26] = nonce
    b[26] = n
    b[27:27 + n] = serial
    b[27 + n:] = _keys(key)[0].digest(memoryview(b)[:27 + n])[:_TAG]
    return bytes(b)


def open_answer(claim_key, nonce, answer):
    """(device_id hex, master_secret hex, config dict) from a claim answer to the request that carried
    `nonce`. Raises ClaimError for a wrong length, version or type, a tag that does not verify (a forgery,
    or an old answer replayed to a new request), then for a config that is not a JSON object."""
    n = len(answer)
    if n < _ANS_FIXED or n > _MAX_ANSWER:
        raise ClaimError("answer length %d" % n)
    if answer[0] != _V or answer[1] != _ANS:
        raise ClaimError("answer version/type")
    size = answer[58] << 8 | answer[59]
    if size > _MAX_CONFIG or n != _ANS_FIXED + size:
        raise ClaimError("answer length %d" % n)
    mac, k_enc = _keys(claim_key)
    mv = memoryview(answer)
    if not mac.check(answer, 60 + size, _TAG, nonce, mv[:60 + size]):
        raise ClaimError("answer tag does not verify")
    # verified: decrypt the secret (keystream = HMAC(K_enc, req_nonce || server_nonce || device_id))
    ks = HMAC(k_enc).digest(nonce, bytes(mv[10:26]) + bytes(mv[2:10]))
    secret = bytearray(32)
    for i in range(32):
        secret[i] = answer[26 + i] ^ ks[i]
    import json
    try:
        cfg = json.loads(str(mv[60:60 + size], "utf-8"))
    except (ValueError, UnicodeError):
        cfg = None
    if not isinstance(cfg, dict):
        raise ClaimError("answer config is not a JSON object")
    return hexlify(mv[2:10]).decode(), hexlify(secret).decode(), cfg


def identity(old, dev, secret, cfg):
    """The new janua.json: the answer's config + the identity, the old config's "wifi" and "board" kept,
    "claim" (the key) dropped. A server port the verifier sends as null (that endpoint is off) is left
    out, so the board's modules see no port rather than None."""
    srv = cfg.get("server")
    if isinstance(srv, dict):
        for k in [k for k in srv if srv[k] is None]:
            del srv[k]
    cfg["device_id"] = dev
    cfg["master_secret"] = secret
    for k in ("wifi", "board"):
        if k in old:
            cfg[k] = old[k]
    cfg.pop("claim", None)
    return cfg


def refusal(status, body):
    """"refused: <code>" from the verifier's JSON error body (unauthenticated: shown only when the code is
    1..40 of a-z and _, so no console line can be forged), else "refused: http <status>"; never raises."""
    import json
    try:
        code = json.loads(body)["error"]
        if isinstance(code, str) and 0 < len(code) <= 40 and all("a" <= c <= "z" or c == "_" for c in code):
            return "refused: %s" % code
    except (ValueError, KeyError, TypeError, IndexError):
        pass
    return "refused: http %d" % status


def claim(old, store, rand=None, post=None, timeout=5.0, chan=None):
    """Claim this board's identity with the claim config `old` (janua.json's), store the new janua.json
    atomically and return it. ClaimError ("refused: batch_exhausted", "answer tag does not verify") or
    TransportError/OSError (the network) when there is nothing new: the claim config stays. Over CoAP when
    old["claim"]["coap"] is set (`chan`: a test's channel instead of the UDP socket)."""
    from janua.store import check_config
    from janua import StoreError
    if rand is None:
        from os import urandom as rand
    c = old["claim"]
    nonce = rand(16)
    try:
        req = request(c, nonce)
        if "coap" in c:
            from janua.claimcoap import exchange
            body = exchange(c["coap"], req, rand, chan)
        else:
            if post is None:
                from janua.http import post
            srv = old["server"]
            tls = None
            if srv.get("tls"):       # HTTPS: the verifier checked against janua_server_ca.der (janua.https)
                from janua.https import context
                tls = context(old)
            status, body = post(srv["host"], srv.get("http_port", 8080), PATH, req, timeout, tls, _HTTP_CAP)
            if status != 200:
                raise ClaimError(refusal(status, body))
        dev, secret, cfg = open_answer(unhexlify(c["key"]), nonce, body)
    finally:
        _last[0] = _last[1] = _last[2] = None     # the derived keys go; the key itself with the old file
    new = identity(old, dev, secret, cfg)
    try:
        check_config(new)
    except StoreError as e:      # the verifier's config lacks what the board needs
        raise ClaimError("answer config: %s" % e)
    store.save_config(new)       # one atomic write_json: the claim config or the identity, never a mix
    return new


def check_image(cfg):
    """Raise StoreError unless `cfg` is a factory claim image (docs/claims_board.md): no identity, a "claim"
    whose batch id, claim key and serial request() takes, and a server to claim from."""
    from janua import StoreError
    c = cfg.get("claim") if isinstance(cfg, dict) and "device_id" not in cfg else None
    if c is None:
        raise StoreError("no claim image")
    try:
        request(c, bytes(16))    # the fields' lengths; its key derivation is kept for the claim itself
        h = c["batch"] + c["key"]
        ok = h == h.lower() and all("!" <= ch <= "~" for ch in c["serial"])   # lowercase hex, no space
    except (ClaimError, TypeError):
        ok = False
    if not ok:
        raise StoreError("claim image malformed (batch, key or serial)")
    srv = cfg.get("server")
    if not isinstance(srv, dict) or not srv.get("host"):
        raise StoreError("server.host missing")


def boot(store, err, hal):
    """After the identity did not load (`err`): claim one when the board holds a claim image (network up through
    `hal` first) and return the new config; else the console line: not provisioned (`err`, or what is wrong with
    the image), the network's failure, or the claim's ("janua: claim refused: batch_exhausted"). The claim image
    stays after a failure: the next boot claims again (the verifier resumes)."""
    import sys
    import janua
    try:
        cfg = store.load_config(check_image)
        try:
            if hal is not None:
                hal.connect_network(cfg)
            return claim(cfg, store)
        except (OSError, JanuaError) as e:
            janua.note_error(e)
            m = str(e)
            return "janua: claim %s" % m if isinstance(e, ClaimError) and m.startswith("refused") else \
                "janua: claim failed: %s" % m
    except JanuaError as e:
        return "janua: not provisioned: %s" % (e if str(e).startswith("claim image") else err)
    finally:
        # this module (and claimcoap) unloaded: their heap goes back before the authentication
        for m in ("claim", "claimcoap"):
            sys.modules.pop("janua." + m, None)
            if hasattr(janua, m):
                delattr(janua, m)
