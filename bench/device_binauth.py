# Runs ON the MicroPython unix port (esp32 profile heap) from bench/run.py.
# Prints one JSON line: peak heap growth of one authentication (build a request, check a reply)
# and the median time to build a request. Inputs come from the vectors file (argv[1]).
import gc
import json
import sys
import time

from janua import mac as _mac
from janua import packet

with open(sys.argv[1]) as f:
    V = json.load(f)
key = bytes.fromhex(V["derived_keys"]["binauth"])
ok = V["replies"][0]
dev = bytes.fromhex(V["requests"][0]["device_id"])
ts = V["requests"][0]["timestamp"]
reply = bytes.fromhex(ok["reply"])
m = _mac.HMAC(key)
buf = bytearray(20)  # the request buffer a board keeps for its lifetime


def one_auth():
    req = packet.encode_request(dev, ts, m, buf)
    return packet.decode_reply(req, reply, m)


one_auth()  # warm: first-call allocations (interned names, method caches) are not per-auth costs
# Peak: with the collector disabled nothing is freed, so the growth of mem_alloc() across the
# operation is the sum of everything it allocated, an upper bound of its peak live heap.
peak = 0
for _ in range(5):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    one_auth()
    grown = gc.mem_alloc() - before
    gc.enable()
    peak = max(peak, grown)

times = []
for _ in range(7):
    gc.collect()
    t0 = time.ticks_us()
    for _ in range(1000):
        packet.encode_request(dev, ts, m, buf)
    times.append(time.ticks_diff(time.ticks_us(), t0) / 1000)
times.sort()
print(json.dumps({"peak_heap_bytes": peak, "build_us": times[3], "heap_total": gc.mem_free() + gc.mem_alloc()}))
