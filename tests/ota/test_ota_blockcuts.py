"""OTA staging and the slot switch cut at every block write of the emulated esp32 flash chip (LittleFS2 on
4 KiB NOR sectors): an install from ota_stage/ (the copy into the new slot, the pointer's rename, the
stage's removal) and the trial boot of a release that crashes, through its rollback. After each cut the
next boot runs a complete, verified application, old or new, never a mix; a later install succeeds.
test_ota_powercut.py cuts at the filesystem calls."""

import json

import pytest

from ota_helpers import BOOT_CHECK as CHECK, ota_config, release
from tests.blockcuts import random_cuts, rng, sweep
from tools.boards import MPRun

INSTALL = """
import json
from janua.ota import AppSlots
AppSlots().install_staged(device={"board": "esp32", "hw": 2, "mp": (1, 29, 0)})
print(json.dumps({"done": True}))
"""


def stage(chip, bundle):
    """`janua ota install`'s copy of the bundle into ota_stage/ on the chip."""
    chip.image.put_tree(bundle, "/ota_stage")


@pytest.fixture
def chip(tmp_path):
    return MPRun(tmp_path / "board", chip="esp32")


def _install_checker(chip, old, new, seen, later=None):
    def check(n, torn):
        out = chip(CHECK)
        assert out[0]["consistent"] is True, (n, torn, out)
        apps = [o["app"] for o in out if "app" in o]
        assert apps in (([old], [new]) if old else ([], [new])), (n, torn, out)
        assert out[0]["ptr"] in (old, new), (n, torn, out)
        seen.append(out[0]["ptr"])
        if later is not None and n % 7 == 0:        # and the next update installs over whatever the cut left
            stage(chip, later)
            assert chip(INSTALL)[-1] == {"done": True}, (n, torn)
            assert chip(CHECK)[0]["ptr"] == "4.0.0", (n, torn)
    return check


def test_block_cut_at_every_write_of_an_install(chip, keys, tmp_path):
    (chip.root / "ota.json").write_text(json.dumps(ota_config(keys)))
    stage(chip, release(tmp_path, keys, "2.0.0", 2))
    assert chip(INSTALL)[-1] == {"done": True}
    assert chip(CHECK)[1] == {"app": "2.0.0"}            # 2.0.0 runs and confirms
    stage(chip, release(tmp_path, keys, "3.0.0", 3))
    later = release(tmp_path / "later", keys, "4.0.0", 4)
    seen = []
    points, total = sweep(chip, INSTALL, _install_checker(chip, "2.0.0", "3.0.0", seen, later),
                          torn=3)
    # 39 writes on this image, each cut (every third one torn too): up to the 25th (the pointer's
    # rename commits there) 2.0.0 boots, from the 26th (the stage's removal, the report) 3.0.0
    assert total == 39 and points == list(range(1, 40)), (total, points)
    assert seen == ["2.0.0"] * (25 + 8) + ["3.0.0"] * (14 + 5), seen
    out = chip(CHECK)                                  # the uncut install: 3.0.0 in trial
    assert out[0]["ptr"] == "3.0.0" and {"app": "3.0.0"} in out


def test_block_cut_at_every_write_of_the_first_install(chip, keys, tmp_path):
    (chip.root / "ota.json").write_text(json.dumps(ota_config(keys)))
    stage(chip, release(tmp_path, keys, "2.0.0", 2))
    seen = []
    points, total = sweep(chip, INSTALL, _install_checker(chip, None, "2.0.0", seen), torn=True)
    # 36 writes, each cut plain and torn: no application up to the 24th (the pointer's rename), 2.0.0 after
    assert total == 36 and points == list(range(1, 37)), (total, points)
    assert seen == [None] * 48 + ["2.0.0"] * 24, seen


BOOT = """
import json
from janua import otaboot
otaboot.main(reset=lambda: print(json.dumps({"reset": True})))
print(json.dumps({"done": True}))
"""


def test_block_cut_at_every_write_of_trial_boots_and_rollback(chip, keys, tmp_path):
    (chip.root / "ota.json").write_text(json.dumps(ota_config(keys, trial_boots=2)))
    stage(chip, release(tmp_path, keys, "2.0.0", 2))
    chip(INSTALL)
    chip(CHECK)
    stage(chip, release(tmp_path, keys, "3.0.0", 3, body="raise OSError(5)\n", trial_boots=2))
    chip(INSTALL)
    cuts = 0
    states = []
    for _ in range(6):                                # each boot cut at each of its writes, then run whole
        def check(n, torn):
            out = chip(CHECK)
            assert out[0]["consistent"] is True, (n, torn, out)
            assert [o["app"] for o in out if "app" in o] in (["2.0.0"], ["3.0.0"]), (n, torn, out)
        points, _ = sweep(chip, BOOT, check, torn=2)
        cuts += len(points)
        ptr = json.loads((chip.root / "ota_ptr.json").read_text())
        states.append((ptr["version"], ptr["state"]))
        if ptr["version"] == "2.0.0":
            break
    # two trial boots of 3.0.0 crash, the third boot rolls back to 2.0.0: 38 writes cut in all
    assert states == [("3.0.0", "trial"), ("3.0.0", "trial"), ("2.0.0", "confirmed")], states
    assert cuts == 38, cuts
    reps = json.loads((chip.root / "ota_report.json").read_text())
    assert reps[-1]["event"] == "rolled_back" and "OSError" in reps[-1]["reason"]


@pytest.mark.slow
def test_random_block_cuts_of_installs(chip, keys, tmp_path):
    (chip.root / "ota.json").write_text(json.dumps(ota_config(keys)))
    stage(chip, release(tmp_path, keys, "2.0.0", 2))
    chip(INSTALL)
    chip(CHECK)
    stage(chip, release(tmp_path, keys, "3.0.0", 3))
    start = chip.save()
    _, total = sweep(chip, INSTALL, lambda n, t: None, stride=50)
    chip.restore(start)
    seen = []
    done = random_cuts(chip, INSTALL, _install_checker(chip, "2.0.0", "3.0.0", seen), total, 100, rng())
    assert len(done) == 100 and set(seen) <= {"2.0.0", "3.0.0"}
