"""Admin-token authentication of the tenant-scoped admin routes (tokens live in the registry)."""

from verifier.appkeys import STORAGE
from verifier.registry import core as registry


def require_admin(request):
    """(token id, tenant id) of the request's `Authorization: Bearer jna_...`; Unauthorized (401) otherwise."""
    return registry.authenticate_admin(request.app[STORAGE], request.headers.get("Authorization"))
