"""The operator console (issue #16): verifier.console.devices_page_ms, the first page of the devices table of a
tenant with 100,000 devices, and verifier.console.device_page_ms, one device's page, on one SQLite file (WAL).

How: the devices (firmware from 20 versions, groups, tags, statuses), their auth_state rows (two in three seen
over the last 10 days) and 300,000 audit rows (auth rows of every device, then admin rows) are inserted with
INSERT ... SELECT from a recursive CTE; then the app built by create_app serves the console in process (aiohttp
test server on loopback) to a signed-in session. Timed: the request's round trip (the handler, its queries, the
HTML, and the loopback HTTP around them: an upper bound of the server-side time), median of ROUNDS after a warm-up.
Also the search by serial (verifier.console.devices_search_ms), the second page by its cursor
(verifier.console.devices_cursor_ms), the first page sorted by status (indexed) and by last authentication (not
indexed: a sort of the tenant's devices), and filtered by a firmware version (a scan until a page is found)."""

import asyncio
import re
import statistics
import time

from bench.harness import WORK

N = 100_000
AUDIT = 300_000
ROUNDS = 21
NOW = 1_800_000_000


def _dev_id(i):
    # distinct 8-byte ids spread over the key space (the low 24 bits are i itself)
    return ((i * 2654435761 % 2**32) << 24 | i).to_bytes(8, "big")


def _fill(db, tenant):
    db.create_function("dev_id", 1, _dev_id, deterministic=True)
    db.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {N})
        INSERT INTO devices (id, tenant_id, serial_number, credential_type, sealed_secret, metadata, status,
                             provisioned_at, status_changed_at, trust_level, compromised, quarantined, permissions)
        SELECT dev_id(i), '{tenant}',
               printf('SN-%06d', i), 'symmetric', x'00',
               json_object('firmware_version', '1.' || (i % 20), 'group', 'g' || (i % 50),
                           'tags', json_array('t' || (i % 7))),
               CASE i % 10 WHEN 0 THEN 'suspended' WHEN 1 THEN 'provisioning' ELSE 'active' END,
               {NOW - 86400}, {NOW - 86400}, 0, 0, 0, 15 FROM c""")
    db.execute(f"""INSERT INTO auth_state SELECT id, {NOW} - (abs(random()) % 864000), {NOW} - (abs(random()) % 864000)
                   FROM devices WHERE tenant_id = '{tenant}' AND abs(random()) % 3 != 0""")
    db.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {AUDIT})
        INSERT INTO audit (ts, tenant_id, kind, device_id, actor, action, transport, source, result, reason)
        SELECT {NOW - AUDIT} + i, '{tenant}', CASE WHEN i % 10 = 0 THEN 'admin' ELSE 'auth' END,
               lower(hex(dev_id(1 + i % {N}))), NULL, 'binauth', 'udp', '10.0.0.1', 'OK', NULL
        FROM c""")


async def _measure(path_db):
    from aiohttp.test_utils import TestClient, TestServer

    from verifier.app import create_app
    from verifier.appkeys import STORAGE
    from verifier.config import Config
    from verifier.registry import core as registry

    config = Config(db_path=str(path_db), kek=bytes(range(32)), clock=lambda: NOW, http_port=0, udp_port=None,
                    dtls_port=None)
    client = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        st = client.server.app[STORAGE]
        tenant = st.get_tenant_by_name("big")
        _, token = registry.issue_token(st, tenant["id"], NOW)
        r = await client.post("/console/sign-in", data={"token": token}, allow_redirects=False)
        assert r.status == 303, await r.text()
        first = await (await client.get("/console/devices")).text()
        dev = re.search(r'data-device-id="([0-9a-f]{16})"', first).group(1)
        assert first.count("data-device-id=") == 50
        nxt = re.search(r'id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")

        async def timed(path):
            r = await client.get(path)
            assert r.status == 200, path
            await r.read()
            ms = []
            for _ in range(ROUNDS):
                t = time.perf_counter()
                r = await client.get(path)
                await r.read()
                ms.append((time.perf_counter() - t) * 1000)
            return round(statistics.median(ms), 3)

        return {"verifier.console.devices_page_ms": await timed("/console/devices"),
                "verifier.console.device_page_ms": await timed(f"/console/devices/{dev}"),
                "verifier.console.devices_search_ms": await timed("/console/devices?q=SN-05432"),
                "verifier.console.devices_cursor_ms": await timed(nxt),
                "verifier.console.devices_by_status_ms": await timed("/console/devices?sort=status"),
                "verifier.console.devices_by_last_seen_ms": await timed("/console/devices?sort=last_seen"),
                "verifier.console.devices_firmware_filter_ms": await timed("/console/devices?firmware=1.7")}
    finally:
        await client.close()


def _fill_db(path):
    from verifier.store import SQLiteStorage
    s = SQLiteStorage(str(path))
    db = s._db
    db.execute("BEGIN")
    db.execute("INSERT INTO tenants VALUES ('big', 'big', 0, '{}')")
    _fill(db, "big")
    db.execute("COMMIT")
    s.close()


def run(results, say):
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "console.db"
    for p in WORK.glob("console.db*"):
        p.unlink()
    t = time.perf_counter()
    _fill_db(path)
    fill_s = time.perf_counter() - t
    results.update(asyncio.run(_measure(path)))
    say(f"console: devices page {results['verifier.console.devices_page_ms']} ms, device page "
        f"{results['verifier.console.device_page_ms']} ms, search {results['verifier.console.devices_search_ms']} ms, "
        f"next page {results['verifier.console.devices_cursor_ms']} ms at {N:,} devices and {AUDIT:,} audit rows "
        f"(fill {fill_s:.1f} s)")


if __name__ == "__main__":
    import json
    out = {}
    run(out, print)
    print(json.dumps(out, indent=1, sort_keys=True))
