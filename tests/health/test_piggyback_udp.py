"""The report piggy-backed on binary auth over the app's real UDP endpoint (docs/health.md 2.1): the tag
is computed here literally with hmac; GET /v1/devices/{id}/health shows what was ingested."""

import hashlib
import hmac

import aiohttp

from verifier.appkeys import HEALTH
from verifier.binauth.core import OK, REPLAY

# the "full" report of docs/vectors/health.json
FULL = bytes.fromhex("017fffd5f8029cf201808054bda305030cbd02050b4f534572726f722031313005818040e8fb0305312e342e3201")


def k_health(master):
    prk = hmac.new(b"janua/v1", master, hashlib.sha256).digest()
    return hmac.new(prk, b"health\x01", hashlib.sha256).digest()


def datagram(dev, report, ts=None, key=None):
    req = dev.request(ts)
    tag = hmac.new(key or k_health(dev.master), req + report, hashlib.sha256).digest()[:8]
    return req, req + report + tag


async def get(server, tenant, path):
    async with aiohttp.ClientSession() as s:
        async with s.get(server.handle.url + path, headers=tenant.headers) as r:
            return r.status, await r.json()


async def test_piggyback_ingested_and_shown(server, tenant):
    dev = tenant.device()
    req, dg = datagram(dev, FULL)
    assert len(dg) == 74
    reply = await server.send("udp", dg)
    assert reply[0] == OK
    assert dev.reply(req, reply)["status"] == OK
    status, doc = await get(server, tenant, f"/v1/devices/{dev.hex}/health")
    assert status == 200
    assert doc["resources"] == {"heap_free": 48213, "heap_min": 31004, "flash_free": 1376256}
    assert doc["operational"]["reset_cause"] == "watchdog"
    assert doc["operational"]["last_error"] == "OSError 110"
    assert doc["operational"]["clock_offset_s"] == -3
    assert doc["app_version"] == "1.4.2" and doc["slot"] == "b"
    assert doc["network"]["rssi"] == -67
    assert doc["via"] == "binauth"
    assert doc["received_at"] == 1767225600
    assert doc["score"] == 100 and doc["bucket"] == "healthy" and doc["recommendations"] == []
    row = server.handle.storage._db.execute("SELECT health_score, reported_version FROM devices WHERE id = ?",
                                            (dev.id,)).fetchone()
    assert tuple(row) == (100, "1.4.2")
    status, hist = await get(server, tenant, f"/v1/devices/{dev.hex}/health/history")
    assert [h["heap_free"] for h in hist["items"]] == [48213]


async def test_replayed_piggyback_not_ingested(server, tenant, clock):
    dev = tenant.device()
    _, dg = datagram(dev, FULL)
    assert (await server.send("udp", dg))[0] == OK
    clock.advance(1)
    other = bytearray(FULL)
    other[4] ^= 0x01                     # heap_free 48213 -> 48212: a different report on the same request
    req = dg[:20]
    tag = hmac.new(k_health(dev.master), req + bytes(other), hashlib.sha256).digest()[:8]
    assert (await server.send("udp", req + bytes(other) + tag))[0] == REPLAY
    _, doc = await get(server, tenant, f"/v1/devices/{dev.hex}/health")
    assert doc["resources"]["heap_free"] == 48213


async def test_bad_tag_auth_ok_report_refused(server, tenant):
    dev = tenant.device()
    _, dg = datagram(dev, FULL, key=bytes(32))
    assert (await server.send("udp", dg))[0] == OK
    _, doc = await get(server, tenant, f"/v1/devices/{dev.hex}/health")
    assert doc["received_at"] is None and doc["bucket"] == "unknown"
    assert server.app[HEALTH].counts[("binauth", "tag")] == 1
    assert server.app[HEALTH].counts[("binauth", "ok")] == 0
    async with aiohttp.ClientSession() as s:
        async with s.get(server.handle.url + "/metrics") as r:
            text = await r.text()
    assert 'janua_health_reports_total{result="tag",via="binauth"} 1.0' in text


async def test_lengths_21_to_30_still_malformed(server, tenant):
    dev = tenant.device()
    reply = await server.send("udp", dev.request() + bytes(10))
    assert reply[0] == 8 and len(reply) == 13


async def test_k_health_is_derived_on_the_first_piggyback_only(server, tenant):
    """A lone 20-byte auth leaves the device's cached K_health underived; its first piggy-back derives it
    (the RFC 5869 key computed above with hmac) and the next one reuses it."""
    dev = tenant.device()
    assert (await server.send("udp", dev.request()))[0] == OK
    st = server.handle.core._cache[dev.id]
    assert st._health_key is None and st.sealed is not None
    _, dg = datagram(dev, FULL)
    assert (await server.send("udp", dg))[0] == OK
    assert server.handle.core._cache[dev.id] is st
    assert st._health_key == k_health(dev.master) and st.sealed is None
    _, dg = datagram(dev, FULL)
    assert (await server.send("udp", dg))[0] == OK
    assert server.app[HEALTH].counts[("binauth", "ok")] == 2
