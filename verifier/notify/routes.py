"""HTTP routes of notifications: a tenant's webhooks (add, list, show, delete, test) and their delivery
log, with the admin token; and the delivery task in CLEANUP_CTX (verifier/notify/delivery.py). Errors
become HTTP in verifier.web.middleware."""

import asyncio

from aiohttp import web

from verifier.appkeys import CONFIG, NOTIFY, SEALER, STORAGE
from verifier.errors import Conflict, NotFound, ValidationError
from verifier.notify import core, delivery
from verifier.tasks import stop
from verifier.web.auth import require_role as _role
from verifier.web.request import list_cursor as _cursor, list_limit as _limit, read_json as _json, request_now as _now

MAX_WEBHOOKS = 20              # per tenant
DELIVERY_LIMIT_DEFAULT = 100


def webhook_view(hook):
    """A webhook as the API shows it: never its secret, sealed or not."""
    return {"id": hook["id"], "url": hook["url"], "events": hook["events"], "description": hook["description"],
            "created": hook["created"]}


def delivery_view(d):
    return {"id": d["id"], "event_id": d["event_id"], "event": d["event"], "state": d["state"],
            "attempts": d["attempts"], "next_at": d["next_at"] if d["state"] == "pending" else None,
            "last_status": d["last_status"], "last_error": d["last_error"], "created": d["created"],
            "updated": d["updated"], "log": d["log"]}


def _audit(request, tenant_id, token_id, action, now, reason):
    request.app[STORAGE].add_audit([(now, tenant_id, "admin", None, token_id, action, None, None, "ok", reason)])


def _webhook(request, tenant_id):
    wid = request.match_info["webhook_id"]
    hook = request.app[STORAGE].get_webhook(tenant_id, wid) if core.is_webhook_id(wid) else None
    if hook is None:
        raise NotFound("no such webhook")
    return hook


async def add_webhook(request):
    token_id, tenant_id = _role(request, "admin")
    fields = core.check_new_webhook(await _json(request))
    st, now = request.app[STORAGE], _now(request)
    wid, secret = core.new_webhook_id(), core.new_secret()
    with st.transaction():
        if len(st.list_webhooks(tenant_id, MAX_WEBHOOKS)) >= MAX_WEBHOOKS:
            raise Conflict(f"a tenant has at most {MAX_WEBHOOKS} webhooks: delete one first")
        row = {"id": wid, "tenant_id": tenant_id, **fields, "created": now,
               "sealed_secret": request.app[SEALER].seal(secret, core.seal_id(wid), tenant_id)}
        st.add_webhook(row)
        _audit(request, tenant_id, token_id, "webhook.add", now, f"{wid} {fields['url']}"[:300])
    return web.json_response({**webhook_view(row), "secret": core.secret_text(secret)}, status=201,
                             headers={"Cache-Control": "no-store"})


async def list_webhooks(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response({"webhooks": [webhook_view(h) for h in request.app[STORAGE].list_webhooks(tenant_id)]})


async def get_webhook(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response(webhook_view(_webhook(request, tenant_id)))


async def delete_webhook(request):
    token_id, tenant_id = _role(request, "admin")
    hook = _webhook(request, tenant_id)
    st, now = request.app[STORAGE], _now(request)
    with st.transaction():
        if not st.delete_webhook(tenant_id, hook["id"]):
            raise NotFound("no such webhook")
        _audit(request, tenant_id, token_id, "webhook.delete", now, hook["id"])
    return web.Response(status=204)


async def test_webhook(request):
    token_id, tenant_id = _role(request, "operator")
    hook = _webhook(request, tenant_id)
    st, now = request.app[STORAGE], _now(request)
    with st.transaction():
        event_id = st.add_notification(tenant_id, core.TEST_EVENT,
                                       {"webhook_id": hook["id"], "message": "a test event from janua"}, now)
        _audit(request, tenant_id, token_id, "webhook.test", now, hook["id"])
    return web.json_response({"event_id": event_id, "event": core.TEST_EVENT}, status=202)


async def list_deliveries(request):
    _, tenant_id = _role(request, "viewer")
    hook = _webhook(request, tenant_id)
    limit = _limit(request, DELIVERY_LIMIT_DEFAULT)
    before = _cursor(request)
    rows = request.app[STORAGE].list_deliveries(hook["id"], limit, before)
    return web.json_response({"deliveries": [delivery_view(d) for d in rows],
                              "next_cursor": str(rows[-1]["seq"]) if len(rows) == limit else None})


ROUTES = [
    ("POST", "/v1/webhooks", add_webhook),
    ("GET", "/v1/webhooks", list_webhooks),
    ("GET", "/v1/webhooks/{webhook_id}", get_webhook),
    ("DELETE", "/v1/webhooks/{webhook_id}", delete_webhook),
    ("POST", "/v1/webhooks/{webhook_id}/test", test_webhook),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries", list_deliveries),
]


async def _delivery_ctx(app):
    """The delivery task: one HTTP client session (its own connection pool, bounded like the task; public
    addresses only unless Config.notify_private_targets, which defaults to Config.dev), one Deliverer in
    app[NOTIFY], and maintain() every Config.notify_tick_s unless that is None."""
    config = app[CONFIG]
    private = config.dev if config.notify_private_targets is None else config.notify_private_targets
    session = delivery.new_session(private)
    app[NOTIFY] = delivery.Deliverer(app[STORAGE], app[SEALER], session, timeout_s=config.notify_timeout_s,
                                     private_targets=private)
    task = None
    if config.notify_tick_s is not None:
        task = asyncio.create_task(delivery.maintain(app[NOTIFY], config.clock, config.notify_tick_s))
    yield
    await stop(task)
    await session.close()


CLEANUP_CTX = (_delivery_ctx,)
