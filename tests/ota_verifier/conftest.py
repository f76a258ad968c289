"""Fixtures for the verifier side of signed OTA: the app from create_app on a tmp_path SQLite file
(release files beside it), a fake clock, tenants with admin tokens, active devices that build binary
auth requests, and signed bundles made with the host tools (tools/ota.py, .py sources: no mpy-cross)."""

from pathlib import Path

import aiohttp
import pytest

from tests.support import KEK, AdminTenant, AuthDevice, clock, client, config  # noqa: F401 (KEK re-exported; fixtures)
from tools import ota as host


Device = AuthDevice


class Tenant(AdminTenant):
    def devices(self, n=1):
        return [Device(h, m, self.clock) for h, m in self.provision([{}] * n)]


@pytest.fixture
def tenant_a(client, clock):
    return Tenant(client.app, "tenant-a", clock)


@pytest.fixture
def tenant_b(client, clock):
    return Tenant(client.app, "tenant-b", clock)


@pytest.fixture(scope="session")
def signing(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("release", "rotated", "stranger"):
        k, p, kid = host.keygen(d, name)
        out[name] = {"key": k, "pub": p, "kid": kid, "pub_hex": host.load_public(p)[1].hex()}
    return out


def make_bundle(tmp, signing, version, counter, key="release", files=None, **kw):
    """A signed bundle directory of small .py files."""
    app = Path(tmp) / f"app-{version}-{counter}"
    app.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {"main.py": f"print('v{version}')\n", "lib/util.py": "X = 1\n" * 50}).items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(text)
    bundle = Path(tmp) / f"bundle-{version}-{counter}"
    host.build_bundle(app, bundle, version, counter, compile_py=False, **kw)
    host.sign_bundle(bundle, signing[key]["key"])
    return bundle


def form(bundle, replace=None, drop=()):
    """The multipart upload of a bundle, in order; `replace` = {part name: bytes}."""
    bundle = Path(bundle)
    replace = replace or {}
    parts = [("manifest.json", (bundle / "manifest.json").read_bytes()),
             ("manifest.sig", (bundle / "manifest.sig").read_bytes())]
    parts += [("files/" + p.relative_to(bundle / "files").as_posix(), p.read_bytes())
              for p in sorted((bundle / "files").rglob("*")) if p.is_file()]
    fd = aiohttp.FormData()
    for name, data in parts:
        if name in drop:
            continue
        fd.add_field(name, replace.get(name, data), filename=name.split("/")[-1],
                     content_type="application/octet-stream")
    return fd


async def trust(client, tenant, signing, name="release"):
    r = await client.post("/v1/release-keys", json={"pub": signing[name]["pub_hex"], "name": name},
                          headers=tenant.headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def publish(client, tenant, bundle, status=201, **kw):
    r = await client.post("/v1/releases", data=form(bundle, **kw), headers=tenant.headers)
    body = await r.json()
    assert r.status == status, body
    return body
