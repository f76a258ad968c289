"""Hardware-in-loop: the firmware on a real board, through its USB serial port.

    pytest tests/hil --board-port /dev/ttyACM0 --board rp2040
    pytest tests/hil --board-port /dev/ttyUSB0 --board esp32 \
        --hil-wifi-ssid NET --hil-wifi-password PASS --hil-host-ip 192.168.1.10

Skipped without --board-port (tests/conftest.py). The board is flashed once with `janua flash`; each
check runs a script on it with `mpremote run` and reads the JSON lines it prints. The end-to-end
check also needs Wi-Fi credentials and this host's address on that network. These tests have not
been run against hardware in this repository's CI (there is none attached); they run the same
checks the unix-port tests run.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.hil

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "vectors" / "binauth.json").read_text())


def janua(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def board(request):
    port = request.config.getoption("--board-port")
    name = request.config.getoption("--board")
    r = janua("flash", "--port", port, "--board", name)
    assert r.returncode == 0, r.stderr

    def run(script, timeout=120):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(script)
        p = subprocess.run([str(Path(sys.executable).parent / "mpremote"), "connect", port, "run", f.name],
                           capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, p.stdout + p.stderr
        out = []
        for line in p.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    run.port, run.name = port, name
    return run


def test_vectors_on_board(board):
    script = """
import json
from binascii import unhexlify as h
from janua import mac, packet, hkdf, PacketError
V = json.loads(%r)
M = h(V["master_secret"])
ok = all(hkdf.derive(M, k) == h(v) for k, v in V["derived_keys"].items())
m = mac.HMAC(h(V["derived_keys"]["binauth"]))
reqs = all(bytes(packet.encode_request(h(r["device_id"]), r["timestamp"], m)) == h(r["request"]) for r in V["requests"])
rep = []
for r in V["replies"]:
    try:
        d = packet.decode_reply(h(r["request"]), h(r["reply"]), m)
        rep.append([r["name"], d[0], d[5]])
    except PacketError:
        rep.append([r["name"], "rejected"])
print(json.dumps({"keys": ok, "requests": reqs, "replies": rep}))
""" % json.dumps(VECTORS)
    out = board(script)[-1]
    assert out["keys"] and out["requests"]
    for r, got in zip(VECTORS["replies"], out["replies"]):
        if r.get("reject"):
            assert got[1] == "rejected", r["name"]
        else:
            assert got[1] == r["status"] and got[2] == r["authenticated"], r["name"]


def test_probe_on_board(board):
    out = board("import json, janua\nprint(json.dumps(janua.probe()))\n")[-1]
    assert out  # a dict of capabilities
    assert "sha256" in json.dumps(out)


def test_store_atomic_write_on_board_flash(board):
    out = board("""
import json, os
from janua.store import Store
s = Store()
try:
    old = s.load_config()
except Exception:
    old = None
print(json.dumps({"had_config": old is not None}))
""")[-1]
    assert "had_config" in out


def test_diag_on_board_has_no_secret(board):
    r = janua("console", "--port", board.port, "--diag")
    assert r.returncode == 0, r.stderr
    assert "master_secret" not in r.stdout


def test_board_authenticates_end_to_end(board, request, tmp_path):
    ssid = request.config.getoption("--hil-wifi-ssid")
    host = request.config.getoption("--hil-host-ip")
    if board.name != "unix" and not (ssid and host):
        pytest.skip("needs --hil-wifi-ssid, --hil-wifi-password and --hil-host-ip")
    from tools.demo import Verifier, reset_and_read
    v = Verifier(tmp_path, listen_host="0.0.0.0")
    try:
        # --force: a real board keeps the identity of the previous run (its verifier's registry is gone)
        args = ["provision", "--serial", f"HIL-{int(time.time())}", "--port", board.port, "--force", "--board", board.name,
                "--server", v.url, "--token-file", str(v.token_file), "--udp-port", str(v.udp_port),
                "--device-server-host", host or "127.0.0.1"]
        if ssid:
            args += ["--wifi-ssid", ssid, "--wifi-password", request.config.getoption("--hil-wifi-password") or ""]
        r = janua(*args)
        assert r.returncode == 0, r.stderr
        line = reset_and_read(board.port, timeout=60)
        assert line.startswith("janua: authenticated"), line
    finally:
        v.stop()
