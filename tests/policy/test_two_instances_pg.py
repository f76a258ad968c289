"""A policy change on one verifier instance applies at once on a second one over the same PostgreSQL database: the
cache bus (verifier/cachebus.py) carries the tenant drop, and the other instance resolves its cached devices again on
their next request. Two real verifiers (start_server, real UDP), a private database of the session's cluster."""

import asyncio

import aiohttp
import pytest

from tests.pgcluster import fresh_database
from tests.support import KEK, AdminTenant, AuthDevice, clock  # noqa: F401 (fixture)
from tests.verifier.conftest import Server
from verifier.appkeys import CACHE_BUS
from verifier.config import Config

OK, NOT_ACTIVE = 0x00, 0x04


@pytest.fixture
async def pair(pg_url, tmp_path, clock):
    url = fresh_database(pg_url)
    servers = []
    for name in ("a", "b"):
        cfg = Config(db_path=url, state_dir=str(tmp_path / name), kek=KEK, clock=clock, http_port=0, udp_port=0,
                     dtls_port=None)
        servers.append(await Server(cfg).start())
    yield servers
    for s in servers:
        await s.stop()


async def _received(server, at_least):
    # the other instance's drop arrives by NOTIFY: wait for it (bounded), do not guess a delay
    for _ in range(500):
        if server.app[CACHE_BUS].received >= at_least:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cache drop never reached the other instance")


async def test_a_policy_set_on_one_instance_refuses_at_the_other(pair, clock):
    a, b = pair
    tenant = AdminTenant(a.app, "acme", clock)
    (hex_id, master), = tenant.provision([{}])
    dev = AuthDevice(hex_id, master, clock)
    assert (await b.send("udp", dev.request()))[0] == OK            # b has the device in its cache
    seen = b.app[CACHE_BUS].received
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{a.handle.url}/v1/policies/device/{hex_id}", json={"auth": {"protocols": ["dtls"]}},
                         headers=tenant.headers) as r:
            assert r.status == 201
        await _received(b, seen + 1)
        assert (await b.send("udp", dev.request()))[0] == NOT_ACTIVE
        async with s.delete(f"{a.handle.url}/v1/policies/device/{hex_id}", headers=tenant.headers) as r:
            assert r.status == 204
        await _received(b, seen + 2)
    assert (await b.send("udp", dev.request()))[0] == OK
