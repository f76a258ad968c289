"""The device side of the attestation transports (docs/attestation.md 2.3) on the unix port: the bytes a
board sends, decoded with the verifier's codec and checked with the vector key, and what it does with
bad answers. The verifier side is built elsewhere: HTTP runs against a small CPython server that answers
like it (binary-auth replies made with the verifier's own key derivation); CoAP runs over a fake channel
(a DTLS endpoint with /attest does not exist yet), MQTT over a janua.mqtt.Session on a fake umqtt client.
"""

import json
import struct
import threading
import time
import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from verifier import keys
from verifier.attest.evidence import check_tag, decode

from attest_helpers import CFG, K_ATTEST, VECTORS

NONCE_HEX = "0f" * 16
BINAUTH = keys.derive_key(bytes.fromhex(VECTORS["master_secret"]), keys.LABEL_BINAUTH)
ANSWER = {"status": "affirming", "trust_level": "affirming", "quarantined": False, "ear": "e.y.j"}


def ok_reply(req):
    body = struct.pack(">BIIII", 0, int(time.time()), 7, int(time.time()) + 600, 1)
    return body + hmac.digest(BINAUTH, req + body, "sha256")[:8]


class Verifier:
    """Answers the device routes; `challenge` is the JSON object the challenge carries besides auth,
    `evidence_answer` the raw body of the evidence answer. Records what the device sent."""

    def __init__(self):
        self.challenge = {"nonce": NONCE_HEX, "expires_at": 2000000000}
        self.check = {"update": None}
        self.evidence_answer = json.dumps(ANSWER).encode()
        self.evidence_status = 200
        self.evidence = []
        self.paths = []


@pytest.fixture
def verifier():
    v = Verifier()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            v.paths.append(self.path)
            status = 200
            if self.path == "/v1/attest/evidence":
                v.evidence.append((self.headers["Content-Type"], body))
                out, status = v.evidence_answer, v.evidence_status
            else:
                doc = json.loads(body)
                extra = v.challenge if self.path == "/v1/attest/challenge" else v.check
                out = json.dumps(dict(extra, auth=ok_reply(bytes.fromhex(doc["auth"])).hex())).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    v.port = srv.server_address[1]
    yield v
    srv.shutdown()
    srv.server_close()


def provision(mp, port):
    cfg = dict(CFG, server={"host": "127.0.0.1", "http_port": port})
    (mp.flash / "janua.json").write_text(json.dumps(cfg))
    (mp.flash / "main.py").write_bytes(b"print('hi')\n")


HTTP = """
import json
from janua.attestnet import http
from janua.attest import Attester
from janua.store import Store
cfg = Store().load_config()
try:
    print(json.dumps({"answer": http(cfg, attester=Attester(cfg, pkg=""))}))
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
print(json.dumps({"last_sent": Store().load_state().get("last_sent", 0)}))
"""


def sent(v):
    assert len(v.evidence) == 1
    ctype, body = v.evidence[0]
    assert ctype == "application/octet-stream"
    ev = decode(body)
    assert check_tag(ev, K_ATTEST)
    return ev


def test_http_challenge_then_evidence_with_the_nonce_and_a_valid_tag(mp, verifier):
    provision(mp, verifier.port)
    out = mp(HTTP)
    assert out[0] == {"answer": ANSWER}
    assert verifier.paths == ["/v1/attest/challenge", "/v1/attest/evidence"]
    ev = sent(verifier)
    assert ev.nonce.hex() == NONCE_HEX and ev.device_id.hex() == VECTORS["device_id"]
    assert ev.files == {"main.py": (12, "caf026f25d7140209f98072605307a438914b9ce6f3c14b23d15d9667241de52")}
    assert abs(ev.time - time.time()) < 30          # the clock was set from the authenticated reply
    assert out[1]["last_sent"] > 1_700_000_000      # the binary-auth timestamp was persisted


