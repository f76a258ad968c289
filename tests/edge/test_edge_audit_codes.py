"""Offline-token audit rows of the edge, as delivered to the cloud: `reason` is a bare code from
docs/tokens.md 3.1 (scripts match on it) and the token's index is in `detail`; it was one string,
`replayed (index 3)`, that matched no listed code."""

from edgeworld import offline
from verifier.tokens.chain import decode_chain_token_unverified
from verifier.edge.app import EDGE, EDGE_STORE

DAY = 86400


def _current(dev, now):
    for t in dev.chain:
        f = decode_chain_token_unverified(t)
        if f["nbf"] <= now <= f["exp"] and f["nbf"] + DAY > now:
            return t, f
    raise AssertionError("no chain token valid now")


async def test_edge_refusal_reason_is_a_bare_code_with_the_index_in_detail(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge()
    await world.stop_cloud()
    clock.advance(DAY + 60)
    tok, f = _current(dev, clock())
    assert f["index"] == 1
    assert (await offline(world, edge.url, tok))[0] == 200
    assert (await offline(world, edge.url, tok))[0] == 401
    await world.start_cloud()
    assert await edge.app[EDGE].sync(clock())
    r = await world.http.get(f"{world.cloud.url}/v1/audit", params={"device_id": dev.hex}, headers=world.admin)
    rows = [(e["result"], e["reason"], e["detail"]) for e in (await r.json())["entries"]
            if e["transport"] == "offline" and (e["actor"] or "").startswith("edge:")]
    assert rows == [("REFUSED", "replayed", "index 1"), ("OK", None, "index 1")]


async def test_stale_edge_refusal_reason_is_the_bare_code_stale(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge(max_offline_s=2 * DAY)
    await world.stop_cloud()
    clock.advance(2 * DAY + 60)
    tok, f = _current(dev, clock())
    assert (await offline(world, edge.url, tok))[0] == 401
    row = edge.app[EDGE_STORE].pending_reports(10)[0]["audit"][-1]
    assert (row["result"], row["reason"], row["detail"]) == (
        "REFUSED", "stale", f"index {f['index']}; no successful sync within max_offline_s")


async def test_edge_audits_a_malformed_token_naming_a_cached_device_and_bounds_the_junk(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge()
    clock.advance(DAY + 60)
    tok, f = _current(dev, clock())
    assert (await offline(world, edge.url, tok))[0] == 200          # the device is now in the edge's cache
    bad = b"\x02" + tok[1:]
    for _ in range(25):
        assert (await offline(world, edge.url, bad))[0] == 401
    rows = [r for r in edge.app[EDGE_STORE].pending_reports(100)[0]["audit"] if r["result"] == "REFUSED"]
    assert [(r["tenant_id"], r["device_id"], r["reason"], r["detail"]) for r in rows] == [
        (world.tenant_id, dev.hex, "malformed", "version 2")] * 10


async def test_stale_edge_refusals_cannot_grow_the_outbox_without_bound(world, clock):
    dev, = world.devices(1)
    await world.get_chain(dev)
    edge = await world.start_edge(max_offline_s=2 * DAY)
    await world.stop_cloud()
    clock.advance(2 * DAY + 60)
    tok, _ = _current(dev, clock())
    for _ in range(30):
        assert (await offline(world, edge.url, tok))[0] == 401
    rows = [r for r in edge.app[EDGE_STORE].pending_reports(100)[0]["audit"] if r["reason"] == "stale"]
    assert len(rows) == 10
