"""A quarantined board repairs itself by OTA (issue #12), on the MicroPython unix port with the esp32
heap: the shipped firmware/main.py (.mpy, as shipped) against a `janua serve` subprocess. Its binary
auth answers NOT_ACTIVE, yet it goes on to its OTA check, installs the update, boots it in trial, and
the new version confirms itself with janua.app.confirmable() instead of being rolled back; over DTLS,
POST /auth answers 4.03 "quarantined" and run() says so. And confirmable() on literal run() lines:
an unauthenticated NOT_ACTIVE (anyone can send one) confirms nothing."""

import json
import subprocess

import pytest

from tests.ota_verifier.conftest import make_bundle
from tests.ota_verifier.test_ota_schedule import ota_json
from tools import ota_release
from tools.api import API
from tools.boards import MPRun, micropython_cmd
from tools.build import build_firmware
from tools.demo import Verifier

# the application of docs/ota.md 7.5: authenticate, then confirm once the verifier answered
APP = ("import json\nprint(json.dumps({'app': '%s'}))\n"
       "from janua.app import run, confirmable\nline = run()\nprint(line)\n"
       "if confirmable(line):\n"
       "    from janua.ota import confirm\n    confirm()\n")


def boot(root, flash, script=None):
    """One boot of the shipped main.py (or `script`) on the .mpy firmware: exit code, console lines."""
    argv, env = micropython_cmd("esp32", script or root / "fw" / "main.py", path=[root / "fw" / "lib"])
    p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout.splitlines(), p.stderr


@pytest.mark.e2e
def test_quarantined_board_installs_and_confirms_a_repair_instead_of_rolling_it_back(tmp_path, signing):
    v = Verifier(tmp_path)
    try:
        api = API(v.url, token_file=str(v.token_file))
        ota_release.trust_key(api, signing["release"]["pub"], "release")
        # continuous attestation on (the default policy): the first check's answer carries a challenge
        pkg = api.call("POST", "/v1/devices", {"serial_number": "FIELD-Q"})
        dev = pkg["device_id"]
        api.call("POST", f"/v1/devices/{dev}/lifecycle", {"action": "activate"})
        api.call("POST", f"/v1/devices/{dev}/lifecycle", {"action": "quarantine", "reason": "attestation failed"})
        flash = tmp_path / "flash"
        flash.mkdir()
        cfg = {"device_id": dev, "master_secret": pkg["master_secret"], "transport": "http",
               "server": {"host": "127.0.0.1", "http_port": v.http_port, "dtls_port": v.dtls_port},
               "tenant": api.call("GET", "/v1/tenant")["name"], "ota": {"check_s": 3600}}
        (flash / "janua.json").write_text(json.dumps(cfg))
        (flash / "ota.json").write_text(ota_json(signing))
        build_firmware(tmp_path / "fw", "unix")
        b = make_bundle(tmp_path / "rel", signing, "2.0.1", 2, boards=["esp32", "unix"],
                        files={"main.py": APP % "2.0.1"})
        ro = ota_release.rollout(api, ota_release.publish(api, b)["id"], True, "100")

        rc, lines, err = boot(tmp_path, flash)        # factory app: refused, but the OTA check goes on
        assert rc == 1, (lines, err)                  # janua_hal.reset() after the install
        assert lines == ["janua: auth failed: not_active",
                         "janua ota: installed 2.0.1 (trial): reset to run it; attested: warning"], (lines, err)
        state = json.loads((flash / "janua_state.json").read_text())
        # the authenticated NOT_ACTIVE set the clock, so a deep-sleep wake's check schedule works too
        assert (state["result"], state["clock_source"]) == ("failed: not_active", "server")

        rc, lines, err = boot(tmp_path, flash)        # 2.0.1 in trial: refused too, confirms all the same
        assert rc == 0, err
        assert lines == ['{"app": "2.0.1"}', "janua: auth failed: not_active", "janua ota: up to date"], (lines, err)
        ptr = json.loads((flash / "ota_ptr.json").read_text())
        assert (ptr["state"], ptr["version"]) == ("confirmed", "2.0.1")
        assert {k: n for k, n in ota_release.status(api, ro["id"])["counts"].items() if n} == {"confirmed": 1}
        assert api.call("GET", f"/v1/devices/{dev}")["security"]["quarantined"] is True   # OTA lifts nothing

        (flash / "janua.json").write_text(json.dumps(dict(cfg, transport="dtls")))
        (flash / "probe.py").write_text("import json\nfrom janua.app import run, confirmable\nline = run()\n"
                                        "print(json.dumps([line, confirmable(line)]))\n")
        rc, lines, err = boot(tmp_path, flash, flash / "probe.py")
        assert rc == 0, err
        assert json.loads(lines[-1]) == ["janua: auth failed: dtls: quarantined", True]
    finally:
        v.stop()


CONFIRMABLE = """
import json
from janua.app import confirmable
print(json.dumps([confirmable(l) for l in %r]))
"""


def test_confirmable_only_when_the_verifier_answered_authentically(tmp_path):
    mp = MPRun(tmp_path)
    lines = ["janua: authenticated device=3f9a0c1b7d2e4a65 via udp session=7 expires=9",
             "janua: auth failed: not_active",
             "janua: auth failed: not_active (state not saved: flash full)",
             "janua: auth failed: dtls: quarantined",
             "janua: auth failed: not_active (unauthenticated reply)",     # spoofable: no
             "janua: auth failed: gave up after 3 attempts",
             "janua: auth failed: dtls: CoAP /auth answered 4.03",          # suspended, over DTLS
             "janua: auth failed: signature (unauthenticated reply)",
             "janua: not provisioned: no janua.json"]
    assert mp(CONFIRMABLE % lines)[0] == [True, True, True, True, False, False, False, False, False]