@pytest.mark.parametrize("challenge, message", [
    ({"expires_at": 2000000000}, "AttestError: challenge without a nonce"),
    ({"nonce": "zz" * 16}, "AttestError: challenge nonce is not hex"),
    ({"nonce": "0f" * 8}, "AttestError: challenge without a nonce"),
    # found by fuzzing (device.attest): MicroPython's unhexlify made 15 bytes of these 32 characters
    ({"nonce": "a0a1a2a3a4a5a6a7a8a9aaabacad\x0c\x0caf"}, "AttestError: challenge nonce is not hex"),
])
def test_challenge_without_a_usable_nonce_sends_no_evidence(mp, verifier, challenge, message):
    provision(mp, verifier.port)
    verifier.challenge = challenge
    assert mp(HTTP)[0] == {"error": message}
    assert verifier.evidence == []


@pytest.mark.parametrize("body, status, message", [
    (b"<html>bad gateway</html>", 502, "AttestError: /v1/attest/evidence: http 502: the answer is not JSON"),
    (b"[1, 2]", 200, "AttestError: /v1/attest/evidence: http 200: the answer is not a JSON object"),
    (b'{"error": "stale_nonce", "message": "not the outstanding nonce"}', 409,
     "AttestError: evidence refused: http 409: stale_nonce (not the outstanding nonce)"),
])
def test_verifier_answer_that_is_not_a_json_object_or_a_refusal_is_a_clear_error(mp, verifier, body, status,
                                                                                    message):
    provision(mp, verifier.port)
    verifier.evidence_answer, verifier.evidence_status = body, status
    assert mp(HTTP)[0] == {"error": message}


def test_missing_file_during_measurement_sends_nothing(mp, verifier):
    provision(mp, verifier.port)
    (mp.flash / "ota_ptr.json").write_text(json.dumps({"active": "a", "state": "confirmed"}))
    (mp.flash / "app_a").mkdir()
    (mp.flash / "app_a" / "gone.py").symlink_to(mp.flash / "nowhere.py")    # listed, cannot be opened
    out = mp(HTTP)
    assert out[0]["error"].startswith("AttestError: cannot open app_a/gone.py: [Errno 2]")
    assert verifier.paths == ["/v1/attest/challenge"]


