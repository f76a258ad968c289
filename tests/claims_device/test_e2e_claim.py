"""End to end: `janua serve --dev` (the real verifier), virtual esp32 boards on ptys, `janua flash`, the
factory image written offline with `janua claim image` (tools/claim_image.py's parser), then main.py at boot:
claim over HTTP, authenticate over UDP (and a second board over DTLS); a power cut (SIGKILL) while the
verifier's answer is on its way, then the reboot resumes; a power cut at every write of the answer on the
unix port against the same verifier; each refusal as the board's console line."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.claims_device.test_claim_boot import CUT
from tests.claims_device.test_claim_image_cli import janua_claim_image
from tools.boards import MPRun, vboard_wifi_args
from tools.demo import Verifier, reset_and_read

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BOOT = "import json\nfrom janua.app import run\nprint(json.dumps(run()))\n"


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("claim-e2e"))
    yield v
    v.stop()


def batch(v, tmp_path, name, serials=None, max_count=10, device=None):
    """A claim batch made with `janua claim batch create` (its secret in a new 0600 JSON file); (id, file)."""
    f = tmp_path / f"{name.replace(' ', '-')}.secret"
    which = ["--serials", ",".join(serials)] if serials else ["--pattern", "E2E-*"]
    r = subprocess.run([sys.executable, "-m", "tools", "claim", "batch", "create", name, *which, "--max-count",
                        str(max_count), "--device-json", json.dumps(device or {}), "--secret-file", str(f),
                        "--server", v.url, "--token-file", str(v.token_file), "-o", "json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["batch_id"], f


def flash(port):
    r = subprocess.run([sys.executable, "-m", "tools", "flash", "--port", port, "--board", "esp32"],
                       capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert r.returncode == 0, r.stderr


def image(port, batch_id, secret_file, serial, server, force=True):
    janua_claim_image("--batch", batch_id, "--batch-secret-file", str(secret_file), "--serial", serial,
                      "--port", port, "--server", server, *vboard_wifi_args("esp32"), *(["--force"] if force else []))


@pytest.fixture
def board(tmp_path):
    from tools.vboard import VirtualBoard
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        flash(vb.port)
        yield vb, vb.root   # the board's files: its LittleFS (tools/vboard_flash.FlashPath)


def device(v, dev_id):
    return v.api("GET", f"/v1/devices/{dev_id}")


def dev_of(line):
    return line.split("device=")[1].split()[0]


def test_imaged_offline_claims_over_http_then_authenticates_over_udp(verifier, board, tmp_path):
    vb, fl = board
    bid, sec = batch(verifier, tmp_path, "udp line", device={"transport": "udp", "metadata": {"group": "line-1"}})
    image(vb.port, bid, sec, "E2E-UDP-1", verifier.url, force=False)
    line = reset_and_read(vb.port)
    assert line.startswith("janua: authenticated device=") and " via udp" in line and line.endswith("(claimed)")
    cfg = json.loads((fl / "janua.json").read_text())
    assert "claim" not in cfg and cfg["device_id"] == dev_of(line) and cfg["transport"] == "udp"
    assert cfg["server"]["udp_port"] == verifier.udp_port
    d = device(verifier, dev_of(line))
    assert d["status"] == "active" and d["last_authenticated_at"]
    # the next boot authenticates with the stored identity, claiming nothing
    again = reset_and_read(vb.port)
    assert again.startswith("janua: authenticated device=" + dev_of(line)) and "claimed" not in again


def test_second_board_claims_with_transport_dtls_and_authenticates_over_dtls(verifier, board, tmp_path):
    vb, fl = board
    bid, sec = batch(verifier, tmp_path, "dtls line", device={"transport": "dtls"})
    image(vb.port, bid, sec, "E2E-DTLS-1", verifier.url)
    line = reset_and_read(vb.port, timeout=60)
    assert line.startswith("janua: authenticated device=") and " via dtls" in line and line.endswith("(claimed)")
    assert json.loads((fl / "janua.json").read_text())["transport"] == "dtls"


class KillingProxy:
    """TCP proxy to the verifier's HTTP port: on its first connection it forwards the claim, takes the
    verifier's answer and then cuts the board's power (`on_answer`) instead of passing the answer on."""

    def __init__(self, target_port, on_answer):
        self.target, self.on_answer, self.killed = target_port, on_answer, 0
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(4)
        self.port = self.s.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def _read_http(c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = c.recv(4096)
            if not chunk:
                return buf
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            chunk = c.recv(4096)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _loop(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            req = self._read_http(c)
            u = socket.create_connection(("127.0.0.1", self.target))
            u.sendall(req)
            ans = self._read_http(u)
            u.close()
            if not self.killed:
                self.killed = 1
                self.on_answer(ans)
                c.close()
                continue
            c.sendall(ans)
            c.close()


def read_line(s, timeout=30):
    """The first complete line starting with "janua: " that the board prints on serial port `s`."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buf += s.read(256)
        for ln in buf.split(b"\n")[:-1]:
            if ln.strip().startswith(b"janua: "):
                return ln.strip().decode()
    raise AssertionError("no janua line from the board: %r" % buf[-400:])


