"""Malformed request bodies are refused with 400 and the usual JSON error, never a 500 (issue #10):
multipart without a boundary or with a broken part header, JSON that is not an object, wrong
content types and empty bodies, on every route that reads a body."""

import pytest

MULTIPART_NO_COLON = bytes.fromhex("2d2d620d0a6e6f2d636f6c6f6e2d6865616465720d0a0d0a780d0a2d2d622d2d0d0a")


async def _error(r, status=400):
    body = await r.json()
    assert r.status == status, body
    assert set(body) == {"error", "message"}
    return body


async def test_malformed_multipart_release_without_boundary_is_400_not_500(client, tenant):
    r = await client.post("/v1/releases", data=b"--b\r\n\r\n--b--\r\n",
                          headers={**tenant.headers, "Content-Type": "multipart/form-data"})
    await _error(r)


async def test_malformed_multipart_part_header_release_is_400_not_500(client, tenant):
    r = await client.post("/v1/releases", data=MULTIPART_NO_COLON,
                          headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"})
    await _error(r)


@pytest.mark.parametrize("body", [
    b"--b\r\n\xfeh\xff\xf3\xb5\xbf\x8c--b--\r\n",                    # bytes where a part header belongs
    b"--b\r\nContent-Disposition: form-data; name=\"manifest.json\"\r\n\r\nx",   # no closing boundary
    b"",
    b"--b--\r\n",
])
async def test_truncated_or_garbled_multipart_release_is_400_not_500(client, tenant, body):
    r = await client.post("/v1/releases", data=body,
                          headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"})
    await _error(r)


# every route that reads a JSON body; {dev} is a provisioned device of the caller's tenant
JSON_ROUTES = [
    ("POST", "/v1/devices"), ("POST", "/v1/devices/bulk"), ("PATCH", "/v1/devices/{dev}"),
    ("POST", "/v1/devices/{dev}/lifecycle"), ("POST", "/v1/devices/{dev}/psk/rotate"), ("PATCH", "/v1/tenant"),
    ("POST", "/v1/release-keys"), ("POST", "/v1/ota/check"), ("POST", "/v1/ota/report"),
    ("POST", "/v1/auth/device/token"), ("POST", "/v1/auth/device/refresh"), ("POST", "/v1/auth/device/offline"),
    ("POST", "/v1/auth/device/sync"), ("POST", "/v1/tokens/introspect"),
    ("POST", "/v1/devices/{dev}/certificate"), ("POST", "/v1/devices/{dev}/certificate/revoke"),
    ("POST", "/v1/mqtt/auth"), ("POST", "/v1/mqtt/go-auth/user"), ("POST", "/v1/mqtt/go-auth/acl"),
    ("POST", "/v1/mqtt/go-auth/superuser"), ("POST", "/v1/edge/reports"), ("POST", "/v1/webhooks"),
    ("POST", "/v1/gateways"), ("POST", "/v1/gateways/ek-cas"), ("PUT", "/v1/gateways/policy"),
    ("PUT", "/v1/gateways/models/gw-1/pcrs"), ("PUT", "/v1/regions/eu-1"),
]
NOT_AN_OBJECT = [b"[]", b'"devices"', b"7", b"null", b"true", b"{", b"\xff\xfe", b'{"a": NaN', b"[" * 5000]


@pytest.fixture
def dev(tenant):
    (hex_id, _), = tenant.provision([{}])
    return hex_id


# the device-token routes check their bearer JWT before the body (an admin token is not one: 401);
# an offline-token check answers every unusable body as the same opaque refusal (docs/tokens.md)
STATUS = {"/v1/auth/device/refresh": 401, "/v1/auth/device/sync": 401, "/v1/auth/device/offline": 401}


@pytest.mark.parametrize("method, path", JSON_ROUTES)
@pytest.mark.parametrize("body", NOT_AN_OBJECT)
async def test_json_body_that_is_not_an_object_is_400_not_500(client, tenant, dev, method, path, body):
    r = await client.request(method, path.format(dev=dev), data=body,
                             headers={**tenant.headers, "Content-Type": "application/json"})
    await _error(r, STATUS.get(path, 400))


@pytest.mark.parametrize("method, path", [r for r in JSON_ROUTES if r[1] not in (
    "/v1/devices/{dev}/psk/rotate", "/v1/devices/{dev}/certificate", "/v1/devices/{dev}/certificate/revoke")])
async def test_empty_body_where_one_is_required_is_400_not_500(client, tenant, dev, method, path):
    r = await client.request(method, path.format(dev=dev), headers=tenant.headers)
    await _error(r, STATUS.get(path, 400))


@pytest.mark.parametrize("method, path", JSON_ROUTES)
async def test_form_encoded_body_is_400_not_500(client, tenant, dev, method, path):
    r = await client.request(method, path.format(dev=dev), data={"a": "b"}, headers=tenant.headers)
    await _error(r, STATUS.get(path, 400))
