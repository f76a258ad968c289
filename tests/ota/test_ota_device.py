"""The device update flow on the MicroPython unix port (esp32 heap): install into the inactive
slot, trial boots, confirm, rollback by itself, and every rejection leaving the running slot alone.
Each `boot()` is a fresh interpreter, as a reset is on a board."""

import json

import pytest

from ota_helpers import ota_config, release, stage
from tools import ota as host

INSTALL = """
import json
from janua import OTAError
from janua.ota import AppSlots
try:
    m = AppSlots().install_staged(device=%s)
    print(json.dumps({"ok": m["version"]}))
except OTAError as e:
    print(json.dumps({"rejected": str(e)}))
"""
BOOT = """
import json
from janua import otaboot
r = otaboot.main(reset=lambda: print(json.dumps({"reset": True})))
print(json.dumps({"boot": r}))
"""
ESP32 = '{"board": "esp32", "hw": 2, "mp": (1, 29, 0)}'


def setup_board(mp, keys, **kw):
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys, **kw)))


def install(mp, bundle, device=ESP32):
    stage(mp.flash, bundle)
    return mp(INSTALL % device)[-1]


def boot(mp):
    return mp(BOOT)


def pointer(mp):
    return json.loads((mp.flash / "ota_ptr.json").read_text())


def reports(mp):
    p = mp.flash / "ota_report.json"
    return json.loads(p.read_text()) if p.exists() else []


def test_install_trial_confirm(mp, keys, tmp_path):
    setup_board(mp, keys)
    assert install(mp, release(tmp_path, keys, "2.0.0", 2)) == {"ok": "2.0.0"}
    ptr = pointer(mp)
    assert ptr["active"] == "a" and ptr["state"] == "trial" and ptr["boots"] == 0
    assert not (mp.flash / "ota_stage").exists()            # staging area freed
    assert sorted(p.name for p in (mp.flash / "app_a").iterdir()) == [".manifest.json", "appver.mpy", "main.mpy"]
    assert not (mp.flash / "ota_ctr.0").exists() and not (mp.flash / "ota_ctr.1").exists()  # not committed yet
    out = boot(mp)
    assert {"app": "2.0.0"} in out
    ptr = pointer(mp)
    assert ptr["state"] == "confirmed" and ptr["boots"] == 1 and ptr["version"] == "2.0.0"
    assert [r["event"] for r in reports(mp)] == ["installed", "confirmed"]
    # The counter is committed now: a release with a lower counter is a downgrade.
    assert install(mp, release(tmp_path, keys, "1.9.0", 1)) == {"rejected": "downgrade: security counter 1 < 2"}
    # Equal counter: reinstalling the same security level is allowed (into slot b).
    assert install(mp, release(tmp_path, keys, "2.0.1", 2, key="key2")) == {"ok": "2.0.1"}
    assert pointer(mp)["active"] == "b" and pointer(mp)["previous"] == "a"


def test_unconfirmed_version_rolls_back_by_itself(mp, keys, tmp_path):
    setup_board(mp, keys, trial_boots=3)
    install(mp, release(tmp_path, keys, "2.0.0", 2))
    assert {"app": "2.0.0"} in boot(mp)
    bad = release(tmp_path, keys, "3.0.0", 3, body="raise RuntimeError('no network driver')\n")
    assert install(mp, bad) == {"ok": "3.0.0"}
    for n in (1, 2, 3):     # three trial boots: each fails, is noted, and asks for a reset
        out = boot(mp)
        assert {"app": "3.0.0"} in out and {"reset": True} in out
        assert pointer(mp)["boots"] == n and pointer(mp)["state"] == "trial"
    out = boot(mp)          # the fourth boot returns to 2.0.0 before running anything
    assert {"app": "2.0.0"} in out and {"reset": True} not in out
    ptr = pointer(mp)
    assert ptr["active"] == "a" and ptr["version"] == "2.0.0" and ptr["state"] == "confirmed"
    rb = reports(mp)[-1]
    assert rb["event"] == "rolled_back" and rb["version"] == "3.0.0" and rb["to"] == "2.0.0"
    assert "not confirmed after 3 boots" in rb["reason"] and "no network driver" in rb["reason"]
    # 3.0.0's counter was never committed: 2.x is still installable.
    assert install(mp, release(tmp_path, keys, "2.1.0", 2)) == {"ok": "2.1.0"}


def test_rollback_to_the_factory_app(mp, keys, tmp_path):
    setup_board(mp, keys, trial_boots=1)
    install(mp, release(tmp_path, keys, "2.0.0", 2, body="pass\n", trial_boots=1))
    assert {"app": "2.0.0"} in boot(mp)        # trial boot 1, never confirms
    out = boot(mp)
    assert {"boot": None} in out               # no slot: main.py runs the factory app
    assert pointer(mp)["active"] == "" and reports(mp)[-1]["event"] == "rolled_back"


