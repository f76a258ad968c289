"""The firmware's binary-auth client (on the MicroPython unix port, esp32 profile) against the real
verifier (a `janua serve --dev` subprocess): the recovery paths a board with no clock depends on."""

import json
import subprocess
import time

import pytest

from tools.boards import FIRMWARE_DIR, micropython_cmd
from tools.demo import Verifier

pytestmark = pytest.mark.e2e

SCRIPT = """
import json
from binascii import unhexlify
from janua.clock import Clock
from janua.hkdf import derive
from janua.mac import HMAC
from janua.binauth import Client, DONE
from janua import udp, http
cfg = json.loads(%r)
clock = Clock(time_fn=lambda: cfg["device_time"])        # the board's idea of time
mac = HMAC(derive(unhexlify(cfg["master_secret"]), "binauth"))
out = []
for transport in cfg["transports"]:
    c = Client(unhexlify(cfg["device_id"]), mac, clock, cfg.get("last_sent", 0))
    if transport == "udp":
        udp.authenticate(c, "127.0.0.1", cfg["udp_port"], 2.0)
    else:
        http.authenticate(c, "127.0.0.1", cfg["http_port"], 5.0)
    out.append({"transport": transport, "done": c.state == DONE, "reason": c.reason,
                "clock_source": clock.source, "now": clock.now(), "last_sent": c.last_sent})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("fw"))
    yield v
    v.stop()


def device(verifier, serial):
    return verifier.api("POST", "/v1/devices", {"serial_number": serial})


def run_board(tmp_path, cfg):
    script = tmp_path / "client.py"
    script.write_text(SCRIPT % json.dumps(cfg))
    argv, env = micropython_cmd("esp32", script, path=[FIRMWARE_DIR])
    p = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_board_without_clock_sets_it_from_the_verifier_and_authenticates(verifier, tmp_path):
    pkg = device(verifier, "FW-1")
    for transport in ("udp", "http"):
        cfg = dict(pkg, udp_port=verifier.udp_port, http_port=verifier.http_port,
                   device_time=0 if transport == "udp" else 1000, transports=[transport])
        (r,) = run_board(tmp_path, cfg)
        assert r["done"], r
        assert r["clock_source"] == "server"            # TIME_SYNC was answered with trusted time
        assert abs(r["now"] - time.time()) < 60


def test_two_boots_in_one_second_recover_from_replay(verifier, tmp_path):
    pkg = device(verifier, "FW-2")
    now = int(time.time())
    cfg = dict(pkg, udp_port=verifier.udp_port, http_port=verifier.http_port, device_time=now,
               transports=["udp", "udp", "http"])
    results = run_board(tmp_path, cfg)
    assert all(r["done"] for r in results), results
    sent = [r["last_sent"] for r in results]
    assert sent == sorted(set(sent))                    # each accepted timestamp strictly greater


def test_board_with_wrong_key_is_refused_and_keeps_its_clock(verifier, tmp_path):
    pkg = device(verifier, "FW-3")
    wrong = dict(pkg, master_secret="00" * 32, udp_port=verifier.udp_port, http_port=verifier.http_port,
                 device_time=0, transports=["udp"])
    (r,) = run_board(tmp_path, wrong)
    assert not r["done"] and "SIGNATURE" in (r["reason"] or "").upper()
    assert r["clock_source"] == "none"                  # an unauthenticated answer sets nothing
