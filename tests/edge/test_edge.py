"""The edge verifier end to end: a real cloud verifier and a real edge verifier (HTTP and UDP sockets, their
own SQLite files), one fake clock. The cloud goes away by closing its handle and comes back on the same
port from the same file."""

import asyncio

import pytest

from edgeworld import binauth_http, offline, udp_exchange
from verifier.binauth.core import NOT_ACTIVE, OK, REPLAY, UNKNOWN_DEVICE
from verifier.tokens.chain import decode_chain_token_unverified

DAY = 86400


def _current(dev, now):
    """The chain token valid at `now` (nbf <= now <= exp)."""
    for t in dev.chain:
        f = decode_chain_token_unverified(t)
        if f["nbf"] <= now <= f["exp"] and f["nbf"] + DAY > now:
            return t, f
    raise AssertionError("no chain token valid now")


async def _audit(w, dev):
    r = await w.http.get(f"{w.cloud.url}/v1/audit", params={"device_id": dev.hex, "limit": "1000"}, headers=w.admin)
    return (await r.json())["entries"]


async def test_cloud_fallback_fetches_an_unknown_device_on_demand(world):
    edge = await world.start_edge()
    dev, = world.devices(1)
    req, reply = await binauth_http(world, edge, dev)
    out = dev.reply(req, reply)
    assert out["status"] == OK and out["authenticated"]
    st = (await (await world.http.get(edge.url + "/v1/edge/status")).json())
    assert st["cached_devices"] == 1 and st["serving"]
    r = await world.http.get(edge.url + "/metrics")
    assert 'janua_auth_decisions_total{result="OK",transport="http"} 1.0' in await r.text()


async def test_udp_binauth_for_a_device_fetched_on_demand(world):
    edge = await world.start_edge()
    dev, = world.devices(1)
    req = dev.request()
    reply = await asyncio.get_running_loop().run_in_executor(None, udp_exchange, edge.udp_port, req)
    assert dev.reply(req, reply)["status"] == OK