def test_trial_blocks_a_second_install(mp, keys, tmp_path):
    setup_board(mp, keys)
    install(mp, release(tmp_path, keys, "2.0.0", 2))
    r = install(mp, release(tmp_path, keys, "2.0.1", 2))
    assert "in trial" in r["rejected"]


def test_security_release_without_rollback_commits_at_once(mp, keys, tmp_path):
    setup_board(mp, keys)
    install(mp, release(tmp_path, keys, "2.0.0", 7, rollback=False))
    assert pointer(mp)["state"] == "confirmed"
    assert "downgrade" in install(mp, release(tmp_path, keys, "2.0.1", 6))["rejected"]


def _tamper_file(bundle):
    p = bundle / "files" / "appver.mpy"
    b = bytearray(p.read_bytes())
    b[-1] ^= 1
    p.write_bytes(bytes(b))


def _bad_signature(bundle):
    s = json.loads((bundle / "manifest.sig").read_text())
    s["sig"] = ("0" if s["sig"][0] != "0" else "1") + s["sig"][1:]
    (bundle / "manifest.sig").write_text(json.dumps(s))


def _manifest_edited_after_signing(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    m["counter"] = 99
    (bundle / "manifest.json").write_text(json.dumps(m))


def _truncated_file(bundle):
    p = bundle / "files" / "main.mpy"
    p.write_bytes(p.read_bytes()[:-5])


def _longer_file(bundle):
    p = bundle / "files" / "main.mpy"
    p.write_bytes(p.read_bytes() + b"\0")


def _missing_file(bundle):
    (bundle / "files" / "main.mpy").unlink()


@pytest.mark.parametrize("spoil, reason", [
    (_tamper_file, "appver.mpy: digest mismatch"),
    (_bad_signature, "bad signature"),
    (_manifest_edited_after_signing, "bad signature"),
    (_truncated_file, "main.mpy: file is short"),
    (_longer_file, "main.mpy: file is longer"),
    (_missing_file, "staging failed"),
], ids=["tampered_file", "bad_signature", "edited_manifest", "truncated_file", "extended_file", "missing_file"])
def test_spoiled_release_installs_nothing(mp, keys, tmp_path, spoil, reason):
    setup_board(mp, keys)
    install(mp, release(tmp_path, keys, "2.0.0", 2))
    boot(mp)
    before = pointer(mp)
    bundle = release(tmp_path, keys, "2.5.0", 3)
    spoil(bundle)
    r = install(mp, bundle)
    assert reason in r["rejected"]
    assert pointer(mp) == before
    assert not (mp.flash / "app_b").exists()           # the half-written slot was wiped
    assert reports(mp)[-1]["event"] == "rejected"
    assert {"app": "2.0.0"} in boot(mp)


@pytest.mark.parametrize("kw, device, reason", [
    ({"key": "stranger"}, ESP32, "unknown key id"),
    ({"boards": ["rp2040"]}, ESP32, "incompatible: board esp32"),
    ({"hw_min": 3}, ESP32, "hardware version 2 < 3"),
    ({"hw_max": 1}, ESP32, "hardware version 2 > 1"),
    ({"mp_min": "1.30.0"}, ESP32, "MicroPython"),
    ({"mp_max": "1.28.9"}, ESP32, "MicroPython"),
    ({"features": ["hashlib:sha512"]}, ESP32, "feature hashlib:sha512 missing"),
    ({}, '{"board": "esp32", "hw": 2, "mp": (1, 21, 0)}', None),   # control: no limits, accepted
], ids=["unknown_key", "other_board", "hw_too_old", "hw_too_new", "mp_too_old", "mp_too_new",
        "missing_feature", "control"])
def test_rejected_releases_leave_the_board_alone(mp, keys, tmp_path, kw, device, reason):
    setup_board(mp, keys)
    r = install(mp, release(tmp_path, keys, "2.0.0", 2, **kw), device)
    if reason is None:
        assert r == {"ok": "2.0.0"}
        return
    assert reason in r["rejected"]
    assert not (mp.flash / "ota_ptr.json").exists() and not (mp.flash / "app_a").exists()
    assert {"boot": None} in boot(mp)


def test_required_feature_present_is_accepted(mp, keys, tmp_path):
    setup_board(mp, keys)
    r = install(mp, release(tmp_path, keys, "2.0.0", 2, features=["hashlib:sha256", "urandom"]))
    assert r == {"ok": "2.0.0"}


def test_source_release_and_nested_paths(mp, keys, tmp_path):
    setup_board(mp, keys)
    app = tmp_path / "nested"
    from ota_helpers import write_app
    write_app(app, "4.0.0", body="from lib2.util import X\nprint(json.dumps({'x': X}))\nfrom janua.ota import confirm\nconfirm()\n",
              extra={"lib2/__init__.py": "", "lib2/util.py": "X = 42\n"})
    b = tmp_path / "b"
    host.build_bundle(app, b, "4.0.0", 4, compile_py=False)
    host.sign_bundle(b, keys["key"])
    assert install(mp, b) == {"ok": "4.0.0"}
    out = boot(mp)
    assert {"app": "4.0.0"} in out and {"x": 42} in out


TIMED_BOOT = """
import json
from janua import otaboot
armed = []
r = otaboot.main(reset=lambda: print(json.dumps({"reset": True})), now=lambda: %d,
                 arm=lambda s, cb: armed.append((s, cb)))
print(json.dumps({"boot": r, "armed": [a[0] for a in armed]}))
if %r and armed:
    armed[0][1]()      # the deadline timer fires
"""


def timed_boot(mp, now, fire=False):
    return mp(TIMED_BOOT % (now, fire))


def _v2_then_silent_v3(mp, keys, tmp_path, **kw):
    setup_board(mp, keys, trial_boots=5, trial_seconds=60, **kw)
    install(mp, release(tmp_path, keys, "2.0.0", 2))
    assert {"app": "2.0.0"} in boot(mp)
    # 3.0.0 neither crashes nor confirms: only time can end its trial
    assert install(mp, release(tmp_path, keys, "3.0.0", 3, body="pass\n")) == {"ok": "3.0.0"}


def test_trial_rolls_back_after_its_time_with_boots_left(mp, keys, tmp_path):
    _v2_then_silent_v3(mp, keys, tmp_path)
    out = timed_boot(mp, 1000)
    assert {"app": "3.0.0"} in out and out[-1]["armed"] == [60]       # deadline timer for the whole trial
    assert pointer(mp)["since"] == 1000 and pointer(mp)["max_seconds"] == 60
    out = timed_boot(mp, 1059)                                       # boot 2 of 5, 1 s left
    assert {"app": "3.0.0"} in out and out[-1]["armed"] == [1]
    out = timed_boot(mp, 1061)                                       # boot 3 of 5, but over time
    assert {"app": "2.0.0"} in out
    ptr = pointer(mp)
    assert ptr["version"] == "2.0.0" and ptr["state"] == "confirmed"
    rb = reports(mp)[-1]
    assert rb["event"] == "rolled_back" and rb["version"] == "3.0.0" and "not confirmed within 60 s" in rb["reason"]


def test_trial_deadline_timer_rolls_back_a_running_app(mp, keys, tmp_path):
    _v2_then_silent_v3(mp, keys, tmp_path)
    out = timed_boot(mp, 1000, fire=True)        # the app runs (and hangs); the timer fires
    assert {"app": "3.0.0"} in out and {"reset": True} in out
    assert pointer(mp)["version"] == "2.0.0" and reports(mp)[-1]["event"] == "rolled_back"
    assert {"app": "2.0.0"} in boot(mp)


def test_trial_deadline_after_confirm_does_nothing(mp, keys, tmp_path):
    setup_board(mp, keys, trial_boots=5, trial_seconds=60)
    install(mp, release(tmp_path, keys, "2.0.0", 2))
    out = timed_boot(mp, 1000, fire=True)        # the app confirms, then the timer fires
    assert {"app": "2.0.0"} in out and {"reset": True} not in out
    assert pointer(mp)["state"] == "confirmed"


def test_trial_time_with_a_clock_that_went_back(mp, keys, tmp_path):
    # an RTC reset by a power cut reads before the trial began: it proves nothing (no rollback),
    # the timer gets a whole period, and the boot count still bounds the trial
    _v2_then_silent_v3(mp, keys, tmp_path)
    timed_boot(mp, 1000)
    out = timed_boot(mp, 5)
    assert {"app": "3.0.0"} in out and out[-1]["armed"] == [60]
    assert pointer(mp)["state"] == "trial" and pointer(mp)["since"] == 1000


def test_trial_time_from_the_manifest_and_none_when_zero(mp, keys, tmp_path):
    setup_board(mp, keys, trial_seconds=60)
    install(mp, release(tmp_path, keys, "2.0.0", 2, body="pass\n", trial_seconds=0))
    out = timed_boot(mp, 1000)
    assert out[-1]["armed"] == [] and pointer(mp)["max_seconds"] == 0
    assert {"app": "2.0.0"} in timed_boot(mp, 10 ** 9)   # no time limit: still in trial
    assert pointer(mp)["state"] == "trial"
