"""Downloading a release file (verifier/ota/routes.py download_file) from the blob store the storage chose: the
whole file, one byte range (across the 256 KiB read chunks), If-Range, If-None-Match, and the 416 answers; an
upload cut short mid-file leaves no temporary file and no stored file. On SQLite by default, on PostgreSQL with
JANUA_TEST_BACKEND=postgresql (tests/pg/test_ota_blobs.py has the two-instance cases)."""

import asyncio
import time

from tests.ota_verifier.conftest import Tenant, form, publish, trust
from tools import ota as host
from verifier.appkeys import OTA, STORAGE
from verifier.ota import rollout

# 524544 bytes = two 256 KiB chunks and 256 bytes; byte i is i % 256
IMAGE = bytes(range(256)) * 2049


def image_bundle(tmp_path, signing, version, counter, data=IMAGE):
    """A signed bundle of one file, main.py = data (copied as is: compile_py off)."""
    app = tmp_path / f"app-{version}"
    app.mkdir(parents=True)
    (app / "main.py").write_bytes(data)
    bundle = tmp_path / f"bundle-{version}"
    host.build_bundle(app, bundle, version, counter, compile_py=False)
    host.sign_bundle(bundle, signing["release"]["key"])
    return bundle


async def released(client, clock, signing, tmp_path, version="1.0", counter=1):
    """(tenant, release, an active device's id) of a release of IMAGE published through `client`."""
    tenant = Tenant(client.app, f"t-{version}", clock)
    await trust(client, tenant, signing)
    rel = await publish(client, tenant, image_bundle(tmp_path, signing, version, counter))
    dev_hex, _ = tenant.provision([{}], "active")[0]
    return tenant, rel, bytes.fromhex(dev_hex)


def file_url(app, rel, device_id, clock, path="main.py"):
    t = rollout.download_token(app[OTA].download_key, rel["id"], device_id, int(clock()) + 600)
    return f"/v1/ota/releases/{rel['id']}/files/{path}?t={t}"


async def check_ranges(client, url, sha):
    """The answers to ranges of IMAGE at `url` (one verifier; the PostgreSQL tests ask another instance)."""
    r = await client.get(url, headers={"Range": "bytes=262140-262150"})       # across the first chunk boundary
    assert r.status == 206 and r.headers["Content-Range"] == "bytes 262140-262150/524544"
    assert r.headers["Content-Length"] == "11"
    assert await r.read() == bytes([252, 253, 254, 255, 0, 1, 2, 3, 4, 5, 6])
    r = await client.get(url, headers={"Range": "bytes=524286-"})             # the open end, in the last chunk
    assert r.status == 206 and await r.read() == bytes([254, 255] + list(range(256)))
    r = await client.get(url, headers={"Range": "bytes=-3"})
    assert r.status == 206 and r.headers["Content-Range"] == "bytes 524541-524543/524544"
    assert await r.read() == bytes([253, 254, 255])
    r = await client.get(url, headers={"Range": "bytes=1-2", "If-Range": f'"{sha}"'})
    assert r.status == 206 and await r.read() == bytes([1, 2])
    r = await client.get(url, headers={"Range": "bytes=1-2", "If-Range": '"another"'})   # not this file: all of it
    assert r.status == 200 and len(await r.read()) == 524544
    for bad in ("bytes=524544-", "bytes=9-3", "lines=1-2"):
        r = await client.get(url, headers={"Range": bad})
        assert (r.status, r.headers["Content-Range"]) == (416, "bytes */524544"), bad
    r = await client.get(url, headers={"If-None-Match": f'W/"x", "{sha}"'})
    assert r.status == 304 and r.headers["ETag"] == f'"{sha}"'


async def cut_upload_short(client, tenant, bundle, keep):
    """Send the upload of `bundle` over a raw connection, only its first `keep` bytes, then drop the line."""
    payload = form(bundle)()
    chunks = []

    class Sink:
        async def write(self, data):
            chunks.append(bytes(data))
    await payload.write(Sink())
    body = b"".join(chunks)
    head = (f"POST /v1/releases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tenant.token}\r\n"
            f"Content-Type: {payload.content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    _, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(head + body[:keep])
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    tmp = client.app[OTA].blobs.tmp
    deadline = time.monotonic() + 5                 # the handler notices the lost line and cleans up
    while time.monotonic() < deadline and (not tmp.is_dir() or any(tmp.iterdir())):
        await asyncio.sleep(0.05)
    return tmp


async def test_whole_file_and_ranges(client, clock, signing, tmp_path):
    _, rel, did = await released(client, clock, signing, tmp_path)
    sha = rel["files"][0]["sha256"]
    url = file_url(client.app, rel, did, clock)
    r = await client.get(url)
    assert r.status == 200 and await r.read() == IMAGE
    assert (r.headers["Accept-Ranges"], r.headers["ETag"], r.headers["Content-Type"]) == \
        ("bytes", f'"{sha}"', "application/octet-stream")
    await check_ranges(client, url, sha)


async def test_an_empty_file(client, clock, signing, tmp_path):
    tenant = Tenant(client.app, "empty", clock)
    await trust(client, tenant, signing)
    rel = await publish(client, tenant, image_bundle(tmp_path, signing, "1.0", 1, data=b""))
    did = bytes.fromhex(tenant.provision([{}], "active")[0][0])
    url = file_url(client.app, rel, did, clock)
    r = await client.get(url)
    assert (r.status, await r.read()) == (200, b"")
    r = await client.get(url, headers={"Range": "bytes=0-"})
    assert (r.status, r.headers["Content-Range"]) == (416, "bytes */0")
    assert client.app[OTA].blobs.digests() == ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]


async def test_an_upload_cut_short_mid_file_leaves_nothing(client, clock, signing, tmp_path):
    tenant = Tenant(client.app, "cut", clock)
    await trust(client, tenant, signing)
    tmp = await cut_upload_short(client, tenant, image_bundle(tmp_path, signing, "1.0", 1), 300000)
    assert tmp.is_dir() and list(tmp.iterdir()) == []          # the file being written was removed
    assert client.app[OTA].blobs.digests() == []
    assert client.app[STORAGE].list_releases(tenant.id) == []
