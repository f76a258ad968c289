"""Fixtures for the verifier side of device tokens and offline chains: the app from create_app on a
tmp_path SQLite file, a fake clock (tests never sleep), tenants with admin tokens, and active devices
that build binary auth requests and keep their JWT."""

import pytest

from tests.support import AdminTenant, AuthDevice, clock, client, config  # noqa: F401 (fixtures)

class Device(AuthDevice):
    def __init__(self, tenant, hex_id, master_hex, clock):
        super().__init__(hex_id, master_hex, clock)
        self.tenant, self.token = tenant, None

    @property
    def bearer(self):
        return {"Authorization": f"Bearer {self.token}"}

    async def obtain(self, client):
        r = await client.post("/v1/auth/device/token", json={"auth": self.auth()})
        body = await r.json()
        assert r.status == 200, body
        self.token = body["token"]
        return body

    async def sync(self, client, used=(), have=-1, status=200, **extra):
        r = await client.post("/v1/auth/device/sync", json={"used": list(used), "have": have, **extra},
                              headers=self.bearer)
        body = await r.json()
        assert r.status == status, body
        return body


class Tenant(AdminTenant):
    def devices(self, n=1):
        return [Device(self, h, m, self.clock) for h, m in self.provision([{}] * n)]

    async def lifecycle(self, client, dev, action):
        r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": action}, headers=self.headers)
        assert r.status == 200, await r.text()

    async def policy(self, client, **policy):
        r = await client.patch("/v1/tenant", json={"policy": policy}, headers=self.headers)
        assert r.status == 200, await r.text()


@pytest.fixture
def tenant(client, clock):
    return Tenant(client.app, "tenant-a", clock)


@pytest.fixture
def other(client, clock):
    return Tenant(client.app, "tenant-b", clock)


@pytest.fixture
async def device(client, tenant):
    dev = tenant.devices(1)[0]
    await dev.obtain(client)
    return dev
