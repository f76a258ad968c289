"""Alerts routes (docs/health.md 5.3, the routes table of docs/api.md): list, read and resolve the
tenant's alerts. The AlertWatch is created here and hooked into the health ingest (app[HEALTH].watch)
and binary auth (core.auth_failure_sink); a task evaluates the fleet rule every TICK_S; the open-alert
gauge and janua_alerts_total go to /metrics."""

import asyncio
import logging

from aiohttp import web

from verifier.alerts import core as alerts
from verifier.alerts.watch import AlertWatch
from verifier.appkeys import ALERTS, CONFIG, CORE, HEALTH, METRIC_SOURCES, METRICS, STORAGE
from verifier.errors import NotFound, ValidationError
from verifier.registry.model import parse_device_id
from verifier.tasks import stop
from verifier.web.auth import require_role as _role
from verifier.web.request import list_cursor as _cursor, list_limit as _limit, request_now as _now

log = logging.getLogger("janua.verifier.alerts")

TICK_S = 10.0
STATES = ("open", "resolved", "all")


def alert_view(a):
    return {k: a[k] for k in ("id", "tenant_id", "device_id", "rule", "severity", "state", "opened_at",
                              "last_seen_at", "count", "details", "resolved_at", "resolved_by")}


def _alert_id(request):
    text = request.match_info["alert_id"]
    if not (text.isascii() and text.isdigit() and 1 <= len(text) <= 18):
        raise NotFound("no such alert")
    return int(text)


def _sync(request):
    # alerts open when the health ingest writes its batch (written behind): write it before reading
    ingest = request.app.get(HEALTH)
    if ingest is not None:
        ingest.sync()


async def list_alerts(request):
    _, tenant_id = _role(request, "viewer")
    _sync(request)
    q = request.query
    state = q.get("state", "open")
    if state not in STATES:
        raise ValidationError(f"state must be one of {', '.join(STATES)}")
    rule = q.get("rule")
    if rule is not None and rule not in alerts.RULES:
        raise ValidationError(f"rule must be one of {', '.join(alerts.RULES)}")
    device = q.get("device_id")
    if device is not None:
        device = parse_device_id(device)
        if device is None:
            raise ValidationError("device_id must be 16 lowercase hex characters")
    limit = _limit(request)
    before = _cursor(request)
    items = request.app[STORAGE].list_alerts(tenant_id, state, device, rule, limit, before)
    return web.json_response({"alerts": [alert_view(a) for a in items],
                              "next_cursor": str(items[-1]["id"]) if len(items) == limit else None})


async def get_alert(request):
    _, tenant_id = _role(request, "viewer")
    _sync(request)
    a = request.app[STORAGE].get_alert(tenant_id, _alert_id(request))
    if a is None:
        raise NotFound("no such alert")
    return web.json_response(alert_view(a))


async def resolve_alert(request):
    token_id, tenant_id = _role(request, "operator")
    storage, now = request.app[STORAGE], _now(request)
    alert_id = _alert_id(request)
    with storage.transaction():
        a, resolved = storage.resolve_alert(tenant_id, alert_id, now, token_id)
        if a is None:
            raise NotFound("no such alert")
        if resolved:
            storage.add_audit([(now, tenant_id, "admin", a["device_id"], token_id, "alert.resolve", None, None, "ok",
                                a["rule"], f"alert {alert_id}")])
    return web.json_response(alert_view(a))


def _esc(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(storage):
    lines = ["# HELP janua_fleet_alerts_open Open alerts by tenant", "# TYPE janua_fleet_alerts_open gauge"]
    lines += [f'janua_fleet_alerts_open{{tenant="{_esc(t)}"}} {n}' for t, n in storage.open_alerts_by_tenant()]
    return ("\n".join(lines) + "\n").encode()


async def _alerts_ctx(app):
    storage, clock = app[STORAGE], app[CONFIG].clock
    watch = app[ALERTS] = AlertWatch(storage, clock)
    ingest = app.get(HEALTH)
    if ingest is not None:
        ingest.watch = watch
    app[CORE].auth_failure_sink = watch.auth_failed
    app[METRICS].registry.register(watch)

    async def run():
        while True:
            await asyncio.sleep(TICK_S)
            try:
                watch.tick(clock())
            except Exception:
                log.exception("alerts: fleet rule evaluation failed")

    task = asyncio.create_task(run())
    yield
    await stop(task)
    app[CORE].auth_failure_sink = None
    if ingest is not None:
        watch.final = True          # every changed baseline goes with it
        ingest.flush()              # the last batch with the watch still hooked in
        ingest.watch = None


def setup(app):
    app.setdefault(METRIC_SOURCES, []).append(lambda a: render_metrics(a[STORAGE]))


ROUTES = [
    ("GET", "/v1/alerts", list_alerts),
    ("GET", "/v1/alerts/{alert_id}", get_alert),
    ("POST", "/v1/alerts/{alert_id}/resolve", resolve_alert),
]

CLEANUP_CTX = (_alerts_ctx,)
