"""Scale (issue #15): the binary-auth path with 1,000 and with 1,000,000 registered devices, on SQLite and on
PostgreSQL (run_pg, verifier.scale.pg.*: the same measurements, see measure_pg and bench/README.md).

verifier.scale.cpu_us_1k, verifier.scale.cpu_us_1m: `janua serve` (default settings: the device cache
bounded at --auth-cache-devices 200,000) pinned to CPU 0, bench/loadgen.c pinned to CPU 1, closed loop, 64
in flight, 4 s, valid requests over distinct devices (every device of the 1,000; 100,000 of the
1,000,000, every tenth, so they spread over the whole file): the server process's CPU time (utime + stime
from /proc/<pid>/stat) over the run divided by the requests it accepted in it (the OK count of its
/metrics, read before and after: so neither the warm-up exclusion of the load generator nor the scrapes
themselves are in it). verifier.scale.cpu_ratio_1m_to_1k is their ratio (goal <= 1.1).
verifier.scale.udp_p50_ms_*, udp_p99_ms_*: open loop at 80 % of that run's peak (bench/harness.py).
verifier.scale.cpu_us_cold_*: the same CPU per accepted request over the warm-up pass, which is each
active device's first request (device row read, unseal, key derivation): what a cache miss costs.
verifier.scale.rss_bytes_1m: the server's VmRSS after that pass, 100,000 distinct devices of 1,000,000
authenticated (goal <= 300 MB); rss_bytes_1k the same with 1,000.

The registries are built once with verifier.registry.provision_bulk (calls of 5,000 rows, every device
then set active, a tenant whose rate limits are out of the way and whose drift window is a day, so the
packet files may hold timestamps minutes ahead) and kept in bench/work, named by a hash of the code that
makes them (`_build` and its settings here, verifier/registry, verifier/store.py, verifier/keys.py): a
change there builds them again. Beside each .db: its KEK and the devices' binary-auth keys (8-byte id +
32-byte key per device), both secrets, so files created 0600 and never overwritten. Each run adds one audit
row per accepted request to them. verifier.scale.provision_s_1m: the build time of the 1,000,000 registry
when this run built it (about 105 s here).
"""

import hashlib
import inspect
import os
import re
import socket
import sqlite3
import time
import urllib.request

from bench.harness import LOAD_CPU, ROOT, WORK, Pinned, loadgen

SIZES = (1_000, 1_000_000)
ACTIVE_MAX = 100_000            # distinct devices sent to at the larger size
BATCH = 5_000
PER_FILE = 250_000              # requests per load file: more than a 4 s run sends, so no file wraps (replays)
WINDOW = 64
POLICY = {"device_rate": {"capacity": 1e6, "refill_per_s": 1e6},
          "source_rate": {"capacity": 1e9, "refill_per_s": 1e9}, "drift_s": 86400}


def code_key():
    h = hashlib.sha256((inspect.getsource(_build) + repr((POLICY, BATCH))).encode())
    paths = [ROOT / "verifier" / "store.py", ROOT / "verifier" / "keys.py"]
    paths += sorted((ROOT / "verifier" / "registry").glob("*.py"))
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def _build(n, db, kek_file, keys_file):
    from verifier import secretfile
    from verifier.keys import LABEL_BINAUTH, derive_key
    from verifier.registry import core as registry
    from verifier.registry.model import Policy
    from verifier.store import SQLiteStorage
    kek = os.urandom(32)
    storage = SQLiteStorage(str(db))
    tenant = registry.create_tenant(storage, "scale", time.time(), policy=Policy.from_json(POLICY))
    keys = bytearray()
    for start in range(0, n, BATCH):
        rows = [{"serial_number": f"S-{i:07d}"} for i in range(start, min(n, start + BATCH))]
        for r in registry.provision_bulk(storage, kek, tenant["id"], rows, actor="bench")["results"]:
            keys += bytes.fromhex(r["device_id"]) + derive_key(bytes.fromhex(r["master_secret"]), LABEL_BINAUTH)
    storage.close()
    with sqlite3.connect(db) as c:          # bench setup only: the fleet starts active
        c.execute("UPDATE devices SET status = 'active'")
    SQLiteStorage(str(db)).close()          # anything the storage builds at open is built now, not in serve
    secretfile.write_new(kek_file, (kek.hex() + "\n").encode())
    secretfile.write_new(keys_file, bytes(keys))


