"""`make bench`: every benchmark, written to bench/results.json (one flat object of numbers).

How each number is taken (see also bench/README.md):
- device.*: the firmware compiled as shipped (tools/build.py, mpy-cross -O MPY_OPT) and run on the
  MicroPython unix port with the esp32 profile's heap (bench/device_binauth.py). Times are medians on
  the unix port of this host, not of a board.
- verifier.binauth.udp_*: `janua serve` pinned to CPU 0 (taskset), 10,000 registered active devices,
  load from bench/loadgen.c pinned to CPU 1. Peak = closed loop with 64 requests in flight; p99 = open
  loop at 80% of the peak. The reference verifier.limit.udp_echo_per_s is a bare asyncio UDP echo on
  the same harness in the same run.
- verifier.binauth.http_per_s: wrk (one thread, 32 connections, pinned to CPU 1) posting the 20-byte
  requests; reference verifier.limit.http_hello_per_s is a bare aiohttp handler, same harness.
- verifier.dtls.handshakes_per_s / peer.mbedtls.dtls.handshakes_per_s: full DTLS 1.2 PSK handshakes
  (CCM_8, cookie exchange) from bench/dtls_loadgen.c (OpenSSL, 16 concurrent clients, CPU 1) against
  `janua serve`'s DTLS endpoint and bench/mbedtls_dtls_server.py, each pinned to CPU 0, same run.
- verifier.provision.psk_per_s: verifier.registry.provision_bulk of 100,000 devices into a fresh
  SQLite file (WAL), in batches of 5,000, in this process.
"""

import hmac
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import (PY, ROOT, WORK, Pinned, build_dtls_loadgen, dtls_loadgen, loadgen, udp_peak_and_p99,
                           wrk)

N_DEVICES = 10_000

# Feature benchmarks in their own modules: each has run(results, say) and adds its keys.
FEATURE_BENCHES = [
    "bench.x509",
    "bench.offline_device",
    "bench.claim_device",
    "bench.tokens",
    "bench.mqtt_device",
    "bench.attest",
    "bench.attest_device",
    "bench.tpm",
    "bench.fleet",
    "bench.console",
    "bench.scale",
    "bench.health_device",
    "bench.https_device",
    "bench.pg_invalidation",
    "bench.pg_binauth",
    "bench.pg_provision",
    "bench.claim",
]
ROUNDS = 30


def say(msg):
    print(f"[bench] {msg}", flush=True)


# ------------------------------------------------------------------ device

