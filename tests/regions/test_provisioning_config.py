"""Provisioning answers carry the board's configuration for the device's region (docs/regions.md): metadata.region,
else the tenant's default region, else no "config"; an unknown region is refused (409 unknown_region), on one
device, in bulk (that row only) and on PATCH. Expected dicts are written out."""

import pytest

from verifier.appkeys import STORAGE
from verifier.regions.core import board_config, check_region

EU = {"auth": {"host": "auth.eu.example.com", "udp_port": 5685, "http_port": 8443, "dtls_port": 5684, "tls": True},
      "mqtt": {"host": "mqtt.eu.example.com", "port": 8883}, "coap": {"host": "coap.eu.example.com", "port": 5683},
      "https": "https://data.eu.example.com/v1", "update": "https://ota.eu.example.com/fw"}
US = {"auth": {"host": "10.1.2.3", "udp_port": 6000, "http_port": 8080, "dtls_port": 6001}}
EU_CONFIG = {"region": "eu-1",
             "server": {"host": "auth.eu.example.com", "udp_port": 5685, "http_port": 8443, "dtls_port": 5684,
                        "tls": True},
             "mqtt": {"host": "mqtt.eu.example.com", "port": 8883}, "coap": {"host": "coap.eu.example.com", "port": 5683},
             "update": "https://ota.eu.example.com/fw"}
US_CONFIG = {"region": "us-2", "server": {"host": "10.1.2.3", "udp_port": 6000, "http_port": 8080, "dtls_port": 6001}}


@pytest.fixture
async def regions(client, tenant):
    for name, body in (("eu-1", EU), ("us-2", US)):
        r = await client.put(f"/v1/regions/{name}", json=body, headers=tenant.headers)
        assert r.status == 201


def test_board_config_of_a_region_and_of_none():
    assert board_config(check_region("eu-1", EU)) == EU_CONFIG
    assert board_config(check_region("us-2", {**US, "auth": {**US["auth"], "tls": False}})) == US_CONFIG
    server = {"host": "192.0.2.7", "udp_port": 5685, "http_port": 8080, "dtls_port": 5684}
    assert board_config(None, server) == {"region": None, "server": server}
    with pytest.raises(ValueError):
        board_config(None)


async def test_one_device_gets_its_regions_config(client, tenant, regions):
    r = await client.post("/v1/devices", json={"serial_number": "EU-1", "metadata": {"region": "eu-1"}},
                          headers=tenant.headers)
    assert r.status == 201
    body = await r.json()
    assert body["config"] == EU_CONFIG
    assert body["metadata"]["region"] == "eu-1"
    r = await client.get(f"/v1/devices/{body['device_id']}", headers=tenant.headers)
    assert (await r.json())["metadata"]["region"] == "eu-1"


async def test_without_region_or_default_there_is_no_config(client, tenant, regions):
    r = await client.post("/v1/devices", json={"serial_number": "N-1"}, headers=tenant.headers)
    assert r.status == 201 and "config" not in await r.json()


async def test_without_region_the_default_regions_config(client, tenant, regions):
    await client.put("/v1/regions/us-2", json={**US, "default": True}, headers=tenant.headers)
    r = await client.post("/v1/devices", json={"serial_number": "D-1"}, headers=tenant.headers)
    body = await r.json()
    assert body["config"] == US_CONFIG
    assert "region" not in body["metadata"]          # the default is not written into the device
    r = await client.post("/v1/devices", json={"serial_number": "D-2", "metadata": {"region": "eu-1"}},
                          headers=tenant.headers)
    assert (await r.json())["config"] == EU_CONFIG   # its own region wins over the default


async def test_unknown_region_is_refused_and_nothing_is_created(client, tenant, regions):
    r = await client.post("/v1/devices", json={"serial_number": "X-1", "metadata": {"region": "mars"}},
                          headers=tenant.headers)
    body = await r.json()
    assert (r.status, body["error"]) == (409, "unknown_region")
    assert body["message"] == ("metadata.region 'mars' is not one of this tenant's regions (eu-1, us-2): define it "
                               "first (PUT /v1/regions/{name}, `janua region set`)")
    assert client.app[STORAGE].existing_serials(tenant.id, ["X-1"]) == set()


