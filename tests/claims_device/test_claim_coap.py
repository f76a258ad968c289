"""The claim over plain CoAP on the board (janua.claimcoap, docs/claims_board.md) on MicroPython (esp32 heap): the
request message's bytes, retransmission on silence with RFC 7252's doubling and its bound (a test channel: no
sleeping), a refusal's console text; then janua.app.run() against the real verifier (`janua serve --dev
--coap-claim-port 0`) with a claim image written by `janua claim image --coap` (tools/claim_image.py), then
binary auth; a refusal from the real verifier as the board's console line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.demo import Verifier

ROOT = Path(__file__).resolve().parents[2]

# A test channel: records what is sent and the waits asked for; `script` answers each recv (None: silence).
# "ack:CODE:PAYLOAD" builds the piggy-backed ACK for the last request sent (its mid and token).
CHAN = """
import json
from binascii import hexlify, unhexlify
from janua import ClaimError, TransportError
from janua.claimcoap import exchange

class Chan:
    def __init__(self, script):
        self.script, self.sent, self.waits = script, [], []
    def send(self, b):
        self.sent.append(bytes(b))
    def recv(self, t):
        self.waits.append(t)
        a = self.script.pop(0) if self.script else None
        if a is None:
            return None
        code, payload = a
        m = self.sent[-1]
        tkl = m[0] & 15
        out = bytes((0x60 | tkl, code)) + m[2:4] + m[4:4 + tkl]
        return out + (b"\\xff" + payload if payload else b"")

def rand(n):
    return bytes(range(1, n + 1))
"""


def run(mp, body):
    return mp(CHAN + body)[0]


def test_request_is_a_con_post_claim_with_content_format_42(mp):
    out = run(mp, """
c = Chan([(0x44, b"ANSWER")])
a = exchange({"host": "192.0.2.1", "port": 5683}, b"REQ", rand, c, ack_timeout=2.0)
print(json.dumps({"a": a.decode(), "sent": [hexlify(s).decode() for s in c.sent], "waits": c.waits}))
""")
    # 0x44: version 1, CON, token length 4; 0.02 POST; mid 0x0102 and token 03040506 from rand(7);
    # Uri-Path "claim" (delta 11, length 5); Content-Format 42 (delta 1, length 1); 0xFF; the request
    assert out == {"a": "ANSWER", "waits": [2.0],
                   "sent": ["4402010203040506" + "b5" + b"claim".hex() + "112a" + "ff" + b"REQ".hex()]}


def test_silence_is_retransmitted_with_doubling_waits_then_answered(mp):
    out = run(mp, """
c = Chan([None, None, (0x44, b"OK")])
a = exchange({"host": "192.0.2.1", "port": 5683}, b"REQ", rand, c, ack_timeout=2.5)
print(json.dumps({"a": a.decode(), "n": len(c.sent), "same": len(set(c.sent)), "waits": c.waits}))
""")
    assert out == {"a": "OK", "n": 3, "same": 1, "waits": [2.5, 5.0, 10.0]}


def test_silence_gives_up_after_max_retransmit_4(mp):
    out = run(mp, """
c = Chan([])
try:
    exchange({"host": "192.0.2.1", "port": 5683}, b"REQ", rand, c)
    r = "answered"
except TransportError as e:
    r = str(e)
print(json.dumps({"r": r, "n": len(c.sent), "waits": c.waits}))
""")
    # the default first wait: ACK_TIMEOUT 2 s + rand's 7th byte (7) / 255 of the random factor's extra 1 s
    w = 2.0 + 7 / 255
    assert out["r"] == "no CoAP response" and out["n"] == 5
    assert out["waits"] == pytest.approx([w, 2 * w, 4 * w, 8 * w, 16 * w])


@pytest.mark.parametrize("code, payload, text", [
    (0x83, "batch_exhausted", "refused: batch_exhausted"), (0x89, "claim_replayed", "refused: claim_replayed"),
    (0x9d, "rate_limited", "refused: rate_limited"), (0xa3, "hook_unavailable", "refused: hook_unavailable"),
    (0x83, "Forged Text!", "refused: coap 4.03"), (0x80, "", "refused: coap 4.00"),
    (0x45, "x", "refused: coap 2.05")])
def test_a_refusal_is_a_claim_error_with_its_diagnostic(mp, code, payload, text):
    out = run(mp, """
c = Chan([(%d, %r)])
try:
    exchange({"host": "192.0.2.1", "port": 5683}, b"REQ", rand, c, ack_timeout=1)
    r = "answered"
except ClaimError as e:
    r = str(e)
print(json.dumps(r))
""" % (code, payload.encode()))
    assert out == text


@pytest.mark.parametrize("co", ['{"host": "h"}', '{"host": 5, "port": 5683}', '{"host": "h", "port": 0}', '"h:1"'])
def test_a_malformed_coap_endpoint_is_refused_before_sending(mp, co):
    out = run(mp, """
