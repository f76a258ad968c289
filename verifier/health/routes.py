"""Health routes (docs/api.md "Device health"): a device's health document and its history. The ingest
(verifier/health/ingest.py) is created here and hooked into binary auth's piggy-back."""

import asyncio

from aiohttp import web

from verifier.appkeys import CONFIG, CORE, DTLS, HEALTH, METRICS, STORAGE
from verifier.health.document import HISTORY_S, health_document
from verifier.health.ingest import HealthIngest, maintain
from verifier.registry import core as registry
from verifier.tasks import stop
from verifier.web.auth import require_role as _role
from verifier.web.request import path_device_id as _device_id, request_now as _now

def _tenant_device(request):
    """The caller's device of the path, for the GET routes (role viewer)."""
    _, tenant_id = _role(request, "viewer")
    return registry.get_device(request.app[STORAGE], tenant_id, _device_id(request))


async def get_health(request):
    dev = _tenant_device(request)
    request.app[HEALTH].sync()
    storage = request.app[STORAGE]
    return web.json_response(health_document(storage, dev, _now(request), request.app[HEALTH].briefs(dev["id"])))


async def get_history(request):
    _tenant_device(request)
    request.app[HEALTH].sync()
    rows = request.app[STORAGE].health_history(_device_id(request), _now(request) - HISTORY_S)
    return web.json_response({"items": [{"received_at": r["received_at"], **r["fields"]} for r in rows]})


async def _health_ctx(app):
    config, storage = app[CONFIG], app[STORAGE]
    core = app[CORE]
    # the fleet feature sets core.perf in its own context (after this one): looked up per report
    ingest = app[HEALTH] = HealthIngest(storage, config.clock, perf=lambda: core.perf)
    core.health_sink = ingest.piggyback
    core.listeners.append(ingest)        # told of every device change (its cached row, a deleted device)
    app[METRICS].registry.register(ingest)
    dtls = app.get(DTLS)
    if dtls is not None:                 # CoAP POST /telemetry with Content-Format 42 (docs/health.md 2.2)
        dtls.coap.health = ingest
    task = asyncio.create_task(maintain(storage, config.clock))
    yield
    await stop(task)
    app[CORE].health_sink = None
    if ingest in app[CORE].listeners:
        app[CORE].listeners.remove(ingest)
    ingest.flush()


ROUTES = [
    ("GET", "/v1/devices/{device_id}/health", get_health),
    ("GET", "/v1/devices/{device_id}/health/history", get_history),
]

CLEANUP_CTX = (_health_ctx,)
