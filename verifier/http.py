"""HTTP edge of the verifier: the error middleware (the only place domain errors become HTTP),
the tenant-scoped admin API, POST /v1/binauth, /healthz, /metrics and /openapi.json."""

import json
import logging

from aiohttp import web

from verifier import registry
from verifier.appkeys import BATCHER, CONFIG, LIFECYCLE_HOOKS, METRICS, SEALER, STORAGE, CORE
from verifier.binauth import HTTP_STATUS, MALFORMED, unauthenticated_reply
from verifier.errors import (Conflict, ConfigError, NotFound, RateLimited, StorageError, Unauthorized,
                             ValidationError, VerifierError)
from verifier.model import STATUSES, parse_device_id
from verifier.openapi import OPENAPI

log = logging.getLogger("janua.verifier.http")

ERROR_STATUS = {ValidationError: 400, Unauthorized: 401, NotFound: 404, Conflict: 409, RateLimited: 429,
                StorageError: 503, ConfigError: 500}
MAX_LIST = 1000


def _http_status(exc):
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def _error(status, code, message, headers=None):
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


@web.middleware
async def error_middleware(request, handler):
    try:
        return await handler(request)
    except VerifierError as e:
        status = _http_status(e)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 429 else None
        return _error(status, e.code, str(e), headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error(e.status, e.reason.lower().replace(" ", "_"), e.reason, {
            k: v for k, v in e.headers.items() if k.lower() == "allow"})
    except Exception:
        log.exception("%s %s: unexpected error", request.method, request.path)
        return _error(500, "internal", "internal error")


def _admin(request):
    return registry.authenticate_admin(request.app[STORAGE], request.headers.get("Authorization"))


def _now(request):
    return int(request.app[CONFIG].clock())


async def _json(request):
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):   # RecursionError: nested too deep
        raise ValidationError("the body must be JSON") from None


def _device_id(request):
    did = parse_device_id(request.match_info["device_id"])
    if did is None:
        raise NotFound("no such device")
    return did


def _tenant_name(request, tenant_id):
    return request.app[STORAGE].get_tenant(tenant_id)["name"]


# devices

async def provision(request):
    token_id, tenant_id = _admin(request)
    body = await _json(request)
    st = request.app[STORAGE]
    out = registry.provision_one(st, request.app[SEALER], st.get_tenant(tenant_id), body, _now(request), token_id)
    request.app[METRICS].provisioned += 1
    return web.json_response(out, status=201)


async def provision_bulk(request):
    token_id, tenant_id = _admin(request)
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list) or set(body) != {"devices"}:
        raise ValidationError('body must be {"devices": [...]}')
    rows = body["devices"]
    if not 1 <= len(rows) <= registry.BULK_MAX_ROWS:
        raise ValidationError(f"devices must hold 1 to {registry.BULK_MAX_ROWS} rows")
    out = registry.provision_bulk(request.app[STORAGE], request.app[SEALER], tenant_id, rows, _now(request), token_id)
    request.app[METRICS].provisioned += out["summary"]["created"]
    out["tenant"] = _tenant_name(request, tenant_id)
    return web.json_response(out, status=200)


async def list_devices(request):
    _, tenant_id = _admin(request)
    q = request.query
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST:
        raise ValidationError(f"limit must be an integer in [1, {MAX_LIST}]")
    after = None
    if q.get("cursor"):
        after = parse_device_id(q["cursor"])
        if after is None:
            raise ValidationError("cursor must be a device id")
    devs = request.app[STORAGE].list_devices(tenant_id, status=status, group=q.get("group"), tag=q.get("tag"),
                                             after=after, limit=limit)
    name = _tenant_name(request, tenant_id)
    return web.json_response({
        "devices": [registry.device_view(d, name) for d in devs],
        "next_cursor": devs[-1]["id"].hex() if len(devs) == limit else None,
    })


async def get_device(request):
    _, tenant_id = _admin(request)
    dev = registry.get_device(request.app[STORAGE], tenant_id, _device_id(request))
    return web.json_response(registry.device_view(dev, _tenant_name(request, tenant_id)))


