"""verifier.pg.invalidation_ms (issue #15): from a suspension answered by one verifier instance to the first refusal
by another instance that had the device cached as active, both sharing one PostgreSQL database (a private cluster,
tests/pgcluster.py, fsync off), in process, on loopback.

How: two verifiers (start_server, real UDP and HTTP) on one database; per round a fresh device authenticates at the
second instance (so it is cached there), the suspension is POSTed to the first, and from its 200 the second is
asked again every 0.5 ms until it answers NOT_ACTIVE. ROUNDS rounds; the median and the highest are reported
(`verifier.pg.invalidation_ms`, `verifier.pg.invalidation_max_ms`). The path measured: the handler's forget, NOTIFY
on the bus (verifier/cachebus.py), delivery to the other instance's listening connection, its forget.
"""

import asyncio
import statistics
import tempfile
from pathlib import Path

ROUNDS = 40
T0 = 1_767_225_600


def run(results, say):
    try:
        from tests.pgcluster import PGCluster, fresh_database
    except ImportError as e:          # psycopg missing: the PostgreSQL figures are not taken
        say(f"pg invalidation: skipped ({e})")
        return
    cluster = PGCluster()
    url = fresh_database(cluster.start())
    try:
        times = asyncio.run(_measure(url))
    finally:
        cluster.stop()
    results["verifier.pg.invalidation_ms"] = round(statistics.median(times), 2)
    results["verifier.pg.invalidation_max_ms"] = round(max(times), 2)
    say(f"pg invalidation: median {statistics.median(times):.2f} ms, max {max(times):.2f} ms over {len(times)} "
        f"suspensions")


async def _measure(url):
    import aiohttp
    import time
    import verifier.app
    from tests.support import KEK, AdminTenant, AuthDevice, FakeClock
    from verifier.config import Config
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as d:
        servers = []
        for name in ("a", "b"):
            cfg = Config(db_path=url, state_dir=str(Path(d) / name), kek=KEK, clock=clock, http_port=0, udp_port=0,
                         dtls_port=None)
            servers.append(await verifier.app.start_server(cfg))
        a, b = servers
        loop = asyncio.get_running_loop()
        replies = asyncio.Queue()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                replies.put_nowait(data)

        udp, _ = await loop.create_datagram_endpoint(P, remote_addr=("127.0.0.1", b.udp_port))
        tenant = AdminTenant(a.app, "bench", clock)
        out = []
        try:
            async with aiohttp.ClientSession() as http:
                for i in range(ROUNDS):
                    (hex_id, master), = tenant.provision([{}], "active")
                    dev = AuthDevice(hex_id, master, clock)
                    ts = T0
                    udp.sendto(dev.request(ts))
                    assert (await asyncio.wait_for(replies.get(), 5))[0] == 0
                    async with http.post(f"{a.url}/v1/devices/{hex_id}/lifecycle", headers=tenant.headers,
                                         json={"action": "suspend", "reason": "bench"}) as r:
                        assert r.status == 200
                    t0 = time.perf_counter()
                    while True:
                        ts += 1
                        udp.sendto(dev.request(ts))
                        if (await asyncio.wait_for(replies.get(), 5))[0] != 0:
                            break
                        await asyncio.sleep(0.0005)
                    out.append((time.perf_counter() - t0) * 1000)
        finally:
            udp.close()
            for s in servers:
                await s.close()
    return out


if __name__ == "__main__":
    import json
    import sys
    res = {}
    run(res, lambda m: print(m, file=sys.stderr))
    print(json.dumps(res))
