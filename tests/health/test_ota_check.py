"""The OTA check's "health" member (docs/health.md 2.4): ingested only with an accepted auth; a refused
report never fails the check."""

import aiohttp

FULL_HEX = "017fffd5f8029cf201808054bda305030cbd02050b4f534572726f722031313005818040e8fb0305312e342e3201"


async def post(server, body):
    async with aiohttp.ClientSession() as s:
        async with s.post(server.handle.url + "/v1/ota/check", json=body) as r:
            return r.status, await r.json()


async def test_check_carries_health(server, tenant, clock):
    dev = tenant.device()
    status, out = await post(server, {"auth": dev.auth(), "health": FULL_HEX})
    assert status == 200 and out["health"] == "ok"
    clock.advance(1)
    status, out = await post(server, {"auth": dev.auth(), "health": "020000"})
    assert status == 200 and out["health"] == "version"
    status, out = await post(server, {"auth": dev.auth(), "health": "zz"})
    assert status == 200 and out["health"] == "malformed"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.handle.url}/v1/devices/{dev.hex}/health", headers=tenant.headers) as r:
            doc = await r.json()
    assert doc["via"] == "ota" and doc["resources"]["heap_free"] == 48213


async def test_refused_auth_ingests_nothing(server, tenant):
    dev = tenant.device()
    req = bytearray(dev.request())
    req[-1] ^= 1
    status, out = await post(server, {"auth": bytes(req).hex(), "health": FULL_HEX})
    assert status == 401 and "health" not in out
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.handle.url}/v1/devices/{dev.hex}/health", headers=tenant.headers) as r:
            doc = await r.json()
    assert doc["received_at"] is None
