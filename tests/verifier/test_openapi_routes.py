"""The served OpenAPI document against the app's real router: every registered method and path is
documented, and every documented operation is registered. Both sides come from the running app built
by create_app (the router, and GET /openapi.json), not from the constant the document is served from."""

import re

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def registered(app):
    """(METHOD, path) of every route on the app's router; aiohttp adds HEAD beside each GET itself."""
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        assert path, f"route without a path: {route!r}"
        out.add((route.method, path))
    return out


async def served_document(client):
    r = await client.get("/openapi.json")
    assert r.status == 200
    return await r.json()


def documented(doc):
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m in HTTP_METHODS}


# The console's HTML pages (verifier/console, docs/console.md) are not part of the JSON API the document describes:
# left out explicitly, by their prefix; tests/console tests them.
CONSOLE_PREFIX = "/console"


async def test_every_registered_route_is_documented_and_every_documented_route_exists(client):
    doc = await served_document(client)
    routes = {r for r in registered(client.app) if not r[1].startswith(CONSOLE_PREFIX)}
    ops = documented(doc)
    assert not any(p.startswith(CONSOLE_PREFIX) for _, p in ops)
    assert routes - ops == set(), "routes the OpenAPI document does not describe"
    assert ops - routes == set(), "documented operations the app does not serve"


async def test_the_router_and_the_document_hold_the_core_routes(client):
    """A floor, written out, so that the comparison above cannot pass on two empty sets."""
    routes = registered(client.app)
    for op in [("POST", "/v1/devices"), ("POST", "/v1/devices/bulk"), ("GET", "/v1/devices"),
               ("GET", "/v1/devices/{device_id}"), ("PATCH", "/v1/devices/{device_id}"),
               ("POST", "/v1/devices/{device_id}/lifecycle"), ("POST", "/v1/binauth"),
               ("GET", "/v1/tenant"), ("PATCH", "/v1/tenant"), ("GET", "/v1/audit"),
               ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/openapi.json")]:
        assert op in routes
    assert len(routes) >= 30


async def test_path_parameters_are_declared_for_every_templated_path(client):
    doc = await served_document(client)
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            if method not in HTTP_METHODS:
                continue
            params = op.get("parameters", []) + ops.get("parameters", [])
            declared = set()
            for p in params:
                if "$ref" in p:
                    p = resolve(doc, p["$ref"])
                if p.get("in") == "path":
                    declared.add(p["name"])
            assert declared == names, (method, path)


def resolve(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node
