"""POST /v1/edge/reports counts every item it drops: a used index or a binary-auth floor naming a device that
is not the caller's tenant's (another tenant's, or no device at all: the two are indistinguishable) is in
`ignored`, never silently lost."""

from verifier.registry import core as registry


async def _other_tenant_admin(w):
    st = w.cloud.storage
    tid = registry.create_tenant(st, "other", w.clock())["id"]
    _, token = registry.issue_token(st, tid, w.clock())
    return {"Authorization": f"Bearer {token}"}


async def _report(w, body, headers):
    r = await w.http.post(w.cloud.url + "/v1/edge/reports", json=body, headers=headers)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_binauth_floor_for_another_tenants_device_is_counted_as_ignored(world):
    dev, = world.devices(1)
    headers = await _other_tenant_admin(world)
    body = {"binauth": [{"device_id": dev.hex, "last_ts": 1_800_000_000}]}
    assert await _report(world, body, headers) == {"used": 0, "ignored": 1, "binauth": 0, "audit": 0, "health": 0, "health_refused": 0}
    assert world.cloud.storage.get_device(dev.id)["last_ts"] == 0       # and nothing was raised


async def test_binauth_floor_for_a_missing_device_is_counted_like_another_tenants(world):
    world.devices(1)
    body = {"binauth": [{"device_id": "00" * 8, "last_ts": 5}],
            "used": [{"device_id": "00" * 8, "index": 0, "ts": 5}]}
    assert await _report(world, body, world.edge) == {"used": 0, "ignored": 2, "binauth": 0, "audit": 0, "health": 0, "health_refused": 0}


async def test_own_floor_that_does_not_rise_is_neither_raised_nor_ignored(world):
    dev, = world.devices(1)
    body = {"binauth": [{"device_id": dev.hex, "last_ts": 7}]}
    assert await _report(world, body, world.edge) == {"used": 0, "ignored": 0, "binauth": 1, "audit": 0, "health": 0, "health_refused": 0}
    assert await _report(world, body, world.edge) == {"used": 0, "ignored": 0, "binauth": 0, "audit": 0, "health": 0, "health_refused": 0}
