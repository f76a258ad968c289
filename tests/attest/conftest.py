"""Fixtures for board attestation on the verifier: the app from create_app on a tmp_path SQLite file
and a fake clock (tests/support.py), a tenant with an admin token, a release-signing key, signed app
releases published through the HTTP API, and `Board`: a provisioned device that answers challenges
with evidence built as the firmware builds it (verifier.attest.evidence.encode, the codec the vectors
in docs/vectors/attest.json check)."""

import hashlib
from pathlib import Path

import aiohttp
import pytest

from tests.support import AdminTenant, AuthDevice, clock, client, config  # noqa: F401 (fixtures)
from tools import ota as host
from verifier import keys
from verifier.attest import evidence

# the application a board runs: release 1.0.0 holds exactly these files
APP = {"main.py": "import app\napp.run()\n", "app.py": "def run():\n    print('sensor v1')\n"}
MODULES = [("binauth.mpy", 1234, "11" * 32), ("attest.mpy", 2345, "22" * 32)]


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def files_of(app):
    return [(p, len(t.encode()), digest(t)) for p, t in sorted(app.items())]


class Board(AuthDevice):
    """A provisioned device (binary auth) that also builds attestation evidence with K_attest."""

    def __init__(self, hex_id, master_hex, clock):
        super().__init__(hex_id, master_hex, clock)
        self.k_attest = keys.derive_key(self.master, b"attest")

    def evidence(self, nonce_hex, app=APP, version="1.0.0", micropython="1.24.1", build="v1.24.1 on 2024-11-29",
                 board="esp32", modules=MODULES, key=None, hw=None, package=None):
        # package: the 0x09 digest instead of the 0x06 module list (what a board sends by default)
        return evidence.encode(key or self.k_attest, self.id, bytes.fromhex(nonce_hex), int(self.clock()),
                               micropython=micropython, build=build, board=board, app=(1, 0, version),
                               files=files_of(app), modules=() if package else modules, package=package,
                               boot=(3, 1, 60), hw=hw)


class Tenant(AdminTenant):
    def boards(self, n=1, **row):
        return [Board(h, m, self.clock) for h, m in self.provision([dict(row)] * n)]


@pytest.fixture
def tenant(client, clock):
    return Tenant(client.app, "acme", clock)


@pytest.fixture
def board(tenant):
    return tenant.boards()[0]


@pytest.fixture(scope="session")
def signing(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    key, pub, kid = host.keygen(d, "release")
    return {"key": key, "pub_hex": host.load_public(pub)[1].hex()}


async def publish_release(client, tenant, signing, tmp, version="1.0.0", counter=1, app=APP):
    """Trust the signing key (once) and publish a signed app release of `app`'s files."""
    tmp = Path(tmp)
    src = tmp / f"app-{version}"
    for rel, text in app.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    bundle = tmp / f"bundle-{version}"
    host.build_bundle(src, bundle, version, counter, compile_py=False)
    host.sign_bundle(bundle, signing["key"])
    r = await client.post("/v1/release-keys", json={"pub": signing["pub_hex"]}, headers=tenant.headers)
    assert r.status in (201, 409), await r.text()
    fd = aiohttp.FormData()
    fd.add_field("manifest.json", (bundle / "manifest.json").read_bytes(), filename="manifest.json")
    fd.add_field("manifest.sig", (bundle / "manifest.sig").read_bytes(), filename="manifest.sig")
    for p in sorted((bundle / "files").rglob("*")):
        if p.is_file():
            name = "files/" + p.relative_to(bundle / "files").as_posix()
            fd.add_field(name, p.read_bytes(), filename=p.name, content_type="application/octet-stream")
    r = await client.post("/v1/releases", data=fd, headers=tenant.headers)
    body = await r.json()
    assert r.status == 201, body
    return body


async def ota_check(client, board, version="1.0.0"):
    r = await client.post("/v1/ota/check", json={"auth": board.auth(), "kind": "app", "version": version})
    assert r.status == 200, await r.text()
    return await r.json()


async def challenge(client, tenant, board):
    """An admin asks for an attestation now: the challenge's nonce (hex)."""
    r = await client.post(f"/v1/devices/{board.hex}/attest", headers=tenant.headers)
    assert r.status == 201, await r.text()
    return (await r.json())["nonce"]


async def submit(client, data):
    r = await client.post("/v1/attest/evidence", data=data, headers={"Content-Type": "application/octet-stream"})
    return r.status, await r.json()


async def attestation(client, tenant, board):
    r = await client.get(f"/v1/devices/{board.hex}/attestation", headers=tenant.headers)
    assert r.status == 200, await r.text()
    return await r.json()


def events(storage, tenant_id):
    return [n["event"] for n in storage.list_notifications(tenant_id)]
