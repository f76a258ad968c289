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
