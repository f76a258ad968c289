"""Fixtures of the notification tests: the verifier app on a tmp_path SQLite file with the fake clock and
no background delivery task (a test runs Deliverer.run_once at the time it chooses, so backoff is tested
without sleeping), a tenant, and a real aiohttp receiver on a free localhost port whose answers a test
scripts."""

import asyncio

import pytest
from aiohttp import web

from tests.support import KEK, AdminTenant, clock  # noqa: F401 (fixtures)
from verifier.app import create_app
from verifier.appkeys import NOTIFY
from verifier.config import Config


@pytest.fixture
def config(tmp_path, clock):
    """HTTP only; notify_tick_s None: the test drives the passes; a receiver that never answers costs
    half a second (notify_timeout_s); the receiver is on 127.0.0.1, so private targets are allowed."""
    return Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                  dtls_port=None, notify_tick_s=None, notify_timeout_s=0.5, notify_private_targets=True)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


@pytest.fixture
def tenant(client, clock):
    return AdminTenant(client.app, "acme", clock)


@pytest.fixture
def deliverer(client):
    return client.app[NOTIFY]


class Receiver:
    """A webhook receiver on 127.0.0.1: records every request (headers, raw body) and answers from
    `script` in order, then `default`. An answer is (status, body), "hang" (never answers) or
    ("redirect", path)."""

    def __init__(self):
        self.requests, self.script, self.default = [], [], (200, "ok")
        self.hold = None              # an asyncio.Event: when set, every answer waits for it
        self.arrived = asyncio.Event()
        self.runner, self.url = None, None

    async def _handle(self, request):
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": await request.read()})
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await asyncio.Event().wait()
        if answer[0] == "redirect":
            raise web.HTTPFound(answer[1])
        return web.Response(status=answer[0], text=answer[1])

    async def start(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.runner.cleanup()
