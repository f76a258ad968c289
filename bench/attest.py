"""Board attestation (issue #12): verifier.attest.appraise_per_s, the whole appraisal of one board's
evidence on one core, in process, beside a CPython HMAC-SHA256 loop measured in the same run.

How: a real SQLite file (WAL) in bench/work with N_DEVICES active devices, a signed app release of
FILES files (published through verifier.ota.core's storage calls, as POST /v1/releases stores it), and
for each device a challenge and the evidence a board on that release sends (built untimed). Timed:
verifier.attest.core.appraise for every device (decode, device row, unseal M, HKDF, tag, the challenge
consumed, the release and its files read, the vector, an ES256 EAR, the result row, status, audit row,
one transaction each). The process is pinned to one CPU (os.sched_setaffinity). PAIRS alternating
pairs (appraisal round, HMAC round); reported: the median and the minimum appraisal rate, the median
HMAC rate, the median of the per-pair ratios
(which survives a noisy machine) and the process CPU time per appraisal.
"""

import hashlib
import hmac
import os
import statistics
import time

from bench.harness import WORK

N_DEVICES = 1000
FILES = 10
PAIRS = 5
HMAC_N = 200_000


def _hmac_rate():
    key, msg = os.urandom(32), os.urandom(12)
    t0 = time.perf_counter()
    for _ in range(HMAC_N):
        hmac.digest(key, msg, "sha256")
    return HMAC_N / (time.perf_counter() - t0)


def run(results, say):
    from verifier import keys as vkeys
    from verifier.attest import core as attest, evidence
    from verifier.keys import Sealer
    from verifier.registry import core as registry
    from verifier.registry.audit import RefusalSummary
    from verifier.store import SQLiteStorage
    from verifier.tokens.core import TokenKeys

    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "attest.db"
    for p in WORK.glob("attest.db*"):
        p.unlink()
    st = SQLiteStorage(str(db))
    sealer = Sealer(os.urandom(32))
    now = int(time.time())
    tenant = registry.create_tenant(st, "bench", now)["id"]
    out = registry.provision_bulk(st, sealer, tenant, [{"serial_number": f"A{i}"} for i in range(N_DEVICES)], now)
    devs = []
    for r in out["results"]:
        did = bytes.fromhex(r["device_id"])
        st.update_device(tenant, did, {"status": "active"})
        devs.append((st.get_device(did), vkeys.derive_key(bytes.fromhex(r["master_secret"]), b"attest")))
    files = [(f"lib/mod{i}.py", 2000 + i, hashlib.sha256(b"%d" % i).hexdigest()) for i in range(FILES)]
    rel = {"id": "rel_" + "ab" * 8, "tenant_id": tenant, "kind": "app", "name": "bench", "version": "1.0.0",
           "counter": 1, "kid": "00" * 8, "size": sum(f[1] for f in files), "manifest": b"{}", "sig": b"{}",
           "manifest_sha256": "00" * 32, "created": now}
    st.add_release(rel, [(rel["id"], p, s, h) for p, s, h in files])
    token_keys = TokenKeys(st, sealer)
    token_keys.load(now)
    summary = RefusalSummary()

    def prepare():
        batch = []
        for dev, k in devs:
            ch = attest.issue_challenge(st, dev, now)
            batch.append(evidence.encode(k, dev["id"], bytes.fromhex(ch["nonce"]), now, micropython="1.24.1",
                                         build="v1.24.1", board="esp32", app=(1, 0, "1.0.0"), files=files,
                                         boot=(1, 1, 10)))
        return batch

    before = os.sched_getaffinity(0)
    cpu = max(before)
    rates, refs, cpu_us = [], [], []
    try:
        os.sched_setaffinity(0, {cpu})
        for _ in range(PAIRS):
            batch = prepare()
            t0, c0 = time.perf_counter(), time.process_time()
            for data in batch:
                r = attest.appraise(st, sealer, token_keys, data, now, "bench", None, summary)
            rates.append(len(batch) / (time.perf_counter() - t0))
            cpu_us.append((time.process_time() - c0) * 1e6 / len(batch))
            if r["status"] != "affirming":
                raise RuntimeError(f"bench evidence appraised {r['status']}")
            refs.append(_hmac_rate())
    finally:
        os.sched_setaffinity(0, before)
        st.close()
    results["verifier.attest.appraise_per_s"] = round(statistics.median(rates), 1)
    results["verifier.attest.appraise_per_s_min"] = round(min(rates), 1)
    results["verifier.attest.cpu_us_per_appraisal"] = round(statistics.median(cpu_us), 1)
    results["verifier.attest.hmac_ref_per_s"] = round(statistics.median(refs), 1)
    results["verifier.attest.ratio_to_hmac"] = round(statistics.median(a / b for a, b in zip(rates, refs)), 6)
    say(f"attest (CPU {cpu}): appraise {results['verifier.attest.appraise_per_s']}/s median, "
        f"{results['verifier.attest.appraise_per_s_min']}/s min, "
        f"{results['verifier.attest.cpu_us_per_appraisal']} us CPU each, of {PAIRS} alternating pairs with HMAC "
        f"{results['verifier.attest.hmac_ref_per_s']}/s (ratio {results['verifier.attest.ratio_to_hmac']}); "
        f"{N_DEVICES} devices, {FILES} files")


if __name__ == "__main__":
    import json
    res = {}
    run(res, print)
    print(json.dumps(res, indent=1, sort_keys=True))
