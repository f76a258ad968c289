"""GET /v1/edge/snapshot?after=CURSOR on a real cloud verifier (docs/tokens.md "Change markers"): every kind of
change an edge entry is made of comes once, nothing else comes, the cursor loses no change of the same second,
a truncated answer is continued from its cursor, and an edge that syncs follows the pages to the end."""

import pytest

from edgeworld import binauth_http
from verifier.binauth.core import OK
from verifier.edge import routes
from verifier.edge.app import EDGE


async def _snap(w, **params):
    r = await w.http.get(w.cloud.url + "/v1/edge/snapshot", params=params, headers=w.edge)
    assert r.status == 200, await r.text()
    return await r.json()


async def _cursor(w):
    return (await _snap(w))["cursor"]


async def _call(w, method, path, body=None):
    r = await w.http.request(method, w.cloud.url + path, json=body, headers=w.admin)
    assert r.status in (200, 201), await r.text()
    return await r.json()


async def _suspend(w, dev):
    await w.lifecycle(dev, "suspend")


async def _quarantine(w, dev):
    await w.lifecycle(dev, "quarantine")


async def _compromised(w, dev):
    await _call(w, "PATCH", f"/v1/devices/{dev.hex}", {"compromised": True})


async def _permissions(w, dev):
    await _call(w, "PATCH", f"/v1/devices/{dev.hex}", {"permissions": 1})


@pytest.mark.parametrize("change, status, blocked, chain_revoked, permissions", [
    (_suspend, "suspended", False, True, 15),
    (_quarantine, "active", True, True, 15),
    (_compromised, "active", True, True, 15),
    (_permissions, "active", False, False, 1),
])
async def test_a_change_of_an_entry_comes_in_the_next_snapshot_once(world, change, status, blocked, chain_revoked,
                                                                      permissions):
    a, b = world.devices(2)
    cursor = await _cursor(world)
    await change(world, a)
    snap = await _snap(world, after=str(cursor))
    assert [(d["device_id"], d["status"], d["blocked"], d["chain_revoked"], d["permissions"]) for d in snap["devices"]] \
        == [(a.hex, status, blocked, chain_revoked, permissions)]
    assert snap["deleted"] == [] and snap["truncated"] is False and snap["cursor"] == cursor + 1
    again = await _snap(world, after=str(snap["cursor"]))
    assert again["devices"] == [] and again["deleted"] == [] and again["cursor"] == cursor + 1


async def test_provisioning_and_a_delete_come_once_each(world):
    cursor = await _cursor(world)
    new = await _call(world, "POST", "/v1/devices", {"serial_number": "SN-NEW-1"})
    snap = await _snap(world, after=str(cursor))
    assert [(d["device_id"], d["status"]) for d in snap["devices"]] == [(new["device_id"], "provisioning")]
    r = await world.http.delete(f"{world.cloud.url}/v1/devices/{new['device_id']}", headers=world.admin)
    assert r.status == 204, await r.text()
    after_delete = await _snap(world, after=str(snap["cursor"]))
    assert after_delete["devices"] == [] and after_delete["deleted"] == [new["device_id"]]
    assert after_delete["cursor"] == cursor + 2
    assert (await _snap(world, after=str(after_delete["cursor"])))["deleted"] == []


async def test_what_is_no_change_of_an_entry_does_not_come(world, clock):
    a, b = world.devices(2)
    cursor = await _cursor(world)
    entry = await world.http.get(f"{world.cloud.url}/v1/edge/devices/{a.hex}", headers=world.edge)
    key = (await entry.json())["binauth_key"]
    clock.advance(10)
    await _call(world, "PATCH", f"/v1/devices/{a.hex}", {"metadata": {"group": "hall"}, "trust_level": 3})
    await _call(world, "PATCH", f"/v1/devices/{a.hex}", {"permissions": 15})      # its value already
    await _call(world, "POST", f"/v1/devices/{a.hex}/psk/rotate", {})               # K_binauth stays
    req, reply = await binauth_http(world, world.cloud, b)                        # an authentication
    assert b.reply(req, reply)["status"] == OK
    snap = await _snap(world, after=str(cursor))
    assert snap["devices"] == [] and snap["deleted"] == [] and snap["cursor"] == cursor
    entry = await world.http.get(f"{world.cloud.url}/v1/edge/devices/{a.hex}", headers=world.edge)
    assert (await entry.json())["binauth_key"] == key


async def test_a_change_in_the_same_second_as_the_previous_snapshot_is_not_lost(world, clock):
    a, b = world.devices(2)
    first = await _snap(world, after=str(await _cursor(world)))
    await world.lifecycle(a, "suspend")                 # clock not advanced: the second of `first`
    snap = await _snap(world, after=str(first["cursor"]))
    assert snap["now"] == first["now"]
    assert [d["device_id"] for d in snap["devices"]] == [a.hex]


