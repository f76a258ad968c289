"""Health routes (docs/api.md "Device health"): a device's health document and its history. The ingest
(verifier/health/ingest.py) is created here and hooked into binary auth's piggy-back."""

import asyncio

from aiohttp import web

from verifier.appkeys import CONFIG, CORE, DTLS, HEALTH, METRICS, STORAGE
from verifier.health import core as health
from verifier.health.ingest import HealthIngest, maintain
from verifier.registry import core as registry
from verifier.registry.model import Policy
from verifier.tasks import stop
from verifier.web.auth import require_role as _role
from verifier.web.request import path_device_id as _device_id, request_now as _now

HISTORY_S = 86400


def _latest_release(storage, tenant_id):
    best = None
    for rel in storage.list_releases(tenant_id, limit=None):
        v = rel.get("version")
        if v and (best is None or health._version_key(v) > health._version_key(best)):
            best = v
    return best


def health_document(storage, dev, now, briefs=None):
    """`briefs`: core.brief() of the device's recent reports this process remembers (the ingest's), which
    see every report; without them (another instance, or after a restart) the stored history, one report
    per 15-minute slot, stands in for them."""
    got = storage.get_health(dev["id"])
    fields = got["fields"] if got else {}
    doc = {
        "resources": {k: fields.get(k) for k in ("heap_free", "heap_min", "flash_free")},
        "network": {"rssi": fields.get("rssi"), "bytes_tx": fields.get("bytes_tx"), "bytes_rx": fields.get("bytes_rx"),
                    "last_seen_at": dev.get("last_seen_at")},
        "security": {"auth_failures": fields.get("auth_failures"), "psk_expires_at": dev.get("psk_expires_at"),
                     "attestation_status": dev.get("attestation_status"), "trust_level": dev.get("trust_level")},
        "operational": {"uptime_s": fields.get("uptime_s"), "boot_count": fields.get("boot_count"),
                        "reset_cause": (health.RESET_CAUSES[fields["reset_cause"]]
                                        if fields.get("reset_cause") is not None else None),
                        "errors": fields.get("errors"), "last_error": fields.get("last_error"),
                        "clock_offset_s": fields.get("clock_offset_s")},
        "app_version": fields.get("app_version"),
        "slot": health.SLOTS[fields["slot"]] if fields.get("slot") in (0, 1) else None,
        "received_at": got["received_at"] if got else None, "via": got["via"] if got else None,
    }
    if got is None:
        doc.update(score=None, bucket=health.bucket(None, dev.get("status"), dev.get("attestation_status")),
                   recommendations=[])
        return doc
    t = got["received_at"]
    if briefs:
        older = list(briefs)
        if older[-1][0] == t:           # the latest report itself (reports of one second share their time)
            older.pop()
        older = [b for b in older if b[0] is not None and b[0] <= t]
    else:
        older = [health.brief(h["fields"], h["received_at"])
                 for h in storage.health_history(dev["id"], now - HISTORY_S) if h["received_at"] < t]
    tenant = storage.get_tenant(dev["tenant_id"])
    ctx = {"now": now, "drift_s": Policy.from_json(tenant["policy"]).drift_s,
           "latest_release": _latest_release(storage, dev["tenant_id"])}
    recs = health.sentences(health.findings(dict(fields, received_at=t), older, dev, ctx))
    score = health.score(recs, dev.get("attestation_status") == "warning")
    doc.update(score=score, bucket=health.bucket(score, dev.get("status"), dev.get("attestation_status")),
               recommendations=recs)
    return doc


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
