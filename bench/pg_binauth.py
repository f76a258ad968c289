"""verifier.pg.binauth.udp_* (issue #15): UDP binary auth of `janua serve --db postgresql://...` beside the same on
SQLite, same method, same run.

Each backend holds its own registry of 10,000 devices (bench/run.py N_DEVICES) of a tenant whose rate limits are out
of the way (the limiter still runs on every packet), provisioned with verifier.registry.provision_bulk: a SQLite file
in bench/work, and a database of a private PostgreSQL cluster (tests/pgcluster.py, fsync off) started for this bench
and stopped after it. The cluster's processes are pinned to the server's CPU (bench/harness.py SERVER_CPU): the
verifier and its database share the one core the SQLite verifier has, and the load generator keeps the other.

The measurement is bench/run.py bench_udp's (bench/harness.py udp_peak_and_p99): `janua serve` pinned to CPU 0,
bench/loadgen.c on CPU 1, a warm-up pass of one request per device (bench/scale.py _warm: on PostgreSQL it also
activates the fleet, provisioned and not updated in bulk; a device's first OK moves it to active) and 2 s of
loadgen, then the closed-loop peak (64 in
flight, 4 s, OK replies per second) and the open-loop p50/p99 at 80 % of that peak. ROUNDS rounds alternate
SQLite and PostgreSQL, each on a server started afresh; the medians are kept, and the ratio is PostgreSQL's
median peak over SQLite's.
"""

import os
import statistics
import subprocess
import time
from pathlib import Path

from bench.harness import SERVER_CPU, WORK, Pinned, loadgen, udp_peak_and_p99

ROUNDS = 3
POLICY = {"device_rate": {"capacity": 1e6, "refill_per_s": 1e6},
          "source_rate": {"capacity": 1e9, "refill_per_s": 1e9}}


def pin_cluster(cluster, cpu=SERVER_CPU):
    """Pin the cluster's postmaster and every process it has started to `cpu` (backends forked later inherit it)."""
    pid = int((Path(cluster.datadir) / "postmaster.pid").read_text().split()[0])
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(p)], check=True, capture_output=True)


def provision(storage, n, prefix):
    """A tenant with POLICY and `n` devices in `storage`: [(device id, binauth key, health key)]."""
    from verifier.keys import derive_key
    from verifier.registry import core as registry
    from verifier.registry.model import Policy
    kek = os.urandom(32)
    tenant = registry.create_tenant(storage, "bench", time.time(), policy=Policy.from_json(POLICY))
    rows = [{"serial_number": f"{prefix}-{i:06d}"} for i in range(n)]
    res = registry.provision_bulk(storage, kek, tenant["id"], rows, actor="bench")
    keys = []
    for r in res["results"]:
        m = bytes.fromhex(r["master_secret"])
        keys.append((bytes.fromhex(r["device_id"]), derive_key(m, b"binauth"), derive_key(m, b"health")))
    return kek, keys


def _kek_file(path, kek):
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(kek.hex() + "\n")
    return path


def _round(db, kek_file, packets, tag):
    from bench.run import ports_of, serve_argv
    from bench.scale import _warm
    with Pinned(serve_argv(db, kek_file), "janua serve:", timeout=120) as srv:
        _, uport = ports_of(srv.ready_line)
        first = packets.make(WORK / f"{tag}_first.bin", 1).read_bytes()
        if _warm(uport, first) != len(first) // 20:      # every device once: cached (and activated)
            raise RuntimeError(f"pg binauth: the {tag} warm-up pass was not all OK")
        loadgen(uport, packets.make(WORK / f"{tag}_warm.bin", 2), 20, "closed", 64, 2.0)
        files = [packets.make(WORK / f"{tag}1.bin"), packets.make(WORK / f"{tag}2.bin")]
        peak, at80, rate = udp_peak_and_p99(uport, files, 20, any_reply=False)
    return {"peak": peak["ok_per_s"], "p50": at80["p50_ms"], "p99": at80["p99_ms"], "rate": rate,
            "bad": peak["received"] - peak["ok"] + at80["received"] - at80["ok"], "lost": peak["lost"] + at80["lost"]}


def run(results, say):
    try:
        from tests.pgcluster import PGCluster, fresh_database
    except ImportError as e:          # psycopg missing: the PostgreSQL figures are not taken
        say(f"pg binauth: skipped ({e})")
        return
    from bench.run import N_DEVICES, Packets
    from verifier.store import SQLiteStorage
    from verifier.store_pg import PGStorage
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "pgb_sqlite.db"
    for p in WORK.glob("pgb_sqlite.db*"):
        p.unlink()
    st = SQLiteStorage(str(db))
    kek, keys = provision(st, N_DEVICES, "Q")
    st.close()
    import sqlite3
    with sqlite3.connect(db) as c:     # as bench/run.py setup_registry: the SQLite fleet starts active
        c.execute("UPDATE devices SET status = 'active'")
    sq_kek = _kek_file(WORK / "pgb_sqlite.kek", kek)
    cluster = PGCluster()
    try:
        url = fresh_database(cluster.start())
        pin_cluster(cluster)
        st = PGStorage(url)
        kek, pg_keys = provision(st, N_DEVICES, "Q")
        st.close()
        pg_kek = _kek_file(WORK / "pgb_pg.kek", kek)
        sides = {"sqlite": (str(db), sq_kek, Packets(keys)), "pg": (url, pg_kek, Packets(pg_keys))}
        got = {"sqlite": [], "pg": []}
        for _ in range(ROUNDS):
            for name, (where, kf, packets) in sides.items():
                got[name].append(_round(where, kf, packets, "pgb_" + name))
    finally:
        cluster.stop()
        for p in WORK.glob("pgb_*"):
            p.unlink()
    med = {name: {k: statistics.median(r[k] for r in runs) for k in ("peak", "p50", "p99", "rate")}
           for name, runs in got.items()}
    pg, sq = med["pg"], med["sqlite"]
    results["verifier.pg.binauth.udp_per_s"] = round(pg["peak"], 1)
    results["verifier.pg.binauth.udp_p99_ms"] = round(pg["p99"], 3)
    results["verifier.pg.binauth.udp_p50_ms"] = round(pg["p50"], 3)
    results["verifier.pg.binauth.udp_p99_load_per_s"] = round(pg["rate"], 1)
    results["verifier.pg.binauth.sqlite_udp_per_s"] = round(sq["peak"], 1)
    results["verifier.pg.binauth.sqlite_udp_p99_ms"] = round(sq["p99"], 3)
    results["verifier.pg.binauth.udp_ratio_to_sqlite"] = round(pg["peak"] / max(1.0, sq["peak"]), 3)
    for name, runs in got.items():
        say(f"pg binauth, {name}: peaks {[round(r['peak']) for r in runs]} ok/s, p50 {[round(r['p50'], 3) for r in runs]}"
            f" ms, p99 {[round(r['p99'], 3) for r in runs]} ms at 80 %; non-OK {sum(r['bad'] for r in runs)}, "
            f"lost {sum(r['lost'] for r in runs)}")
    say(f"pg binauth: PostgreSQL {pg['peak']:.0f} ok/s, p99 {pg['p99']:.3f} ms; SQLite {sq['peak']:.0f} ok/s, p99 "
        f"{sq['p99']:.3f} ms; ratio {results['verifier.pg.binauth.udp_ratio_to_sqlite']} (medians of {ROUNDS} "
        f"alternating rounds)")


if __name__ == "__main__":
    import json
    import sys
    out = {}
    run(out, lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(out, indent=1, sort_keys=True))
