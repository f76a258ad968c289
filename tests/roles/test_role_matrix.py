"""Scoped admin tokens (docs/api.md "Roles", issue #14): every /v1 route of the app's router that takes an
admin token is called with a token of each role. EXPECTED below is written out by hand (it is not the code's
table): a role it lists must get past the role check (anything but 403: a 400, 404 or 409 from a minimal
body still counts), a role it does not list must get 403 `forbidden`. A route of the router that is in
neither EXPECTED nor NOT_ADMIN fails the walk, so a new route cannot go without a decided role."""

import re

import pytest

from tests.support import AdminTenant
from verifier.app import OPENAPI_DOCUMENT, create_app
from verifier.appkeys import STORAGE
from verifier.registry import core as registry

ROLES = ("viewer", "operator", "admin", "factory", "edge")
_LETTER = {"v": "viewer", "o": "operator", "a": "admin", "f": "factory", "e": "edge"}

# route -> the roles allowed (v viewer, o operator, a admin, f factory, e edge)
EXPECTED = {
    ("POST", "/v1/devices"): "af",
    ("POST", "/v1/devices/bulk"): "af",
    ("GET", "/v1/devices"): "voa",
    ("GET", "/v1/devices/{device_id}"): "voa",
    ("PATCH", "/v1/devices/{device_id}"): "oa",
    ("DELETE", "/v1/devices/{device_id}"): "af",
    ("POST", "/v1/devices/{device_id}/lifecycle"): "oa",
    ("POST", "/v1/devices/{device_id}/psk/rotate"): "oa",
    ("GET", "/v1/tenant"): "voaf",
    ("PATCH", "/v1/tenant"): "a",
    ("GET", "/v1/audit"): "voa",
    ("GET", "/v1/release-keys"): "voa",
    ("POST", "/v1/release-keys"): "a",
    ("POST", "/v1/release-keys/{kid}/retire"): "a",
    ("POST", "/v1/releases"): "a",
    ("GET", "/v1/releases"): "voa",
    ("GET", "/v1/releases/{release_id}"): "voa",
    ("POST", "/v1/releases/{release_id}/rollout"): "oa",
    ("GET", "/v1/rollouts"): "voa",
    ("GET", "/v1/rollouts/{rollout_id}"): "voa",
    ("POST", "/v1/rollouts/{rollout_id}/halt"): "oa",
    ("POST", "/v1/rollouts/{rollout_id}/resume"): "oa",
    ("POST", "/v1/tokens/introspect"): "voa",
    ("POST", "/v1/devices/{device_id}/certificate"): "oaf",
    ("GET", "/v1/devices/{device_id}/certificate"): "voa",
    ("POST", "/v1/devices/{device_id}/certificate/revoke"): "oa",
    ("POST", "/v1/devices/{device_id}/mqtt-password"): "oaf",
    ("GET", "/v1/ca"): "voaf",
    ("GET", "/v1/ca/crl"): "voa",
    ("GET", "/v1/edge/devices/{device_id}"): "ae",
    ("GET", "/v1/edge/snapshot"): "ae",
    ("POST", "/v1/edge/reports"): "ae",
    ("POST", "/v1/webhooks"): "a",
    ("GET", "/v1/webhooks"): "voa",
    ("GET", "/v1/webhooks/{webhook_id}"): "voa",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "a",
    ("POST", "/v1/webhooks/{webhook_id}/test"): "oa",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "voa",
    ("POST", "/v1/gateways"): "ae",
    ("GET", "/v1/gateways"): "voa",
    ("POST", "/v1/gateways/ek-cas"): "a",
    ("GET", "/v1/gateways/ek-cas"): "voa",
    ("GET", "/v1/gateways/policy"): "voae",
    ("PUT", "/v1/gateways/policy"): "a",
    ("PUT", "/v1/gateways/models/{model}/pcrs"): "a",
    ("GET", "/v1/gateways/{gateway_id}"): "voa",
    ("POST", "/v1/gateways/{gateway_id}/activate"): "ae",
    ("POST", "/v1/gateways/{gateway_id}/challenge"): "ae",
    ("POST", "/v1/gateways/{gateway_id}/quote"): "ae",
    ("POST", "/v1/devices/{device_id}/attest"): "oa",
    ("GET", "/v1/devices/{device_id}/attestation"): "voa",
    ("GET", "/v1/devices/{device_id}/attestation/ear"): "voa",
    ("POST", "/v1/attest/refs"): "a",
    ("GET", "/v1/attest/refs"): "voa",
    ("DELETE", "/v1/attest/refs/{ref_id}"): "a",
    ("GET", "/v1/attest/policy"): "voa",
    ("PUT", "/v1/attest/policy"): "a",
    ("GET", "/v1/attest/policy/groups/{group}"): "voa",
    ("PUT", "/v1/attest/policy/groups/{group}"): "a",
    ("GET", "/v1/devices/{device_id}/health"): "voa",
    ("GET", "/v1/devices/{device_id}/health/history"): "voa",
    ("GET", "/v1/fleet/status"): "voa",
    ("GET", "/v1/alerts"): "voa",
    ("GET", "/v1/alerts/{alert_id}"): "voa",
    ("POST", "/v1/alerts/{alert_id}/resolve"): "oa",
    ("POST", "/v1/claim-batches"): "a",
    ("GET", "/v1/claim-batches"): "voa",
    ("GET", "/v1/claim-batches/{batch_id}"): "voa",
    ("POST", "/v1/claim-batches/{batch_id}/revoke"): "a",
    ("GET", "/v1/claim-batches/{batch_id}/claims"): "voa",
    ("POST", "/v1/claim-batches/{batch_id}/claims/{serial}/reset"): "a",
}

