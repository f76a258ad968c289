"""HTTP routes of regions (docs/regions.md): PUT, GET and DELETE /v1/regions/{name} and GET /v1/regions, with the
admin token (admin writes, viewer reads), audited; and setup(app), which hands the registry's provisioning its
configurer (app[DEVICE_CONFIG]) so that provisioning answers carry the board's config. Errors become HTTP in
verifier.web.middleware."""

from aiohttp import web

from verifier.appkeys import DEVICE_CONFIG, STORAGE
from verifier.errors import NotFound
from verifier.regions import core
from verifier.registry.model import is_region_name
from verifier.web.auth import require_role as _role
from verifier.web.request import read_json as _json, request_now as _now


def region_view(r):
    return {k: r[k] for k in ("name", "auth", "mqtt", "coap", "https", "update", "default", "created", "updated")
            if k in r}


def _name(request):
    name = request.match_info["name"]
    if not is_region_name(name):
        raise NotFound("no such region")
    return name


def _audit(st, tenant_id, token_id, action, now, reason, detail, result="ok"):
    st.add_audit([(now, tenant_id, "admin", None, token_id, action, None, None, result, reason, detail)])


async def put_region(request):
    token_id, tenant_id = _role(request, "admin")
    name = request.match_info["name"]        # a name outside the pattern is refused by check_region (400)
    region = core.check_region(name, await _json(request))
    st, now = request.app[STORAGE], _now(request)
    with st.transaction():
        if st.get_region(tenant_id, name) is None and len(st.list_regions(tenant_id)) >= core.MAX_REGIONS:
            raise core.TooManyRegions(f"a tenant has at most {core.MAX_REGIONS} regions: delete one first")
        created = st.put_region(tenant_id, region, now)
        _audit(st, tenant_id, token_id, "region.put", now, "created" if created else "replaced",
               name + (" (default)" if region["default"] else ""))
    return web.json_response(region_view(st.get_region(tenant_id, name)), status=201 if created else 200)


async def list_regions(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response({"regions": [region_view(r) for r in request.app[STORAGE].list_regions(tenant_id)]})


async def get_region(request):
    _, tenant_id = _role(request, "viewer")
    r = request.app[STORAGE].get_region(tenant_id, _name(request))
    if r is None:
        raise NotFound("no such region")
    return web.json_response(region_view(r))


async def delete_region(request):
    """Refused (409 region_in_use) while any of the tenant's devices names the region in metadata.region: move
    them first (PATCH /v1/devices/{id} metadata.region), so that no device is left naming a region that is gone."""
    token_id, tenant_id = _role(request, "admin")
    name = _name(request)
    st, now = request.app[STORAGE], _now(request)
    with st.transaction():
        if st.get_region(tenant_id, name) is None:
            raise NotFound("no such region")
        n = st.count_region_devices(tenant_id, name)
        if not n:
            st.delete_region(tenant_id, name)
            _audit(st, tenant_id, token_id, "region.delete", now, "deleted", name)
            return web.Response(status=204)
    _audit(st, tenant_id, token_id, "region.delete", now, core.RegionInUse.code, f"{name}: {n} device(s)", "error")
    raise core.RegionInUse(f"region {name} has {n} device(s) (metadata.region): move them to another region first")


def setup(app):
    app.setdefault(DEVICE_CONFIG, core.configurer)   # app is a RoutedApp: no item assignment


ROUTES = [
    ("GET", "/v1/regions", list_regions),
    ("GET", "/v1/regions/{name}", get_region),
    ("PUT", "/v1/regions/{name}", put_region),
    ("DELETE", "/v1/regions/{name}", delete_region),
]

CLEANUP_CTX = ()
