"""The claim at boot on MicroPython (esp32 heap): janua.app.run() with a factory claim image against a
CPython test double of the verifier (claim answers from conftest.answer, binary auth replies from hmac):
claim, store, authenticate in the same boot; refusals as one console line; a power cut at every
filesystem operation of the claim answer's write, then the next boot claims again (resume) or
authenticates; diag on an unclaimed board. The real verifier is in test_e2e_claim.py."""

import hashlib
import hmac
import json
import struct
import time

import pytest

from tests.claims_device.conftest import answer, derive

BATCH = "c1a1b2b3d4e5f607"
SERIAL = "SN-2026-000042"
K_C = bytes.fromhex("c695e53b9f06f5b1fcf246f4d0b808b90dfe01c4a088c1ca5230005109cc543c")
DEV = bytes.fromhex("1234567890abcdef")
MASTER = bytes(range(32))
T_SERVER = 1_780_000_000


def image(port, **extra):
    cfg = {"claim": {"batch": BATCH, "serial": SERIAL, "key": K_C.hex()},
           "server": {"host": "127.0.0.1", "http_port": port}, "wifi": {"ssid": "factory", "password": "pw"}}
    cfg.update(extra)
    return cfg


class FakeVerifier:
    """POST /v1/claim: checks the request's framing and tag (docs/claims.md), answers with DEV/MASTER
    (the same identity for every valid claim: a resume); POST /v1/binauth: an authenticated OK."""

    def __init__(self, refusal=None):
        self.refusal = refusal
        self.claims = []
        self.auths = []
        self.port = None

    def config(self):
        return json.dumps({"tenant": "acme", "region": None, "transport": "http", "board": {"led": 5},
                           "server": {"host": "127.0.0.1", "udp_port": 9, "http_port": self.port,
                                      "dtls_port": 9}}, separators=(",", ":")).encode()

    def __call__(self, path, body):
        if path == "/v1/claim":
            if self.refusal:
                return self.refusal[0], json.dumps({"error": self.refusal[1], "message": "no"}).encode(), \
                    "application/json"
            n = body[26]
            ok = (len(body) == 43 + n and body[:2] == b"\x01\x01" and body[2:10].hex() == BATCH
                  and body[27:27 + n] == SERIAL.encode()
                  and hmac.compare_digest(body[-16:], hmac.new(derive(K_C, b"claim-mac"), body[:-16],
                                                               hashlib.sha256).digest()[:16]))
            if not ok:
                return 401, b'{"error":"claim_invalid","message":"x"}', "application/json"
            self.claims.append(body)
            return 200, answer(K_C, body[10:26], DEV, bytes(range(16)), MASTER, self.config()), \
                "application/octet-stream"
        if path == "/v1/binauth":
            self.auths.append(body)
            key = derive(MASTER, b"binauth")
            ok = body[:8] == DEV and hmac.compare_digest(
                body[12:20], hmac.new(key, body[:12], hashlib.sha256).digest()[:8])
            if not ok:
                return 401, b"", "application/octet-stream"
            rep = struct.pack(">BIIII", 0, T_SERVER, 77, T_SERVER + 3600, 1)
            return 200, rep + hmac.new(key, body[:20] + rep, hashlib.sha256).digest()[:8], \
                "application/octet-stream"
        return 404, b"", "text/plain"


@pytest.fixture
def verifier(http_server):
    def start(**kw):
        v = FakeVerifier(**kw)
        v.port = http_server(v)
        return v
    return start


BOOT = """
import json
from janua.app import run
print(json.dumps(run()))
"""


def read_cfg(mp):
    return json.loads((mp.flash / "janua.json").read_text())


def test_claim_then_authenticate_in_the_same_boot(mp, verifier):
    v = verifier()
    (mp.flash / "janua.json").write_text(json.dumps(image(v.port)))
    line = mp(BOOT)[0]
    assert line == ("janua: authenticated device=1234567890abcdef via http session=77 expires=%d (claimed)"
                    % (T_SERVER + 3600))
    assert len(v.claims) == 1 and len(v.claims[0]) == 43 + len(SERIAL) and len(v.auths) == 1
    cfg = read_cfg(mp)
    assert cfg["device_id"] == "1234567890abcdef" and cfg["master_secret"] == MASTER.hex()
    assert "claim" not in cfg and K_C.hex() not in (mp.flash / "janua.json").read_text()
    assert cfg["wifi"] == {"ssid": "factory", "password": "pw"}       # the factory image's own
    assert cfg["tenant"] == "acme" and cfg["transport"] == "http" and cfg["board"] == {"led": 5}
    assert sorted(p.name for p in mp.flash.iterdir() if p.name.startswith("janua")) == [
        "janua.json", "janua_state.json"]
    # the next boot authenticates with the stored identity and claims nothing
    line = mp(BOOT)[0]
    assert line.startswith("janua: authenticated device=1234567890abcdef via http") and "claimed" not in line
    assert len(v.claims) == 1 and len(v.auths) == 2


