"""Flash wear at the block level for `make bench` (bench/run.py runs it; alone:
`python bench/flash_wear_device.py`; prints JSON). The firmware (.mpy, mpy-cross -O2, and the esp32
hal) runs on the virtual esp32's emulated flash chip: LittleFS2 on the 960 KiB vfs partition of
4 KiB erase blocks (boards/vboard/vb_flashchip.py counts each erase in wear.bin). The files a test
puts on the flash from the host are not counted; only what the board's code makes the chip erase.

- device.offline.flash_erase_blocks_per_use: erases of 30 offline-token uses (Chain.token_for +
  mark_used, the flash part of one offline authentication) on a 30-token chain (a month of daily
  tokens, the usual size), divided by 30. A use appends 2 bytes to chain.used, which LittleFS keeps
  inline in its metadata log while the file is small: a use erases a block only when the log
  compacts.
- device.offline.flash_erase_blocks_per_use_200: the same over 200 uses of a 210-token chain. Past
  about 64 uses chain.used no longer fits inline, and each append copies the file's last block to a
  fresh one (LittleFS is copy-on-write): about one erase per use.
- device.ota.flash_erase_blocks: erases of installing a 100 KB application update
  (AppSlots.install: verify, stream into the inactive slot, hash, switch), the same bundle as
  device.ota.peak_heap_bytes.
Both are deterministic for a given LittleFS state (the same image and operations give the same
count); a block erase costs the chip about 45 ms (ESP32's flash, typical) and one of its rated
100,000 cycles per block, which LittleFS spreads across the partition.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.offline_device import DEV, T0, _tokens  # noqa: E402
from bench.ota_device import app_bundle  # noqa: E402
from tools.boards import BOARDS_DIR, FIRMWARE_DIR, load_profile, micropython_cmd  # noqa: E402
from tools.build import compile_mpy  # noqa: E402
from tools.vboard_flash import FlashImage  # noqa: E402

TOPUP = """
import json
from binascii import unhexlify
from janua.chain import Chain
Chain(unhexlify(%r)).top_up(json.load(open("new.json")), 86400, 86400, %d)
print("OK")
"""
USE = """
from binascii import unhexlify
from janua.chain import Chain
ch = Chain(unhexlify(%r))
for day in range(%d):
    i, slot = ch.token_for(%d + day * 86400 + 40000, 300)
    ch.mark_used(i)
print("OK")
"""
INSTALL = """
from janua.ota import AppSlots
M = open("bundle/manifest.json", "rb").read()
S = open("bundle/manifest.sig", "rb").read()
AppSlots().install(M, S, lambda p: open("bundle/files/" + p, "rb"),
                   device={"board": "esp32", "hw": 2, "mp": (1, 29, 0)})
print("OK")
"""


def _lib(out):
    lib = out / "lib"
    for src in sorted((FIRMWARE_DIR / "janua").glob("*.py")):
        compile_mpy(src, lib / "janua" / (src.stem + ".mpy"), f"janua/{src.name}")
    compile_mpy(BOARDS_DIR / "esp32" / "hal.py", lib / "janua_hal.mpy", "janua_hal.py")
    return lib


def _run(image, work, code, heap=None):
    script = work / "script.py"
    script.write_text(code)
    argv, env = micropython_cmd("esp32", script, flash=image, mount="/", heap=heap)
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=work)
    if p.returncode != 0 or "OK" not in p.stdout:
        raise RuntimeError("flash wear bench failed: " + p.stdout + p.stderr)


def measure(work):
    """{key: value} from one set of runs in `work` (a fresh directory)."""
    work = Path(work)
    seed = work / "seed"
    shutil.copytree(_lib(work / "build"), seed / "lib")
    prof = load_profile("esp32")

    per_use = {}
    for uses, tokens in ((30, 30), (200, 210)):
        offline = FlashImage(work / ("chip-offline-%d" % uses), prof)
        (seed / "new.json").write_text(json.dumps(_tokens(tokens)))
        offline.put_tree(seed)
        _run(offline, work, TOPUP % (DEV, T0), heap=4 << 20)   # setup (not measured): room for a long chain
        before = sum(offline.fs_wear())
        _run(offline, work, USE % (DEV, uses, T0))
        per_use[uses] = round((sum(offline.fs_wear()) - before) / uses, 3)

    ota = FlashImage(work / "chip-ota", prof)
    app_bundle(work, seed)     # the 100 KB update of device.ota.peak_heap_bytes
    (seed / "new.json").unlink()
    ota.put_tree(seed)
    before = sum(ota.fs_wear())
    _run(ota, work, INSTALL)
    return {"device.offline.flash_erase_blocks_per_use": per_use[30],
            "device.offline.flash_erase_blocks_per_use_200": per_use[200],
            "device.ota.flash_erase_blocks": sum(ota.fs_wear()) - before}


def main():
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(measure(d)))


if __name__ == "__main__":
    main()