# routes of the router that take no admin token (device, broker or capability credentials, or none)
NOT_ADMIN = {
    ("POST", "/v1/binauth"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
    ("POST", "/v1/ota/check"), ("POST", "/v1/ota/report"), ("GET", "/v1/ota/releases/{release_id}/manifest.json"),
    ("GET", "/v1/ota/releases/{release_id}/manifest.sig"), ("GET", "/v1/ota/releases/{release_id}/files/{path}"),
    ("GET", "/.well-known/jwks.json"), ("POST", "/v1/auth/device/token"), ("POST", "/v1/auth/device/refresh"),
    ("GET", "/v1/auth/device/whoami"), ("POST", "/v1/auth/device/offline"), ("POST", "/v1/auth/device/sync"),
    ("POST", "/v1/mqtt/auth"), ("POST", "/v1/mqtt/go-auth/user"), ("POST", "/v1/mqtt/go-auth/acl"),
    ("POST", "/v1/mqtt/go-auth/superuser"), ("GET", "/v1/auth/device/basic"),
    ("POST", "/v1/attest/challenge"), ("POST", "/v1/attest/evidence"), ("POST", "/v1/claim"),
}

PATH_VALUES = {"gateway_id": "gw_0123456789abcdef", "kid": "0000000000000000", "release_id": "rel_0",
               "rollout_id": "ro_0", "webhook_id": "whk_0000000000000000", "ref_id": "ref_0", "alert_id": "1",
               "model": "m1", "group": "g1", "path": "a.py",
               "batch_id": "0000000000000000", "serial": "SN-1"}


def router_routes(app):
    """(METHOD, path) of every route of the app's router, with the {name:regex} segments as {name}."""
    out = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        path = re.sub(r"\{(\w+):[^/]*\}", r"{\1}", route.resource.canonical)
        out.add((route.method, path))
    return out


# The console's HTML routes (verifier/console, docs/console.md) take a session cookie, never an admin token; their
# roles (viewer pages, operator changes) are tested in tests/console. Excluded here by their prefix, explicitly.
CONSOLE_PREFIX = "/console"


def test_every_route_of_the_router_is_decided(config):
    routes = {r for r in router_routes(create_app(config)) if not r[1].startswith(CONSOLE_PREFIX)}
    assert routes - set(EXPECTED) - NOT_ADMIN == set(), "a route with no decided role (add it to EXPECTED)"
    assert set(EXPECTED) - routes == set()
    assert set(EXPECTED) & NOT_ADMIN == set()


def test_the_openapi_document_states_each_admin_operation_s_roles():
    got = {}
    for path, item in OPENAPI_DOCUMENT["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "x-janua-role" in op:
                got[(method.upper(), path)] = op["x-janua-role"]
                assert "403" in op["responses"]
    # the document lists the narrowest roles: admin covers all, operator covers viewer
    want = {k: [_LETTER[c] for c in v if c != "a" and not (c == "o" and "v" in v)] or ["admin"]
            for k, v in EXPECTED.items()}
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}


@pytest.fixture
async def world(client, clock):
    app = client.server.app
    tenant = AdminTenant(app, "acme", clock)
    (dev, _), = tenant.provision([{}])
    headers = {}
    for role in ROLES:
        _, token = registry.issue_token(app[STORAGE], tenant.id, clock(), label=role, role=role)
        headers[role] = {"Authorization": f"Bearer {token}"}
    return client, dev, headers


def _concrete(path, dev):
    return re.sub(r"\{(\w+)\}", lambda m: dev if m.group(1) == "device_id" else PATH_VALUES[m.group(1)], path)


async def test_role_by_route_matrix(world):
    client, dev, headers = world
    wrong = []
    for (method, path), letters in EXPECTED.items():
        allowed = {_LETTER[c] for c in letters}
        for role in ROLES:
            kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            r = await client.request(method, _concrete(path, dev), headers=headers[role], **kw)
            body = await r.json() if r.content_type == "application/json" else {}
            if role in allowed and r.status in (401, 403):
                wrong.append(f"{method} {path} as {role}: {r.status}, expected past the role check")
            elif role not in allowed and (r.status, body.get("error")) != (403, "forbidden"):
                wrong.append(f"{method} {path} as {role}: {r.status}, expected 403 forbidden")
    assert wrong == []
