"""Quarantine in binary auth (docs/protocol.md 3.4 step 6): the OTA and attestation routes decide their
embedded request with allow_quarantined, every other path does not. On real sockets (UDP, HTTP) and
through the group-commit batcher, whose queue holds requests of both kinds in one batch."""

import asyncio

from verifier.appkeys import BATCHER, STORAGE
from verifier.binauth.core import NOT_ACTIVE, OK, REPLAY, decode_reply
from verifier.registry import core as registry


def _quarantine(server, tenant, dev, clock, on=True):
    registry.set_quarantined(server.app[STORAGE], tenant.id, dev.id, on, "test", "t", clock())
    server.handle.core.forget(dev.id)       # what every admin route does after a change


async def _ota_check(server, dev):
    req = dev.request()
    async with server._session.post(server.handle.url + "/v1/ota/check", json={"auth": req.hex()}) as r:
        out = await r.json()
        return r.status, decode_reply(dev.key, req, bytes.fromhex(out["auth"]))["status"]


async def test_admission_to_ota_does_not_open_udp_or_post_binauth(server, tenant, clock):
    dev = tenant.device()
    _quarantine(server, tenant, dev, clock)
    assert await _ota_check(server, dev) == (200, OK)
    for driver in ("udp", "http", "udp"):          # after the admission, which must not stick to the cache
        req = dev.request()
        reply = await server.send(driver, req)
        assert decode_reply(dev.key, req, reply)["status"] == NOT_ACTIVE, driver
    assert await _ota_check(server, dev) == (200, OK)
    _quarantine(server, tenant, dev, clock, on=False)
    req = dev.request()
    assert decode_reply(dev.key, req, await server.send("udp", req))["status"] == OK


async def test_one_batch_decides_each_request_by_its_own_route(server, tenant, clock):
    """An OTA-route request and a plain one of the same quarantined device, queued in the same event-loop
    turn, are decided in one batch: the first OK, the second NOT_ACTIVE (and the other way round)."""
    dev = tenant.device()
    _quarantine(server, tenant, dev, clock)
    batcher = server.app[BATCHER]
    for first_allowed in (True, False):
        a, b = dev.request(), dev.request()
        fa = batcher.submit(a, "127.0.0.1", "http", first_allowed)
        fb = batcher.submit(b, "127.0.0.1", "http", not first_allowed)
        ra, rb = await asyncio.gather(fa, fb)
        got = (decode_reply(dev.key, a, ra)["status"], decode_reply(dev.key, b, rb)["status"])
        assert got == ((OK, NOT_ACTIVE) if first_allowed else (NOT_ACTIVE, OK))


async def test_a_refused_plain_request_does_not_spend_the_timestamp(server, tenant, clock):
    """NOT_ACTIVE records no timestamp, so the same request is still fresh on the OTA route; once accepted
    there it is a replay everywhere (replay protection is intact for a quarantined device)."""
    dev = tenant.device()
    _quarantine(server, tenant, dev, clock)
    req = dev.request()
    assert decode_reply(dev.key, req, await server.send("udp", req))["status"] == NOT_ACTIVE
    async with server._session.post(server.handle.url + "/v1/ota/check", json={"auth": req.hex()}) as r:
        assert r.status == 200
    assert server.app[STORAGE].get_device(dev.id)["last_ts"] == int.from_bytes(req[8:12], "big")
    async with server._session.post(server.handle.url + "/v1/ota/check", json={"auth": req.hex()}) as r:
        out = await r.json()
        assert r.status == 409 and decode_reply(dev.key, req, bytes.fromhex(out["auth"]))["status"] == REPLAY


async def test_compromised_device_is_not_admitted_by_allow_quarantined(server, tenant, clock):
    dev = tenant.device()
    server.app[STORAGE].update_device(tenant.id, dev.id, {"compromised": True})
    server.handle.core.forget(dev.id)
    assert await _ota_check(server, dev) == (403, NOT_ACTIVE)
    req = dev.request()
    reply, decision = server.handle.core.handle(req, ("127.0.0.1", 1), clock(), "test", allow_quarantined=True)
    assert decision.result == "NOT_ACTIVE" and decision.reason == "blocked (compromised)"
