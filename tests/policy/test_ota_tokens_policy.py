"""The update policy at the OTA check (POST /v1/ota/check, the request time injected with the app's clock) and the
device-token policy (protocol "token", token_ttl_s, token_scopes), docs/policies.md. Times are literal: the fake
clock starts at 1767225600, Thursday 2026-01-01 00:00 UTC (01:00 in Berlin)."""

import base64
import json

import pytest

from tests.ota_verifier.conftest import make_bundle, publish, signing, trust  # noqa: F401 (signing: a fixture)
from verifier.appkeys import STORAGE

async def _put(client, tenant, scope, key, doc):
    r = await client.put(f"/v1/policies/{scope}/{key}", json=doc, headers=tenant.headers)
    assert r.status in (200, 201), await r.text()

@pytest.fixture
async def rollout(client, tenant, signing, tmp_path):
    await trust(client, tenant, signing)
    rel = await publish(client, tenant, make_bundle(tmp_path, signing, "2.0.0", 2))
    r = await client.post(f"/v1/releases/{rel['id']}/rollout", json={"start": True, "phases": [{"percent": 100,
                                                                                                "hours": 0}]},
                          headers=tenant.headers)
    assert r.status == 201
    return rel

async def _check(client, dev):
    r = await client.post("/v1/ota/check", json={"auth": dev.auth(), "version": "1.0.0", "counter": 1})
    assert r.status == 200, await r.text()
    return await r.json()

async def test_a_maintenance_window_defers_the_update_until_it_opens(client, tenant, rollout, clock):
    dev = tenant.device()
    await _put(client, tenant, "device", dev.hex,
               {"update": {"mode": "window", "window": {"start": "03:00", "end": "04:00", "tz": "Europe/Berlin"}}})
    out = await _check(client, dev)
    assert out["update"] is None
    assert out["policy"] == {"decision": "deferred", "reason": "policy: outside the maintenance window",
                             "deferred_until": 1767232800}        # 03:00 Berlin = 02:00 UTC
    clock.advance(7200)                                            # the window is open
    out = await _check(client, dev)
    assert out["update"]["release_id"] == rollout["id"] and "policy" not in out
    clock.advance(3600)                                            # 04:00 Berlin: closed; tomorrow's opens
    out = await _check(client, dev)
    assert (out["update"], out["policy"]["deferred_until"]) == (None, 1767319200)

@pytest.mark.parametrize("doc, decision, reason", [
    ({"update": {"allowed": False}}, "refused", "policy: updates not allowed"),
    ({"update": {"mode": "manual"}}, "refused", "policy: manual updates (no rollout offers a release)")])
async def test_no_release_when_updates_are_not_allowed_or_manual(client, tenant, rollout, doc, decision, reason):
    dev, other = tenant.device(model_id="locked"), tenant.device()
    await _put(client, tenant, "model", "locked", doc)
    out = await _check(client, dev)
    assert (out["update"], out["policy"]) == (None, {"decision": decision, "reason": reason, "deferred_until": None})
    assert (await _check(client, other))["update"]["release_id"] == rollout["id"]

async def test_the_chain_sync_offers_no_update_while_held_back(client, tenant, rollout):
    dev = tenant.device()
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    bearer = {"Authorization": f"Bearer {(await r.json())['token']}"}
    body = {"have": -1, "ota": {"kind": "app", "version": "1.0.0", "counter": 1}}
    r = await client.post("/v1/auth/device/sync", json=body, headers=bearer)
    assert r.status == 200 and (await r.json())["update_available"] is True
    await _put(client, tenant, "tenant", "default", {"update": {"allowed": False}})
    r = await client.post("/v1/auth/device/sync", json=body, headers=bearer)
    assert r.status == 200 and (await r.json())["update_available"] is False


def _claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

async def test_token_lifetime_and_scopes_come_from_the_policy(client, tenant, clock):
    dev = tenant.device()
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    claims = _claims((await r.json())["token"])
    assert (claims["exp"] - claims["iat"], claims["scp"]) == (3600, "telemetry config ota commands")
    await _put(client, tenant, "device", dev.hex, {"auth": {"token_ttl_s": 600},
                                                   "access": {"token_scopes": ["telemetry:write", "fw"]}})
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    body = await r.json()
    claims = _claims(body["token"])
    assert (claims["exp"] - claims["iat"], claims["scp"]) == (600, "telemetry:write fw")
    assert body["refresh_at"] == 1767225600 + 600 - 300
    # permissions without token_scopes: the names of the policy's bits
    await _put(client, tenant, "device", dev.hex, {"access": {"permissions": 0b0101}})
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    assert _claims((await r.json())["token"])["scp"] == "telemetry ota"

async def test_a_policy_without_the_token_protocol_refuses_issue_and_refresh(client, tenant):
    dev = tenant.device()
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    token = (await r.json())["token"]
    await _put(client, tenant, "device", dev.hex, {"auth": {"protocols": ["binauth_udp", "dtls"]}})
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    assert r.status == 403
    assert await r.json() == {"error": "forbidden", "message": "policy: protocol token not allowed"}
    r = await client.post("/v1/auth/device/refresh", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 403
    rows = tenant.app[STORAGE].list_audit(tenant.id, device_id=dev.hex, kind="auth", limit=2)
    assert [(a["action"], a["result"], a["reason"]) for a in rows] == [
        ("token.refresh", "NOT_ACTIVE", "policy: protocol token not allowed"),
        ("token.issue", "NOT_ACTIVE", "policy: protocol token not allowed")]

async def test_token_refused_below_the_minimum_trust(client, tenant):
    dev = tenant.device(trust_level=30)
    await _put(client, tenant, "tenant", "default", {"auth": {"min_trust_level": 31}})
    r = await client.post("/v1/auth/device/token", json={"auth": dev.auth()})
    assert (r.status, (await r.json())["message"]) == (403, "policy: trust level 30 below 31")

