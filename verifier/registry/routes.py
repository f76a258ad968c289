"""HTTP routes of the registry: the tenant-scoped admin API (devices, lifecycle, PSK rotation,
tenant policy, audit). Errors become HTTP in verifier.web.middleware."""

from aiohttp import web

from verifier.registry import actions, core as registry
from verifier.appkeys import CORE, DELETE_HOOKS, DEVICE_CONFIG, METRICS, SEALER, STORAGE
from verifier.errors import Conflict, NotFound, ValidationError
from verifier.registry.model import STATUSES, parse_device_id
from verifier.web.auth import require_role as _role
from verifier.web.request import (list_cursor as _cursor, list_limit as _limit, path_device_id as _device_id,
                                  read_json as _json, request_now as _now)


def _tenant_name(request, tenant_id):
    return request.app[STORAGE].get_tenant(tenant_id)["name"]


def _configure(request, tenant_id):
    """The board configuration of a provisioning row (the regions feature's, docs/regions.md), or None."""
    make = request.app.get(DEVICE_CONFIG)
    return None if make is None else make(request.app[STORAGE], tenant_id)


# devices

async def provision(request):
    token_id, tenant_id = _role(request, "factory")
    body = await _json(request)
    st = request.app[STORAGE]
    out = registry.provision_one(st, request.app[SEALER], st.get_tenant(tenant_id), body, _now(request), token_id,
                                 _configure(request, tenant_id))
    request.app[METRICS].provisioned += 1
    return web.json_response(out, status=201)


async def provision_bulk(request):
    token_id, tenant_id = _role(request, "factory")
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("devices"), list) or set(body) != {"devices"}:
        raise ValidationError('body must be {"devices": [...]}')
    rows = body["devices"]
    if not 1 <= len(rows) <= registry.BULK_MAX_ROWS:
        raise ValidationError(f"devices must hold 1 to {registry.BULK_MAX_ROWS} rows")
    out = registry.provision_bulk(request.app[STORAGE], request.app[SEALER], tenant_id, rows, _now(request), token_id,
                                  _configure(request, tenant_id))
    request.app[METRICS].provisioned += out["summary"]["created"]
    out["tenant"] = _tenant_name(request, tenant_id)
    return web.json_response(out, status=200)


async def list_devices(request):
    _, tenant_id = _role(request, "viewer")
    q = request.query
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    limit = _limit(request)
    after = None
    if "cursor" in q:
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
    _, tenant_id = _role(request, "viewer")
    dev = registry.get_device(request.app[STORAGE], tenant_id, _device_id(request))
    return web.json_response(registry.device_view(dev, _tenant_name(request, tenant_id)))


async def _change_device(request, change):
    """PATCH-like admin changes of one device: 404 before the body is read, then the change, then
    the binary-auth cache forgets the device so the very next packet sees it. Role operator."""
    token_id, tenant_id = _role(request, "operator")
    did = _device_id(request)
    registry.get_device(request.app[STORAGE], tenant_id, did)
    body = await _json(request)
    dev = change(request.app[STORAGE], tenant_id, did, body, _now(request), token_id)
    request.app[CORE].forget(did)
    return web.json_response(registry.device_view(dev, _tenant_name(request, tenant_id)))


async def patch_device(request):
    configure = _configure(request, _role(request, "operator")[1])
    return await _change_device(request, lambda *a: registry.patch_device(*a, configure=configure))


async def lifecycle(request):
    """A lifecycle action (verifier/registry/actions.py: audited, the caches forget it, the feature hooks run)."""
    token_id, tenant_id = _role(request, "operator")
    did = _device_id(request)
    registry.get_device(request.app[STORAGE], tenant_id, did)    # 404 before the body is read
    body = await _json(request)
    dev = await actions.change_lifecycle(request.app, tenant_id, did, body, _now(request), token_id)
    return web.json_response(registry.device_view(dev, _tenant_name(request, tenant_id)))


