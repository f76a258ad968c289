"""Fixtures of the policy suite: the in-process app (tests/support.py) with a tenant and its admin token, and a
verifier on real sockets (UDP and HTTP) for binary auth's enforcement."""

import pytest

from tests.support import KEK, AdminTenant, AuthDevice, clock, client, config  # noqa: F401 (fixtures)
from tests.verifier.conftest import Server
from verifier.config import Config


class Tenant(AdminTenant):
    def device(self, **row):
        (hex_id, master), = self.provision([row])
        return AuthDevice(hex_id, master, self.clock)


@pytest.fixture
def tenant(client, clock):
    return Tenant(client.app, "acme", clock)


@pytest.fixture
async def server(tmp_path, clock):
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=0, dtls_port=None)
    srv = await Server(cfg).start()
    yield srv
    await srv.stop()


@pytest.fixture
def live_tenant(server, clock):
    return Tenant(server.app, "acme", clock)
