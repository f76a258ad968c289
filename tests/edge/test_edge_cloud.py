"""The cloud-side routes for edges (GET /v1/edge/devices/{id}, GET /v1/edge/snapshot, POST /v1/edge/reports)
on a real cloud verifier: tenant scoping, what an entry holds, and what reports may change."""

import pytest

from edgeworld import binauth_http
from verifier.registry import core as registry
from verifier.binauth.core import REPLAY


async def _get(w, path, headers=None, **params):
    r = await w.http.get(w.cloud.url + path, params=params, headers=w.edge if headers is None else headers)
    return r.status, await r.json()


async def _other_tenant(w):
    st = w.cloud.storage
    tid = registry.create_tenant(st, "other", w.clock())["id"]
    _, token = registry.issue_token(st, tid, w.clock())
    return {"Authorization": f"Bearer {token}"}


async def test_device_entry_holds_the_derived_binauth_key_not_the_master_secret(world):
    dev, = world.devices(1)
    status, entry = await _get(world, f"/v1/edge/devices/{dev.hex}")
    assert status == 200
    assert bytes.fromhex(entry["binauth_key"]) == dev.key
    assert entry["status"] == "active" and entry["chain_revoked"] is False and entry["tenant_id"] == world.tenant_id
    row = world.cloud.storage.get_device(dev.id)          # the master secret is in no field, in no form
    assert row["sealed_secret"].hex() not in str(entry)
    assert set(entry) >= {"device_id", "status", "binauth_key", "policy", "chain_revoked"}


@pytest.mark.parametrize("who", ["no_token", "other_tenant"])
async def test_edge_routes_do_not_leak_another_tenants_device(world, who):
    dev, = world.devices(1)
    headers = {} if who == "no_token" else await _other_tenant(world)
    status, _ = await _get(world, f"/v1/edge/devices/{dev.hex}", headers=headers)
    assert status == (401 if who == "no_token" else 404)
    if who == "other_tenant":
        status, snap = await _get(world, "/v1/edge/snapshot", headers=headers, since="0")
        assert status == 200 and snap["devices"] == [] and snap["revocations"]["devices"] == []


async def test_snapshot_lists_revocations_and_devices_changed_since(world, clock):
    a, b = world.devices(2)
    status, snap = await _get(world, "/v1/edge/snapshot")
    assert status == 200 and snap["devices"] == [] and snap["keys"]["keys"] and snap["now"] == int(clock())
    clock.advance(100)
    await world.lifecycle(a, "suspend")
    status, snap = await _get(world, "/v1/edge/snapshot", since=str(int(clock())))
    assert [d["device_id"] for d in snap["devices"]] == [a.hex] and snap["devices"][0]["chain_revoked"]
    assert snap["revocations"]["devices"] == [a.hex]


@pytest.mark.parametrize("body", [
    {"used": [{"device_id": "00" * 8, "index": -1, "ts": 1}]},
    {"used": [{"device_id": "00" * 8, "index": 70000, "ts": 1}]},
    {"binauth": [{"device_id": "00" * 8, "last_ts": "1"}]},
    {"used": "x"},
    {"other": []},
])
async def test_malformed_reports_are_refused_before_anything_is_written(world, body):
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json=body, headers=world.edge)
    assert r.status == 400


async def test_reports_raise_the_binauth_replay_floor_only_for_the_callers_devices(world):
    dev, = world.devices(1)
    headers = await _other_tenant(world)
    req = dev.request()
    ts = int.from_bytes(req[8:12], "big")
    body = {"binauth": [{"device_id": dev.hex, "last_ts": ts}], "used": [{"device_id": dev.hex, "index": 0, "ts": ts}]}
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json=body, headers=headers)
    assert (await r.json()) == {"used": 0, "ignored": 2, "binauth": 0, "audit": 0, "health": 0, "health_refused": 0}
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json=body, headers=world.edge)
    assert (await r.json())["binauth"] == 1
    # the request the edge accepted is now a replay at the cloud as well
    _, reply = await binauth_http(world, world.cloud, dev, req)
    assert dev.reply(req, reply)["status"] == REPLAY


async def test_an_edges_refusal_summary_stays_a_summary_at_the_cloud(world):
    """Edges summarise unauthenticated refusals too (kind "summary"); the cloud must not relabel them
    as single auth decisions."""
    dev, = world.devices(1)
    row = {"ts": 1, "kind": "summary", "device_id": dev.hex, "action": "binauth", "transport": "udp",
           "source": "192.0.2.1:1", "result": "SIGNATURE", "reason": "7 refused from 2 source host(s) in [1, 1]"}
    r = await world.http.post(world.cloud.url + "/v1/edge/reports", json={"audit": [row]}, headers=world.edge)
    assert (await r.json())["audit"] == 1
    status, body = await _get(world, "/v1/audit", headers=world.admin, device_id=dev.hex)
    assert [(e["kind"], e["result"]) for e in body["entries"] if e["action"] == "binauth"] == [("summary", "SIGNATURE")]