async def test_unknown_region_in_a_tenant_without_regions(client, tenant):
    r = await client.post("/v1/devices", json={"serial_number": "X-1", "metadata": {"region": "eu-1"}},
                          headers=tenant.headers)
    body = await r.json()
    assert (r.status, body["error"]) == (409, "unknown_region") and "(it has none)" in body["message"]


async def test_another_tenants_region_is_unknown(client, tenant, clock):
    from tests.support import AdminTenant
    other = AdminTenant(client.app, "other", clock)
    await client.put("/v1/regions/ap-1", json=US, headers=other.headers)
    r = await client.post("/v1/devices", json={"serial_number": "X-1", "metadata": {"region": "ap-1"}},
                          headers=tenant.headers)
    assert (r.status, (await r.json())["error"]) == (409, "unknown_region")


async def test_bulk_rows_get_their_config_and_an_unknown_region_fails_its_row_only(client, tenant, regions):
    rows = [{"serial_number": "B-1", "metadata": {"region": "eu-1"}},
            {"serial_number": "B-2", "metadata": {"region": "nowhere"}},
            {"serial_number": "B-3", "metadata": {"region": "us-2"}},
            {"serial_number": "B-4"}]
    r = await client.post("/v1/devices/bulk", json={"devices": rows}, headers=tenant.headers)
    out = await r.json()
    res = out["results"]
    assert out["summary"] == {"requested": 4, "created": 3, "failed": 1}
    assert (res[0]["config"], res[2]["config"]) == (EU_CONFIG, US_CONFIG)
    assert "config" not in res[3]
    assert {k: res[1][k] for k in ("index", "ok", "error")} == {"index": 1, "ok": False, "error": "unknown_region"}
    assert client.app[STORAGE].existing_serials(tenant.id, ["B-1", "B-2", "B-3", "B-4"]) == {"B-1", "B-3", "B-4"}


async def test_bulk_default_region_applies_to_rows_without_one(client, tenant, regions):
    await client.put("/v1/regions/eu-1", json={**EU, "default": True}, headers=tenant.headers)
    r = await client.post("/v1/devices/bulk", json={"devices": [{"serial_number": "B-1"}]}, headers=tenant.headers)
    assert (await r.json())["results"][0]["config"] == EU_CONFIG


async def test_patch_to_an_unknown_region_is_refused_and_to_a_known_one_is_kept(client, tenant, regions):
    (dev, _), = tenant.provision([{}])
    r = await client.patch(f"/v1/devices/{dev}", json={"metadata": {"region": "mars"}}, headers=tenant.headers)
    assert (r.status, (await r.json())["error"]) == (409, "unknown_region")
    r = await client.patch(f"/v1/devices/{dev}", json={"metadata": {"region": "us-2"}}, headers=tenant.headers)
    assert r.status == 200 and (await r.json())["metadata"]["region"] == "us-2"


@pytest.mark.parametrize("region", ["", "-x", "a b", 5, ["eu-1"], "x" * 65])
async def test_region_that_is_no_region_name_is_invalid_request(client, tenant, region):
    r = await client.post("/v1/devices", json={"serial_number": "X-1", "metadata": {"region": region}},
                          headers=tenant.headers)
    assert (r.status, (await r.json())["error"]) == (400, "invalid_request")


async def test_config_for_names_a_region_else_the_default_else_the_given_server(client, tenant, regions):
    from verifier.regions.core import UnknownRegion, config_for
    st = client.app[STORAGE]
    own = {"host": "203.0.113.9", "udp_port": 5685, "http_port": 8080, "dtls_port": 5684}
    assert config_for(st, tenant.id, "eu-1", own) == EU_CONFIG
    assert config_for(st, tenant.id, None, own) == {"region": None, "server": own}
    await client.put("/v1/regions/us-2", json={**US, "default": True}, headers=tenant.headers)
    assert config_for(st, tenant.id, None, own) == US_CONFIG
    with pytest.raises(UnknownRegion):
        config_for(st, tenant.id, "mars", own)
