"""Helpers for the edge verifier tests: a real cloud verifier and a real edge verifier (verifier.app.start_server
on free ports, each with its own tmp SQLite file and KEK), one injected fake clock for both, a tenant with an
edge token (the edge's upstream token: `token`, `edge`) and an admin token (the tests' own calls: `admin`),
and active devices that make binary-auth requests and get real
offline chain tokens from the cloud (POST /v1/auth/device/token, then /v1/auth/device/sync)."""

import socket

from tests.support import KEK, AuthDevice, FakeClock  # noqa: F401 (FakeClock: the conftest imports it from here)
from verifier import keys
from verifier.registry import core as registry
from verifier.app import start_server
from verifier.appkeys import SEALER
from verifier.config import Config, EdgeConfig

CLOUD_KEK = KEK
EDGE_KEK = bytes(range(100, 132))


class Device(AuthDevice):
    def __init__(self, hex_id, master_hex, clock):
        super().__init__(hex_id, master_hex, clock)
        self.chain = []


class World:
    """The cloud (restartable on the same port), its tenant, and edges pointing at it."""

    def __init__(self, tmp_path, clock):
        self.tmp, self.clock = tmp_path, clock
        self.cloud, self.cloud_port, self.edges = None, 0, []
        self.http = None

    async def start_cloud(self):
        cfg = Config(db_path=str(self.tmp / "cloud.db"), kek=CLOUD_KEK, clock=self.clock, http_port=self.cloud_port,
                     udp_port=None, dtls_port=None)
        self.cloud = await start_server(cfg)
        self.cloud_port = self.cloud.http_port
        return self.cloud

    async def stop_cloud(self):
        await self.cloud.close()
        self.cloud = None

    def edge_config(self, name="edge", token=None, **kw):
        ec = EdgeConfig(upstream=f"http://127.0.0.1:{self.cloud_port}", token=token or self.token, **kw)
        return Config(db_path=str(self.tmp / f"{name}.db"), kek=EDGE_KEK, clock=self.clock, http_port=0, udp_port=0,
                      dtls_port=None, edge=ec)

    async def start_edge(self, name="edge", token=None, **kw):
        edge = await start_server(self.edge_config(name, token, **kw))
        self.edges.append(edge)
        return edge

    async def stop_edge(self, edge):
        self.edges.remove(edge)
        await edge.close()

    def tenant(self, name="acme"):
        st = self.cloud.storage
        self.tenant_id = registry.create_tenant(st, name, self.clock())["id"]
        _, self.token = registry.issue_token(st, self.tenant_id, self.clock(), label="edge", role="edge")
        self.edge = {"Authorization": f"Bearer {self.token}"}            # what an edge sends upstream
        _, self.admin_token = registry.issue_token(st, self.tenant_id, self.clock(), label="tests")
        self.admin = {"Authorization": f"Bearer {self.admin_token}"}    # the tests' own admin calls

    def devices(self, n=1):
        st = self.cloud.storage
        rows = [{"serial_number": f"SN-{keys.new_token()[4:20]}"} for _ in range(n)]
        out = registry.provision_bulk(st, self.cloud.app[SEALER], self.tenant_id, rows, self.clock())
        devs = [Device(r["device_id"], r["master_secret"], self.clock) for r in out["results"]]
        for d in devs:
            st.update_device(self.tenant_id, d.id, {"status": "active"})
        return devs

    async def get_chain(self, dev):
        """Real chain tokens from the cloud: a JWT for a binary auth request, then a first sync."""
        base = self.cloud.url
        r = await self.http.post(base + "/v1/auth/device/token", json={"auth": dev.request().hex()})
        assert r.status == 200, await r.text()
        jwt = (await r.json())["token"]
        r = await self.http.post(base + "/v1/auth/device/sync", json={"used": [], "have": -1},
                                 headers={"Authorization": f"Bearer {jwt}"})
        assert r.status == 200, await r.text()
        dev.chain = [bytes.fromhex(t) for t in (await r.json())["tokens"]]
        dev.jwt = jwt
        return dev.chain

    async def lifecycle(self, dev, action):
        r = await self.http.post(f"{self.cloud.url}/v1/devices/{dev.hex}/lifecycle", json={"action": action},
                                 headers=self.admin)
        assert r.status == 200, await r.text()


async def binauth_http(w, edge, dev, req=None):
    req = req if req is not None else dev.request()
    r = await w.http.post(edge.url + "/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
    return req, await r.read()


async def offline(w, base_url, token):
    r = await w.http.post(base_url + "/v1/auth/device/offline", json={"token": token.hex()})
    return r.status, await r.json()


def udp_exchange(port, data, timeout=2.0):
    """One datagram to the edge's UDP port and its reply (blocking; run in a thread)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(data, ("127.0.0.1", port))
        return s.recvfrom(2048)[0]
    finally:
        s.close()
