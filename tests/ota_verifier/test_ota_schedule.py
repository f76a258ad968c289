"""When a board checks for updates (docs/ota.md 7.5): the shipped firmware/main.py, as .mpy on the
unix port with the esp32 heap, against a `janua serve` subprocess: it checks at boot, installs,
resets, boots the new version, and the verifier hears "confirmed" without anyone calling poll() by
hand. Then janua.otacheck's schedule on a wake from deep sleep (cold=False): a check only once
ota.check_s has passed (or an outcome is owed), never while the interval runs, and off without
release keys, with check_s 0 or in trial. The schedule cases need no verifier: the server is a
closed port, so a check that should not happen would show as a failed poll."""

import json
import subprocess
import time

import pytest

from tests.ota_verifier.conftest import make_bundle
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools.boards import MPRun, micropython_cmd
from tools.build import build_firmware
from tools.demo import Verifier

# the application of docs/ota.md 7.5: authenticate, then confirm once that worked
APP = ("import json\nprint(json.dumps({'app': '%s'}))\n"
       "from janua.app import run\nline = run()\nprint(line)\n"
       "if line.startswith('janua: authenticated'):\n"
       "    from janua.ota import confirm\n    confirm()\n")
DEV = "3f9a0c1b7d2e4a65"
SECRET = "11" * 32


def ota_json(signing):
    kid, raw = host.load_public(signing["release"]["pub"])
    return json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2})


def boot(root, flash):
    """One boot of the shipped main.py (.mpy firmware): its exit code and console lines."""
    argv, env = micropython_cmd("esp32", root / "fw" / "main.py", path=[root / "fw" / "lib"])
    p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout.splitlines(), p.stderr


@pytest.mark.e2e
def test_the_shipped_main_checks_for_updates_at_boot(tmp_path, signing):
    v = Verifier(tmp_path)
    try:
        api = API(v.url, token_file=str(v.token_file))
        ota_release.trust_key(api, signing["release"]["pub"], "release")
        # continuous attestation on (the default policy): each check's answer may carry a challenge
        pkg = api.call("POST", "/v1/devices", {"serial_number": "FIELD-1"})
        flash = tmp_path / "flash"
        flash.mkdir()
        (flash / "janua.json").write_text(json.dumps({
            "device_id": pkg["device_id"], "master_secret": pkg["master_secret"], "transport": "http",
            "server": {"host": "127.0.0.1", "http_port": v.http_port}, "ota": {"check_s": 3600}}))
        (flash / "ota.json").write_text(ota_json(signing))
        build_firmware(tmp_path / "fw", "unix")                       # main.py and .mpy, as shipped
        b = make_bundle(tmp_path / "rel", signing, "2.0.0", 2, boards=["esp32", "unix"],
                        files={"main.py": APP % "2.0.0"})
        rel = ota_release.publish(api, b)
        ro = ota_release.rollout(api, rel["id"], True, "100")

        rc, lines, err = boot(tmp_path, flash)        # factory app: authenticate, check, install, reset
        assert rc == 1, (lines, err)                  # janua_hal.reset() on the unix port
        assert lines[0].startswith(f"janua: authenticated device={pkg['device_id']} via http session="), lines
        # the factory app is no release: its attestation (answered before the install) is warning
        assert lines[1:] == ["janua ota: installed 2.0.0 (trial): reset to run it; attested: warning"], (lines, err)

        api.call("POST", f"/v1/devices/{pkg['device_id']}/attest")   # the operator asks for one now
        rc, lines, err = boot(tmp_path, flash)        # v2 in trial confirms itself; the check reports it
        assert rc == 0, err
        assert lines[0] == '{"app": "2.0.0"}', (lines, err)
        assert lines[1].startswith(f"janua: authenticated device={pkg['device_id']} via http session="), lines
        # after the update's app ran: main.py used to keep the app's module (and, through the janua
        # functions it imported, janua.app's whole graph: ~27 KB) on the heap, and this check's
        # attestation failed with MemoryError importing janua.attest
        assert lines[2:] == ["janua ota: up to date; attested: affirming"], (lines, err)
        d = api.call("GET", f"/v1/devices/{pkg['device_id']}")
        assert (d["attestation_status"], d["security"]["trust_level"]) == ("affirming", 70), d
        assert {k: n for k, n in ota_release.status(api, ro["id"])["counts"].items() if n} == {"confirmed": 1}
        checked = json.loads((flash / "ota_client.json").read_text())["checked"]
        assert abs(checked - time.time()) < 120       # the server's time of that check
    finally:
        v.stop()


SCHED = """
import json
from janua.clock import Clock
from janua.otacheck import scheduled
c = Clock(time_fn=lambda: %d)
if %r:
    c.set_from_server(%d)
print(json.dumps(scheduled(clock=c, cold=%r)))
"""