async def _change_device(request, change):
    """PATCH-like admin changes of one device: 404 before the body is read, then the change, then
    the binary-auth cache forgets the device so the very next packet sees it."""
    token_id, tenant_id = _admin(request)
    did = _device_id(request)
    registry.get_device(request.app[STORAGE], tenant_id, did)
    body = await _json(request)
    dev = change(request.app[STORAGE], tenant_id, did, body, _now(request), token_id)
    request.app[CORE].forget(did)
    return web.json_response(registry.device_view(dev, _tenant_name(request, tenant_id)))


async def patch_device(request):
    return await _change_device(request, registry.patch_device)


async def lifecycle(request):
    resp = await _change_device(request, registry.change_lifecycle)
    for hook in request.app.get(LIFECYCLE_HOOKS, ()):   # feature modules (MQTT): broker credentials, certificates
        await hook(request.app, _device_id(request), _now(request))
    return resp


async def rotate_psk(request):
    """A new DTLS PSK generation; the body is optional ({"lifetime_days": N})."""
    token_id, tenant_id = _admin(request)
    did = _device_id(request)
    st = request.app[STORAGE]
    registry.get_device(st, tenant_id, did)          # 404 before the body is read
    body = await _json(request) if await request.read() else None
    out = registry.rotate_psk(st, request.app[SEALER], st.get_tenant(tenant_id), did, body, _now(request), token_id)
    request.app[CORE].forget(did)                    # the DTLS key cache: the old PSK stops working at once
    return web.json_response(out, headers={"Cache-Control": "no-store"})


# tenant and audit

async def get_tenant(request):
    _, tenant_id = _admin(request)
    return web.json_response(registry.tenant_view(request.app[STORAGE].get_tenant(tenant_id)))


async def patch_tenant(request):
    token_id, tenant_id = _admin(request)
    body = await _json(request)
    tenant = registry.patch_tenant_policy(request.app[STORAGE], tenant_id, body, _now(request), token_id)
    request.app[CORE].forget_tenant(tenant_id)
    return web.json_response(registry.tenant_view(tenant))


async def audit(request):
    _, tenant_id = _admin(request)
    q = request.query
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST:
        raise ValidationError(f"limit must be an integer in [1, {MAX_LIST}]")
    device_id = q.get("device_id")
    if device_id is not None and parse_device_id(device_id) is None:
        raise ValidationError("device_id must be 16 lowercase hex characters")
    return web.json_response({"entries": request.app[STORAGE].list_audit(tenant_id, device_id, limit)})


# binary auth and operations

async def binauth(request):
    if request.content_length is not None and request.content_length > 64:
        reply = unauthenticated_reply(MALFORMED)
    else:
        data = await request.content.read(65)
        reply = await request.app[BATCHER].submit(data, request.remote or "?", "http")
    return web.Response(body=reply, status=HTTP_STATUS[reply[0]], content_type="application/octet-stream")


async def healthz(request):
    request.app[STORAGE].ping()
    return web.json_response({"status": "ok"})


async def metrics(request):
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": "text/plain; version=0.0.4"})


async def openapi(request):
    return web.json_response(OPENAPI)


ROUTES = [
    ("POST", "/v1/devices", provision),
    ("POST", "/v1/devices/bulk", provision_bulk),
    ("GET", "/v1/devices", list_devices),
    ("GET", "/v1/devices/{device_id}", get_device),
    ("PATCH", "/v1/devices/{device_id}", patch_device),
    ("POST", "/v1/devices/{device_id}/lifecycle", lifecycle),
    ("POST", "/v1/devices/{device_id}/psk/rotate", rotate_psk),
    ("GET", "/v1/tenant", get_tenant),
    ("PATCH", "/v1/tenant", patch_tenant),
    ("GET", "/v1/audit", audit),
    ("POST", "/v1/binauth", binauth),
    ("GET", "/healthz", healthz),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]


def add_routes(app):
    # feature modules (they import this module, so not at the top): each has add_routes(app)
    from verifier import edge_http, mqtt_http, ota_http, token_http
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    for mod in (ota_http, token_http, mqtt_http, edge_http):
        mod.add_routes(app)


def limit_source(request, limits, what, now):
    """The verifier-wide per-source limit (Config.source_capacity/source_refill_per_s) in front of an
    endpoint whose every request costs a signature check; RateLimited (429) when it is spent."""
    cfg = request.app[CONFIG]
    if not limits.take(f"{what}-src:{request.remote or '?'}", cfg.source_capacity,
                                    cfg.source_refill_per_s, now):
        raise RateLimited(f"too many {what} requests from this address; retry later")
