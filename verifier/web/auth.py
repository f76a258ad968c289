"""Role-checked admin-token authentication of the tenant-scoped admin routes (tokens live in the registry).

Every admin route calls `require_role(request, ROLE, ...)` with the roles that may call it (docs/api.md,
"Roles"); there is no role-less entry point, so a new route cannot take an admin token without naming one.
"""

from verifier.appkeys import STORAGE
from verifier.errors import Forbidden
from verifier.registry import core as registry
from verifier.registry.model import ROLES, role_allows


def require_role(request, role, *also):
    """(token id, tenant id) of the request's `Authorization: Bearer jna_...` when the token's role grants
    `role` or one of `also` (an admin token grants every role); Unauthorized (401) for no or an invalid
    token, Forbidden (403) for a token whose role does not suffice."""
    needed = (role,) + also
    for r in needed:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")   # a programming error: never reaches a client as a 403
    token_id, tenant_id, held = registry.authenticate_token(request.app[STORAGE], request.headers.get("Authorization"))
    if not any(role_allows(held, r) for r in needed):
        raise Forbidden(f"this route needs a token with role {' or '.join(needed)} (or admin); "
                        f"this token's role is {held}")
    return token_id, tenant_id
