"""What the served OpenAPI document says and what the server accepts agree (DESIGN.md 2.19; issue #10):
requests the schema forbids are refused with 400, requests it allows are not refused as invalid.
Each case below was one of the disagreements; the schemathesis run (test_schemathesis.py) looks for
new ones. Expected statuses are written out."""

import json

import pytest

from verifier.appkeys import CORE, STORAGE

PUB = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"   # RFC 8032 7.1 test 1 public key
PUB_KID = "21fe31dfa154a261"                                                # its kid (docs/ota.md 1.1)


@pytest.fixture
def device(tenant):
    (hex_id, _), = tenant.provision([{}])
    return hex_id


async def _status(r):
    body = await r.json()
    return r.status, body.get("error")


@pytest.mark.parametrize("policy", [{"source_rate": None}, {"device_rate": None}, {"source_rate": [1, 2]},
                                    {"drift_s": True}, {"drift_s": "300"}, {"lockout_s": 1.5}])
async def test_wrong_typed_tenant_policy_is_refused(client, tenant, policy):
    r = await client.patch("/v1/tenant", json={"policy": policy}, headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


async def test_integral_float_policy_value_is_an_integer_as_json_schema_says(client, tenant):
    r = await client.patch("/v1/tenant", json={"policy": {"drift_s": 120.0}}, headers=tenant.headers)
    assert r.status == 200
    assert (await r.json())["policy"]["drift_s"] == 120


async def test_policy_that_conflicts_with_the_stored_one_is_409_not_400(client, tenant):
    # token_ttl_s is 3600 by default: a refresh lead of 4000 s is schema-valid but conflicts with it
    r = await client.patch("/v1/tenant", json={"policy": {"token_refresh_s": 4000}}, headers=tenant.headers)
    assert await _status(r) == (409, "conflict")


@pytest.mark.parametrize("kid", [None, 5, ["x"], "", "8F8E1A2D4E2CBABA"])
async def test_non_string_or_malformed_kid_on_release_key_is_refused(client, tenant, kid):
    r = await client.post("/v1/release-keys", json={"pub": PUB, "kid": kid}, headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


async def test_well_formed_kid_of_another_key_is_409_and_its_own_kid_is_accepted(client, tenant):
    r = await client.post("/v1/release-keys", json={"pub": PUB, "kid": "0000000000000000"}, headers=tenant.headers)
    assert await _status(r) == (409, "conflict")
    r = await client.post("/v1/release-keys", json={"pub": PUB, "kid": PUB_KID}, headers=tenant.headers)
    assert r.status == 201 and (await r.json())["kid"] == PUB_KID


@pytest.mark.parametrize("field, value", [("peerhost", {}), ("peerhost", 7), ("username", 1), ("password", None),
                                          ("clientid", [])])
async def test_non_string_field_on_mqtt_auth_is_refused(client, device, field, value):
    body = {"clientid": device, "username": device, "password": "x", **{field: value}}
    r = await client.post("/v1/mqtt/auth", json=body)
    assert await _status(r) == (400, "invalid_request")


@pytest.mark.parametrize("path, body", [
    ("/v1/mqtt/go-auth/user", {"username": 1, "password": "x"}),
    ("/v1/mqtt/go-auth/acl", {"username": "u", "topic": 5, "acc": 1}),
    ("/v1/mqtt/go-auth/acl", {"username": "u", "topic": "t", "acc": True}),
    ("/v1/mqtt/go-auth/superuser", []),
])
async def test_schema_invalid_go_auth_request_is_refused(client, path, body):
    r = await client.post(path, json=body)
    assert await _status(r) == (400, "invalid_request")


async def test_go_auth_superuser_400_is_documented(client):
    r = await client.post("/v1/mqtt/go-auth/superuser", data=b"not json")
    assert r.status == 400
    doc = await (await client.get("/openapi.json")).json()
    assert sorted(doc["paths"]["/v1/mqtt/go-auth/superuser"]["post"]["responses"]) == ["400", "403"]


@pytest.mark.parametrize("row", [{"ts": 0, "reason": {}}, {"ts": 0, "reason": 3}, {"ts": 0, "result": None},
                                 {"ts": 0, "kind": "ota"}, {"ts": 0, "device_id": 5}, {"ts": -1}, {"ts": "0"}])
async def test_non_string_reason_or_wrong_typed_edge_audit_row_is_refused(client, tenant, row):
    r = await client.post("/v1/edge/reports", json={"audit": [row]}, headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


@pytest.mark.parametrize("body", [{"used": [{"device_id": "nope", "index": 0, "ts": 0}]},
                                  {"binauth": [{"device_id": "ABCDEF0123456789", "last_ts": 5}]}])
async def test_edge_report_naming_no_device_id_is_refused(client, tenant, body):
    r = await client.post("/v1/edge/reports", json=body, headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


async def test_edge_report_with_integral_float_timestamp_is_accepted(client, tenant):
    r = await client.post("/v1/edge/reports", json={"audit": [{"ts": 5.0, "reason": None}]}, headers=tenant.headers)
    assert r.status == 200 and await r.json() == {"used": 0, "ignored": 0, "binauth": 0, "audit": 1, "health": 0, "health_refused": 0}


async def test_null_serial_on_certificate_revoke_is_refused(client, tenant, device):
    r = await client.post(f"/v1/devices/{device}/certificate/revoke", json={"serial": None}, headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


async def test_json_null_is_not_an_empty_psk_rotation_body(client, tenant, device):
    r = await client.post(f"/v1/devices/{device}/psk/rotate", data=b"null", headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")
    r = await client.post(f"/v1/devices/{device}/psk/rotate", headers=tenant.headers)
    assert r.status == 200


async def test_integral_float_lifetime_days_is_accepted_and_bool_is_not(client, tenant, device, clock):
    r = await client.post(f"/v1/devices/{device}/psk/rotate", json={"lifetime_days": 30.0}, headers=tenant.headers)
    assert r.status == 200 and (await r.json())["psk_expires_at"] == int(clock()) + 30 * 86400
    r = await client.post(f"/v1/devices/{device}/psk/rotate", json={"lifetime_days": True}, headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


async def test_patch_on_bulk_path_is_405_not_a_device_named_bulk(client, tenant):
    r = await client.patch("/v1/devices/bulk", json={"trust_level": 1}, headers=tenant.headers)
    assert r.status == 405 and r.headers["Allow"] == "POST"
    r = await client.get("/v1/devices/bulk", headers=tenant.headers)
    assert r.status == 405


async def test_empty_cursor_is_refused_like_any_non_device_id(client, tenant):
    r = await client.get("/v1/devices?cursor=", headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


@pytest.mark.parametrize("row", [{"serial_number": "SN\u0007"}, {"serial_number": "\ud800"}, {"serial_number": ""},
                                 {"serial_number": "x" * 129}, {"serial_number": "SN-1", "metadata": None},
                                 {"serial_number": "SN-1", "metadata": []}, {"serial_number": "SN-1", "model_id": 5},
                                 {"serial_number": "SN-1", "trust_level": 50.5}])
async def test_schema_invalid_new_device_is_refused_not_500(client, tenant, row):
    r = await client.post("/v1/devices", data=json.dumps(row).encode(), headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")


@pytest.mark.parametrize("row", [{"serial_number": "Gerät-Nº 7 ü"}, {"serial_number": "SN-2", "manufacturer_id": None},
                                 {"serial_number": "SN-3", "trust_level": 60.0, "metadata": {"tags": None}}])
async def test_schema_valid_new_device_is_provisioned(client, tenant, row):
    r = await client.post("/v1/devices", json=row, headers=tenant.headers)
    assert r.status == 201, await r.text()


async def test_lifecycle_with_unknown_field_is_refused_and_null_reason_is_not(client, tenant, device):
    r = await client.post(f"/v1/devices/{device}/lifecycle", json={"action": "suspend", "why": "x"},
                          headers=tenant.headers)
    assert await _status(r) == (400, "invalid_request")
    r = await client.post(f"/v1/devices/{device}/lifecycle", json={"action": "suspend", "reason": None},
                          headers=tenant.headers)
    assert r.status == 200 and (await r.json())["status"] == "suspended"


async def test_audit_summary_rows_are_in_the_documented_kind_enum(client, tenant, device):
    """GET /v1/audit returns kind "summary" rows (forged tags are summarised): the served AuditEntry
    schema must list that kind, or a client validating answers against /openapi.json rejects them."""
    now = int(client.app[CORE].summary.last_now) or 1_700_000_000
    client.app[CORE].summary.note(now, tenant.id, device, "binauth", "udp", ("192.0.2.1", 9), "SIGNATURE", "tag")
    client.app[STORAGE].add_audit(client.app[CORE].summary.drain())
    r = await client.get("/v1/audit", headers=tenant.headers)
    kinds = {e["kind"] for e in (await r.json())["entries"]}
    assert "summary" in kinds
    doc = await (await client.get("/openapi.json")).json()
    assert doc["components"]["schemas"]["AuditEntry"]["properties"]["kind"]["enum"] == ["auth", "admin", "ota",
                                                                                         "summary", "alert"]


async def test_edge_snapshot_cursor_past_64_bits_starts_over_not_500(client, tenant, device):
    """The schema allows any integer >= 0 as the cursor; one no database integer holds starts over at 0 like any
    cursor above the counter (found by the schemathesis run: an OverflowError, 500)."""
    r = await client.get(f"/v1/edge/snapshot?after={2 ** 100}", headers=tenant.headers)
    body = await r.json()
    assert r.status == 200, body
    assert [d["device_id"] for d in body["devices"]] == [device]