def test_board_keeps_its_own_board_entry_over_the_batch_one(mp, verifier):
    v = verifier()
    (mp.flash / "janua.json").write_text(json.dumps(image(v.port, board="esp32")))
    mp(BOOT)
    assert read_cfg(mp)["board"] == "esp32"


@pytest.mark.parametrize("status,code", [(403, "batch_exhausted"), (403, "batch_revoked"),
                                         (403, "serial_not_allowed"), (409, "already_claimed"),
                                         (401, "claim_invalid"), (429, "rate_limited")])
def test_refusal_is_one_console_line_and_the_claim_image_stays(mp, verifier, status, code):
    v = verifier(refusal=(status, code))
    img = image(v.port)
    (mp.flash / "janua.json").write_text(json.dumps(img))
    assert mp(BOOT)[0] == "janua: claim refused: %s" % code
    assert read_cfg(mp) == img and v.auths == []


def test_refusal_without_a_json_body_names_the_status(mp, http_server):
    port = http_server(lambda path, body: (502, b"<html>bad gateway</html>", "text/html"))
    (mp.flash / "janua.json").write_text(json.dumps(image(port)))
    assert mp(BOOT)[0] == "janua: claim refused: http 502"


def test_forged_answer_stores_nothing(mp, http_server):
    forged = answer(bytes(32), bytes(16), DEV, bytes(16), MASTER, b"{}")
    port = http_server(lambda path, body: (200, forged, "application/octet-stream"))
    img = image(port)
    (mp.flash / "janua.json").write_text(json.dumps(img))
    assert mp(BOOT)[0] == "janua: claim failed: answer tag does not verify"
    assert read_cfg(mp) == img


def test_unreachable_verifier_is_a_claim_failure_line(mp, http_server):
    port = http_server(lambda path, body: (200, b"", "application/octet-stream"))
    img = image(port)
    img["server"]["host"] = "127.0.0.1"
    img["server"]["http_port"] = 1      # nothing listens there
    (mp.flash / "janua.json").write_text(json.dumps(img))
    line = mp(BOOT)[0]
    assert line.startswith("janua: claim failed: ") and read_cfg(mp) == img


def test_answer_over_the_http_cap_is_refused(mp, http_server):
    port = http_server(lambda path, body: (200, b"\x01" * 1201, "application/octet-stream"))
    (mp.flash / "janua.json").write_text(json.dumps(image(port)))
    assert mp(BOOT)[0] == "janua: claim failed: http body over 1200 bytes"


def test_binauth_http_cap_unchanged(mp, http_server):
    # janua.http.post keeps its 64-byte body cap for binary auth (the claim asks for more)
    port = http_server(lambda path, body: (200, b"x" * 65, "application/octet-stream"))
    out = mp("""
import json
from janua.http import post
from janua import TransportError
try:
    post("127.0.0.1", %d, "/v1/binauth", b"q" * 20); print(json.dumps("accepted"))
except TransportError as e:
    print(json.dumps(str(e)))
""" % port)[0]
    assert out == "http body over 64 bytes"


# Power cut: the injected fs ends the process at its Nth operation of the claim answer's write
# (1 open of the .tmp, 2 write, 3 flush, 4 close, 5 sync, 6 rename: the cut comes before each) and at 7, the
# first operation after the rename (the state file's write); at the write, half the text goes first.
CUT = """
import sys, json
from janua.store import Store, PosixFS
N = %d
class Cut(PosixFS):
    n = 0
    def op(self):
        self.n += 1
        if self.n == N:
            sys.exit(3)
    def open(self, path, mode):
        if "w" not in mode:
            return open(path, mode)
        self.op()
        f = open(path, mode)
        fs = self
        class W:
            def write(self, s):
                if fs.n + 1 == N:
                    f.write(s[:len(s) // 2]); f.flush()
                fs.op()
                return f.write(s)
            def flush(self):
                fs.op(); f.flush()
            def close(self):
                fs.op(); f.close()
        return W()
    def sync(self):
        self.op(); PosixFS.sync(self)
    def rename(self, a, b):
        self.op(); PosixFS.rename(self, a, b)
from janua.app import run
print(json.dumps(run(store=Store(fs=Cut()))))
"""