async def delete_device(request):
    """Remove a device that never authenticated (a mistaken provisioning, a board write that failed), so
    that its serial is free again; in the same transaction its certificates are revoked (they stay, for the
    CRL) and its MQTT password removed; audited. 409 once it has authenticated (decommission it instead).
    Then the feature hooks (MQTT: a fresh CRL, the broker's client deleted)."""
    token_id, tenant_id = _role(request, "factory")
    did = _device_id(request)
    st = request.app[STORAGE]
    dev = registry.get_device(st, tenant_id, did)
    now = _now(request)
    # read before the delete, in the same synchronous step (no await in between): what it takes with it
    creds = {"certificates": sum(1 for c in st.list_certificates(tenant_id, did) if c["revoked_at"] is None),
             "mqtt_password": st.get_mqtt_password(did) is not None}
    took = ([f"{creds['certificates']} certificate(s) revoked"] if creds["certificates"] else []) + (
        ["MQTT password removed"] if creds["mqtt_password"] else [])
    row = (now, tenant_id, "admin", did.hex(), token_id, "device.delete", None, None, "ok",
           f"serial {dev['serial_number']}, {dev['status']}, never authenticated" + "".join(f"; {t}" for t in took))
    outcome = st.delete_unused_device(tenant_id, did, row)
    if outcome == "absent":
        raise NotFound("no such device")
    if outcome != "deleted":
        why = "it has authenticated: decommission it instead"
        st.add_audit([row[:8] + ("error", why)])
        raise Conflict(f"device {did.hex()} cannot be deleted: {why}")
    request.app[CORE].forget(did)
    if took:
        tenant = st.get_tenant(tenant_id)
        for hook in request.app.get(DELETE_HOOKS, ()):
            await hook(request.app, tenant, did, now, creds)
    return web.Response(status=204)


async def rotate_psk(request):
    """A new DTLS PSK generation; the body is optional ({"lifetime_days": N})."""
    token_id, tenant_id = _role(request, "operator")
    did = _device_id(request)
    st = request.app[STORAGE]
    registry.get_device(st, tenant_id, did)          # 404 before the body is read
    body = await _json(request) if await request.read() else {}
    out = registry.rotate_psk(st, request.app[SEALER], st.get_tenant(tenant_id), did, body, _now(request), token_id)
    request.app[CORE].forget(did)                    # the DTLS key cache: the old PSK stops working at once
    return web.json_response(out, headers={"Cache-Control": "no-store"})


# tenant and audit

async def get_tenant(request):
    _, tenant_id = _role(request, "viewer", "factory")
    return web.json_response(registry.tenant_view(request.app[STORAGE].get_tenant(tenant_id)))


async def patch_tenant(request):
    token_id, tenant_id = _role(request, "admin")
    body = await _json(request)
    tenant = registry.patch_tenant_policy(request.app[STORAGE], tenant_id, body, _now(request), token_id)
    request.app[CORE].forget_tenant(tenant_id)
    return web.json_response(registry.tenant_view(tenant))


async def audit(request):
    _, tenant_id = _role(request, "viewer")
    q = request.query
    limit = _limit(request)
    device_id = q.get("device_id")
    if device_id is not None and parse_device_id(device_id) is None:
        raise ValidationError("device_id must be 16 lowercase hex characters")
    before = _cursor(request)
    entries = request.app[STORAGE].list_audit(tenant_id, device_id, limit, before)
    return web.json_response({"entries": entries,
                              "next_cursor": str(entries[-1]["seq"]) if len(entries) == limit else None})


ROUTES = [
    ("POST", "/v1/devices", provision),
    ("POST", "/v1/devices/bulk", provision_bulk),
    ("GET", "/v1/devices", list_devices),
    ("GET", "/v1/devices/{device_id}", get_device),
    ("PATCH", "/v1/devices/{device_id}", patch_device),
    ("DELETE", "/v1/devices/{device_id}", delete_device),
    ("POST", "/v1/devices/{device_id}/lifecycle", lifecycle),
    ("POST", "/v1/devices/{device_id}/psk/rotate", rotate_psk),
    ("GET", "/v1/tenant", get_tenant),
    ("PATCH", "/v1/tenant", patch_tenant),
    ("GET", "/v1/audit", audit),
]


CLEANUP_CTX = ()