c = Chan([])
try:
    exchange(json.loads(%r), b"REQ", rand, c)
    r = "sent"
except ClaimError as e:
    r = str(e)
print(json.dumps([r, len(c.sent)]))
""" % co)
    assert out == ["claim config malformed (coap)", 0]


# ------------------------------------------------------------------ against the real verifier

@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("claim-coap"), extra=("--coap-claim-port", "0"))
    yield v
    v.stop()


def batch(v, tmp_path, name, device=None):
    f = tmp_path / "batch.secret"
    r = subprocess.run([sys.executable, "-m", "tools", "claim", "batch", "create", name, "--pattern", "CO-*",
                        "--max-count", "5", "--device-json", json.dumps(device or {}), "--secret-file", str(f),
                        "--server", v.url, "--token-file", str(v.token_file), "-o", "json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["batch_id"], f


def bulk_image(tmp_path, batch_id, secret_file, serial, *extra):
    """`janua claim image` (bulk form: one file per serial) with `extra` options; the image's JSON."""
    (tmp_path / "serials.txt").write_text(serial + "\n")
    out = tmp_path / "images"
    r = subprocess.run([sys.executable, "-m", "tools", "claim", "image", "--batch", batch_id, "--batch-secret-file",
                        str(secret_file), "--serials", str(tmp_path / "serials.txt"), "--out", str(out),
                        "--no-progress", *extra], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads((out / f"{serial}.janua.json").read_text())


BOOT = "import json\nfrom janua.app import run\nprint(json.dumps(run()))\n"


def test_claim_over_coap_at_boot_then_binary_auth(mp, verifier, tmp_path):
    bid, sec = batch(verifier, tmp_path, "coap line", device={"transport": "udp"})
    img = bulk_image(tmp_path, bid, sec, "CO-1", "--server", "http://127.0.0.1:9",   # HTTP is not used
                     "--coap", f"127.0.0.1:{verifier.coap_claim_port}")
    assert img["claim"]["coap"] == {"host": "127.0.0.1", "port": verifier.coap_claim_port}
    (mp.flash / "janua.json").write_text(json.dumps(img))
    line = mp(BOOT)[0]
    assert line.startswith("janua: authenticated device=") and " via udp" in line and line.endswith("(claimed)")
    cfg = json.loads((mp.flash / "janua.json").read_text())
    assert "claim" not in cfg and cfg["server"]["udp_port"] == verifier.udp_port
    assert cfg["server"]["http_port"] == verifier.http_port
    dev = verifier.api("GET", f"/v1/devices/{cfg['device_id']}")
    assert dev["serial_number"] == "CO-1" and dev["status"] == "active"
    rows = verifier.api("GET", f"/v1/audit?device_id={cfg['device_id']}")["entries"]
    assert [r["action"] for r in rows if r["action"].startswith("claim.")] == ["claim.new"]


def test_a_refusal_over_coap_is_the_console_line_and_the_image_stays(mp, verifier, tmp_path):
    bid, sec = batch(verifier, tmp_path, "coap refused", device={"transport": "udp"})
    img = bulk_image(tmp_path, bid, sec, "XX-1", "--coap", f"127.0.0.1:{verifier.coap_claim_port}")
    (mp.flash / "janua.json").write_text(json.dumps(img))
    assert mp(BOOT)[0] == "janua: claim refused: serial_not_allowed"
    assert json.loads((mp.flash / "janua.json").read_text()) == img



@pytest.mark.e2e
def test_virtual_board_imaged_with_coap_claims_over_coap_and_authenticates(verifier, tmp_path):
    from tests.claims_device.test_claim_image_cli import janua_claim_image
    from tests.claims_device.test_e2e_claim import flash
    from tools.demo import reset_and_read
    from tools.boards import vboard_wifi_args
    from tools.vboard import VirtualBoard
    bid, sec = batch(verifier, tmp_path, "coap vboard", device={"transport": "udp"})
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        flash(vb.port)
        janua_claim_image("--batch", bid, "--batch-secret-file", str(sec), "--serial", "CO-VB-1", "--port", vb.port,
                          "--server", "http://127.0.0.1:9", "--coap", f"127.0.0.1:{verifier.coap_claim_port}",
                          *vboard_wifi_args("esp32"))
        line = reset_and_read(vb.port)
        assert line.startswith("janua: authenticated device=") and " via udp" in line and line.endswith("(claimed)")
        dev_id = line.split("device=")[1].split()[0]
        assert verifier.api("GET", f"/v1/devices/{dev_id}")["serial_number"] == "CO-VB-1"
        again = reset_and_read(vb.port)
        assert again.startswith("janua: authenticated device=" + dev_id) and "claimed" not in again
