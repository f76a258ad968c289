"""The console in process (aiohttp test client): a tenant with tokens of each role, devices made through the
registry, and a signed-in session (its cookie in the client's jar, its CSRF token read from a page)."""

import json
import re

import pytest

from tests.support import AdminTenant, clock, client, config  # noqa: F401 (fixtures)
from verifier.appkeys import STORAGE
from verifier.ota import rollout as rollouts
from verifier.registry import core as registry

CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)">')


class Console(AdminTenant):
    """A tenant, its admin token (.token), and tokens of role viewer and operator (.viewer, .operator)."""

    def __init__(self, client, clock):
        super().__init__(client.server.app, "acme", clock)
        self.client = client
        st = self.app[STORAGE]
        self.viewer_id, self.viewer = registry.issue_token(st, self.id, clock(), role="viewer")
        self.operator_id, self.operator = registry.issue_token(st, self.id, clock(), role="operator")
        self.csrf = None

    async def sign_in(self, token=None):
        r = await self.client.post("/console/sign-in", data={"token": token or self.token}, allow_redirects=False)
        assert r.status == 303, await r.text()
        self.csrf = CSRF.search(await (await self.client.get("/console/fleet")).text()).group(1)
        return r

    async def page(self, path, status=200):
        r = await self.client.get(path, allow_redirects=False)
        text = await r.text()
        assert r.status == status, text
        return text

    async def post(self, path, fields, csrf=True):
        data = dict(fields, csrf=self.csrf) if csrf is True else dict(fields, **({"csrf": csrf} if csrf else {}))
        return await self.client.post(path, data=data, allow_redirects=False)

    def serials(self, serials, **metadata):
        """Provision devices of these serial numbers (status active); their ids (hex) in the same order."""
        rows = [{"serial_number": s, **({"metadata": metadata} if metadata else {})} for s in serials]
        return [hx for hx, _ in self.provision(rows)]

    def audit_rows(self, action):
        return [r for r in self.app[STORAGE].list_audit(self.id, limit=1000) if r["action"] == action]

    def rollout(self, version="1.2.0", start=True):
        """A release (stored straight, no files) and its rollout; the rollout id."""
        st = self.app[STORAGE]
        rid = "rel_" + version.replace(".", "")
        st.add_release({"id": rid, "tenant_id": self.id, "kind": "app", "name": "sensor-app", "version": version,
                        "counter": 3, "kid": "0000000000000000", "size": 1234, "manifest": json.dumps({}).encode(),
                        "sig": b"\0" * 64, "manifest_sha256": "00" * 32, "created": int(self.clock())}, [])
        return rollouts.create_rollout(st, self.id, rid, {"start": start}, self.clock(), "test")["id"]


@pytest.fixture
def console(client, clock):
    return Console(client, clock)
