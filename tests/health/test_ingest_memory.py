"""What the health ingest keeps in memory (docs/health.md 3): each device's row and recent reports, read
again after an admin change (it listens to binary auth's cache), and at most MEMORY_DEVICES devices."""

import pytest

from tests.support import T0, client, config  # noqa: F401 (fixtures)
from tests.verifier.conftest import Tenant
from verifier.appkeys import HEALTH, STORAGE
from verifier.health import ingest as ingest_mod
from verifier.health.core import encode


@pytest.fixture
def tenant(client, clock):
    return Tenant(client.app, "acme", clock)


def score(app, dev):
    app[HEALTH].sync()
    return app[STORAGE]._db.execute("SELECT health_score FROM devices WHERE id = ?", (dev.id,)).fetchone()[0]


async def test_a_policy_change_reaches_the_next_report(client, tenant):
    app, dev = client.app, tenant.device()
    ing = app[HEALTH]
    assert ing.ingest(dev.id, tenant.id, "coap", encode({"clock_offset_s": 20}), T0) == "ok"
    assert score(app, dev) == 100                       # 20 s is within half the default drift
    r = await client.patch("/v1/tenant", json={"policy": {"drift_s": 30}}, headers=tenant.headers)
    assert r.status == 200
    assert ing.ingest(dev.id, tenant.id, "coap", encode({"clock_offset_s": 20}), T0 + 60) == "ok"
    assert score(app, dev) == 85                        # clock_drift (warning): 20 > 30 / 2


async def test_at_most_memory_devices_are_remembered(client, tenant, monkeypatch):
    monkeypatch.setattr(ingest_mod, "MEMORY_DEVICES", 2)
    app = client.app
    ing = app[HEALTH]
    devs = [tenant.device() for _ in range(3)]
    for i, d in enumerate(devs):
        assert ing.ingest(d.id, tenant.id, "coap", encode({"boot_count": 1}), T0 + i) == "ok"
    assert ing.briefs(devs[0].id) is None               # the least recently reporting one went
    assert [len(ing.briefs(d.id)) for d in devs[1:]] == [1, 1]
    assert ing.ingest(devs[1].id, tenant.id, "coap", encode({"boot_count": 1}), T0 + 9) == "ok"
    assert ing.ingest(devs[0].id, tenant.id, "coap", encode({"boot_count": 1}), T0 + 10) == "ok"
    assert ing.briefs(devs[2].id) is None and len(ing.briefs(devs[1].id)) == 2
