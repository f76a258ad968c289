"""The policy routes (docs/policies.md, docs/api.md): set, read, list and delete documents per scope, the device's
effective policy with its sources, roles (admin writes, viewer reads) and the audit rows of changes. Expected
bodies and statuses are written out."""

import pytest

from verifier.appkeys import STORAGE
from verifier.registry import core as registry

WINDOW = {"days": ["sat", "sun"], "start": "22:00", "end": "02:00", "tz": "Europe/Berlin"}


def _viewer(tenant):
    _, token = registry.issue_token(tenant.app[STORAGE], tenant.id, tenant.clock(), role="viewer")
    return {"Authorization": f"Bearer {token}"}


async def test_set_read_replace_delete(client, tenant):
    url = "/v1/policies/model/sensor-v2"
    r = await client.put(url, json={"auth": {"protocols": ["dtls"]}}, headers=tenant.headers)
    assert r.status == 201
    assert await r.json() == {"scope": "model", "key": "sensor-v2", "policy": {"auth": {"protocols": ["dtls"]}},
                              "updated_at": 1767225600, "updated_by": tenant.token_id}
    r = await client.put(url, json={"update": {"mode": "window", "window": WINDOW}}, headers=tenant.headers)
    assert r.status == 200          # replaced, not merged
    r = await client.get(url, headers=tenant.headers)
    assert (await r.json())["policy"] == {"update": {"mode": "window", "window": WINDOW}}
    r = await client.delete(url, headers=tenant.headers)
    assert r.status == 204
    r = await client.get(url, headers=tenant.headers)
    assert r.status == 404
    r = await client.delete(url, headers=tenant.headers)
    assert r.status == 404


@pytest.mark.parametrize("path", ["/v1/policies/tenant/other", "/v1/policies/device/0011223344556677",
                                  "/v1/policies/device/not-a-device", "/v1/policies/region/x"])
async def test_a_key_that_names_nothing_is_404(client, tenant, path):
    r = await client.put(path, json={}, headers=tenant.headers)
    assert r.status == 404


async def test_a_device_of_another_tenant_is_404(client, tenant, clock):
    from tests.support import AdminTenant
    other = AdminTenant(client.app, "other", clock)
    (hex_id, _), = other.provision([{}])
    r = await client.put(f"/v1/policies/device/{hex_id}", json={}, headers=tenant.headers)
    assert r.status == 404


async def test_invalid_document_is_400(client, tenant):
    r = await client.put("/v1/policies/tenant/default", json={"auth": {"protocols": ["telnet"]}},
                         headers=tenant.headers)
    assert r.status == 400 and (await r.json())["error"] == "invalid_request"


async def test_viewer_reads_but_does_not_write(client, tenant):
    viewer = _viewer(tenant)
    r = await client.put("/v1/policies/tenant/default", json={}, headers=viewer)
    assert r.status == 403
    r = await client.put("/v1/policies/tenant/default", json={"update": {"allowed": False}}, headers=tenant.headers)
    assert r.status == 201
    r = await client.get("/v1/policies/tenant/default", headers=viewer)
    assert r.status == 200
    r = await client.delete("/v1/policies/tenant/default", headers=viewer)
    assert r.status == 403


async def test_list_in_merge_order_with_pages(client, tenant):
    hex_id = tenant.device().hex
    for path in (f"/v1/policies/device/{hex_id}", "/v1/policies/group/b", "/v1/policies/group/a",
                 "/v1/policies/model/m", "/v1/policies/tenant/default"):
        assert (await client.put(path, json={}, headers=tenant.headers)).status == 201
    r = await client.get("/v1/policies?limit=2", headers=tenant.headers)
    page = await r.json()
    assert [(p["scope"], p["key"]) for p in page["policies"]] == [("tenant", "default"), ("model", "m")]
    assert page["next_cursor"] == "model/m"
    r = await client.get("/v1/policies?limit=2&cursor=model/m", headers=tenant.headers)
    page = await r.json()
    assert [(p["scope"], p["key"]) for p in page["policies"]] == [("group", "a"), ("group", "b")]
    r = await client.get(f"/v1/policies?limit=2&cursor={page['next_cursor']}", headers=tenant.headers)
    page = await r.json()
    assert [(p["scope"], p["key"]) for p in page["policies"]] == [("device", hex_id)]
    assert page["next_cursor"] is None
    r = await client.get("/v1/policies?scope=group", headers=tenant.headers)
    assert [p["key"] for p in (await r.json())["policies"]] == ["a", "b"]


async def test_the_effective_policy_of_a_device_with_its_sources(client, tenant):
    dev = tenant.device(model_id="sensor-v2", metadata={"group": "line-3"})
    await client.put("/v1/policies/tenant/default", json={"auth": {"min_trust_level": 20}}, headers=tenant.headers)
    await client.put("/v1/policies/model/sensor-v2", json={"access": {"permissions": 7}}, headers=tenant.headers)
    await client.put("/v1/policies/group/line-3", json={"update": {"mode": "window", "window": WINDOW}},
                     headers=tenant.headers)
    await client.put(f"/v1/policies/device/{dev.hex}", json={"auth": {"protocols": ["dtls", "token"]}},
                     headers=tenant.headers)
    r = await client.get(f"/v1/devices/{dev.hex}/policy", headers=_viewer(tenant))
    assert r.status == 200
    assert await r.json() == {
        "device_id": dev.hex,
        "policy": {"auth": {"protocols": ["dtls", "token"], "credential_types": ["symmetric", "x509", "password"],
                            "min_trust_level": 20, "attestation": "any", "token_ttl_s": 3600, "drift_s": 300},
                   "access": {"permissions": 7, "coap_resources": None, "mqtt_topics": None, "token_scopes": None},
                   "update": {"mode": "window", "window": WINDOW, "allowed": True}},
        "sources": {"auth.protocols": "device", "auth.credential_types": "default",
                    "auth.min_trust_level": "tenant", "auth.attestation": "default",
                    "auth.token_ttl_s": "tenant_policy", "auth.drift_s": "tenant_policy",
                    "access.permissions": "model:sensor-v2", "access.coap_resources": "default",
                    "access.mqtt_topics": "default", "access.token_scopes": "default",
                    "update.mode": "group:line-3", "update.window": "group:line-3", "update.allowed": "default"}}


async def test_changes_are_audited(client, tenant):
    await client.put("/v1/policies/group/line-3", json={"update": {"allowed": False}}, headers=tenant.headers)
    await client.delete("/v1/policies/group/line-3", headers=tenant.headers)
    rows = tenant.app[STORAGE].list_audit(tenant.id, kind="admin")
    got = [(a["action"], a["actor"], a["result"], a["reason"], a["detail"]) for a in rows
           if a["action"].startswith("policy.")]
    assert sorted(got) == [("policy.delete", tenant.token_id, "ok", "group/line-3", None),
                           ("policy.set", tenant.token_id, "ok", "group/line-3", '{"update":{"allowed":false}}')]


async def test_a_deleted_device_takes_its_policy_with_it(client, tenant):
    dev = tenant.device()
    await client.put(f"/v1/policies/device/{dev.hex}", json={}, headers=tenant.headers)
    r = await client.delete(f"/v1/devices/{dev.hex}", headers=tenant.headers)
    assert r.status == 204
    assert tenant.app[STORAGE].tenant_policies(tenant.id) == {}