def bench_device(results):
    from tools.boards import micropython_cmd
    from tools.build import build_firmware, mpy_size
    with tempfile.TemporaryDirectory() as d:
        files = build_firmware(Path(d), "esp32")   # the esp32 board's own hal (issue #18), as flashed
        lib = Path(d) / "lib"
        needed = [lib / "janua" / n for n in ("__init__.mpy", "mac.mpy", "packet.mpy")]
        results["device.binauth.mpy_bytes"] = mpy_size(needed)
        results["device.firmware.mpy_bytes_total"] = mpy_size([Path(f[0]) for f in files
                                                               if str(f[0]).endswith(".mpy")])
        argv, env = micropython_cmd("esp32", ROOT / "bench" / "device_binauth.py", path=[lib])
        argv.append(str(ROOT / "docs" / "vectors" / "binauth.json"))
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=d)
        if out.returncode != 0:
            raise RuntimeError("device bench failed: " + out.stdout + out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
    results["device.binauth.peak_heap_bytes"] = r["peak_heap_bytes"]
    results["device.binauth.build_us"] = round(r["build_us"], 2)
    say(f"device: {results['device.binauth.mpy_bytes']} mpy bytes, {r['peak_heap_bytes']} heap bytes, "
        f"{r['build_us']:.1f} us/build (unix port, esp32 heap {r['heap_total']})")


# ------------------------------------------------------------------ verifier setup

def setup_registry(db, kek_file):
    from verifier.registry import core as registry
    from verifier.keys import derive_key
    from verifier.store import SQLiteStorage
    kek = os.urandom(32)
    kek_file.write_text(kek.hex() + "\n")
    storage = SQLiteStorage(str(db))
    now = time.time()
    # Rate limits out of the way of a load generator that is one source address sending for every
    # device several times a second; the limiter still runs on every packet.
    policy = {"device_rate": {"capacity": 1e6, "refill_per_s": 1e6},
              "source_rate": {"capacity": 1e9, "refill_per_s": 1e9}}
    from verifier.registry.model import Policy
    tenant = registry.create_tenant(storage, "bench", now, policy=Policy.from_json(policy))
    rows = [{"serial_number": f"B-{i:06d}"} for i in range(N_DEVICES)]
    res = registry.provision_bulk(storage, kek, tenant["id"], rows, now=now, actor="bench")
    storage.close()
    with sqlite3.connect(db) as c:   # bench setup only: start the fleet active
        c.execute("UPDATE devices SET status = 'active'")
    keys = []
    for r in res["results"]:
        m = bytes.fromhex(r["master_secret"])
        keys.append((bytes.fromhex(r["device_id"]), derive_key(m, b"binauth"), derive_key(m, b"health")))
    return keys


class Packets:
    """Request files for the fleet: round r holds one request per device, timestamps strictly
    increasing per device across every file made (the verifier's replay rule)."""

    def __init__(self, keys, report=None):
        self.keys = keys
        self.last = 0
        self.report = report      # a health report piggy-backed on every request (docs/health.md 2.1)
        self.length = 20 if report is None else 20 + len(report) + 8

    def _one(self, d, k, kh, tsb):
        req = d + tsb + hmac.digest(k, d + tsb, "sha256")[:8]
        if self.report is None:
            return req
        return req + self.report + hmac.digest(kh, req + self.report, "sha256")[:8]

    def make(self, path, rounds=ROUNDS):
        base = max(int(time.time()), self.last + 1)
        with open(path, "wb") as f:
            for r in range(rounds):
                tsb = (base + r).to_bytes(4, "big")
                f.write(b"".join(self._one(d, k, kh, tsb) for d, k, kh in self.keys))
        self.last = base + rounds - 1
        return path


def serve_argv(db, kek_file, udp=True):
    return [PY, "-m", "tools", "serve", "--db", str(db), "--kek-file", str(kek_file),
            "--http-port", "0", "--udp-port", "0" if udp else "-1", "--dtls-port", "-1", "--source-rate", "1e9/1e9",
            "--log-level", "WARNING"]


def ports_of(line):
    import re
    m = re.search(r"http=[\d.]+:(\d+) udp=(?:[\d.]+:(\d+)|off)", line)
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


# ------------------------------------------------------------------ verifier benches

def bench_udp(results, db, kek_file, packets):
    with Pinned(serve_argv(db, kek_file), "janua serve:") as srv:
        _, uport = ports_of(srv.ready_line)
        # Warm the verifier's device cache (keys are unsealed and derived on first use).
        loadgen(uport, packets.make(WORK / "warm.bin", 2), 20, "closed", 64, 2.0)
        files = [packets.make(WORK / "udp1.bin"), packets.make(WORK / "udp2.bin")]
        peak, at80, rate = udp_peak_and_p99(uport, files, 20, any_reply=False)
    # The reference: a bare asyncio echo on the same harness, its peak and its p99 at 80% of that
    # peak, measured the same way, so the latency tail of the machine itself is visible.
    with Pinned([PY, str(ROOT / "bench" / "echo_server.py"), "0"], "ready") as echo:
        eport = int(echo.ready_line.split()[1])
        epeak, e80, erate = udp_peak_and_p99(eport, files, 20, any_reply=True)
    results["verifier.limit.udp_echo_per_s"] = round(epeak["received_per_s"], 1)
    results["verifier.limit.udp_echo_p99_ms"] = round(e80["p99_ms"], 3)
    results["verifier.binauth.udp_per_s"] = round(peak["ok_per_s"], 1)
    results["verifier.binauth.udp_p99_ms"] = round(at80["p99_ms"], 3)
    results["verifier.binauth.udp_p50_ms"] = round(at80["p50_ms"], 3)
    results["verifier.binauth.udp_p99_load_per_s"] = round(rate, 1)
    results["verifier.binauth.udp_ratio_to_echo"] = round(peak["ok_per_s"] / max(1, epeak["received_per_s"]), 3)
    bad = peak["received"] - peak["ok"] + at80["received"] - at80["ok"]
    say(f"udp echo reference: {epeak['received_per_s']:.0f}/s, p99 {e80['p99_ms']:.3f} ms at {erate:.0f}/s")
    say(f"udp binauth: {peak['ok_per_s']:.0f} ok/s (ratio {results['verifier.binauth.udp_ratio_to_echo']}), "
        f"p50 {at80['p50_ms']:.3f} ms, p99 {at80['p99_ms']:.3f} ms at {rate:.0f}/s; "
        f"non-OK replies {bad}, lost {peak['lost'] + at80['lost']}")


def _health_ok(http_port):
    # janua_health_reports_total{via="binauth"} by result, from the verifier's /metrics
    import re
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'^janua_health_reports_total\{([^}]*)\} ([0-9.e+]+)$', text, re.M):
        labels = dict(kv.split("=", 1) for kv in m.group(1).split(","))
        if labels.get("via") == '"binauth"':
            out[labels["result"].strip('"')] = float(m.group(2))
    return out


