"""Signed OTA end to end on the virtual board: a `janua serve` subprocess, a virtual esp32 flashed
with `janua flash` and provisioned with `janua provision --port`, releases published through the
code of `janua ota publish`. v2: the board checks, installs, is reset, boots v2 in trial, the app
confirms and the verifier sees "confirmed". v3 fails at boot: after one power cycle the board goes
through its trial boots, rolls back to v2 by itself, and the verifier sees "rolled_back"."""

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ota_verifier.conftest import make_bundle
from tools import mpremote_util
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools.boards import vboard_wifi_args
from tools.demo import Verifier
from tools.vboard import VirtualBoard

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

APP_OK = ("import json\nprint(json.dumps({'app': '%s'}))\n"
          "from janua.ota import confirm\nconfirm()\nfrom janua import otaclient\n"
          "r, line = otaclient.poll()\nprint(line)\n")
APP_BAD = "raise RuntimeError('v3 cannot start')\n"
POLL = "from janua import otaclient\nr, line = otaclient.poll()\nprint(line)\n"


def janua(*a):
    r = subprocess.run([sys.executable, "-m", "tools", *a], capture_output=True, text=True, cwd=ROOT,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    return r.stdout


def wait_for(pred, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


def widen(db, rollout_id):
    # One device is in the 1 % phase only by chance; jump the rollout to its 100 % phase (test only).
    with sqlite3.connect(db) as c:
        c.execute("UPDATE ota_rollouts SET phase = 3 WHERE id = ?", (rollout_id,))


def test_publish_update_confirm_then_rollback_on_the_virtual_board(tmp_path, signing):
    v = Verifier(tmp_path)
    try:
        api = API(v.url, token_file=str(v.token_file))
        # this one device makes many authenticated calls within seconds: lift its rate limit
        api.call("PATCH", "/v1/tenant", {"policy": {"device_rate": {"capacity": 100, "refill_per_s": 10}}})
        ota_release.trust_key(api, signing["release"]["pub"], "release")
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            port = vb.port
            janua("flash", "--port", port, "--board", "esp32")
            janua("provision", "--serial", "OTA-1", "--port", port, "--transport", "http",
                  "--server", v.url, "--token-file", str(v.token_file), *vboard_wifi_args("esp32"))
            kid, raw = host.load_public(signing["release"]["pub"])
            mpremote_util.write_file_atomic(port, "ota.json", json.dumps(
                {"keys": {kid: raw.hex()}, "hw_version": 2, "trial_boots": 2}).encode())

            b2 = make_bundle(tmp_path, signing, "2.0.0", 2, boards=["esp32"],
                             files={"main.py": APP_OK % "2.0.0"})
            rel2 = ota_release.publish(api, b2)
            ro2 = ota_release.rollout(api, rel2["id"], True)
            widen(v.db, ro2["id"])
            out = mpremote_util.exec_(port, POLL)
            assert "installed 2.0.0 (trial)" in out, out
            vb.restart()                                   # boots v2 in trial; it confirms and reports
            s = wait_for(lambda: ota_release.status(api, ro2["id"])["counts"].get("confirmed"))
            assert s == 1
            assert json.loads((vb.root / "ota_ptr.json").read_text())["state"] == "confirmed"

            b3 = make_bundle(tmp_path, signing, "3.0.0", 3, boards=["esp32"], trial_boots=2,
                             files={"main.py": APP_BAD})
            rel3 = ota_release.publish(api, b3)
            ro3 = ota_release.rollout(api, rel3["id"], True)
            widen(v.db, ro3["id"])
            vb.restart()                                   # v2 polls at boot and installs v3
            assert wait_for(lambda: ota_release.status(api, ro3["id"])["counts"].get("installed"))
            vb.restart()                                   # v3 fails, resets itself, rolls back, v2 reports
            rb = wait_for(lambda: ota_release.status(api, ro3["id"])["counts"].get("rolled_back"), 90)
            assert rb == 1
            ptr = json.loads((vb.root / "ota_ptr.json").read_text())
            assert ptr["version"] == "2.0.0" and ptr["state"] == "confirmed"
    finally:
        v.stop()
