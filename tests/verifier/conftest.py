"""Fixtures for the verifier tests: a fake clock, a real SQLite file under tmp_path, the app built by
create_app (aiohttp test client) or started on real sockets (start_server), and three drivers of
binary auth: the sans-IO core, UDP and HTTP. Nothing sleeps; time only moves when a test moves it."""

import asyncio

import aiohttp
import pytest

from tests.support import KEK, AdminTenant, AuthDevice, clock, client, config  # noqa: F401 (fixtures)
from verifier.app import start_server
from verifier.config import Config


class Tenant(AdminTenant):
    def device(self, status="active", **row):
        """Provision one device straight through the registry; return a Device handle."""
        (hex_id, master), = self.provision([row], status)
        return Device(hex_id, master, self.clock)


Device = AuthDevice


@pytest.fixture
def tenant_a(client, clock):
    return Tenant(client.app, "tenant-a", clock)


@pytest.fixture
def tenant_b(client, clock):
    return Tenant(client.app, "tenant-b", clock)


class UDPClient(asyncio.DatagramProtocol):
    def __init__(self):
        self.replies = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.replies.put_nowait(data)


class Server:
    """A verifier on real sockets, and send(request) over one of three drivers."""

    def __init__(self, config):
        self.config = config
        self.handle = None
        self._udp = self._proto = self._session = None

    async def start(self):
        self.handle = await start_server(self.config)
        loop = asyncio.get_running_loop()
        self._udp, self._proto = await loop.create_datagram_endpoint(
            UDPClient, remote_addr=("127.0.0.1", self.handle.udp_port))
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self):
        self._udp.close()
        await self._session.close()
        await self.handle.close()

    async def restart(self):
        await self.stop()
        return await self.start()

    @property
    def app(self):
        return self.handle.app

    async def send(self, driver, request):
        """Send one request; return the reply bytes (None: the driver sent no reply)."""
        if driver == "core":
            reply, _ = self.handle.core.handle(request, ("127.0.0.1", 40000), self.config.clock(), "test")
            return reply
        if driver == "udp":
            self._udp.sendto(request)
            if len(request) < 13:
                # no reply expected (never larger than the request): a probe's reply must come next
                probe = bytes(20)
                self._udp.sendto(probe)
                reply = await asyncio.wait_for(self._proto.replies.get(), 5)
                assert reply[0] == 3 and len(reply) == 13, "a reply to the short datagram arrived"
                return None
            return await asyncio.wait_for(self._proto.replies.get(), 5)
        if driver == "http":
            async with self._session.post(self.handle.url + "/v1/binauth", data=request,
                                          headers={"Content-Type": "application/octet-stream"}) as r:
                body = await r.read()
                self.last_http_status = r.status
                return body
        raise ValueError(driver)

    async def send_many_udp(self, requests):
        for req in requests:
            self._udp.sendto(req)
        return [await asyncio.wait_for(self._proto.replies.get(), 5) for _ in requests]


@pytest.fixture
async def server(tmp_path, clock):
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=0,
                 dtls_port=None)
    srv = await Server(cfg).start()
    yield srv
    await srv.stop()


@pytest.fixture
def tenant(server, clock):
    return Tenant(server.app, "acme", clock)


DRIVERS = ("core", "udp", "http")
