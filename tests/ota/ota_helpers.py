"""Helpers for the OTA tests: the MicroPython runner, tiny apps, signed bundles, staging."""

import json
import shutil
from pathlib import Path

from tools import ota as host
from tools.boards import MPRun

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "ed25519_and_sha512.json").read_text())


MP = MPRun  # the shared runner (tools/boards.py)


def ota_config(keys, hw=2, trial_boots=3, both=True, trial_seconds=None):
    cfg = {"keys": {}, "hw_version": hw, "trial_boots": trial_boots}
    if trial_seconds is not None:
        cfg["trial_seconds"] = trial_seconds
    for name in (("pub", "pub2") if both else ("pub",)):
        kid, raw = host.load_public(keys[name])
        cfg["keys"][kid] = raw.hex()
    return cfg


def write_app(d, version, body="", extra=None):
    """A tiny application: main.py prints its version and confirms unless `body` says otherwise."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.py").write_text(
        "import json\nfrom appver import VERSION\nprint(json.dumps({'app': VERSION}))\n"
        + (body or "from janua.ota import confirm\nconfirm()\n"))
    (d / "appver.py").write_text("VERSION = %r\n" % version)
    for rel, text in (extra or {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def release(tmp, keys, version, counter, key="key", body="", compile_py=True, **kw):
    app = write_app(Path(tmp) / ("app-" + version), version, body)
    bundle = Path(tmp) / ("bundle-" + version)
    kw.setdefault("boards", ["esp32", "unix"])
    host.build_bundle(app, bundle, version, counter, compile_py=compile_py, **kw)
    host.sign_bundle(bundle, keys[key])
    return bundle


def stage(flash, bundle):
    """What `janua ota install` copies: the bundle into ota_stage/ on the flash."""
    st = Path(flash) / "ota_stage"
    if st.exists():
        shutil.rmtree(st)
    shutil.copytree(bundle, st)


# A boot on the board: which slot runs, and is every file of it the one its manifest names (size and
# SHA-256)? Prints the pointer, then runs otaboot (a reset prints {"reset": true}).
BOOT_CHECK = """
import json
from janua.ota import AppSlots
from janua.manifest import copy_verified
from janua import otaboot
s = AppSlots()
ptr = s.pointer()
ok = True
if ptr.get("active"):
    d = "app_" + ptr["active"]
    m = json.load(open(d + "/.manifest.json"))
    ok = m["version"] == ptr["version"]
    buf = bytearray(512)
    for f in m["files"]:
        r = open(d + "/" + f["path"], "rb")
        copy_verified(r, None, f["size"], f["sha256"], buf)   # raises on any mix or truncation
        r.close()
print(json.dumps({"ptr": ptr.get("version"), "state": ptr.get("state"), "consistent": ok}))
otaboot.main(reset=lambda: print(json.dumps({"reset": True})))
"""
