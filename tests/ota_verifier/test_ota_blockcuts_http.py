"""A real update over HTTP (a `janua serve` subprocess offers v2 to a board that runs v1: the unix port as
an esp32, firmware as .mpy) cut at the block writes of the emulated esp32 flash chip during
otaclient.poll(): the download into the new slot, the client state, the pointer's rename, the stage's
removal, the reports. After each cut the board boots a complete, verified application, v1 or v2 (never
a mix), and for a sample of the cuts a later poll ends on v2 with its `confirmed` at the verifier.
test_ota_powercut_http.py kills the board at its filesystem calls and HTTP reads."""

import json

import pytest

from tests.blockcuts import random_cuts, restore, rng, sweep
from tests.ota.ota_helpers import BOOT_CHECK as CHECK
from tests.ota_verifier.test_ota_powercut_http import POLL, fleet, outcome, publish  # noqa: F401 (fixture)
from tools.boards import MPRun

pytestmark = pytest.mark.e2e

STATE = "janua_state.json"     # the binary-auth timestamp: only ever grows on a board


def _run(chip, script):
    p = chip.raw(script)
    assert p.returncode in (0, 1), p.stdout + p.stderr   # 1: janua_hal.reset on the unix port
    return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")], p.stdout + p.stderr


def check_boot(chip, where):
    out, text = _run(chip, CHECK)
    assert out and out[0]["consistent"] is True, (where, text)
    apps = [o["app"] for o in out if "app" in o]
    assert apps in (["1.0.0"], ["2.0.0"]), (where, text)          # a whole old or new application
    assert out[0]["ptr"] == apps[0], (where, text)
    return apps[0]


def finish(chip, api, db, rel, where):
    """After the cut and a boot: polling again ends on v2, confirmed, and the verifier hears of it."""
    import sqlite3
    ptr = json.loads((chip.root / "ota_ptr.json").read_text())
    if ptr.get("version") != "2.0.0":
        out, text = _run(chip, POLL)
        assert {"poll": "installed", "line": "janua ota: installed 2.0.0 (trial): reset to run it"} in out, \
            (where, text)
        assert check_boot(chip, where) == "2.0.0"
    ptr = json.loads((chip.root / "ota_ptr.json").read_text())
    assert ptr["version"] == "2.0.0" and ptr["state"] == "confirmed", (where, ptr)
    out, text = _run(chip, POLL)
    assert {"poll": "none", "line": "janua ota: up to date"} in out, (where, text)
    assert outcome(api, rel) == {"confirmed": 1}, where
    with sqlite3.connect(db) as c:          # test only: forget it, so the next cut is offered v2 again
        c.execute("DELETE FROM ota_reports WHERE release_id = ?", (rel["id"],))


def _on_chip(fleet, tmp_path, signing, kib):
    """The fleet's board on the emulated flash: its files copied onto the chip, v1 installed and
    confirmed, v2 published (applications of `kib` KiB)."""
    v, api, board = fleet
    chip = MPRun(tmp_path / "chip", chip="esp32", firmware=board.root / "fw" / "lib")
    chip.image.put_tree(board.flash, "/")
    publish(v, api, tmp_path, signing, "1.0.0", 1, kib)
    out, text = _run(chip, POLL)
    assert {"poll": "installed", "line": "janua ota: installed 1.0.0 (trial): reset to run it"} in out, text
    out, text = _run(chip, CHECK)
    assert {"app": "1.0.0", "blob": kib * 1024} in out, text
    rel = publish(v, api, tmp_path, signing, "2.0.0", 2, kib)
    return chip, api, v.db, rel


@pytest.fixture
def on_chip(fleet, tmp_path, signing):
    return _on_chip(fleet, tmp_path, signing, 12)


def test_block_cut_during_an_http_update(on_chip):
    chip, api, db, rel = on_chip
    seen = []

    def check(n, torn):
        seen.append(check_boot(chip, (n, torn)))
        if n % 10 == 1:
            finish(chip, api, db, rel, (n, torn))
    points, total = sweep(chip, POLL, check, stride=2, head=6, torn=5, keep=[STATE])
    # about 160 writes for the 12 KiB update (every write of the first six and of the last stretch,
    # every other one between, every fifth torn too); the switch comes near the end (then the stage's
    # removal and the reports), so most cuts find v1 and the last few v2
    assert total >= 100 and points[:6] == [1, 2, 3, 4, 5, 6] and points[-1] == total, (total, points)
    assert set(seen) == {"1.0.0", "2.0.0"}, seen                # cuts before and after the switch
    k = seen.index("2.0.0")
    assert seen[:k] == ["1.0.0"] * k and set(seen[k:]) == {"2.0.0"}, seen
    check_boot(chip, "uncut")
    finish(chip, api, db, rel, "uncut")


@pytest.mark.slow
def test_random_block_cuts_during_http_updates(fleet, tmp_path, signing):
    chip, api, db, rel = _on_chip(fleet, tmp_path, signing, 100)     # a 100 KiB application
    start = chip.save()
    _, total = sweep(chip, POLL, lambda n, t: None, stride=50, keep=[STATE])
    restore(chip, start, keep=[STATE])
    seen = []

    def check(n, torn):
        seen.append(check_boot(chip, (n, torn)))
        finish(chip, api, db, rel, (n, torn))
    # (up to 5 writes short of the end: how TCP delivers the bodies may shift the last few)
    done = random_cuts(chip, POLL, check, total - 5, 40, rng(), keep=[STATE])
    assert total >= 800 and len(done) == 40 and set(seen) <= {"1.0.0", "2.0.0"}, total
