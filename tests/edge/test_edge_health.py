"""Health reports piggy-backed on binary auth at an edge verifier (docs/health.md 2.1, docs/tokens.md "Edge
verifier"): the edge decides the 20-byte head as always and, on OK, queues the rest for the upstream without
reading it (it has no K_health); the next sync delivers it and the cloud checks the tag and ingests it with
via "edge". The tag is computed here literally with hmac."""

import asyncio
import hashlib
import hmac

import pytest

from edgeworld import binauth_http, udp_exchange
from verifier.appkeys import HEALTH
from verifier.binauth.core import OK, REPLAY
from verifier.edge.app import EDGE
from verifier.edge.store import EdgeStore

# the "full" report of docs/vectors/health.json (46 bytes)
FULL = bytes.fromhex("017fffd5f8029cf201808054bda305030cbd02050b4f534572726f722031313005818040e8fb0305312e342e3201")
T0 = 1_767_225_600


def k_health(master):
    prk = hmac.new(b"janua/v1", master, hashlib.sha256).digest()
    return hmac.new(prk, b"health\x01", hashlib.sha256).digest()


def datagram(dev, report=FULL, key=None, req=None):
    req = req if req is not None else dev.request()
    tag = hmac.new(key or k_health(dev.master), req + report, hashlib.sha256).digest()[:8]
    return req, req + report + tag


async def _status(w, edge):
    return await (await w.http.get(edge.url + "/v1/edge/status")).json()


async def _metrics(w, edge):
    return await (await w.http.get(edge.url + "/metrics")).text()


async def _health(w, dev):
    r = await w.http.get(f"{w.cloud.url}/v1/devices/{dev.hex}/health", headers=w.admin)
    assert r.status == 200, await r.text()
    return await r.json()


async def _udp(edge, data):
    return await asyncio.get_running_loop().run_in_executor(None, udp_exchange, edge.udp_port, data)


async def test_edge_answers_ok_to_a_request_with_a_report_and_the_cloud_shows_it_after_a_sync(world, clock):
    edge = await world.start_edge()
    dev, = world.devices(1)
    req, dg = datagram(dev)
    assert len(dg) == 74
    reply = await _udp(edge, dg)             # a device the edge does not hold yet: fetched first
    out = dev.reply(req, reply)
    assert out["status"] == OK and out["authenticated"]
    assert (await _status(world, edge))["pending"]["health"] == 1
    text = await _metrics(world, edge)
    assert "janua_edge_health_queued_total 1.0" in text
    assert "janua_edge_health_pending 1.0" in text
    assert "janua_edge_health_forwarded_total 0.0" in text
    assert (await _health(world, dev))["via"] is None           # not delivered yet
    clock.advance(30)
    assert await edge.app[EDGE].sync(clock())
    doc = await _health(world, dev)
    assert doc["via"] == "edge"
    assert doc["received_at"] == T0           # when the edge received it, not when it was delivered
    assert doc["resources"] == {"heap_free": 48213, "heap_min": 31004, "flash_free": 1376256}
    assert doc["app_version"] == "1.4.2" and doc["slot"] == "b"
    assert world.cloud.app[HEALTH].counts[("edge", "ok")] == 1
    assert (await _status(world, edge))["pending"]["health"] == 0
    text = await _metrics(world, edge)
    assert "janua_edge_health_forwarded_total 1.0" in text
    assert "janua_edge_health_pending 0.0" in text


async def test_report_over_http_binauth_is_queued_too(world, clock):
    edge = await world.start_edge()
    dev, = world.devices(1)
    req, dg = datagram(dev)
    _, reply = await binauth_http(world, edge, dev, dg)
    assert dev.reply(req, reply)["status"] == OK
    assert await edge.app[EDGE].sync(clock())
    assert (await _health(world, dev))["operational"]["reset_cause"] == "watchdog"


async def test_bad_tag_is_accepted_by_the_edge_but_refused_by_the_cloud(world, clock):
    edge = await world.start_edge()
    dev, = world.devices(1)
    req, dg = datagram(dev, key=bytes(32))
    assert dev.reply(req, await _udp(edge, dg))["status"] == OK      # the edge cannot tell
    assert (await _status(world, edge))["pending"]["health"] == 1
    assert await edge.app[EDGE].sync(clock())
    doc = await _health(world, dev)
    assert doc["received_at"] is None and doc["via"] is None          # not stored
    counts = world.cloud.app[HEALTH].counts
    assert counts[("edge", "tag")] == 1 and counts[("edge", "ok")] == 0
    assert (await _status(world, edge))["pending"]["health"] == 0     # delivered (and refused there)


async def test_replayed_request_with_a_report_is_refused_and_nothing_is_queued(world):
    edge = await world.start_edge()
    dev, = world.devices(1)
    req, dg = datagram(dev)
    assert (await _udp(edge, dg))[0] == OK
    assert dev.reply(req, await _udp(edge, dg))["status"] == REPLAY
    assert (await _status(world, edge))["pending"]["health"] == 1
    assert "janua_edge_health_queued_total 1.0" in await _metrics(world, edge)


