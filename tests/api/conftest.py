"""The in-process verifier (tests/support.py) for the API checks: malformed bodies and the schemathesis run."""

import pytest

from tests.support import AdminTenant, clock, client, config  # noqa: F401 (fixtures)


@pytest.fixture
def tenant(client, clock):
    return AdminTenant(client.app, "acme", clock)
