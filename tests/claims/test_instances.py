"""Two verifier instances on one registry (two stores, two connections: one SQLite file, or one PostgreSQL database
under JANUA_TEST_BACKEND=postgresql) claiming the last slots of a batch at the same moment from threads: exactly
max_count claims win, the others are batch_exhausted, and the count, the claims and the devices agree."""

import os
import threading

from tests.support import KEK, T0, app_storage
from verifier.claims import batches, core
from verifier.keys import Sealer
from verifier.registry import core as registry

THREADS = 8


def test_concurrent_instances_never_exceed_max_count(tmp_path):
    path = tmp_path / "janua.db"
    stores = [app_storage(path) for _ in range(THREADS)]
    try:
        sealer = Sealer(KEK)
        tenant = registry.create_tenant(stores[0], "acme", T0)["id"]
        batch, _, _ = batches.create_batch(stores[0], sealer, tenant, {"name": "b", "serial_pattern": "*", "max_count": 3},
                                           T0, "test")
        barrier, outcomes = threading.Barrier(THREADS), [None] * THREADS

        def claim(k):
            did = os.urandom(8)
            row = batches.device_row(batch, f"SN-{k}", did, os.urandom(32), sealer, T0)
            audit = (T0, tenant, "claim", did.hex(), "test", "claim.new", "http", "t", "ok", None, f"serial SN-{k}")
            barrier.wait()
            outcomes[k] = stores[k].commit_new_claims([(batch["id"], f"SN-{k}", row, ["00"], T0, audit)])[0]

        threads = [threading.Thread(target=claim, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(o is None for o in outcomes) == 3
        assert all(isinstance(o, core.BatchExhausted) for o in outcomes if o is not None)
        st = stores[0]
        assert st.get_claim_batch(batch["id"])["claimed_count"] == 3
        assert len(st.list_claims(batch["id"])) == 3
        assert st._db.execute("SELECT count(*) FROM devices").fetchone()[0] == 3
    finally:
        for st in stores:
            st.close()