LOAD = """
import json
from janua import StoreError
from janua.store import Store
from janua.claim import check_image
try:
    c = Store().load_config()
except StoreError:
    c = Store().load_config(check_image)
print(json.dumps(sorted(c)))
"""


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_power_cut_at_each_write_operation_then_the_next_boot_claims_or_authenticates(mp, verifier, n):
    v = verifier()
    (mp.flash / "janua.json").write_text(json.dumps(image(v.port)))
    p = mp.raw(CUT % n)
    assert p.returncode == 3, p.stdout + p.stderr
    keys = mp(LOAD)[0]          # never a broken file: the claim image, or the whole identity
    # Cut at the open or in the middle of the write: the .tmp is missing or half written, the claim image is
    # what loads, and the next boot claims again (the verifier resumes). From the flush on, the .tmp holds the
    # whole new config (the unix port's write reached the file): the store takes that complete, newer copy
    # over the claim image, as it takes any complete .tmp over a main file that does not pass its check.
    again = n <= 2
    if again:
        assert keys == ["claim", "server", "wifi"], keys
    else:
        assert "device_id" in keys and "master_secret" in keys and "claim" not in keys, keys
    line = mp(BOOT)[0]
    assert line.startswith("janua: authenticated device=1234567890abcdef via http"), line
    assert line.endswith("(claimed)") == again
    assert len(v.claims) == (2 if again else 1)
    assert read_cfg(mp)["master_secret"] == MASTER.hex()
    assert not (mp.flash / "janua.json.tmp").exists()


def test_diag_on_an_unclaimed_board(mp):
    (mp.flash / "janua.json").write_text(json.dumps(image(8080)))
    p = mp.raw("import janua.diag\njanua.diag.report()\n")
    assert p.returncode == 0, p.stderr
    assert "device_id: unclaimed (batch c1a1b2b3d4e5f607)\n" in p.stdout
    assert "serial: SN-2026-000042\n" in p.stdout and "credentials: claim key only\n" in p.stdout
    assert K_C.hex() not in p.stdout


def test_identity_load_stays_strict(mp):
    # load_config() without janua.claim's check_image still refuses a claim image (every other caller needs an identity)
    (mp.flash / "janua.json").write_text(json.dumps(image(8080)))
    out = mp("""
import json
from janua.store import Store
from janua import StoreError
try:
    Store().load_config(); print(json.dumps("loaded"))
except StoreError as e:
    print(json.dumps(str(e)))
""")[0]
    assert out == "device_id must be 16 lowercase hex characters"


@pytest.mark.parametrize("bad", [
    {"claim": {"batch": BATCH, "serial": "has space", "key": K_C.hex()}, "server": {"host": "h"}},
    {"claim": {"batch": BATCH[:15], "serial": SERIAL, "key": K_C.hex()}, "server": {"host": "h"}},
    {"claim": {"batch": BATCH, "serial": SERIAL, "key": K_C.hex().upper()}, "server": {"host": "h"}},
    {"claim": {"batch": BATCH, "serial": SERIAL, "key": K_C.hex()}},
])
def test_malformed_claim_image_is_not_provisioned(mp, bad):
    (mp.flash / "janua.json").write_text(json.dumps(bad))
    assert mp(BOOT)[0].startswith("janua: not provisioned: ")


@pytest.mark.parametrize("code", ["janua: authenticated device=0", "X", "a" * 41, ""])
def test_refusal_code_cannot_forge_a_console_line(mp, verifier, code):
    # the error body is unauthenticated: a code outside a-z/_ (or too long) shows as the status only
    v = verifier(refusal=(403, code))
    (mp.flash / "janua.json").write_text(json.dumps(image(v.port)))
    assert mp(BOOT)[0] == "janua: claim refused: http 403"


def test_answer_config_without_a_server_stores_nothing(mp, http_server):
    # authentic, but the config lacks what the board needs to authenticate: refused, the claim image kept
    def handler(path, body):
        return 200, answer(K_C, body[10:26], DEV, bytes(16), MASTER, b'{"tenant":"acme"}'), "application/octet-stream"
    port = http_server(handler)
    img = image(port)
    (mp.flash / "janua.json").write_text(json.dumps(img))
    assert mp(BOOT)[0] == "janua: claim failed: answer config: server.host missing"
    assert read_cfg(mp) == img


def test_null_ports_of_the_answer_are_left_out(mp, http_server):
    # the verifier sends "udp_port": null when its UDP endpoint is off (docs/claims.md 4)
    cfg = {"tenant": "acme", "region": None, "transport": "http",
           "server": {"host": "127.0.0.1", "udp_port": None, "http_port": 9, "dtls_port": None}}
    text = json.dumps(cfg, separators=(",", ":")).encode()

    def handler(path, body):
        if path == "/v1/claim":
            return 200, answer(K_C, body[10:26], DEV, bytes(16), MASTER, text), "application/octet-stream"
        return 404, b"", "text/plain"
    port = http_server(handler)
    (mp.flash / "janua.json").write_text(json.dumps(image(port)))
    mp(BOOT)
    assert read_cfg(mp)["server"] == {"host": "127.0.0.1", "http_port": 9}
