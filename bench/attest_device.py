"""Board attestation numbers for `make bench` (bench/run.py runs it; alone: `python bench/attest_device.py`,
prints JSON). Firmware compiled as shipped (tools/build.py, mpy-cross -O MPY_OPT) and run on the
MicroPython unix port with the esp32 profile's heap. The board's flash: ota_ptr.json naming app_a, an
application of 8 files of 12,800 bytes (100 KB, random bytes), janua_state.json, and the whole janua
package as .mpy in lib/janua (what attest measures as its modules). Every key measures the default
evidence, the package as one 0x09 digest record, unless its name says otherwise.

- device.attest.mpy_bytes: attest.mpy alone (issue #12's budget); device.attest.mpy_bytes_with_deps adds
  the janua modules it imports (__init__, mac, hkdf); device.attestnet.mpy_bytes: the transports plus
  devcall (HTTP challenge), which the board loads only to send.
- device.attest.peak_heap_bytes: the peak live heap of one Attester.evidence() call (after one warm-up
  call): the filesystem it is given samples gc.mem_alloc() after a full gc.collect() at every file open
  and every 512-byte read (the second walk, when the evidence buffer is held, is all opens and reads),
  and once at the end; the largest sample minus the same reading just before the call. So short-lived
  garbage does not count (the collector runs on a board too), the evidence buffer
  (device.attest.evidence_bytes) does, and so does the sampling file wrapper (one small object at a
  time). Fragmentation is not in it. device.attest.peak_heap_bytes_app_only:
  the same without the package (pkg=""); device.attest.peak_heap_bytes_module_list: the same with the
  package as one 0x06 record per module (modules="list", the diagnosis option).
- device.attest.evidence_bytes: the size of that default evidence (header, records, tag).
- device.attest.alloc_bytes: gc.collect(), gc.disable(), the growth of gc.mem_alloc() across one call:
  everything it allocates after the collection evidence() makes itself once the package digest is done,
  short-lived listing tuples included (not a peak: garbage is never freed); on a 1 MiB heap, since with 42
  modules the package listings' garbage before that collection outgrows the esp32 heap.
- device.attest.measure_ms: median of 9 evidence() calls after one warm-up, unix port of this host
  (not a board). device.attest.measure_instructions: valgrind's callgrind on the same port, the
  instructions of 3 calls minus those of 1, halved (start-up, imports and the first call cancel out);
  deterministic, for estimating a board's time. Left out when valgrind is not installed.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.boards import micropython_cmd  # noqa: E402
from tools.build import build_firmware, compile_mpy, mpy_size  # noqa: E402

CFG = {"device_id": "3f9a0c1b7d2e4a65", "master_secret": "00" * 32}
N_FILES, FILE_BYTES = 8, 12_800

SCRIPT = """
import gc, json
from janua.attest import Attester, Flash
peak = [0]

def sample():
    # the live heap now: a full collection, then what is still allocated
    gc.collect()
    a = gc.mem_alloc()
    if a > peak[0]:
        peak[0] = a

class File:
    def __init__(self, f):
        self.f = f
    def readinto(self, b):
        n = self.f.readinto(b)
        sample()
        return n
    def close(self):
        self.f.close()

class Sampling(Flash):
    def open(self, p, m):
        if m != "rb":
            return open(p, m)           # the two small JSON files: json.load needs a real stream
        f = File(open(p, m))
        sample()
        return f

att = Attester(%r%s, fs=Sampling())
nonce = bytes(16)
att.evidence(nonce, 1767225600)     # warm: first-call allocations (interned names, imports) are not per-call
gc.collect()
base = peak[0] = gc.mem_alloc()
ev = att.evidence(nonce, 1767225600)
sample()
print(json.dumps({"peak": peak[0] - base, "evidence": len(ev)}))
"""

TIMING = """
import gc, json, sys, time
from janua.attest import Attester
att = Attester(%r%s)
nonce = bytes(16)
ev = att.evidence(nonce, 1)
alloc = None
if "alloc" in sys.argv:
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    ev = att.evidence(nonce, 1)
    alloc = gc.mem_alloc() - a
    gc.enable()
ms = []
for i in range(9):
    gc.collect()
    t = time.ticks_us()
    att.evidence(nonce, 1)
    ms.append(time.ticks_diff(time.ticks_us(), t) / 1000)
