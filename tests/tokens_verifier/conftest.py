"""Fixtures for the verifier side of device tokens and offline chains: the app from create_app on a
tmp_path SQLite file, a fake clock (tests never sleep), tenants with admin tokens, and active devices
that build binary auth requests and keep their JWT."""

import pytest

from verifier import keys, registry
from verifier.app import create_app
from verifier.appkeys import SEALER, STORAGE
from verifier.binauth import encode_request
from verifier.config import Config

KEK = bytes(range(32))
T0 = 1_767_225_600


class FakeClock:
    def __init__(self, now=T0):
        self.now = float(now)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Device:
    def __init__(self, tenant, hex_id, master_hex, clock):
        self.tenant, self.hex, self.id, self.clock = tenant, hex_id, bytes.fromhex(hex_id), clock
        self.key = keys.derive_key(bytes.fromhex(master_hex), keys.LABEL_BINAUTH)
        self.last = 0
        self.token = None

    def auth(self):
        """A fresh binary auth request (hex): the timestamp strictly increases."""
        self.last = max(int(self.clock()), self.last + 1)
        return encode_request(self.key, self.id, self.last).hex()

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


class Tenant:
    def __init__(self, app, name, clock):
        st = app[STORAGE]
        self.app, self.clock = app, clock
        self.id = registry.create_tenant(st, name, clock())["id"]
        self.token_id, self.token = registry.issue_token(st, self.id, clock())
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def devices(self, n=1):
        rows = [{"serial_number": f"SN-{keys.new_token()[4:20]}"} for _ in range(n)]
        out = registry.provision_bulk(self.app[STORAGE], self.app[SEALER], self.id, rows, self.clock())
        devs = []
        for r in out["results"]:
            d = Device(self, r["device_id"], r["master_secret"], self.clock)
            self.app[STORAGE].update_device(self.id, d.id, {"status": "active"})
            devs.append(d)
        return devs

    async def lifecycle(self, client, dev, action):
        r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": action}, headers=self.headers)
        assert r.status == 200, await r.text()

    async def policy(self, client, **policy):
        r = await client.patch("/v1/tenant", json={"policy": policy}, headers=self.headers)
        assert r.status == 200, await r.text()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def config(tmp_path, clock):
    return Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                  dtls_port=None)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


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
