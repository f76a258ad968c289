"""Rollout request bodies as the OpenAPI document states them (issue #10): shape, types and ranges are
400; the rules across phases that a schema cannot state (percents increase, the last is 100) are 409;
JSON null is not an empty body; start is a boolean."""

import pytest

from tests.ota_verifier.conftest import make_bundle, publish, trust


@pytest.fixture
async def release(client, tenant_a, signing, tmp_path):
    await trust(client, tenant_a, signing)
    return (await publish(client, tenant_a, make_bundle(tmp_path, signing, "2.0.0", 2)))["id"]


@pytest.mark.parametrize("body, status", [
    ({"phases": [{"percent": 50}, {"percent": 10}, {"percent": 100}]}, 409),    # percents go down
    ({"phases": [{"percent": 50}]}, 409),                                          # never reaches 100
    ({"phases": []}, 400), ({"phases": [{"percent": 0}, {"percent": 100}]}, 400),
    ({"phases": [{"percent": 100, "hours": 9000}]}, 400), ({"phases": [{"percent": "100"}]}, 400),
    ({"start": "yes"}, 400), ({"start": 1}, 400), ({"halt_threshold": 0}, 400), ({"halt_min_reports": True}, 400),
])
async def test_rollout_body_refusals_say_400_for_shape_and_409_for_cross_phase_rules(client, tenant_a, release,
                                                                                     body, status):
    r = await client.post(f"/v1/releases/{release}/rollout", json=body, headers=tenant_a.headers)
    assert r.status == status, await r.text()


async def test_json_null_is_not_an_empty_rollout_body(client, tenant_a, release):
    r = await client.post(f"/v1/releases/{release}/rollout", data=b"null", headers=tenant_a.headers)
    assert r.status == 400
    r = await client.post(f"/v1/releases/{release}/rollout", headers=tenant_a.headers)
    assert r.status == 201


async def test_integral_float_halt_min_reports_is_an_integer(client, tenant_a, release):
    r = await client.post(f"/v1/releases/{release}/rollout", json={"halt_min_reports": 7.0}, headers=tenant_a.headers)
    assert r.status == 201 and (await r.json())["halt_min_reports"] == 7


@pytest.mark.parametrize("body", [b"[]", b'"stop"', b"null"])
async def test_halt_body_that_is_not_an_object_is_refused(client, tenant_a, release, body):
    ro = await (await client.post(f"/v1/releases/{release}/rollout", json={"start": True},
                                  headers=tenant_a.headers)).json()
    r = await client.post(f"/v1/rollouts/{ro['id']}/halt", data=body, headers=tenant_a.headers)
    assert r.status == 400
    r = await client.post(f"/v1/rollouts/{ro['id']}/halt", json={"reason": None}, headers=tenant_a.headers)
    assert r.status == 200 and (await r.json())["state"] == "halted"