def registry_for(n, say):
    """(db, kek file, [(device id, key)] of the devices to send to, seconds it took to build or None if reused)."""
    WORK.mkdir(parents=True, exist_ok=True)
    stem = f"scale{n}-{code_key()}"
    db, kek_file, keys_file = (WORK / (stem + ext) for ext in (".db", ".kek", ".keys"))
    built = None
    if not keys_file.exists():              # written last: without it the rest is a build that did not finish
        for p in WORK.glob(f"scale{n}-*"):  # an earlier build, or one of other code
            p.unlink()
        say(f"scale: registering {n:,} devices into {db.name}")
        t = time.perf_counter()
        _build(n, db, kek_file, keys_file)
        built = time.perf_counter() - t
    raw = keys_file.read_bytes()
    step = 40 * max(1, n // ACTIVE_MAX)     # every device, or every tenth of the 1,000,000
    return db, kek_file, [(raw[i:i + 8], raw[i + 8:i + 40]) for i in range(0, len(raw), step)], built


def _cpu_s(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")     # utime, stime


def _rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _accepted(http_port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=30).read().decode()
    for m in re.finditer(r'^janua_auth_decisions_total\{([^}]*)\} ([0-9.e+]+)$', text, re.M):
        if sorted(m.group(1).split(",")) == ['result="OK"', 'transport="udp"']:
            return int(float(m.group(2)))
    return 0


def _warm(port, packets):
    """One request per device, WINDOW in flight, from this process pinned to LOAD_CPU; returns the OK count."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(5)
    ok = 0
    try:
        for i in range(0, len(packets), 20 * WINDOW):
            chunk = packets[i:i + 20 * WINDOW]
            for j in range(0, len(chunk), 20):
                s.send(chunk[j:j + 20])
            for _ in range(len(chunk) // 20):
                ok += s.recv(64)[0] == 0
    finally:
        s.close()
        os.sched_setaffinity(0, before)
    return ok


def _last_ts(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT coalesce(max(last_ts), 0) FROM auth_state").fetchone()[0]


def measure(n, say):
    from bench.run import Packets
    db, kek_file, active, built = registry_for(n, say)
    packets = Packets([(d, k, None) for d, k in active])
    packets.last = _last_ts(db)             # a registry kept from an earlier run holds later timestamps
    warm_file = packets.make(WORK / "scale_warm.bin", 1)
    rounds = -(-PER_FILE // len(active))
    files = [packets.make(WORK / "scale1.bin", rounds), packets.make(WORK / "scale2.bin", rounds)]
    try:
        out = _load(db, kek_file, active, warm_file, files)
    finally:
        for p in (warm_file, *files):
            p.unlink()
    out["built"] = built
    out["active"] = len(active)
    return out


def _load(db, kek_file, active, warm_file, files, cluster_cpu=lambda: 0.0):
    """cluster_cpu: the CPU seconds of the database's processes (PostgreSQL), added to the server's."""
    from bench.run import ports_of, serve_argv
    out = {}
    with Pinned(serve_argv(db, kek_file), "janua serve:", timeout=300) as srv:
        hport, uport = ports_of(srv.ready_line)
        pid = srv.proc.pid
        cpu = lambda: _cpu_s(pid) + cluster_cpu()
        a0, c0 = _accepted(hport), cpu()
        warmed = _warm(uport, warm_file.read_bytes())
        c1, a1 = cpu(), _accepted(hport)
        if warmed != len(active) or a1 - a0 != len(active):
            raise RuntimeError(f"scale: warm-up accepted {warmed} (metrics {a1 - a0}) of {len(active)}")
        out["rss"] = _rss(pid)
        out["cold_us"] = (c1 - c0) * 1e6 / (a1 - a0)
        a0, c0 = _accepted(hport), cpu()
        peak = loadgen(uport, files[0], 20, "closed", WINDOW, 4.0)
        c1, a1 = cpu(), _accepted(hport)
        out["cpu_us"] = (c1 - c0) * 1e6 / max(1, a1 - a0)
        out["peak"] = peak["ok_per_s"]
        rate = max(1.0, 0.8 * peak["ok_per_s"])
        at80 = loadgen(uport, files[1], 20, "open", rate, 4.0)
        out["p50"], out["p99"] = at80["p50_ms"], at80["p99_ms"]
        out["bad"] = peak["received"] - peak["ok"] + at80["received"] - at80["ok"] + peak["lost"] + at80["lost"]
        out["wrapped"] = peak["wrapped"] + at80["wrapped"]
    return out


def _pg_registry(n, url, kek_file):
    """A registry of `n` devices in the PostgreSQL database `url` (provision_bulk in calls of BATCH: COPY), left as
    provisioned (a bulk UPDATE of a million rows would run every row's triggers); the KEK written to kek_file.
    [(device id, key)] of the devices to send to (as registry_for), and the seconds it took."""
    from verifier import secretfile
    from verifier.keys import LABEL_BINAUTH, derive_key
    from verifier.registry import core as registry
    from verifier.registry.model import Policy
    from verifier.store_pg import PGStorage
    kek = os.urandom(32)
    t = time.perf_counter()
    storage = PGStorage(url)
    tenant = registry.create_tenant(storage, "scale", time.time(), policy=Policy.from_json(POLICY))
    step = max(1, n // ACTIVE_MAX)
    active = []
    for start in range(0, n, BATCH):
        rows = [{"serial_number": f"S-{i:07d}"} for i in range(start, min(n, start + BATCH))]
        res = registry.provision_bulk(storage, kek, tenant["id"], rows, actor="bench")["results"]
        active += [(bytes.fromhex(r["device_id"]), derive_key(bytes.fromhex(r["master_secret"]), LABEL_BINAUTH))
                   for r in res[::step]]
    storage._db.execute("VACUUM ANALYZE")     # what an operator runs after a bulk load (autovacuum would, later)
    storage.close()
    secretfile.write_new(kek_file, (kek.hex() + "\n").encode())
    return active, time.perf_counter() - t


def _cluster_cpu(cluster):
    from pathlib import Path
    pid = int((Path(cluster.datadir) / "postmaster.pid").read_text().split()[0])
    total = _cpu_s(pid)
    for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
        try:
            total += _cpu_s(child)
        except OSError:           # a backend that has just exited
            pass
    return total


def measure_pg(n, cluster, say):
    """measure() on PostgreSQL: a fresh database of `cluster` with `n` devices. The devices sent to are first
    activated by one request each to a server started for that alone (their first OK), so that the measured warm-up
    pass is again each device's first request to a server with an empty cache, as on SQLite."""
    import tempfile
    from bench.run import Packets, ports_of, serve_argv
    from tests.pgcluster import fresh_database
    url = fresh_database(cluster.url)
    secrets = tempfile.mkdtemp(prefix="janua-scale-pg-")
    kek_file = os.path.join(secrets, "kek")
    say(f"scale pg: registering {n:,} devices")
    active, built = _pg_registry(n, url, kek_file)
    packets = Packets([(d, k, None) for d, k in active])
    first = packets.make(WORK / "scale_pg_first.bin", 1)
    with Pinned(serve_argv(url, kek_file), "janua serve:", timeout=300) as srv:
        ok = _warm(ports_of(srv.ready_line)[1], first.read_bytes())
    if ok != len(active):
        raise RuntimeError(f"scale pg: activation accepted {ok} of {len(active)}")
    warm_file = packets.make(WORK / "scale_warm.bin", 1)
    rounds = -(-PER_FILE // len(active))
    files = [packets.make(WORK / "scale1.bin", rounds), packets.make(WORK / "scale2.bin", rounds)]
    try:
        out = _load(url, kek_file, active, warm_file, files, lambda: _cluster_cpu(cluster))
    finally:
        for p in (first, warm_file, *files):
            p.unlink()
        import shutil
        shutil.rmtree(secrets)
    out["built"] = built
    out["active"] = len(active)
    return out


def run_pg(results, say):
    """verifier.scale.pg.*: the same measurements on PostgreSQL (a private cluster, tests/pgcluster.py, pinned to the
    server's CPU as in bench/pg_binauth.py); the CPU per accepted request is the server's plus the database's."""
    try:
        from tests.pgcluster import PGCluster
    except ImportError as e:
        say(f"scale pg: skipped ({e})")
        return
    from bench.pg_binauth import pin_cluster
    cluster = PGCluster()
    try:
        cluster.start()
        pin_cluster(cluster)
        small, large = (measure_pg(n, cluster, say) for n in SIZES)
    finally:
        cluster.stop()
    for tag, m in (("1k", small), ("1m", large)):
        results[f"verifier.scale.pg.cpu_us_{tag}"] = round(m["cpu_us"], 2)
        results[f"verifier.scale.pg.cpu_us_cold_{tag}"] = round(m["cold_us"], 2)
        results[f"verifier.scale.pg.udp_per_s_{tag}"] = round(m["peak"], 1)
        results[f"verifier.scale.pg.udp_p50_ms_{tag}"] = round(m["p50"], 3)
        results[f"verifier.scale.pg.udp_p99_ms_{tag}"] = round(m["p99"], 3)
        results[f"verifier.scale.pg.rss_bytes_{tag}"] = m["rss"]
    results["verifier.scale.pg.cpu_ratio_1m_to_1k"] = round(large["cpu_us"] / small["cpu_us"], 3)
    results["verifier.scale.pg.provision_s_1m"] = round(large["built"], 1)
    for tag, m in (("1,000", small), ("1,000,000", large)):
        say(f"scale pg: {tag} registered, {m['active']:,} sending: {m['cpu_us']:.1f} us CPU (verifier + database) per "
            f"accepted request ({m['peak']:.0f} ok/s), p50 {m['p50']:.3f} ms, p99 {m['p99']:.3f} ms at 80 %; first "
            f"request {m['cold_us']:.1f} us; RSS {m['rss'] / 2**20:.1f} MiB; non-OK or lost {m['bad']}, wrapped "
            f"{m['wrapped']}")
    say(f"scale pg: CPU per accepted request 1M/1k = {results['verifier.scale.pg.cpu_ratio_1m_to_1k']}")


def run(results, say):
    run_sqlite(results, say)
    run_pg(results, say)


def run_sqlite(results, say):
    small, large = (measure(n, say) for n in SIZES)
    for tag, m in (("1k", small), ("1m", large)):
        results[f"verifier.scale.cpu_us_{tag}"] = round(m["cpu_us"], 2)
        results[f"verifier.scale.cpu_us_cold_{tag}"] = round(m["cold_us"], 2)
        results[f"verifier.scale.udp_per_s_{tag}"] = round(m["peak"], 1)
        results[f"verifier.scale.udp_p50_ms_{tag}"] = round(m["p50"], 3)
        results[f"verifier.scale.udp_p99_ms_{tag}"] = round(m["p99"], 3)
        results[f"verifier.scale.rss_bytes_{tag}"] = m["rss"]
    results["verifier.scale.cpu_ratio_1m_to_1k"] = round(large["cpu_us"] / small["cpu_us"], 3)
    if large["built"] is not None:
        results["verifier.scale.provision_s_1m"] = round(large["built"], 1)
    for tag, m in (("1,000", small), ("1,000,000", large)):
        say(f"scale: {tag} registered, {m['active']:,} sending: {m['cpu_us']:.1f} us CPU per accepted request "
            f"({m['peak']:.0f} ok/s), p50 {m['p50']:.3f} ms, p99 {m['p99']:.3f} ms at 80 %; first request "
            f"{m['cold_us']:.1f} us; RSS {m['rss'] / 2**20:.1f} MiB; non-OK or lost {m['bad']}, wrapped {m['wrapped']}")
    say(f"scale: CPU per accepted request 1M/1k = {results['verifier.scale.cpu_ratio_1m_to_1k']}")


if __name__ == "__main__":
    import json
    import sys
    out = {}
    {"pg": run_pg, "sqlite": run_sqlite}.get(sys.argv[1] if sys.argv[1:] else "", run)(out, print)
    print(json.dumps(out, indent=1, sort_keys=True))
