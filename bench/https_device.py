"""HTTPS numbers for `make bench` (bench/run.py runs it; alone: `python bench/https_device.py`, prints JSON). The
board is the MicroPython unix port with the esp32 profile's heap, running the firmware as shipped (.mpy), against
a CPython server on loopback answering binary auth (POST /v1/binauth) over TLS 1.2+ (a P-256 certificate from a
CA made for the run) and, beside it, the same server over plain HTTP.

- device.https.peak_heap_bytes: GC heap used by one binary auth over HTTPS (janua.https.context() with the
  CA, TCP connect, TLS handshake, request, reply): gc.mem_alloc() growth with the collector off, from a
  gc.collect() to the verdict, an upper bound of the peak; device.http.peak_heap_bytes: the same over plain
  HTTP, in the same run.
- device.https.native_heap_bytes: what the first HTTPS exchange made the process's data segment grow (VmData):
  mbedTLS allocates with libc malloc on the unix port (on an ESP32 from the IDF heap), outside the GC heap.
- device.https.connect_ms: median of 15 TCP connects + TLS handshakes (janua.https.wrap); unix port on this
  host, not a board. device.https.binauth_ms and device.http.binauth_ms: median of 15 whole binary auths.
- device.https.mpy_bytes: janua/https.mpy, which only a board with server.tls loads.
"""

import datetime
import hashlib
import hmac
import json
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.boards import micropython_cmd  # noqa: E402
from tools.build import build_firmware, mpy_size  # noqa: E402

MASTER = bytes(range(32))
DEV = "3f9a0c1b7d2e4a65"
ROUNDS = 15


def _key():
    prk = hmac.new(b"janua/v1", MASTER, hashlib.sha256).digest()
    return hmac.new(prk, b"binauth\x01", hashlib.sha256).digest()


def _pki(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ck = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("bench CA")).issuer_name(name("bench CA"))
          .public_key(ck.public_key()).serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ck, hashes.SHA256()))
    sk = ec.generate_private_key(ec.SECP256R1())
    srv = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
           .public_key(sk.public_key()).serial_number(2).not_valid_before(now - datetime.timedelta(days=1))
           .not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
           .sign(ck, hashes.SHA256()))
    (d / "srv.pem").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (d / "srv.key").write_bytes(sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.DER)


def _server(d, tls):
    key = _key()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            req = self.rfile.read(int(self.headers["Content-Length"]))
            body = struct.pack(">BI", 0, 1800000000) + struct.pack(">III", 7, 1800003600, 15)
            out = body + hmac.new(key, req[:20] + body, hashlib.sha256).digest()[:8]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(d / "srv.pem", d / "srv.key")
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


SCRIPT = """
import gc, json, socket, time
from binascii import unhexlify
from janua.store import Store
from janua.clock import Clock
from janua.hkdf import derive
from janua.mac import HMAC
from janua.binauth import Client, DONE
from janua import http
TLS = %r
cfg = Store().load_config()
srv = cfg["server"]
mac = HMAC(derive(unhexlify(cfg["master_secret"]), "binauth"))
dev = unhexlify(cfg["device_id"])
if TLS:
    from janua import https

def vmdata():
    for ln in open("/proc/self/status"):
        if ln.startswith("VmData:"):
            return int(ln.split()[1]) * 1024
    return 0

def auth():
    ctx = https.context(cfg) if TLS else None
    c = Client(dev, mac, Clock())
    http.authenticate(c, srv["host"], srv["http_port"], 5.0, ctx)
    assert c.state == DONE, c.reason

gc.collect()
v0 = vmdata()
base = gc.mem_alloc()
gc.disable()
auth()
grown = gc.mem_alloc() - base
gc.enable()
native = vmdata() - v0
ts, cs = [], []
for i in range(%d):
    gc.collect()
    t = time.ticks_us()
    auth()
    ts.append(time.ticks_diff(time.ticks_us(), t))
    if TLS:
        ctx = https.context(cfg)
        s = socket.socket()
        s.connect(socket.getaddrinfo(srv["host"], srv["http_port"])[0][-1])
        t = time.ticks_us()
        s = https.wrap(s, ctx, srv["host"])
        cs.append(time.ticks_diff(time.ticks_us(), t))
        s.close()
ts.sort()
cs.sort()
print(json.dumps({"grown": grown, "native": native, "ms": ts[len(ts) // 2] / 1000,
                  "connect_ms": cs[len(cs) // 2] / 1000 if cs else None}))
"""


def _board(d, port, tls, ca):
    flash = d / ("flash-tls" if tls else "flash-plain")
    flash.mkdir()
    (flash / "janua.json").write_text(json.dumps({"device_id": DEV, "master_secret": MASTER.hex(), "tenant": "b",
                                                  "server": {"host": "localhost", "http_port": port, "tls": tls}}))
    (flash / "janua_server_ca.der").write_bytes(ca)
    path = d / ("bench_https_%s.py" % tls)
    path.write_text(SCRIPT % (tls, ROUNDS))
    argv, env = micropython_cmd("esp32", path, path=[d / "lib"])
    p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("https bench failed: " + p.stdout + p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def run(results, say):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        build_firmware(d, "unix", main_file=d / "none")
        results["device.https.mpy_bytes"] = mpy_size([d / "lib" / "janua" / "https.mpy"])
        ca = _pki(d)
        s1, s2 = _server(d, True), _server(d, False)
        try:
            t = _board(d, s1.server_address[1], True, ca)
            p = _board(d, s2.server_address[1], False, ca)
        finally:
            s1.shutdown()
            s2.shutdown()
    results["device.https.peak_heap_bytes"] = t["grown"]
    results["device.http.peak_heap_bytes"] = p["grown"]
    results["device.https.native_heap_bytes"] = t["native"]
    results["device.https.connect_ms"] = round(t["connect_ms"], 2)
    results["device.https.binauth_ms"] = round(t["ms"], 2)
    results["device.http.binauth_ms"] = round(p["ms"], 2)
    say(f"device https: GC heap {t['grown']} B per binary auth over HTTPS (plain HTTP {p['grown']} B; gc off, upper "
        f"bounds), mbedTLS native ~{t['native']} B, connect+handshake {t['connect_ms']:.2f} ms, binary auth "
        f"{t['ms']:.2f} ms over HTTPS vs {p['ms']:.2f} ms plain (unix port, esp32 heap, loopback), "
        f"https.mpy {results['device.https.mpy_bytes']} B")


if __name__ == "__main__":
    out = {}
    run(out, lambda m: print(m, file=sys.stderr))
    print(json.dumps(out, indent=1))
