"""OTA numbers for `make bench` (bench/run.py runs it; alone: `python bench/ota_device.py`; prints JSON).

- device.ota.sig_verify_ms: median of 11 manifest signature checks (janua.manifest.verify_signature)
  on the unix port with the esp32 heap, firmware as .mpy (mpy-cross -O2).
- device.ota.verify_peak_heap_bytes (manifest.verify_manifest: the update path, which loads SHA-512,
  unloads it, loads Ed25519, unloads it) / device.ota.peak_heap_bytes (installing a 100 KB
  application: verify, stream, hash, switch): the smallest
  -X heapsize in which the operation still succeeds, minus the smallest in which the same script
  without the operation succeeds (bisection to 256 bytes). Includes fragmentation; an upper bound
  of peak live heap. (gc.disable() accounting cannot give a peak: a verification allocates far
  more short-lived big ints than the esp32 heap holds, see the next number.)
- device.ota.verify_alloc_bytes: everything one manifest signature check allocates (garbage
  included), counted with gc.disable() in an 8 MiB heap, unix port (64-bit: 32-byte heap blocks,
  so about twice what a 32-bit board allocates). Every byte of it is work for the collector.
- device.ota.hash_kib_per_s: streaming SHA-256 through one 4 KiB buffer, 1 MiB, unix port.
- device.ota.mpy_bytes: .mpy bytes of the OTA path with its janua dependencies.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import ota as host  # noqa: E402
from tools.boards import BOARDS_DIR, micropython_binary  # noqa: E402
from tools.build import compile_mpy, mpy_size  # noqa: E402

OTA_MODULES = ["__init__", "ota", "otastore", "otaboot", "manifest", "ed25519", "sha512", "mac", "store"]

PRE = """
import gc, json, sys, time
from janua.ota import AppSlots
from janua.manifest import verify_signature
M = open("bundle/manifest.json", "rb").read()
S = open("bundle/manifest.sig", "rb").read()
K = AppSlots().keys()
gc.collect()
"""
VERIFY = PRE.replace("gc.collect()", "from janua.manifest import verify_manifest\ngc.collect()") + (
    "verify_manifest(M, S, K)\nprint('OK')\n")
INSTALL = PRE + ("AppSlots().install(M, S, lambda p: open('bundle/files/' + p, 'rb'),"
                 " device={'board': 'esp32', 'hw': 2, 'mp': (1, 29, 0)})\nprint('OK')\n")
TIME = PRE + """
ts = []
for i in range(11):
    t = time.ticks_us(); verify_signature(M, S, K); ts.append(time.ticks_diff(time.ticks_us(), t))
ts.sort()
import hashlib
buf = bytearray(4096)
f = open("big.bin", "rb")
t = time.ticks_us()
h = hashlib.sha256()
while True:
    n = f.readinto(buf)
    if not n:
        break
    h.update(buf if n == 4096 else memoryview(buf)[:n])
dt = time.ticks_diff(time.ticks_us(), t)
print(json.dumps({"verify_us": ts[5], "hash_kib_per_s": 1024 * 1e6 / dt}))
"""
# warm up (imports), then count one verification's allocations with the collector off
ALLOC = PRE + """
verify_signature(M, S, K)
gc.collect()
gc.disable()
a = gc.mem_alloc()
verify_signature(M, S, K)
print(json.dumps({"alloc": gc.mem_alloc() - a}))
"""


def app_bundle(work, dest):
    """A signed bundle of a 100 KB application in dest/bundle and the ota.json that trusts its key in
    dest (the update both the heap and the flash-wear benchmarks install)."""
    keys = work / "keys"
    _, pub, _ = host.keygen(keys, "r")
    app = work / "app"
    app.mkdir()
    (app / "main.py").write_text("print('app')\n")
    (app / "blob.bin").write_bytes(bytes(range(256)) * 400)          # with main.py: a 100 KB app
    host.build_bundle(app, dest / "bundle", "2.0.0", 2, compile_py=False)
    host.sign_bundle(dest / "bundle", keys / "r.key")
    kid, raw = host.load_public(pub)
    (dest / "ota.json").write_text(json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2}))


def run(work, code, heap):
    import shutil
    for p in list(work.glob("app_*")) + list(work.glob("ota_ptr.json*")) + list(work.glob("ota_report.json*")):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (work / "s.py").write_text(code)
    r = subprocess.run([micropython_binary(), "-X", "heapsize=%d" % heap, "s.py"], cwd=work,
                       env={"MICROPYPATH": "lib"}, capture_output=True, text=True, timeout=60)
    return r.returncode == 0 and "OK" in r.stdout, r.stdout


def min_heap(work, code):
    lo, hi = 4096, 2 << 20
    while hi - lo > 256:
        mid = (lo + hi) // 2
        ok, _ = run(work, code, mid)
        if ok:
            hi = mid
        else:
            lo = mid
    return hi


def main():
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        lib = work / "lib" / "janua"
        files = [compile_mpy(ROOT / "firmware" / "janua" / f"{m}.py", lib / f"{m}.mpy") for m in OTA_MODULES]
        compile_mpy(BOARDS_DIR / "unix" / "hal.py", work / "lib" / "janua_hal.mpy")
        app_bundle(work, work)
        (work / "big.bin").write_bytes(bytes(1 << 20))
        ok, out = run(work, TIME, 112640)
        t = json.loads(out.strip().splitlines()[-1])
        ok, out = run(work, ALLOC, 8 << 20)
        alloc = json.loads(out.strip().splitlines()[-1])["alloc"]
        base = min_heap(work, PRE + "print('OK')\n")
        ver = min_heap(work, VERIFY)
        inst = min_heap(work, INSTALL)
        print(json.dumps({
            "device.ota.sig_verify_ms": round(t["verify_us"] / 1000, 2),
            "device.ota.hash_kib_per_s": round(t["hash_kib_per_s"]),
            "device.ota.verify_peak_heap_bytes": ver - base,
            "device.ota.verify_alloc_bytes": alloc,
            "device.ota.peak_heap_bytes": inst - base,
            "device.ota.mpy_bytes": mpy_size(files),
        }))


if __name__ == "__main__":
    main()
