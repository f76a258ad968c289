"""The regions tests: the in-process verifier of tests/support.py (a tmp_path SQLite file, or the session's
PostgreSQL database with JANUA_TEST_BACKEND=postgresql), a tenant with an admin token, and tokens of other roles."""

import pytest

from tests.support import AdminTenant, clock, client, config  # noqa: F401 (fixtures)
from verifier.appkeys import STORAGE
from verifier.registry import core as registry


@pytest.fixture
def tenant(client, clock):
    return AdminTenant(client.app, "acme", clock)


@pytest.fixture
def role_headers(client, tenant, clock):
    def make(role):
        _, token = registry.issue_token(client.app[STORAGE], tenant.id, clock(), role=role)
        return {"Authorization": f"Bearer {token}"}
    return make