async def test_a_cursor_from_before_a_restore_starts_over(world):
    a, b = world.devices(2)
    cursor = await _cursor(world)
    snap = await _snap(world, after=str(cursor + 1000))
    assert sorted(d["device_id"] for d in snap["devices"]) == sorted([a.hex, b.hex]) and snap["cursor"] == cursor


async def test_small_pages_visit_every_change_once(world, monkeypatch):
    monkeypatch.setattr(routes, "MAX_SNAPSHOT_DEVICES", 2)
    devs = world.devices(4)
    new = await _call(world, "POST", "/v1/devices", {"serial_number": "SN-PAGED"})
    cursor = await _cursor(world)
    for d in devs[:3]:
        await world.lifecycle(d, "suspend")
    r = await world.http.delete(f"{world.cloud.url}/v1/devices/{new['device_id']}", headers=world.admin)
    assert r.status == 204
    await world.lifecycle(devs[0], "resume")            # changed twice: comes once, as it is now
    pages = []
    while True:
        snap = await _snap(world, after=str(cursor))
        pages.append(([(d["device_id"], d["status"]) for d in snap["devices"]], snap["deleted"], snap["truncated"]))
        cursor = snap["cursor"]
        if not snap["truncated"]:
            break
    assert pages == [
        ([(devs[1].hex, "suspended"), (devs[2].hex, "suspended")], [], True),
        ([(devs[0].hex, "active")], [new["device_id"]], False),
    ]


async def test_an_edge_follows_truncated_snapshots_and_converges(world, clock, monkeypatch):
    monkeypatch.setattr(routes, "MAX_SNAPSHOT_DEVICES", 1)
    devs = world.devices(3)
    extra = await _call(world, "POST", "/v1/devices", {"serial_number": "SN-EDGE"})
    edge = await world.start_edge()
    core = edge.app[EDGE]
    assert await core.sync(clock())
    for did in [d.id for d in devs] + [bytes.fromhex(extra["device_id"])]:
        assert await core.ensure(did, clock()) is not None
    for d in devs:
        await world.lifecycle(d, "suspend")
    r = await world.http.delete(f"{world.cloud.url}/v1/devices/{extra['device_id']}", headers=world.admin)
    assert r.status == 204
    clock.advance(1)
    assert await core.sync(clock())                     # one sync: four pages of one change each
    assert [core.entry(d.id).status for d in devs] == ["suspended", "suspended", "suspended"]
    assert core.entry(bytes.fromhex(extra["device_id"])) is None and core.cached_count() == 3
    cursor = core._cursor
    assert cursor == (await _cursor(world))
    assert await core.sync(clock())                     # nothing new: the same cursor
    assert core._cursor == cursor and core.cached_count() == 3
    await world.lifecycle(devs[1], "resume")
    assert await core.sync(clock())
    assert [core.entry(d.id).status for d in devs] == ["suspended", "active", "suspended"]
    assert core._cursor == cursor + 1


async def test_the_previous_releases_since_form_still_answers_and_gives_a_cursor(world, clock):
    a, b = world.devices(2)
    cursor = await _cursor(world)
    clock.advance(100)
    await world.lifecycle(a, "suspend")
    snap = await _snap(world, since=str(int(clock())))
    assert [d["device_id"] for d in snap["devices"]] == [a.hex] and snap["deleted"] == []
    assert snap["cursor"] == cursor + 1


async def test_an_edge_upgraded_from_the_previous_release_syncs_once_by_since_then_by_cursor(world, clock):
    a, b = world.devices(2)
    edge = await world.start_edge()
    core = edge.app[EDGE]
    assert await core.sync(clock())
    assert await core.ensure(a.id, clock()) is not None
    cursor = core._cursor
    core._cursor = None                     # what the previous release kept: only `since`
    clock.advance(100)
    await world.lifecycle(a, "suspend")
    assert await core.sync(clock())
    assert core.entry(a.id).status == "suspended" and core._cursor == cursor + 1
    assert edge.app[EDGE]._store.get_meta("cursor") == cursor + 1


async def test_a_tenant_policy_change_reaches_the_cached_entries_at_the_next_sync(world, clock):
    a, b = world.devices(2)
    edge = await world.start_edge()
    core = edge.app[EDGE]
    assert await core.sync(clock())
    assert await core.ensure(a.id, clock()) is not None
    assert core.entry(a.id).policy.drift_s == 300
    await _call(world, "PATCH", "/v1/tenant", {"policy": {"drift_s": 120}})
    snap = await _snap(world, after=str(core._cursor))
    assert snap["devices"] == []                        # no device changed: the policy comes in `tenant`
    assert await core.sync(clock())
    assert (core.entry(a.id).policy.drift_s, core.policy(world.tenant_id).drift_s) == (120, 120)
