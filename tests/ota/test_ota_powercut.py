"""Power cuts at every flash operation of an install, of a trial boot and of the rollback: the
next boot always runs a complete, verified application (old or new, never a mix), and a new
install afterwards succeeds. A cut is the interpreter exiting at the k-th mutating filesystem
call (open for writing, write, flush, rename, remove, mkdir, rmdir, sync): nothing after it runs."""

import json

from ota_helpers import BOOT_CHECK as CHECK, ota_config, release, stage

CUTFS = """
import sys, json
from janua.ota import FlashFS, AppSlots
from janua import OTAError
class CutFS(FlashFS):
    def __init__(self, k):
        self.k = k
    def tick(self):
        self.k -= 1
        if self.k == 0:
            sys.exit(3)   # the power goes
    def open(self, path, mode):
        f = FlashFS.open(self, path, mode)
        if "r" in mode:
            return f
        self.tick()
        fs = self
        class W:
            def write(self, b):
                fs.tick()
                return f.write(b)
            def flush(self):
                fs.tick()
                f.flush()
            def close(self):
                f.close()
        return W()
for name in ("rename", "remove", "mkdir", "rmdir", "sync"):
    def wrap(name):
        real = getattr(FlashFS, name)
        def op(self, *a):
            self.tick()
            return real(self, *a)
        return op
    setattr(CutFS, name, wrap(name))
"""


INSTALL_CUT = CUTFS + """
try:
    AppSlots(CutFS(%d)).install_staged(device={"board": "esp32", "hw": 2, "mp": (1, 29, 0)})
    print(json.dumps({"done": True}))
except OTAError as e:
    print(json.dumps({"rejected": str(e)}))
"""


def _run_install_cuts(mp, bundle, old, new):
    points = 0
    for k in range(1, 500):
        stage(mp.flash, bundle)
        p = mp.raw(INSTALL_CUT % k)
        if p.returncode == 0:
            assert '"done"' in p.stdout, p.stdout + p.stderr
            break
        assert p.returncode == 3, p.stderr
        points += 1
        out = mp(CHECK)
        assert out[0]["consistent"] is True
        apps = [o["app"] for o in out if "app" in o]
        assert apps in ([old], [new]) if old else apps in ([], [new]), (k, out)
        assert out[0]["ptr"] in (old, new)
        if out[0]["ptr"] == new:
            # The switch happened before the cut: put the board back for the next point.
            (mp.flash / "ota_ptr.json").write_text(_saved_ptr[0])
    return points


_saved_ptr = [None]


def test_power_cut_at_every_step_of_an_install(mp, keys, tmp_path):
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys)))
    stage(mp.flash, release(tmp_path, keys, "2.0.0", 2))
    mp(INSTALL_CUT % 10_000)
    assert mp(CHECK)[1] == {"app": "2.0.0"}        # 2.0.0 running and confirmed
    _saved_ptr[0] = (mp.flash / "ota_ptr.json").read_text()
    v3 = release(tmp_path, keys, "3.0.0", 3)
    points = _run_install_cuts(mp, v3, "2.0.0", "3.0.0")
    assert points >= 25
    out = mp(CHECK)                                  # the uncut install of the loop: 3.0.0 in trial
    assert out[0]["ptr"] == "3.0.0" and {"app": "3.0.0"} in out


def test_power_cut_at_every_step_of_the_first_install(mp, keys, tmp_path):
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys)))
    points = _run_install_cuts(mp, release(tmp_path, keys, "2.0.0", 2), None, "2.0.0")
    assert points >= 20


BOOT_CUT = CUTFS + """
from janua import otaboot
otaboot.main(AppSlots(CutFS(%d)), reset=lambda: print(json.dumps({"reset": True})))
print(json.dumps({"done": True}))
"""