def test_power_cut_while_the_answer_is_on_its_way_then_the_reboot_resumes(verifier, board, tmp_path):
    import serial
    vb, fl = board
    bid, sec = batch(verifier, tmp_path, "cut line", device={"transport": "http"})
    answers = []
    proxy = KillingProxy(verifier.http_port, lambda a: (answers.append(a), vb.kill()))
    image(vb.port, bid, sec, "E2E-CUT-1", f"http://127.0.0.1:{proxy.port}")
    with serial.Serial(vb.port, 115200, timeout=0.2) as s:
        s.write(b"\r\x03\x03\x02")
        time.sleep(0.2)
        s.reset_input_buffer()
        s.write(b"\x04")                        # boot: main.py claims through the proxy, which cuts the power
        deadline = time.monotonic() + 30
        while not answers and time.monotonic() < deadline:
            time.sleep(0.05)
    assert answers and answers[0].startswith(b"HTTP/1.1 200")
    assert "claim" in json.loads((fl / "janua.json").read_text())     # the answer never reached the flash
    claims = verifier.api("GET", f"/v1/claim-batches/{bid}/claims")
    rows = claims.get("claims", claims.get("items"))
    assert [r["serial"] for r in rows] == ["E2E-CUT-1"]
    first_dev = rows[0]["device_id"]
    with serial.Serial(vb.port, 115200, timeout=0.2) as s:
        vb.restart()                            # power back on: main.py claims again (resume)
        line = read_line(s)
    assert line.startswith("janua: authenticated device=" + first_dev), line
    assert line.endswith("(claimed)")
    b = verifier.api("GET", f"/v1/claim-batches/{bid}")
    assert b["claimed_count"] == 1                # the resume was not charged again


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_power_cut_at_every_write_then_resume_against_the_verifier(verifier, tmp_path, n):
    bid, sec = batch(verifier, tmp_path, f"cut {n}", device={"transport": "http"})
    out = tmp_path / "img"
    serials = tmp_path / "serials.txt"
    serials.write_text(f"E2E-W{n}\n")
    janua_claim_image("--batch", bid, "--batch-secret-file", str(sec), "--serials", str(serials), "--out", str(out),
                      "--server", verifier.url, "--no-progress")
    mp = MPRun(tmp_path / "mp")
    (mp.flash / "janua.json").write_bytes((out / f"E2E-W{n}.janua.json").read_bytes())
    p = mp.raw(CUT % n)
    assert p.returncode == 3, p.stdout + p.stderr
    line = mp(BOOT)[0]
    assert line.startswith("janua: authenticated device=") and " via http" in line, line
    # n <= 2: no complete .tmp, the claim image claims again (a resume); from the flush on the complete .tmp
    # identity is taken (tests/claims_device/test_claim_boot.py says why)
    assert line.endswith("(claimed)") == (n <= 2)
    rows = verifier.api("GET", f"/v1/claim-batches/{bid}/claims")
    rows = rows.get("claims", rows.get("items"))
    assert [r["device_id"] for r in rows] == [dev_of(line)]
    assert verifier.api("GET", f"/v1/claim-batches/{bid}")["claimed_count"] == 1


def test_each_refusal_is_the_boards_console_line(verifier, board, tmp_path):
    vb, fl = board
    # exhausted: a batch of one, its one claim used by another serial
    bid, sec = batch(verifier, tmp_path, "one", max_count=1, device={"transport": "http"})
    image(vb.port, bid, sec, "E2E-R-1", verifier.url)
    assert reset_and_read(vb.port).endswith("(claimed)")
    image(vb.port, bid, sec, "E2E-R-2", verifier.url)
    assert reset_and_read(vb.port) == "janua: claim refused: batch_exhausted"
    # already claimed: the first serial again, after its device authenticated
    image(vb.port, bid, sec, "E2E-R-1", verifier.url)
    assert reset_and_read(vb.port) == "janua: claim refused: already_claimed"
    # serial not allowed: outside the batch's list
    bid2, sec2 = batch(verifier, tmp_path, "list", serials=["E2E-L-1"])
    image(vb.port, bid2, sec2, "E2E-L-2", verifier.url)
    assert reset_and_read(vb.port) == "janua: claim refused: serial_not_allowed"
    # revoked
    verifier.api("POST", f"/v1/claim-batches/{bid2}/revoke", {})
    image(vb.port, bid2, sec2, "E2E-L-1", verifier.url)
    assert reset_and_read(vb.port) == "janua: claim refused: batch_revoked"
    # unknown batch / wrong key: indistinguishable
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("77" * 32)
    image(vb.port, bid2, wrong, "E2E-L-1", verifier.url)
    assert reset_and_read(vb.port) == "janua: claim refused: claim_invalid"
    assert "claim" in json.loads((fl / "janua.json").read_text())     # every refusal kept the claim image