async def test_outbox_bound_drops_the_oldest_report(world, clock):
    edge = await world.start_edge(health_outbox_max=2)
    devs = world.devices(3)
    for dev in devs:
        req, dg = datagram(dev)
        assert (await _udp(edge, dg))[0] == OK
    assert (await _status(world, edge))["pending"]["health"] == 2
    text = await _metrics(world, edge)
    assert "janua_edge_health_dropped_total 1.0" in text
    assert "janua_edge_health_queued_total 3.0" in text
    assert await edge.app[EDGE].sync(clock())
    assert [(await _health(world, d))["via"] for d in devs] == [None, "edge", "edge"]


def test_outbox_byte_bound_drops_the_oldest(tmp_path):
    store = EdgeStore(str(tmp_path / "edge.db"), health_max=100, health_max_bytes=150)
    rows = [(bytes([i]) * 8, bytes([i]) * 20, bytes(54), T0 + i, "udp") for i in range(3)]   # 74 bytes each
    assert store.record_auth([], [], [], health=rows[:2]) == 0
    assert store.health_pending() == (2, 148)
    assert store.record_auth([], [], [], health=rows[2:]) == 1
    assert store.health_pending() == (2, 148) and store.health_dropped == 1
    body, _ = store.pending_reports(10)
    assert [h["device_id"] for h in body["health"]] == ["0101010101010101", "0202020202020202"]
    store.close()


async def test_queued_reports_survive_an_edge_restart(world, clock):
    edge = await world.start_edge()
    dev, = world.devices(1)
    _, dg = datagram(dev)
    assert (await _udp(edge, dg))[0] == OK
    await world.stop_edge(edge)              # no sync in between: the report is only in the edge's file
    assert (await _health(world, dev))["via"] is None
    clock.advance(10)
    edge = await world.start_edge()          # the start-up sync delivers it
    doc = await _health(world, dev)
    assert doc["via"] == "edge" and doc["received_at"] == T0
    assert (await _status(world, edge))["pending"]["health"] == 0


async def test_report_body_without_health_still_works_and_names_of_other_tenants_are_ignored(world):
    dev, = world.devices(1)
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json={"audit": []}, headers=world.edge)
    assert await r.json() == {"used": 0, "ignored": 0, "binauth": 0, "audit": 0, "health": 0, "health_refused": 0}
    other = "00" * 8                          # not a device of the edge's tenant
    req, dg = datagram(dev)
    item = {"device_id": other, "request": other + dg[8:20].hex(), "rest": dg[20:].hex(), "received_at": T0,
            "transport": "udp"}
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json={"health": [item]}, headers=world.edge)
    assert await r.json() == {"used": 0, "ignored": 1, "binauth": 0, "audit": 0, "health": 0, "health_refused": 0}
    mine = dict(item, device_id=dev.hex, request=req.hex())
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json={"health": [mine]}, headers=world.edge)
    assert await r.json() == {"used": 0, "ignored": 0, "binauth": 0, "audit": 0, "health": 1, "health_refused": 0}


async def test_forwarded_request_of_another_device_is_refused_whole(world):
    a, b = world.devices(2)
    _, dg = datagram(a)
    item = {"device_id": b.hex, "request": dg[:20].hex(), "rest": dg[20:].hex(), "received_at": T0}
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json={"health": [item]}, headers=world.edge)
    assert r.status == 400
    assert (await r.json())["message"] == "health.request must be a request of health.device_id"



@pytest.mark.parametrize("written_between", [False, True])
async def test_a_late_edge_report_does_not_replace_a_newer_one_of_the_cloud(world, clock, written_between):
    dev, = world.devices(1)
    old_req, old_dg = datagram(dev)           # decided at an edge at T0 (FULL: app_version 1.4.2), delivered later
    clock.advance(100)
    # heap_free 31004 and app_version 2.0.0, straight to the cloud
    req, dg = datagram(dev, report=bytes.fromhex("012001" "9cf201" "05322e302e30"))
    r = await world.http.post(world.cloud.url + "/v1/binauth", data=dg)
    assert dev.reply(req, await r.read())["status"] == OK
    if written_between:                       # the cloud's own report is in the database before the edge's
        assert (await _health(world, dev))["app_version"] == "2.0.0"
    item = {"device_id": dev.hex, "request": old_req.hex(), "rest": old_dg[20:].hex(), "received_at": T0}
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json={"health": [item]}, headers=world.edge)
    assert (await r.json())["health"] == 1
    doc = await _health(world, dev)
    assert doc["via"] == "binauth" and doc["received_at"] == T0 + 100
    assert doc["resources"]["heap_free"] == 31004 and doc["app_version"] == "2.0.0"
    assert world.cloud.storage.get_device(dev.id)["reported_version"] == "2.0.0"
    r = await world.http.get(f"{world.cloud.url}/v1/devices/{dev.hex}/health/history", headers=world.admin)
    assert [h["heap_free"] for h in (await r.json())["items"]] == [31004]     # one 15-minute slot: the newer
