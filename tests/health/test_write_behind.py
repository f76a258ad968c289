"""The ingest writes behind (docs/health.md 3): an accepted report reaches the tables within FLUSH_S, at once
when MAX_QUEUE reports wait, and whenever a read route syncs first; several reports of one device in one
batch leave the last one."""

import asyncio

from verifier.appkeys import HEALTH, STORAGE
from verifier.health import ingest as ingest_mod
from verifier.health.core import encode

T0 = 1_767_225_600


async def test_written_within_flush_s(server, tenant, monkeypatch):
    monkeypatch.setattr(ingest_mod, "FLUSH_S", 0.2)
    dev = tenant.device()
    ingest, storage = server.app[HEALTH], server.app[STORAGE]
    assert ingest.ingest(dev.id, tenant.id, "coap", encode({"heap_free": 1}), T0) == "ok"
    assert ingest.ingest(dev.id, tenant.id, "coap", encode({"heap_free": 2}), T0 + 1) == "ok"
    assert storage.get_health(dev.id) is None                # queued, not yet written
    await asyncio.sleep(0.4)
    got = storage.get_health(dev.id)
    assert got["fields"] == {"heap_free": 2} and got["received_at"] == T0 + 1


async def test_a_full_queue_is_written_at_once(server, tenant, monkeypatch):
    monkeypatch.setattr(ingest_mod, "MAX_QUEUE", 3)
    devs = [tenant.device() for _ in range(3)]
    ingest, storage = server.app[HEALTH], server.app[STORAGE]
    for i, d in enumerate(devs[:2]):
        ingest.ingest(d.id, tenant.id, "coap", encode({"errors": i}), T0)
    assert storage.get_health(devs[0].id) is None
    ingest.ingest(devs[2].id, tenant.id, "coap", encode({"errors": 7}), T0)
    assert [storage.get_health(d.id)["fields"]["errors"] for d in devs] == [0, 1, 7]


async def test_sync_writes_what_is_queued(server, tenant):
    dev = tenant.device()
    ingest, storage = server.app[HEALTH], server.app[STORAGE]
    ingest.ingest(dev.id, tenant.id, "mqtt", encode({"uptime_s": 5}), T0)
    ingest.sync()
    assert storage.get_health(dev.id)["via"] == "mqtt"