ms.sort()
print(json.dumps({"alloc": alloc, "ms": ms[4], "evidence": len(ev), "heap_total": gc.mem_free() + gc.mem_alloc()}))
"""


def _run(d, script, heap, *args):
    path = d / "bench_attest.py"
    path.write_text(script)
    argv, env = micropython_cmd("esp32", path, path=[d / "lib"])
    argv[2] = "heapsize=%d" % heap
    return subprocess.run(argv + [str(a) for a in args], env=env, cwd=d / "flash", capture_output=True,
                          text=True, timeout=120)


def _peak(d, script):
    p = _run(d, script, 112640)
    if p.returncode != 0:
        raise RuntimeError("attest bench failed: " + p.stdout + p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])["peak"]


CALLGRIND = """
import sys
from janua.attest import Attester
att = Attester(%r)
for i in range(int(sys.argv[1])):
    att.evidence(bytes(16), 1767225600)
"""


def _instructions(d):
    """Instructions of one evidence() call: callgrind's I refs of 3 calls minus those of 1, halved (the
    interpreter's start, the imports and the first call's one-time work cancel out). None without valgrind."""
    import re
    import shutil
    if not shutil.which("valgrind"):
        return None
    path = d / "bench_attest_cg.py"
    path.write_text(CALLGRIND % (CFG,))
    refs = []
    for n in (1, 3):
        argv, env = micropython_cmd("esp32", path, path=[d / "lib"])
        out = d / ("cg.%d.out" % n)
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out] + argv + [str(n)],
                           env=env, cwd=d / "flash", capture_output=True, text=True, timeout=600)
        m = re.search(r"I\s+refs:\s+([\d,]+)", p.stderr)
        if p.returncode != 0 or not m:
            raise RuntimeError("callgrind run failed: " + p.stderr[-2000:])
        refs.append(int(m.group(1).replace(",", "")))
    return (refs[1] - refs[0]) // 2


def _flash(d):
    flash = d / "flash"
    (flash / "app_a").mkdir(parents=True)
    (flash / "ota_ptr.json").write_text(json.dumps({"active": "a", "state": "confirmed", "version": "2.1.0"}))
    (flash / "janua_state.json").write_text(json.dumps({"boots": 7, "last_sent": 0}))
    (flash / "app_a" / ".manifest.json").write_text("{}")
    for i in range(N_FILES):
        (flash / "app_a" / ("mod%d.py" % i)).write_bytes(os.urandom(FILE_BYTES))


def run(results, say):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        build_firmware(d, "unix", main_file=d / "none")
        lib = d / "lib" / "janua"
        results["device.attest.mpy_bytes"] = mpy_size([lib / "attest.mpy"])
        results["device.attest.mpy_bytes_with_deps"] = mpy_size([lib / f"{m}.mpy" for m in
                                                                ("attest", "__init__", "mac", "hkdf")])
        results["device.attestnet.mpy_bytes"] = mpy_size([lib / "attestnet.mpy", lib / "devcall.mpy"])
        _flash(d)
        peaks = {}
        for key, pkg in (("device.attest.peak_heap_bytes", ""), ("device.attest.peak_heap_bytes_app_only", ", pkg=''"),
                         ("device.attest.peak_heap_bytes_module_list", ", modules='list'")):
            peaks[key] = results[key] = _peak(d, SCRIPT % (CFG, pkg))
        # alloc_bytes counts garbage too (the collector is off), and the package's listings alone are more
        # garbage than the esp32 heap holds once the package has 42 modules: counted on a 1 MiB heap; the
        # times on the board's heap, where the collector runs as on a board
        p = _run(d, TIMING % (CFG, ""), 1 << 20, "alloc")
        if p.returncode != 0:
            raise RuntimeError("attest bench failed: " + p.stdout + p.stderr)
        alloc = json.loads(p.stdout.strip().splitlines()[-1])["alloc"]
        p = _run(d, TIMING % (CFG, ""), 112640)
        if p.returncode != 0:
            raise RuntimeError("attest bench failed: " + p.stdout + p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["alloc"] = alloc
        ins = _instructions(d)
    if ins is not None:
        results["device.attest.measure_instructions"] = ins
    results["device.attest.alloc_bytes"] = r["alloc"]
    results["device.attest.evidence_bytes"] = r["evidence"]
    results["device.attest.measure_ms"] = round(r["ms"], 2)
    say(f"device attest: {results['device.attest.mpy_bytes']} mpy bytes "
        f"({results['device.attest.mpy_bytes_with_deps']} with deps), peak heap "
        f"{peaks['device.attest.peak_heap_bytes']} B ({peaks['device.attest.peak_heap_bytes_app_only']} B app only, "
        f"{peaks['device.attest.peak_heap_bytes_module_list']} B with the module list), "
        f"evidence {r['evidence']} B, alloc {r['alloc']} B, {r['ms']:.2f} ms per measurement of "
        f"{N_FILES} x {FILE_BYTES} B + the janua package (unix port, esp32 heap {r['heap_total']}), "
        f"{ins} instructions per measurement")


if __name__ == "__main__":
    out = {}
    run(out, lambda m: print(m, file=sys.stderr))
    print(json.dumps(out, indent=1))