def bench_telemetry(results, db, kek_file, keys, packets):
    """Health reports (docs/health.md), two ways. Every report is the `full` vector report (46 bytes).

    verifier.telemetry.ingest_per_s: the ingest alone on one core (this process pinned to CPU 0), in
    process on the fleet's SQLite file, through the app's own objects (create_app; the alerts' baselines
    and the fleet's traffic counters hooked in as in `janua serve`): for each of the 10,000 devices, the
    piggy-back path of an accepted request (tag check under K_health, decode, recommendations and score,
    baselines, traffic, queue), and the write-behind flush of the round into the tables; median of 5 rounds
    after a warm-up. The binary-auth decision itself is not in it.

    verifier.telemetry.udp_piggyback_per_s: end to end, every request of the fleet carrying the report and its
    tag (74-byte datagrams) to `janua serve` pinned to CPU 0, the same load generator as bench_udp, closed
    loop; counts OK replies (each an accepted request whose report was ingested: /metrics afterwards must show
    every report accepted, `ingest_refused` counts the others). Its reference is the bare echo of the same
    datagrams, same harness, same run (`udp_echo_per_s`)."""
    vec = json.loads((ROOT / "docs" / "vectors" / "health.json").read_text())
    report = bytes.fromhex(next(r["report"] for r in vec["reports"] if r["name"] == "full"))
    results["verifier.telemetry.ingest_per_s"] = round(_ingest_in_process(db, kek_file, keys, report, packets), 1)
    tp = Packets(keys, report)
    tp.last = packets.last
    with Pinned(serve_argv(db, kek_file), "janua serve:") as srv:
        hport, uport = ports_of(srv.ready_line)
        loadgen(uport, tp.make(WORK / "twarm.bin", 2), tp.length, "closed", 64, 2.0)
        peak = loadgen(uport, tp.make(WORK / "tele.bin"), tp.length, "closed", 64, 4.0)
        counts = _health_ok(hport)
    with Pinned([PY, str(ROOT / "bench" / "echo_server.py"), "0"], "ready") as echo:
        eport = int(echo.ready_line.split()[1])
        epeak = loadgen(eport, WORK / "tele.bin", tp.length, "closed", 64, 4.0, True)
    packets.last = tp.last
    results["verifier.telemetry.udp_piggyback_per_s"] = round(peak["ok_per_s"], 1)
    results["verifier.telemetry.udp_echo_per_s"] = round(epeak["received_per_s"], 1)
    results["verifier.telemetry.udp_ratio_to_echo"] = round(peak["ok_per_s"] / max(1, epeak["received_per_s"]), 3)
    results["verifier.telemetry.ingest_refused"] = int(sum(v for k, v in counts.items() if k != "ok"))
    say(f"telemetry: ingest {results['verifier.telemetry.ingest_per_s']:.0f} reports/s on one core in process; "
        f"end to end {peak['ok_per_s']:.0f} reports/s piggy-backed on UDP binary auth (echo of the same "
        f"{tp.length}-byte datagrams {epeak['received_per_s']:.0f}/s, ratio {results['verifier.telemetry.udp_ratio_to_echo']}); "
        f"/metrics: {int(counts.get('ok', 0))} accepted, {results['verifier.telemetry.ingest_refused']} refused")


