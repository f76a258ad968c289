"""The edge's audit trail under unauthenticated traffic: forged tags are counted and summarised like
on the cloud (verifier/registry/audit.py), and a summary still open when the edge stops reaches its outbox."""

import asyncio
import json
import sqlite3

from edgeworld import udp_exchange
from verifier.appkeys import CORE


async def test_edge_keeps_its_refusal_summaries_when_it_stops(world, tmp_path):
    dev, = world.devices(1)
    edge = await world.start_edge()
    for n in range(5):                   # forged tags for a device the edge holds
        forged = dev.id + (int(world.clock()) + n).to_bytes(4, "big") + bytes(8)
        await asyncio.to_thread(udp_exchange, edge.udp_port, forged)
    assert edge.app[CORE].summary.open_windows == 1
    await world.stop_edge(edge)
    with sqlite3.connect(tmp_path / "edge.db") as db:
        rows = [json.loads(r[0]) for r in db.execute("SELECT row FROM edge_outbox")]
    summaries = [r for r in rows if r[2] == "summary"]
    assert [(r[3], r[5], r[8]) for r in summaries] == [(dev.hex, "binauth", "SIGNATURE")]
    assert summaries[0][9].startswith("5 refused from 1 source host(s)")
    assert not [r for r in rows if r[2] == "auth" and r[8] == "SIGNATURE"]
