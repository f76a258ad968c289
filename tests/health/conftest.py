from tests.verifier.conftest import Server, Tenant, server, tenant  # noqa: F401 (fixtures)
from tests.support import clock  # noqa: F401