async def test_edge_holds_no_master_secret_only_the_sealed_binauth_key(world, tmp_path):
    edge = await world.start_edge()
    dev, = world.devices(1)
    await binauth_http(world, edge, dev)
    await world.stop_edge(edge)
    raw = (tmp_path / "edge.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("edge.db-*"))
    master = world.cloud.storage.get_device(dev.id)   # the cloud's sealed row: the edge has neither form
    assert dev.key not in raw and dev.key.hex().encode() not in raw
    assert master["sealed_secret"] not in raw


async def test_offline_binauth_and_chain_tokens_while_the_cloud_is_down(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge()
    req, reply = await binauth_http(world, edge, dev)      # the edge learns the device while the cloud is up
    assert dev.reply(req, reply)["status"] == OK
    await world.stop_cloud()

    clock.advance(2 * DAY + 3600)
    req, reply = await binauth_http(world, edge, dev)
    assert dev.reply(req, reply)["status"] == OK
    tok, f = _current(dev, clock())
    status, body = await offline(world, edge.url, tok)
    assert status == 200, body
    assert body == {"ok": True, "device_id": dev.hex, "index": f["index"], "next_index": f["index"] + 1,
                    "next_nbf": f["nbf"] + DAY}


async def test_replayed_offline_token_is_refused_also_after_an_edge_restart(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge()
    await binauth_http(world, edge, dev)
    await world.stop_cloud()
    clock.advance(DAY + 60)
    tok, _ = _current(dev, clock())
    assert (await offline(world, edge.url, tok))[0] == 200
    status, body = await offline(world, edge.url, tok)
    assert status == 401 and body == {"error": "unauthenticated", "message": "refused"}

    await world.stop_edge(edge)                # the cloud is still down: the edge restarts from its file
    edge = await world.start_edge()
    assert (await offline(world, edge.url, tok))[0] == 401
    old_req = dev.request()
    req, reply = await binauth_http(world, edge, dev, old_req)
    assert dev.reply(req, reply)["status"] == OK
    await world.stop_edge(edge)
    edge = await world.start_edge()
    req, reply = await binauth_http(world, edge, dev, old_req)   # a binary-auth replay after the restart
    out = dev.reply(req, reply)
    assert out["status"] == REPLAY and out["authenticated"]


async def test_device_revoked_before_the_outage_is_refused_offline(world, clock):
    dev, other = world.devices(2)
    await world.get_chain(dev)
    await world.get_chain(other)
    edge = await world.start_edge()
    for d in (dev, other):
        await binauth_http(world, edge, d)
    await world.lifecycle(dev, "suspend")
    assert await edge.app[_edge_key()].sync(clock())            # the edge has synced the revocation
    await world.stop_cloud()
    clock.advance(DAY + 60)
    assert (await offline(world, edge.url, _current(dev, clock())[0]))[0] == 401
    req, reply = await binauth_http(world, edge, dev)
    out = dev.reply(req, reply)
    assert out["status"] == NOT_ACTIVE and out["authenticated"]
    assert (await offline(world, edge.url, _current(other, clock())[0]))[0] == 200


async def test_after_max_offline_the_edge_refuses_everything(world, clock, caplog):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge(max_offline_s=2 * DAY)
    await binauth_http(world, edge, dev)
    await world.stop_cloud()
    clock.advance(2 * DAY - 60)
    req, reply = await binauth_http(world, edge, dev)
    assert dev.reply(req, reply)["status"] == OK
    clock.advance(120)
    req, reply = await binauth_http(world, edge, dev)
    assert reply[0] == UNKNOWN_DEVICE and not dev.reply(req, reply)["authenticated"]
    assert (await offline(world, edge.url, _current(dev, clock())[0]))[0] == 401
    assert "refusing every authentication" in caplog.text


async def test_reports_are_delivered_when_the_cloud_returns(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge()
    await binauth_http(world, edge, dev)
    await world.stop_cloud()
    clock.advance(DAY + 60)
    tok, f = _current(dev, clock())
    assert (await offline(world, edge.url, tok))[0] == 200
    assert (await offline(world, edge.url, tok))[0] == 401          # a refusal: audited too
    pending = (await (await world.http.get(edge.url + "/v1/edge/status")).json())["pending"]
    assert pending["used"] == 1 and pending["audit"] >= 2

    await world.start_cloud()
    assert await edge.app[_edge_key()].sync(clock())
    pending = (await (await world.http.get(edge.url + "/v1/edge/status")).json())["pending"]
    assert pending == {"used": 0, "binauth": 0, "audit": 0, "health": 0}
    assert (await offline(world, world.cloud.url, tok))[0] == 401    # the cloud refuses the edge's used token
    rows = await _audit(world, dev)
    edge_rows = [r for r in rows if (r["actor"] or "").startswith("edge:") and r["transport"] == "offline"]
    assert sorted(r["result"] for r in edge_rows) == ["OK", "REFUSED"]


@pytest.mark.parametrize("mutate", ["flip_signature", "other_device_id", "truncated"])
async def test_forged_offline_token_is_refused_without_asking_upstream(world, clock, mutate):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge()
    clock.advance(DAY + 60)
    tok = bytearray(_current(dev, clock())[0])
    if mutate == "flip_signature":
        tok[-1] ^= 1
    elif mutate == "other_device_id":
        tok[5:13] = bytes(8)
    else:
        tok = tok[:-1]
    assert (await offline(world, edge.url, bytes(tok)))[0] == 401
    assert edge.app[_edge_key()].cached_count() == 0


def _edge_key():
    from verifier.edge.app import EDGE
    return EDGE


async def test_chain_token_of_a_device_never_seen_here_is_verified_offline(world, clock):
    """A chain token needs no device secret: the upstream's signature, the synced revocation list and
    the tenant's synced policy decide, so a device that never came through this edge before the outage
    still authenticates offline, once; a revoked one does not."""
    dev, revoked = world.devices(2)
    await world.get_chain(dev)
    await world.get_chain(revoked)
    edge = await world.start_edge()
    await world.lifecycle(revoked, "suspend")
    assert await edge.app[_edge_key()].sync(clock())
    await world.stop_cloud()
    clock.advance(DAY + 60)
    assert edge.app[_edge_key()].cached_count() == 0
    tok, f = _current(dev, clock())
    status, body = await offline(world, edge.url, tok)
    assert status == 200 and body["index"] == f["index"], body
    assert (await offline(world, edge.url, tok))[0] == 401                      # once
    assert (await offline(world, edge.url, _current(revoked, clock())[0]))[0] == 401
