"""What the edge says about the upstream at start-up: an edge restarted while the cloud is down serves from its
cache, and its log must say that it did not sync (it said "synced with URL; serving")."""

import logging

from verifier.edge.app import EDGE

LOGGER = "janua.verifier.edge"


def _edge_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


async def test_edge_restarted_while_cloud_is_down_never_logs_synced(world, clock, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    world.devices(1)
    edge = await world.start_edge()
    url = f"http://127.0.0.1:{world.cloud_port}"
    assert f"edge: synced with {url}; serving" in _edge_lines(caplog)
    await world.stop_cloud()
    await world.stop_edge(edge)
    clock.advance(600)
    caplog.clear()
    edge = await world.start_edge()                       # from its file; the upstream does not answer
    lines = _edge_lines(caplog)
    assert not [m for m in lines if m.startswith("edge: synced with")]
    assert (f"edge: not synced with upstream {url} since start; serving from the cache of the last sync 600 s ago "
            f"(max_offline_s 604800)") in lines
    status = await (await world.http.get(edge.url + "/v1/edge/status")).json()
    assert status["serving"] is True


async def test_edge_logs_synced_once_the_upstream_answers_after_a_cold_restart(world, clock, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    edge = await world.start_edge()
    await world.stop_cloud()
    await world.stop_edge(edge)
    caplog.clear()
    edge = await world.start_edge()
    core = edge.app[EDGE]
    await world.start_cloud()
    clock.advance(60)
    assert await core.sync(clock()) is True and core.serving(clock()) is True
    assert _edge_lines(caplog)[-1] == f"edge: synced with http://127.0.0.1:{world.cloud_port}; serving"

