from tests.verifier.conftest import Tenant, server, tenant, tenant_a, tenant_b  # noqa: F401 (fixtures)
from tests.support import clock, client, config  # noqa: F401 (fixtures)