def _ingest_in_process(db, kek_file, keys, report, packets, rounds=5):
    import asyncio
    from aiohttp import web
    from verifier.app import create_app
    from verifier.appkeys import CORE, HEALTH
    from verifier.config import Config
    from verifier.health.core import piggyback_tag

    async def go():
        app = create_app(Config(db_path=str(db), kek=bytes.fromhex(kek_file.read_text().strip()), http_port=0,
                                source_capacity=1e9, source_refill_per_s=1e9))
        runner = web.AppRunner(app)
        await runner.setup()            # the features' contexts: health, alerts, fleet hooked in
        try:
            core, ingest = app[CORE], app[HEALTH]
            warm = packets.make(WORK / "iwarm.bin", 1).read_bytes()
            now = time.time()
            for i in range(0, len(warm), 20):                  # loads every device into the cache
                core.decide(warm[i:i + 20], ("127.0.0.1", 9), now, "bench")
            core.flush()
            items = []
            for d, _, _ in keys:
                st = core._cache[d]
                req = os.urandom(20)
                items.append((st, req, report + piggyback_tag(st.health_key, req, report)))
            sink = ingest.piggyback
            rates = []
            for r in range(rounds + 1):
                t0 = time.perf_counter()
                for st, req, rest in items:
                    sink(st, req, rest, now + r, "udp")
                ingest.flush()
                dt = time.perf_counter() - t0
                if r:                   # round 0 warms (K_health derived, baselines read)
                    rates.append(len(items) / dt)
            return statistics.median(rates), rates
        finally:
            await runner.cleanup()

    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        med, rates = asyncio.run(go())
    finally:
        os.sched_setaffinity(0, before)
    say(f"telemetry ingest in process: {[round(x) for x in rates]} reports/s, median {med:.0f}")
    return med


def bench_http(results, db, kek_file, packets, rounds=5):
    """Both servers up at once (only one loaded at a time); wrk runs alternate between them and
    each side's median is kept, so a slow patch of the machine hits both sides alike."""
    script = ROOT / "bench" / "binauth.lua"
    hport = 47000 + os.getpid() % 1000
    ref, got, other = [], [], 0
    with Pinned([PY, str(ROOT / "bench" / "hello_server.py"), str(hport)], "ready"), \
            Pinned(serve_argv(db, kek_file, udp=False), "janua serve:") as srv:
        port, _ = ports_of(srv.ready_line)
        wrk(f"http://127.0.0.1:{port}", seconds=1, script=script,
            env={"JANUA_PACKETS": str(packets.make(WORK / "hwarm.bin", 2))})
        for _ in range(rounds):
            f = packets.make(WORK / "hello.bin", 10)
            h = wrk(f"http://127.0.0.1:{hport}", script=script, env={"JANUA_PACKETS": str(f)})
            ref.append(h["requests"] / h["seconds"])
            f = packets.make(WORK / "http.bin", 10)
            r = wrk(f"http://127.0.0.1:{port}", script=script, env={"JANUA_PACKETS": str(f)})
            got.append(r["ok"] / r["seconds"])
            other += r["other"]
    # the same over TLS (janua serve --tls-cert, a P-256 certificate): wrk keeps its 32 connections open, so
    # this is requests on established TLS sessions; a board makes one connection (one handshake) per request
    cert, key = _bench_cert(WORK)
    tls_got = []
    with Pinned(serve_argv(db, kek_file, udp=False) + ["--tls-cert", str(cert), "--tls-key", str(key)],
                "janua serve:") as srv:
        port, _ = ports_of(srv.ready_line)
        for _ in range(3):
            f = packets.make(WORK / "https.bin", 10)
            r = wrk(f"https://127.0.0.1:{port}", script=script, env={"JANUA_PACKETS": str(f)})
            tls_got.append(r["ok"] / r["seconds"])
            other += r["other"]
    results["verifier.binauth.https_per_s"] = round(statistics.median(tls_got), 1)
    results["verifier.limit.http_hello_per_s"] = round(statistics.median(ref), 1)
    results["verifier.binauth.http_per_s"] = round(statistics.median(got), 1)
    results["verifier.binauth.http_ratio_to_hello"] = round(
        results["verifier.binauth.http_per_s"] / max(1, results["verifier.limit.http_hello_per_s"]), 3)
    say(f"http: binauth {results['verifier.binauth.http_per_s']:.0f} ok/s ({other} non-200), "
        f"bare handler {results['verifier.limit.http_hello_per_s']:.0f}/s, ratio "
        f"{results['verifier.binauth.http_ratio_to_hello']} (medians of {rounds} alternating runs: "
        f"{[round(x) for x in got]} vs {[round(x) for x in ref]}); over TLS (kept-alive connections) "
        f"{results['verifier.binauth.https_per_s']:.0f} ok/s ({[round(x) for x in tls_got]})")


