"""verifier.pg.provision.psk_per_s (issue #15): bulk provisioning of 1,000,000 devices on PostgreSQL.

verifier.registry.provision_bulk, in process, in calls of CALL_ROWS rows (the HTTP bulk endpoint's limit,
verifier/registry/core.py BULK_MAX_ROWS), into a fresh database of a private cluster (tests/pgcluster.py, fsync off)
started for this bench and stopped after it; nothing pinned (as verifier.provision.psk_per_s, the SQLite figure). Each call validates the rows, looks
up the serial numbers already taken (one query), seals each secret, and inserts the devices with one COPY
(verifier/registry/store_pg.py insert_devices) and its audit row in one transaction. Devices per second over the
whole run (`verifier.pg.provision.s_1m`: its seconds).
"""

import os
import time

N = 1_000_000
CALL_ROWS = 10_000


def run(results, say):
    try:
        from tests.pgcluster import PGCluster, fresh_database
    except ImportError as e:
        say(f"pg provision: skipped ({e})")
        return
    from verifier.registry import core as registry
    from verifier.store_pg import PGStorage
    cluster = PGCluster()
    try:
        url = fresh_database(cluster.start())
        storage = PGStorage(url)
        kek = os.urandom(32)
        tenant = registry.create_tenant(storage, "prov", time.time())
        created = 0
        t0 = time.perf_counter()
        for start in range(0, N, CALL_ROWS):
            rows = [{"serial_number": f"P-{i:07d}", "model_id": "m1"} for i in range(start, start + CALL_ROWS)]
            created += registry.provision_bulk(storage, kek, tenant["id"], rows, actor="bench")["summary"]["created"]
        dt = time.perf_counter() - t0
        storage.close()
    finally:
        cluster.stop()
    results["verifier.pg.provision.psk_per_s"] = round(created / dt, 1)
    results["verifier.pg.provision.s_1m"] = round(dt, 1)
    say(f"pg provisioning: {created:,} devices in {dt:.1f} s = {created / dt:.0f}/s (calls of {CALL_ROWS:,}, COPY)")


if __name__ == "__main__":
    import json
    import sys
    out = {}
    run(out, lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(out, indent=1, sort_keys=True))
