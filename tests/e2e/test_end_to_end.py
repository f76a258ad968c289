"""End to end: a verifier subprocess, a virtual esp32 board on a pty, and the real CLI commands a
user types (`janua flash`, `janua provision --port`, `janua console --diag`, mpremote underneath).
This is the same code path as `make demo` (tools/demo.py)."""

import json
from pathlib import Path

import pytest

from tools.demo import run_demo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    lines = []
    out = run_demo(work, "esp32", say=lines.append)
    out["work"] = work
    out["log"] = lines
    return out


def test_demo_prints_the_web_console_url_and_its_token_file(demo):
    lines = [line for line in demo["log"] if line.startswith("== web console: ")]
    token_file = demo["work"] / "janua.db.token"
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith("== web console: http://127.0.0.1:")
    assert lines[0].endswith(f"/console/ (sign in with the admin token in {token_file}: `cat {token_file}`)")


def test_board_authenticates_over_udp_at_boot(demo):
    assert demo["udp_line"].startswith("janua: authenticated device=" + demo["device_id"])
    assert "via udp" in demo["udp_line"]


def test_board_takes_a_device_token_and_an_offline_chain_at_boot(demo):
    assert "token: exp=" in demo["udp_line"] and "chain: 30 unused" in demo["udp_line"], demo["udp_line"]
    assert "chain: 30 unused" in demo["diag"]


def test_board_authenticates_over_http(demo):
    assert demo["http_line"].startswith("janua: authenticated device=" + demo["device_id"])
    assert "via http" in demo["http_line"]


def test_board_authenticates_over_dtls_with_coap(demo):
    assert demo["dtls_line"].startswith("janua: authenticated device=" + demo["device_id"])
    assert "via dtls" in demo["dtls_line"]


def test_verifier_registry_shows_the_device_active_and_authenticated(demo):
    dev = demo["device"]
    assert dev["status"] == "active"          # the first authentication completed provisioning
    assert dev["last_authenticated_at"]


def test_each_boot_sent_a_health_report_on_its_authentication(demo):
    # mpremote's raw REPL soft-resets the board before each exec: the HTTP and DTLS runs start new boots,
    # whose first authentication reports too; the last one was DTLS (POST /telemetry)
    h = demo["health"]
    assert h["via"] == "coap" and h["operational"]["boot_count"] >= 1
    assert h["resources"]["heap_free"] > 0 and h["bucket"] == "healthy"


def test_audit_records_both_authentications(demo):
    text = json.dumps(demo["audit"])
    assert "udp" in text and "http" in text and "dtls" in text


def test_console_diag_shows_the_board_without_its_secret(demo):
    diag = demo["diag"]
    assert demo["device_id"] in diag
    cfg = json.loads((demo["root"] / "janua.json").read_text())
    assert cfg["master_secret"] not in diag
    assert "board: esp32\n" in diag          # the esp32 hal that `janua flash` installed on the virtual esp32
    assert "ok" in diag.lower()


def test_firmware_installed_as_mpy_by_mpremote(demo):
    lib = demo["root"] / "lib" / "janua"
    assert (lib / "packet.mpy").is_file() and (lib / "mac.mpy").is_file()
    assert (demo["root"] / "lib" / "janua_hal.mpy").is_file()


def test_psk_rotation_reaches_the_board_and_the_old_key_stops(tmp_path):
    """`janua provision --rotate-psk ID --port P`: the verifier's PSK generation moves on, the
    board's config follows atomically, DTLS still authenticates; the old generation is refused."""
    import subprocess
    import sys
    from tools import mpremote_util
    from tools.demo import SWITCH_AND_AUTH, Verifier
    from tools.boards import vboard_wifi_args
    from tools.vboard import VirtualBoard
    root = Path(__file__).resolve().parents[2]

    def janua(*a):
        r = subprocess.run([sys.executable, "-m", "tools", *a], capture_output=True, text=True, cwd=root,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    v = Verifier(tmp_path)
    try:
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            janua("flash", "--port", vb.port, "--board", "esp32")
            auth = ["--server", v.url, "--token-file", str(v.token_file)]
            out = janua("provision", "--serial", "ROT-1", "--port", vb.port, "--udp-port", str(v.udp_port),
                        "--dtls-port", str(v.dtls_port), "--transport", "dtls", *vboard_wifi_args("esp32"), *auth)
            dev = out.split("provisioned device ")[1].split()[0]
            dtls = SWITCH_AND_AUTH % "dtls"
            assert "via dtls" in mpremote_util.exec_(vb.port, dtls)
            janua("provision", "--rotate-psk", dev, "--port", vb.port, *auth)
            cfg = json.loads((vb.root / "janua.json").read_text())
            assert cfg["psk_generation"] == 1
            assert "via dtls" in mpremote_util.exec_(vb.port, dtls)
            # The old generation no longer opens a session.
            cfg["psk_generation"] = 0
            (vb.root / "janua.json").write_text(json.dumps(cfg))   # the board idles at its REPL
            old = mpremote_util.exec_(vb.port, dtls.replace("c['transport'] = 'dtls'",
                                                              "c['transport'] = 'dtls'; c['dtls_budget'] = 5"))
            assert "auth failed" in old
    finally:
        v.stop()