def run_built(mp, script):
    """Run `script` on the esp32 heap with the firmware as shipped (.mpy, tools/build.py): the OTA
    client's import chain does not fit that heap as source compiled on the board."""
    import subprocess
    from tools.boards import micropython_cmd
    from tools.build import build_firmware
    fw = mp.workdir / "fw"
    if not fw.exists():
        build_firmware(fw, "unix", main_file=mp.workdir / "none")
    path = mp.workdir / "built.py"
    path.write_text(script)
    argv, env = micropython_cmd("esp32", path, path=[fw / "lib"])
    p = subprocess.run(argv, env=env, cwd=mp.flash, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


POLL = """
import json
from janua.otaclient import poll
from janua.store import Store
print(json.dumps({"poll": poll(Store())}))
import sys
print(json.dumps({"loaded": sorted(m for m in sys.modules if m.startswith("janua.attest"))}))
"""


def test_ota_check_answer_with_a_challenge_attests_after_the_check(mp, verifier):
    provision(mp, verifier.port)
    verifier.check = {"update": None, "attest": {"nonce": NONCE_HEX, "expires_at": 2000000000}}
    out = run_built(mp, POLL)
    assert out == [{"poll": ["none", "janua ota: up to date; attested: affirming"]}, {"loaded": []}]
    assert verifier.paths == ["/v1/ota/check", "/v1/attest/evidence"]
    ev = sent(verifier)
    assert ev.nonce.hex() == NONCE_HEX and ev.modules == {} and ev.package["count"] > 40


def test_ota_check_without_a_challenge_does_not_attest(mp, verifier):
    provision(mp, verifier.port)
    assert run_built(mp, POLL)[0] == {"poll": ["none", "janua ota: up to date"]}
    assert verifier.paths == ["/v1/ota/check"]


def test_failed_attestation_does_not_fail_the_ota_check(mp, verifier):
    provision(mp, verifier.port)
    verifier.check = {"update": None, "attest": {"expires_at": 2000000000}}
    assert run_built(mp, POLL)[0] == {"poll": ["none", "janua ota: up to date; attest failed: challenge without a nonce"]}


# -- MQTT -------------------------------------------------------------------------------------

MQTT = """
import json
from binascii import hexlify
from janua.mqtt import Session
from janua.attest import Attester, AttestError
from janua.attestnet import mqtt_command
out = []
class Client:
    # umqtt.simple's surface that Session uses
    def set_callback(self, f):
        self.cb = f
    def publish(self, topic, msg, retain, qos):
        out.append([topic.decode(), hexlify(msg).decode()])
s = Session(Client(), Exception, "janua/t1/dev", "ctx")
att = Attester(%r, pkg="")
for topic, msg in %r:
    try:
        r = mqtt_command(s, topic, msg, att, 1767225600)
    except AttestError as e:
        r = str(e)
    print(json.dumps({"r": r, "published": out}))
    out.clear()
"""


def test_mqtt_attest_command_publishes_evidence_on_the_attest_topic(mp):
    cmd = json.dumps({"cmd": "attest", "nonce": NONCE_HEX, "expires_at": 2000000000}).encode()
    out = mp(MQTT % (CFG, [(b"janua/t1/dev/cmd", cmd)]))
    assert out[0]["r"] is True
    [[topic, hexev]] = out[0]["published"]
    assert topic == "janua/t1/dev/attest"
    ev = decode(bytes.fromhex(hexev))
    assert check_tag(ev, K_ATTEST) and ev.nonce.hex() == NONCE_HEX and ev.time == 1767225600


@pytest.mark.parametrize("topic, msg, r", [
    (b"janua/t1/dev/cmd", b"not json", "MQTT command: the answer is not JSON"),
    (b"janua/t1/dev/cmd", b'{"cmd": "attest"}', "challenge without a nonce"),
    (b"janua/t1/dev/cmd", b'{"cmd": "attest", "nonce": "' + b"0" * 600 + b'"}', "command over 512 bytes"),
    (b"janua/t1/dev/cmd", b'{"cmd": "reboot"}', False),
    (b"janua/t1/dev/cmd", b'{"cmd": "attest", "nonce": "a0a1a2a3a4a5a6a7a8a9aaabacad\x0c\x0caf"}',
     "challenge nonce is not hex"),     # found by fuzzing: 15 bytes out of MicroPython's unhexlify
    (b"janua/t1/other/cmd", b'{"cmd": "attest", "nonce": "' + NONCE_HEX.encode() + b'"}', False),
])
def test_mqtt_other_or_malformed_commands_publish_nothing(mp, topic, msg, r):
    out = mp(MQTT % (CFG, [(topic, msg)]))
    assert out == [{"r": r, "published": []}]


# -- CoAP over a fake channel -------------------------------------------------------------------

COAP = """
import json
from binascii import hexlify
from janua import coap
from janua.attest import Attester, AttestError
from janua.attestnet import coap as attest_coap
class Chan:
    # answers like the verifier's CoAP resources would: piggybacked ACKs
    def __init__(self):
        self.q, self.sent = [], []
    def send(self, m):
        t, code, mid, tok, opts, pl = coap.decode(bytes(m))
        self.sent.append([code, [o[1].decode() for o in opts if o[0] == coap.URI_PATH], hexlify(pl).decode()])
        if code == coap.GET:
            self.q.append(coap.encode(coap.ACK, 69, mid, tok, (), %r))
        else:
            self.q.append(coap.encode(coap.ACK, 68, mid, tok, (), b'{"status": "affirming"}'))
    def recv(self, timeout):
        return bytes(self.q.pop(0)) if self.q else None
    def close(self):
        self.sent.append("closed")
ch = Chan()
try:
    r = attest_coap(%r, Attester(%r, pkg=%r), 1767225600, chan=ch)
except AttestError as e:
    r = str(e)
print(json.dumps({"r": r, "sent": ch.sent}))
"""


def test_coap_get_then_post_attest_with_the_evidence(mp):
    (mp.flash / "main.py").write_bytes(b"print('hi')\n")
    get = json.dumps({"nonce": NONCE_HEX, "expires_at": 2000000000}).encode()
    out = mp(COAP % (get, CFG, CFG, ""))[0]
    assert out["r"] == {"status": "affirming"}
    assert [s[:2] for s in out["sent"][:2]] == [[1, ["attest"]], [2, ["attest"]]] and out["sent"][2] == "closed"
    ev = decode(bytes.fromhex(out["sent"][1][2]))
    assert check_tag(ev, K_ATTEST) and ev.nonce.hex() == NONCE_HEX and set(ev.files) == {"main.py"}


def test_whole_package_as_its_digest_attests_over_coap(mp):
    # the default 0x09 record: the whole janua package in 40 bytes, so the evidence fits one CoAP message
    (mp.flash / "main.py").write_bytes(b"print('hi')\n")
    get = json.dumps({"nonce": NONCE_HEX}).encode()
    out = mp(COAP.replace(", pkg=%r", "") % (get, CFG, CFG))[0]
    assert out["r"] == {"status": "affirming"}
    ev = decode(bytes.fromhex(out["sent"][1][2]))
    assert check_tag(ev, K_ATTEST) and ev.modules == {} and ev.package["count"] > 40
    assert len(bytes.fromhex(out["sent"][1][2])) < 300


def test_coap_evidence_over_one_message_is_refused_before_sending(mp):
    # the whole janua package listed (0x06): about 2 KB, over the verifier's 1,024-byte CoAP message
    get = json.dumps({"nonce": NONCE_HEX}).encode()
    out = mp(COAP.replace(", pkg=%r", ", modules='list'") % (get, CFG, CFG))[0]
    assert out["r"].startswith("evidence of ") and out["r"].endswith(
        "bytes does not fit one CoAP message of 1024 bytes (no block-wise transfer): attest over HTTP or MQTT")
    assert [s[0] for s in out["sent"][:-1]] == [1] and out["sent"][-1] == "closed"


def test_coap_challenge_that_is_not_json_is_a_clear_error(mp):
    out = mp(COAP % (b"nonce please", CFG, CFG, ""))[0]
    assert out["r"] == "CoAP GET /attest: the answer is not JSON"


FULL = """
import json
from janua.attestnet import http
from janua.attest import Attester
from janua.store import Store, PosixFS
class FullFlash(PosixFS):
    # the real flash, full: every file opened for writing fails with ENOSPC
    def open(self, path, mode):
        if "w" in mode:
            raise OSError(28)
        return open(path, mode)
store = Store(fs=FullFlash())
cfg = store.load_config()
try:
    http(cfg, store=store, attester=Attester(cfg, pkg=""))
    print(json.dumps({"error": None}))
except Exception as e:
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
"""


def test_full_flash_before_the_challenge_is_a_clear_error_and_sends_nothing(mp, verifier):
    # the binary-auth timestamp is persisted before each request; a full flash stops the call there
    provision(mp, verifier.port)
    assert mp(FULL) == [{"error": "StoreError: flash full while writing janua_state.json; old file kept"}]
    assert verifier.paths == []


DROP_EAR = """
import json
from janua.attestnet import drop_ear, answer_of
for raw in %r:
    b = bytearray(raw.encode())
    drop_ear(b)
    print(json.dumps({"raw": bytes(b).decode(), "doc": answer_of(b, "t")}))
"""


def test_the_answer_after_an_ota_check_is_parsed_without_a_copy_of_its_ear(mp):
    # after an OTA check the esp32 heap had 24 KB free but no block over ~770 bytes: json.loads
    # copying the ~700-byte EAR string was the allocation that failed; the board reads the status
    out = mp(DROP_EAR % ['{"status": "affirming", "trust_level": 70, "ear": "eyJh.eyJi.c2ln"}',
                         '{"ear":"a.b","status":"warning"}',
                         '{"ear": "a\\"b", "status": "x"}',       # not an EAR (escape): left as it is
                         '{"note": "ear", "status": "x"}',        # "ear" as a value: nothing blanked
                         '{"status": "x"}'])
    assert out == [
        {"raw": '{"status": "affirming", "trust_level": 70, "ear": 0               }',
         "doc": {"status": "affirming", "trust_level": 70, "ear": 0}},
        {"raw": '{"ear":0    ,"status":"warning"}', "doc": {"ear": 0, "status": "warning"}},
        {"raw": '{"ear": "a\\"b", "status": "x"}', "doc": {"ear": 'a"b', "status": "x"}},
        {"raw": '{"note": "ear", "status": "x"}', "doc": {"note": "ear", "status": "x"}},
        {"raw": '{"status": "x"}', "doc": {"status": "x"}}]

