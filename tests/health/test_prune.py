"""History is one row per device per 15-minute slot and pruned after 24 h (time as a parameter)."""

from verifier.appkeys import HEALTH, STORAGE
from verifier.health.core import encode

T0 = 1_767_225_600


async def test_history_slots_and_prune(server, tenant):
    dev = tenant.device()
    ingest, storage = server.app[HEALTH], server.app[STORAGE]
    for i, t in enumerate((T0, T0 + 60, T0 + 900, T0 + 86400 + 1000)):
        assert ingest.ingest(dev.id, tenant.id, "coap", encode({"heap_free": 1000 + i}), t) == "ok"
    ingest.flush()
    assert [h["fields"]["heap_free"] for h in storage.health_history(dev.id, 0)] == [1001, 1002, 1003]
    assert storage.prune_health(T0 + 86400 + 1000 - 86400) == 2
    assert [h["slot"] for h in storage.health_history(dev.id, 0)] == [T0 + 86400 + 900]
    assert ingest.ingest(dev.id, tenant.id, "coap", bytes.fromhex("020000"), T0) == "version"
