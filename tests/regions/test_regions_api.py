"""Regions through the admin API (docs/regions.md): what a region is made of and what is refused (error codes
written out), replace and default semantics, roles, audit, tenant scope, delete refused while devices name it."""

import pytest

from tests.support import T0, AdminTenant

EU = {"auth": {"host": "auth.eu.example.com", "udp_port": 5685, "http_port": 8443, "dtls_port": 5684, "tls": True},
      "mqtt": {"host": "mqtt.eu.example.com", "port": 8883}, "coap": {"host": "coap.eu.example.com", "port": 5683},
      "https": "https://data.eu.example.com/v1", "update": "https://ota.eu.example.com/fw"}
US = {"auth": {"host": "10.1.2.3", "udp_port": 6000, "http_port": 8080, "dtls_port": 6001}}


async def _put(client, tenant, name, body, headers=None):
    return await client.put(f"/v1/regions/{name}", json=body, headers=headers or tenant.headers)


async def _err(r):
    return r.status, (await r.json())["error"]


async def test_put_creates_then_replaces_and_get_shows_the_document(client, tenant, clock):
    r = await _put(client, tenant, "eu-1", EU)
    assert r.status == 201
    assert await r.json() == {"name": "eu-1", **EU, "default": False, "created": T0, "updated": T0}
    clock.advance(10)
    r = await _put(client, tenant, "eu-1", {"auth": US["auth"], "default": True})
    assert r.status == 200
    assert await r.json() == {"name": "eu-1", "auth": US["auth"], "default": True, "created": T0, "updated": T0 + 10}
    r = await client.get("/v1/regions/eu-1", headers=tenant.headers)
    assert await r.json() == {"name": "eu-1", "auth": US["auth"], "default": True, "created": T0, "updated": T0 + 10}


async def test_list_is_by_name_and_only_the_tenants_own(client, tenant, clock):
    other = AdminTenant(client.app, "other", clock)
    await _put(client, tenant, "us-2", US)
    await _put(client, tenant, "eu-1", EU)
    await _put(client, other, "ap-1", US)
    r = await client.get("/v1/regions", headers=tenant.headers)
    assert [x["name"] for x in (await r.json())["regions"]] == ["eu-1", "us-2"]
    r = await client.get("/v1/regions/ap-1", headers=tenant.headers)
    assert await _err(r) == (404, "not_found")
    r = await client.delete("/v1/regions/ap-1", headers=tenant.headers)
    assert await _err(r) == (404, "not_found")


async def test_a_new_default_takes_the_default_from_the_old_one(client, tenant):
    await _put(client, tenant, "eu-1", {**EU, "default": True})
    await _put(client, tenant, "us-2", {**US, "default": True})
    r = await client.get("/v1/regions", headers=tenant.headers)
    assert [(x["name"], x["default"]) for x in (await r.json())["regions"]] == [("eu-1", False), ("us-2", True)]


@pytest.mark.parametrize("body", [
    {},                                                                         # no auth
    {"auth": {"host": "a.example", "udp_port": 1, "http_port": 2}},             # no dtls_port
    {"auth": {**US["auth"], "udp_port": 0}},
    {"auth": {**US["auth"], "http_port": 65536}},
    {"auth": {**US["auth"], "dtls_port": "5684"}},
    {"auth": {**US["auth"], "dtls_port": True}},
    {"auth": {**US["auth"], "host": "bad host"}},
    {"auth": {**US["auth"], "host": "-lead.example"}},
    {"auth": {**US["auth"], "host": ""}},
    {"auth": {**US["auth"], "tls": "yes"}},
    {"auth": {**US["auth"], "extra": 1}},
    {**US, "mqtt": {"host": "m.example"}},
    {**US, "coap": {"host": "c.example", "port": 5683, "tls": True}},
    {**US, "https": "http://data.example.com"},                                # https only
    {**US, "update": "https://user:pw@ota.example.com/"},                       # no credentials in the URL
    {**US, "update": "https://ota.example.com/ü"},
    {**US, "default": "true"},
    {**US, "name": "us-2"},                                                     # the name is the path's
    {**US, "region": "x"},
])
async def test_schema_invalid_region_is_refused_with_invalid_request(client, tenant, body):
    r = await _put(client, tenant, "us-2", body)
    assert await _err(r) == (400, "invalid_request")
    assert (await client.get("/v1/regions/us-2", headers=tenant.headers)).status == 404


async def test_body_that_is_not_json_is_refused(client, tenant):
    r = await client.put("/v1/regions/us-2", data=b"{", headers=tenant.headers)
    assert await _err(r) == (400, "invalid_request")


