"""Policy routes (docs/policies.md, the routes table of docs/api.md): PUT/GET/DELETE /v1/policies/{scope}/{key},
GET /v1/policies, and a device's effective policy with the source of each field. Admins write, viewers read; every
change is audited and drops the tenant's policies from this instance's caches (and, on PostgreSQL, every other
instance's, through the cache bus), so the next request of any device is decided under it. The PolicyCache is
created here and hooked into binary auth (core.policy_source); the transports find it as app[POLICY]."""

from aiohttp import web

from verifier.appkeys import CORE, DTLS, POLICY, STORAGE
from verifier.errors import NotFound, ValidationError
from verifier.policy import core as policies
from verifier.policy.cache import PolicyCache
from verifier.policy.store import SCOPE_RANK, encode_doc
from verifier.web.auth import require_role as _role
from verifier.web.request import list_limit as _limit, path_device_id, read_json, request_now as _now


def policy_view(p):
    return {"scope": p["scope"], "key": p["key"], "policy": p["doc"], "updated_at": p["updated_at"],
            "updated_by": p["updated_by"]}


def _target(request, tenant_id):
    """(scope, key) of the path; NotFound for a key that names nothing of its scope (a device of another tenant)."""
    scope, key = request.match_info["scope"], request.match_info["key"]
    if scope not in policies.SCOPES or not policies.validate_key(scope, key):
        raise NotFound(f"no such {scope} key" if scope in policies.SCOPES else "no such scope")
    if scope == "device" and request.app[STORAGE].get_device(bytes.fromhex(key), tenant_id) is None:
        raise NotFound("no such device")
    return scope, key


def _changed(request, tenant_id):
    # the tenant's documents and every resolved rule are stale: binary auth, DTLS and the policy cache (its listener)
    # forget them; the cache bus tells the other instances
    request.app[CORE].forget_tenant(tenant_id)


async def put_policy(request):
    token_id, tenant_id = _role(request, "admin")
    scope, key = _target(request, tenant_id)
    doc = policies.validate_document(await read_json(request))
    storage, now = request.app[STORAGE], _now(request)
    with storage.transaction():
        created = storage.put_policy(tenant_id, scope, key, doc, now, token_id)
        storage.add_audit([(now, tenant_id, "admin", key if scope == "device" else None, token_id,
                            "policy.set", None, None, "ok", f"{scope}/{key}", encode_doc(doc)[:1000])])
    _changed(request, tenant_id)
    return web.json_response(policy_view(storage.get_policy(tenant_id, scope, key)), status=201 if created else 200)


async def get_policy(request):
    _, tenant_id = _role(request, "viewer")
    scope, key = _target(request, tenant_id)
    p = request.app[STORAGE].get_policy(tenant_id, scope, key)
    if p is None:
        raise NotFound(f"no policy for {scope} {key}")
    return web.json_response(policy_view(p))


async def delete_policy(request):
    token_id, tenant_id = _role(request, "admin")
    scope, key = _target(request, tenant_id)
    storage, now = request.app[STORAGE], _now(request)
    with storage.transaction():
        if not storage.delete_policy(tenant_id, scope, key):
            raise NotFound(f"no policy for {scope} {key}")
        storage.add_audit([(now, tenant_id, "admin", key if scope == "device" else None, token_id,
                            "policy.delete", None, None, "ok", f"{scope}/{key}", None)])
    _changed(request, tenant_id)
    return web.Response(status=204)


def _cursor(request):
    text = request.query.get("cursor")
    if text is None:
        return None
    scope, sep, key = text.partition("/")
    if not sep or scope not in SCOPE_RANK or not policies.validate_key(scope, key):
        raise ValidationError("cursor must be a next_cursor value of an earlier page")
    return scope, key


async def list_policies(request):
    _, tenant_id = _role(request, "viewer")
    scope = request.query.get("scope")
    if scope is not None and scope not in policies.SCOPES:
        raise ValidationError(f"scope must be one of {', '.join(policies.SCOPES)}")
    limit = _limit(request)
    items = request.app[STORAGE].list_policies(tenant_id, scope, _cursor(request), limit)
    last = items[-1] if len(items) == limit else None
    return web.json_response({"policies": [policy_view(p) for p in items],
                              "next_cursor": f"{last['scope']}/{last['key']}" if last else None})


async def device_policy(request):
    _, tenant_id = _role(request, "viewer")
    dev = request.app[STORAGE].get_device(path_device_id(request), tenant_id)
    if dev is None:
        raise NotFound("no such device")
    policy, sources = request.app[POLICY].effective(dev)
    return web.json_response({"device_id": dev["id"].hex(), "policy": policy, "sources": sources})


async def _policy_ctx(app):
    cache = app[POLICY] = PolicyCache(app[STORAGE])
    core = app[CORE]
    core.listeners.append(cache)
    core.policy_source = cache
    core.policy_gen += 1           # a device loaded before the source was set is resolved on its next request
    dtls = app.get(DTLS)
    if dtls is not None:           # CoAP over DTLS: access.coap_resources and access.permissions
        dtls.coap.policy = cache
    yield
    if dtls is not None:
        dtls.coap.policy = None
    core.policy_source = None
    if cache in core.listeners:
        core.listeners.remove(cache)


ROUTES = [
    ("GET", "/v1/policies", list_policies),
    ("PUT", "/v1/policies/{scope}/{key}", put_policy),
    ("GET", "/v1/policies/{scope}/{key}", get_policy),
    ("DELETE", "/v1/policies/{scope}/{key}", delete_policy),
    ("GET", "/v1/devices/{device_id}/policy", device_policy),
]

CLEANUP_CTX = (_policy_ctx,)
