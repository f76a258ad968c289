"""Health report numbers for `make bench` (bench/run.py runs it; alone: `python bench/health_device.py`, prints
JSON). Firmware compiled as shipped (tools/build.py, mpy-cross) and run on the MicroPython unix port with the
esp32 profile's heap. The board: a hal with rssi() -67, reset_code() 3 and uptime_s() 86,461, an OTA pointer
naming slot b version 1.4.2, and the counters of docs/vectors/health.json `full` (2 auth failures, errors
ending in "OSError 110", clock offset -3, 1,048,577 bytes out, 65,000 in).

- device.health.report_bytes: that board's report (every field the unix port can fill: all 15).
- device.health.mpy_bytes: health.mpy alone (issue #13's budget 2,048).
- device.health.peak_heap_bytes: an upper bound of the heap one report and its piggy-back tag take at once,
  the largest of three steps, each measured after a warm-up and gc.collect() with gc disabled, so garbage
  counts as if it were live: reading ota_ptr.json and statvfs (before report() collects their garbage),
  health.report() (the growth of gc.mem_alloc() across it, from that collection on:
  device.health.report_heap_bytes), and the tag (the report it keeps, measured after a collection, plus the
  growth across health.tail()(request): device.health.tag_heap_bytes). The module itself is not in it:
  device.health.import_heap_bytes is what importing janua.health adds to the live heap.
- device.health.report_ms: median of 51 report()+tail() calls, unix port on this host (not a board).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.boards import micropython_cmd  # noqa: E402
from tools.build import build_firmware, mpy_size  # noqa: E402

SCRIPT = """
import gc, json, time, janua
gc.collect()
a = gc.mem_alloc()
from janua import health
gc.collect()
imported = gc.mem_alloc() - a
class Hal:
    def rssi(self):
        return -67
    def reset_code(self):
        return 3
    def uptime_s(self):
        return 86461
hal = Hal()
janua.health_c[1] = 2
for i in range(5):
    janua.note_error(OSError(110))
janua.health_c[4] = -3
janua.health_c[5] = 1048577
janua.health_c[6] = 65000
key = bytes(range(32))
req = bytes(20)
rep = health.report(hal, 12)
health.tail(key, rep)(req)
rep = None
gc.collect()
a = gc.mem_alloc()
gc.disable()
rep = health.report(hal, 12)
r_up = gc.mem_alloc() - a
gc.enable()
gc.collect()
kept = gc.mem_alloc() - a
gc.disable()
b = gc.mem_alloc()
t = health.tail(key, rep)(req)
t_up = gc.mem_alloc() - b
gc.enable()
gc.collect()
gc.disable()
b = gc.mem_alloc()
health._ota("")
health._flash("")
f_up = gc.mem_alloc() - b
gc.enable()
peak = max(r_up, kept + t_up, f_up)
size = len(rep)
ms = []
for i in range(51):
    t0 = time.ticks_us()
    health.tail(key, health.report(hal, 12))(req)
    ms.append(time.ticks_diff(time.ticks_us(), t0) / 1000)
ms.sort()
print(json.dumps({"size": size, "peak": peak, "imported": imported, "ms": ms[25], "report": r_up, "tag": kept + t_up}))
"""


def run(results, say):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        build_firmware(d, "unix", main_file=d / "none")
        results["device.health.mpy_bytes"] = mpy_size([d / "lib" / "janua" / "health.mpy"])
        flash = d / "flash"
        flash.mkdir()
        (flash / "ota_ptr.json").write_text(json.dumps({"active": "b", "state": "confirmed", "version": "1.4.2"}))
        path = d / "bench_health.py"
        path.write_text(SCRIPT)
        argv, env = micropython_cmd("esp32", path, path=[d / "lib"])
        p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("health bench failed: " + p.stdout + p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
    results["device.health.report_bytes"] = r["size"]
    results["device.health.peak_heap_bytes"] = r["peak"]
    results["device.health.import_heap_bytes"] = r["imported"]
    results["device.health.report_heap_bytes"] = r["report"]
    results["device.health.tag_heap_bytes"] = r["tag"]
    results["device.health.report_ms"] = round(r["ms"], 3)
    say(f"device health: report {r['size']} B, health.mpy {results['device.health.mpy_bytes']} B, "
        f"heap {r['peak']} B per report+tag (upper bound), import {r['imported']} B, {r['ms']:.3f} ms per report "
        f"(unix port, esp32 heap)")


if __name__ == "__main__":
    out = {}
    run(out, lambda m: print(m, file=sys.stderr))
    print(json.dumps(out, indent=1))
