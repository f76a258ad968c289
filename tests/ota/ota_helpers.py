"""Helpers for the OTA tests: the MicroPython runner, tiny apps, signed bundles, staging."""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

from tools import ota as host
from tools.boards import BOARDS_DIR, FIRMWARE_DIR, micropython_cmd

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "ed25519_and_sha512.json").read_text())


class MP:
    """`mp(script)` runs a script in a fresh flash dir (cwd) with firmware/ and janua_hal on the
    path, the esp32 heap, and returns the JSON lines it printed; `mp.raw` returns the process."""

    def __init__(self, tmp_path):
        self.flash = tmp_path / "flash"
        self.flash.mkdir()
        self.lib = tmp_path / "hal"
        self.lib.mkdir()
        shutil.copy(BOARDS_DIR / "unix" / "hal.py", self.lib / "janua_hal.py")
        self.n = 0

    def raw(self, script, board="esp32", timeout=120):
        self.n += 1
        path = self.flash.parent / ("t%d.py" % self.n)
        path.write_text(textwrap.dedent(script))
        argv, env = micropython_cmd(board, path, path=[FIRMWARE_DIR, self.lib])
        return subprocess.run(argv, env=env, cwd=self.flash, capture_output=True, text=True, timeout=timeout)

    def __call__(self, script, board="esp32", timeout=120):
        p = self.raw(script, board, timeout)
        assert p.returncode == 0, p.stdout + p.stderr
        out = []
        for line in p.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


def ota_config(keys, hw=2, trial_boots=3, both=True):
    cfg = {"keys": {}, "hw_version": hw, "trial_boots": trial_boots}
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