def _bench_cert(d):
    # a P-256 certificate for 127.0.0.1 and its key (0600), made for this run
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
         .serial_number(1).not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
         .sign(k, hashes.SHA256()))
    cert, key = d / "bench_tls.pem", d / "bench_tls.key"
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.unlink(missing_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return cert, key


def bench_dtls(results, clients=16, seconds=4.0, rounds=3):
    """Full DTLS 1.2 PSK handshakes (cookie exchange included, CCM_8) per second: `janua serve`'s DTLS
    endpoint and the python-mbedtls peer (bench/mbedtls_dtls_server.py), each pinned to CPU 0, driven by
    the same OpenSSL load generator (bench/dtls_loadgen.c) pinned to CPU 1, alternating `rounds` times;
    medians kept."""
    import re
    from verifier.registry import core as registry
    from verifier.dtls.auth import psk_for
    from verifier.store import SQLiteStorage
    db, kek_file = WORK / "dtls.db", WORK / "dtls.kek"
    for p in WORK.glob("dtls.db*"):
        p.unlink()
    kek = os.urandom(32)
    kek_file.write_text(kek.hex() + "\n")
    storage = SQLiteStorage(str(db))
    tenant = registry.create_tenant(storage, "bench", time.time())
    r = registry.provision_bulk(storage, kek, tenant["id"], [{"serial_number": "D-1"}], actor="bench")["results"][0]
    did = bytes.fromhex(r["device_id"])
    storage.update_device(tenant["id"], did, {"status": "active"})
    storage.close()
    identity, psk = f"{r['device_id']}@bench", psk_for(bytes.fromhex(r["master_secret"])).hex()
    exe = build_dtls_loadgen()
    argv = [PY, "-m", "tools", "serve", "--db", str(db), "--kek-file", str(kek_file), "--http-port", "0",
            "--udp-port", "-1", "--dtls-port", "0", "--log-level", "WARNING"]
    peer_port = 47500 + os.getpid() % 400
    got, ref = [], []
    with Pinned(argv, "janua serve:") as srv, \
            Pinned([PY, str(ROOT / "bench" / "mbedtls_dtls_server.py"), str(peer_port), identity, psk], "ready"):
        vport = int(re.search(r"dtls=[\d.]+:(\d+)", srv.ready_line).group(1))
        dtls_loadgen(exe, vport, identity, psk, clients, 1.0)      # warm-up
        for _ in range(rounds):
            got.append(dtls_loadgen(exe, vport, identity, psk, clients, seconds))
            ref.append(dtls_loadgen(exe, peer_port, identity, psk, clients, seconds))
    med = lambda runs, k: statistics.median(x[k] for x in runs)
    results["verifier.dtls.handshakes_per_s"] = round(med(got, "handshakes_per_s"), 1)
    results["peer.mbedtls.dtls.handshakes_per_s"] = round(med(ref, "handshakes_per_s"), 1)
    results["verifier.dtls.ratio_to_mbedtls"] = round(
        results["verifier.dtls.handshakes_per_s"] / max(1, results["peer.mbedtls.dtls.handshakes_per_s"]), 3)
    say(f"dtls: verifier {results['verifier.dtls.handshakes_per_s']:.0f} handshakes/s "
        f"(p50 {med(got, 'p50_ms'):.2f} ms, failures {sum(x['failures'] for x in got)}, load cpu {med(got, 'cpu_share')}), "
        f"python-mbedtls {results['peer.mbedtls.dtls.handshakes_per_s']:.0f}/s (p50 {med(ref, 'p50_ms'):.2f} ms, "
        f"failures {sum(x['failures'] for x in ref)}, load cpu {med(ref, 'cpu_share')}); ratio "
        f"{results['verifier.dtls.ratio_to_mbedtls']}; {clients} clients, medians of {rounds} alternating runs")


def bench_provision(results):
    from verifier.registry import core as registry
    from verifier.store import SQLiteStorage
    db = WORK / "provision.db"
    for p in WORK.glob("provision.db*"):
        p.unlink()
    storage = SQLiteStorage(str(db))
    kek = os.urandom(32)
    tenant = registry.create_tenant(storage, "prov", time.time())
    n, batch = 100_000, 5_000
    t0 = time.perf_counter()
    created = 0
    for start in range(0, n, batch):
        rows = [{"serial_number": f"P-{i:07d}", "model_id": "m1"} for i in range(start, start + batch)]
        created += registry.provision_bulk(storage, kek, tenant["id"], rows, actor="bench")["summary"]["created"]
    dt = time.perf_counter() - t0
    storage.close()
    results["verifier.provision.psk_per_s"] = round(created / dt, 1)
    say(f"provisioning: {created} devices in {dt:.2f} s = {created / dt:.0f}/s")


def bench_hmac_reference(results):
    key, msg = os.urandom(32), os.urandom(12)
    n = 200_000
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            hmac.digest(key, msg, "sha256")
        times.append(time.perf_counter() - t0)
    results["verifier.limit.hmac_per_s"] = round(n / statistics.median(times), 1)


def bench_script(results, name, label):
    """Run a device benchmark script of bench/ that prints one JSON object of keys."""
    out = subprocess.run([PY, str(ROOT / "bench" / name)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: " + out.stdout + out.stderr)
    r = json.loads(out.stdout[out.stdout.index("{"):])
    results.update({k: v for k, v in r.items() if isinstance(v, (int, float))})
    say(f"{label}: " + ", ".join(f"{k.split('.', 2)[-1]}={v}" for k, v in r.items()))


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    results = {}
    only = sys.argv[1:] == ["telemetry"]    # `python -m bench.run telemetry`: UDP and telemetry alone, printed
    if not only:
        bench_device(results)
        bench_script(results, "ota_device.py", "ota device")
        bench_script(results, "flash_wear_device.py", "flash wear")
        bench_script(results, "dtls_device.py", "dtls device")
        bench_hmac_reference(results)
        bench_provision(results)
    db, kek_file = WORK / "fleet.db", WORK / "fleet.kek"
    for p in WORK.glob("fleet.db*"):
        p.unlink()
    say(f"registering {N_DEVICES} devices")
    keys = setup_registry(db, kek_file)
    packets = Packets(keys)
    bench_udp(results, db, kek_file, packets)
    bench_telemetry(results, db, kek_file, keys, packets)
    if only:
        print(json.dumps(results, indent=1, sort_keys=True))
        return
    bench_http(results, db, kek_file, packets)
    bench_dtls(results)
    import importlib
    for name in FEATURE_BENCHES:
        importlib.import_module(name).run(results, say)
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    say(f"wrote {out}")
    print(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
