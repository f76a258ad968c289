"""Offline-chain and device-token numbers for `make bench` (bench/run.py runs it; alone:
`python bench/offline_device.py`; prints JSON). Firmware compiled as shipped (mpy-cross -O2) and run
on the MicroPython unix port with the esp32 profile's heap.

- device.offline.flash_write_bytes_per_use: bytes passed to write() through the firmware's file
  operations (janua.chain's fs, wrapped to count) during one offline authentication,
  Chain.present(): pick the token, persist it as used, send it. The HTTP answer comes from a
  one-shot responder in this process (the network part writes nothing to flash). Also checked by
  the size growth of chain.used.
- device.offline.peak_heap_bytes: token_for + mark_used on a 30-token chain: gc.collect(), then with
  the collector disabled the growth of gc.mem_alloc() across the operation (everything it allocates,
  an upper bound of its peak live heap); the largest of 5 runs after one warm-up.
- device.token.mpy_bytes: .mpy bytes of janua.token + janua.chain + janua.chainsync and the janua modules they import
  (__init__, store, http, binauth, packet, mac, hkdf).
"""

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.boards import COUNTING_FS, FIRMWARE_DIR, micropython_cmd  # noqa: E402
from tools.build import compile_mpy, mpy_size  # noqa: E402

MODULES = ["__init__", "token", "chain", "chainsync", "store", "http", "httpreq", "binauth", "packet", "mac", "hkdf"]
DEV = "3f9a0c1b7d2e4a65"
T0 = 1_767_225_600

SCRIPT = """
import gc, json, os
from binascii import unhexlify
from janua.chain import Chain
from janua.store import PosixFS
import sys
DEV = unhexlify(%r)
T0 = %d
port = int(sys.argv[1]) if len(sys.argv) > 1 else 0

%s
Chain(DEV).top_up(json.load(open("new.json")), 86400, 86400, T0)
fs = Counting()
ch = Chain(DEV, fs=fs)
size0 = os.stat("chain.used")[6] if "chain.used" in os.listdir() else 0
out = ch.present("http://127.0.0.1:%%d" %% port, T0 + 40000)
flash = fs.written
grown = os.stat("chain.used")[6] - size0

def use(day):
    i, slot = ch.token_for(T0 + day * 86400 + 40000, 300)
    ch.mark_used(i)

use(1)   # warm: first-call allocations are not per-use costs
peak = 0
for day in range(2, 7):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    use(day)
    peak = max(peak, gc.mem_alloc() - before)
    gc.enable()
print(json.dumps({"flash": flash, "grown": grown, "ok": out.get("ok"), "peak": peak,
                  "heap_total": gc.mem_free() + gc.mem_alloc()}))
"""


def _tokens(n=30):
    out, link = [], bytes(16)
    import hashlib
    for i in range(n):
        nbf = T0 + i * 86400
        body = struct.pack(">B4s8sHII4s16s", 1, b"\x01\x02\x03\x04", bytes.fromhex(DEV), i, nbf, nbf + 86400,
                           b"tnt1", link)
        t = body + os.urandom(64)   # the device never checks the signature; its size is what counts
        out.append(t.hex())
        link = hashlib.sha256(t).digest()[:16]
    return out


def _responder():
    """One HTTP answer {"ok": true, ...} to one request, as an edge would give it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def serve():
        c, _ = s.accept()
        got = b""
        while b"}" not in got:
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        body = json.dumps({"ok": True, "device_id": DEV, "index": 0, "next_index": 1,
                           "next_nbf": T0 + 86400}).encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(body) + body)
        c.close()
        s.close()
    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


def run(results, say):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        lib = d / "lib"
        mpys = [compile_mpy(FIRMWARE_DIR / "janua" / f"{m}.py", lib / "janua" / f"{m}.mpy", f"janua/{m}.py")
                for m in MODULES]
        results["device.token.mpy_bytes"] = mpy_size(mpys)
        flash = d / "flash"
        flash.mkdir()
        (flash / "new.json").write_text(json.dumps(_tokens()))
        (d / "s.py").write_text(SCRIPT % (DEV, T0, COUNTING_FS))
        argv, env = micropython_cmd("esp32", d / "s.py", path=[lib])
        argv.append(str(_responder()))
        p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("offline device bench failed: " + p.stdout + p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["flash"] != r["grown"] or r["ok"] is not True:
        raise RuntimeError("offline device bench: inconsistent %r" % r)
    results["device.offline.flash_write_bytes_per_use"] = r["flash"]
    results["device.offline.peak_heap_bytes"] = r["peak"]
    say(f"device offline: {r['flash']} flash bytes/use, {r['peak']} heap bytes (token_for + mark_used), "
        f"{results['device.token.mpy_bytes']} mpy bytes token+chain+deps (unix port, esp32 heap {r['heap_total']})")


if __name__ == "__main__":
    res = {}
    run(res, lambda m: print(m, file=sys.stderr))
    print(json.dumps(res, indent=1))