@pytest.fixture
def board(tmp_path, signing):
    mp = MPRun(tmp_path)
    mp.cfg = {"device_id": DEV, "master_secret": SECRET, "transport": "http",
              "server": {"host": "127.0.0.1", "http_port": 9}, "ota": {"check_s": 3600}}   # nothing listens

    def write(cfg=None, client=None, ota=True, ptr=None, reports=None):
        (mp.flash / "janua.json").write_text(json.dumps(cfg or mp.cfg))
        for name, doc in (("ota_client.json", client), ("ota_ptr.json", ptr), ("ota_report.json", reports)):
            if doc is None:
                (mp.flash / name).unlink(missing_ok=True)
            else:
                (mp.flash / name).write_text(json.dumps(doc))
        if ota:
            (mp.flash / "ota.json").write_text(ota_json(signing))
        else:
            (mp.flash / "ota.json").unlink(missing_ok=True)
    mp.write = write

    def check(now, cold=False, clock_set=True):
        return mp(SCHED % (now, clock_set, now, cold))[0]
    mp.check = check
    return mp


T0 = 1_800_000_000
V2_CONFIRMED = {"active": "b", "state": "confirmed", "version": "2.0.0", "counter": 2, "entry": "main"}
V1 = {"active": "a", "state": "confirmed", "version": "1.0.0", "counter": 1, "entry": "main"}


def test_a_wake_does_not_check_before_the_interval_has_passed(board):
    board.write(client={"checked": T0})
    assert board.check(T0 + 100) == ["skipped", "janua ota: next check in 3500 s"]
    assert board.check(T0 + 3599) == ["skipped", "janua ota: next check in 1 s"]
    assert json.loads((board.flash / "ota_client.json").read_text()) == {"checked": T0}


def test_a_wake_checks_once_the_interval_has_passed(board):
    board.write(client={"checked": T0})
    r, line = board.check(T0 + 3600)
    assert r == "failed" and line.startswith("janua ota: "), line     # it tried: the port is closed
    assert json.loads((board.flash / "ota_client.json").read_text()) == {"checked": T0}   # not answered


def test_a_cold_boot_checks_whatever_the_interval(board):
    board.write(client={"checked": T0})
    assert board.check(T0 + 5, cold=True)[0] == "failed"


def test_a_board_that_never_checked_checks_at_its_first_wake(board):
    board.write(client={})
    assert board.check(T0)[0] == "failed"


def test_an_owed_outcome_is_sent_at_the_next_wake_not_after_the_interval(board):
    owed = {"checked": T0, "release_id": "rel_1", "version": "2.0.0"}
    board.write(client=owed, ptr=V2_CONFIRMED)
    assert board.check(T0 + 100)[0] == "failed"          # the confirmed outcome is due now
    rolled = [{"event": "rolled_back", "version": "2.0.0", "to": "1.0.0", "reason": "x"}]
    board.write(client=owed, ptr=V1, reports=rolled)
    assert board.check(T0 + 100)[0] == "failed"          # so is a rollback
    board.write(client=owed, ptr=V1, reports=[])         # cut before the switch: nothing ran, nothing owed
    assert board.check(T0 + 100) == ["skipped", "janua ota: next check in 3500 s"]


@pytest.mark.parametrize("case", ["check_s 0", "no ota key", "check_s not a number"])
def test_checks_are_off_without_keys_or_with_check_s_0(board, case):
    cfg = dict(board.cfg, ota={"check_s": 0 if case == "check_s 0" else "6h" if "number" in case else 3600})
    board.write(cfg=cfg, client={}, ota=case != "no ota key")
    assert board.check(T0, cold=True) == ["off", None]


def test_no_check_while_a_version_is_in_trial(board):
    board.write(client={}, ptr=dict(V2_CONFIRMED, state="trial", boots=1, max_boots=3))
    assert board.check(T0, cold=True) == ["skipped", "janua ota: version in trial: no check"]


def test_a_wake_whose_clock_the_server_did_not_set_does_not_check(board):
    board.write(client={"checked": T0})
    assert board.check(T0 + 99999, clock_set=False) == ["skipped", "janua ota: clock not set: no check"]
    # app.run() authenticated this wake with its own clock: its state file's time counts
    (board.flash / "janua_state.json").write_text(json.dumps({"at": T0 + 200, "clock_source": "server"}))
    assert board.check(T0 + 99999, clock_set=False) == ["skipped", "janua ota: next check in 3400 s"]


def test_the_default_interval_is_six_hours(board):
    cfg = dict(board.cfg)
    del cfg["ota"]
    board.write(cfg=cfg, client={"checked": T0})
    assert board.check(T0 + 60) == ["skipped", "janua ota: next check in 21540 s"]