@pytest.mark.parametrize("body", [
    {"auth": {**US["auth"], "dtls_port": 6000}},                                         # UDP: auth and DTLS
    {**US, "mqtt": {"host": "10.1.2.3", "port": 8080}},                                  # TCP: HTTP and MQTT
    {"auth": {**EU["auth"], "host": "Auth.EU.example.com"}, "mqtt": {"host": "auth.eu.example.com", "port": 8443}},
])
async def test_two_endpoints_on_one_port_are_a_port_clash(client, tenant, body):
    r = await _put(client, tenant, "us-2", body)
    assert await _err(r) == (409, "port_clash")


async def test_same_port_on_other_hosts_or_transports_is_no_clash(client, tenant):
    body = {**US, "mqtt": {"host": "broker.example.com", "port": 8080}, "coap": {"host": "10.1.2.3", "port": 6000}}
    assert (await _put(client, tenant, "us-2", body)).status == 201


@pytest.mark.parametrize("name", ["-eu", "eu 1", "e" * 65, "é", "\u0084"])
async def test_region_name_outside_the_pattern_is_refused_by_put_and_no_region_to_get(client, tenant, name):
    r = await client.put(f"/v1/regions/{name}", json=US, headers=tenant.headers)
    assert await _err(r) == (400, "invalid_request")
    r = await client.get(f"/v1/regions/{name}", headers=tenant.headers)
    assert await _err(r) == (404, "not_found")


async def test_a_tenant_has_at_most_100_regions(client, tenant):
    for i in range(100):
        assert (await _put(client, tenant, f"r{i}", US)).status == 201
    r = await _put(client, tenant, "r100", US)
    assert await _err(r) == (409, "too_many_regions")
    assert (await _put(client, tenant, "r7", EU)).status == 200          # replacing one is still fine


@pytest.mark.parametrize("role, put, get", [("viewer", 403, 200), ("operator", 403, 200), ("factory", 403, 403),
                                            ("edge", 403, 403), ("admin", 201, 200)])
async def test_admin_writes_viewer_reads(client, tenant, role_headers, role, put, get):
    h = role_headers(role)
    assert (await _put(client, tenant, "eu-1", EU, h)).status == put
    await _put(client, tenant, "eu-1", EU)
    assert (await client.get("/v1/regions/eu-1", headers=h)).status == get
    assert (await client.get("/v1/regions", headers=h)).status == get
    assert (await client.delete("/v1/regions/eu-1", headers=h)).status == (204 if role == "admin" else 403)


async def test_writes_are_audited(client, tenant):
    await _put(client, tenant, "eu-1", {**EU, "default": True})
    await _put(client, tenant, "eu-1", EU)
    await client.delete("/v1/regions/eu-1", headers=tenant.headers)
    r = await client.get("/v1/audit", headers=tenant.headers)
    rows = [(e["action"], e["result"], e["reason"], e["detail"], e["actor"]) for e in (await r.json())["entries"]
            if e["action"].startswith("region")]
    t = tenant.token_id
    assert rows == [("region.delete", "ok", "deleted", "eu-1", t), ("region.put", "ok", "replaced", "eu-1", t),
                    ("region.put", "ok", "created", "eu-1 (default)", t)]


async def test_a_refused_delete_is_audited_as_an_error(client, tenant):
    await _put(client, tenant, "eu-1", EU)
    tenant.provision([{"metadata": {"region": "eu-1"}}, {"metadata": {"region": "eu-1"}}])
    assert (await client.delete("/v1/regions/eu-1", headers=tenant.headers)).status == 409
    r = await client.get("/v1/audit", headers=tenant.headers)
    e = (await r.json())["entries"][0]
    assert (e["action"], e["result"], e["reason"], e["detail"]) == ("region.delete", "error", "region_in_use",
                                                                    "eu-1: 2 device(s)")


async def test_delete_is_refused_while_a_device_names_the_region(client, tenant):
    await _put(client, tenant, "eu-1", EU)
    (dev, _), = tenant.provision([{"metadata": {"region": "eu-1"}}])
    r = await client.delete("/v1/regions/eu-1", headers=tenant.headers)
    assert await _err(r) == (409, "region_in_use")
    r = await client.patch(f"/v1/devices/{dev}", json={"metadata": {"region": None}}, headers=tenant.headers)
    assert r.status == 200
    assert (await client.delete("/v1/regions/eu-1", headers=tenant.headers)).status == 204
    assert (await client.get("/v1/regions/eu-1", headers=tenant.headers)).status == 404