def test_power_cut_during_trial_boots_and_rollback(mp, keys, tmp_path):
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys, trial_boots=2)))
    stage(mp.flash, release(tmp_path, keys, "2.0.0", 2))
    mp(INSTALL_CUT % 10_000)
    mp(CHECK)
    stage(mp.flash, release(tmp_path, keys, "3.0.0", 3, body="raise OSError(5)\n", trial_boots=2))
    mp(INSTALL_CUT % 10_000)
    points = 0
    seen = set()
    for _ in range(60):
        before = (mp.flash / "ota_ptr.json").read_text()
        for k in range(1, 50):
            p = mp.raw(BOOT_CUT % k)
            if p.returncode == 0:
                break
            assert p.returncode == 3, p.stderr
            points += 1
            out = mp(CHECK)
            assert out[0]["consistent"] is True
            assert [o["app"] for o in out if "app" in o] in (["2.0.0"], ["3.0.0"])
            (mp.flash / "ota_ptr.json").write_text(before)   # replay this boot with a later cut
            for t in mp.flash.glob("*.tmp"):
                t.unlink()
        state = json.loads((mp.flash / "ota_ptr.json").read_text())
        seen.add((state["version"], state["state"]))
        if state["version"] == "2.0.0":
            break
    assert ("2.0.0", "confirmed") in seen and points >= 5
    reps = json.loads((mp.flash / "ota_report.json").read_text())
    assert reps[-1]["event"] == "rolled_back" and "OSError" in reps[-1]["reason"]


STEP_CUT = CUTFS + """
s = AppSlots(CutFS(%d))
s.%s
print(json.dumps({"done": True}))
"""


def _cut_each_step(mp, call, limit=30):
    """Cut `call` (an AppSlots method call) at each of its flash operations in turn, from the same
    flash every time; yield (pointer, events) after each cut."""
    names = ("ota_ptr.json", "ota_report.json", "ota_ctr.0", "ota_ctr.1")
    saved = {n: (mp.flash / n).read_bytes() if (mp.flash / n).exists() else None for n in names}
    for k in range(1, limit):
        for n, b in saved.items():
            if b is None:
                (mp.flash / n).unlink(missing_ok=True)
            else:
                (mp.flash / n).write_bytes(b)
        for t in mp.flash.glob("*.tmp"):
            t.unlink()
        p = mp.raw(STEP_CUT % (k, call))
        if p.returncode == 0:
            return
        assert p.returncode == 3, p.stderr
        ptr = json.loads((mp.flash / "ota_ptr.json").read_text())
        yield ptr, json.loads((mp.flash / "ota_report.json").read_text())
    raise AssertionError("%s did not finish within %d flash operations" % (call, limit))


def test_cut_in_confirm_never_leaves_a_confirmed_slot_without_its_event(mp, keys, tmp_path):
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys)))
    stage(mp.flash, release(tmp_path, keys, "2.0.0", 2, body="pass\n"))   # an app that does not confirm
    mp(INSTALL_CUT % 10_000)
    seen = []
    for ptr, events in _cut_each_step(mp, "confirm()"):
        seen.append(ptr["state"])
        if ptr["state"] == "confirmed":
            assert {"event": "confirmed", "version": "2.0.0", "boots": 0} in events, events
    assert seen[0] == "trial" and "confirmed" in seen, seen   # cuts before and after the switch


def test_cut_in_rollback_never_returns_to_the_old_slot_without_the_event(mp, keys, tmp_path):
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys)))
    stage(mp.flash, release(tmp_path, keys, "2.0.0", 2))
    mp(INSTALL_CUT % 10_000)
    mp(CHECK)                                            # 2.0.0 runs and confirms
    stage(mp.flash, release(tmp_path, keys, "3.0.0", 3, body="pass\n"))
    mp(INSTALL_CUT % 10_000)
    event = {"event": "rolled_back", "version": "3.0.0", "to": "2.0.0", "reason": "test"}
    cuts = 0
    for ptr, events in _cut_each_step(mp, 'rollback("test")'):
        cuts += 1
        if ptr["version"] == "2.0.0":                    # back on the old slot: the event says so
            assert event in events, events
    assert cuts >= 8, cuts                               # the event's write and the pointer's
    ptr = json.loads((mp.flash / "ota_ptr.json").read_text())
    assert ptr["version"] == "2.0.0" and event in json.loads((mp.flash / "ota_report.json").read_text())
