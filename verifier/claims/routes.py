"""HTTP routes of claims (docs/claims.md, docs/api.md "Claims"): POST /v1/claim (unauthenticated, binary: the
board's claim) and the tenant-scoped /v1/claim-batches admin routes (admin for create, revoke and reset; viewer
for reads). Errors become HTTP in verifier.web.middleware."""

import re

from aiohttp import web

from verifier.appkeys import CONFIG, CORE, DTLS_PORT, SEALER, STORAGE, UDP_PORT
from verifier.claims import batches, core
from verifier.claims.coap import open_claim_coap
from verifier.claims.service import ClaimService, reset_claim
from verifier.errors import NotFound, ValidationError
from verifier.notify.delivery import new_session
from verifier.registry import actions
from verifier.web.auth import require_role as _role
from verifier.web.request import list_limit as _limit, read_json as _json, request_now as _now, request_source

CLAIMS = web.AppKey("claims", ClaimService)
CLAIM_COAP = web.AppKey("claim_coap", object)   # the verifier.claims.coap.ClaimCoAPEndpoint, or None (off)
_HOST = re.compile(r"[A-Za-z0-9._:-]{1,253}\Z")


def _server(request):
    """The auth endpoint a claimed board is sent to (until regions): the host this request came to (its Host header,
    if it is a plain host name or address, else Config.http_host), this verifier's HTTP port and its UDP and DTLS
    ports (None where off); "tls": true when the request came over HTTPS."""
    host, port = _host_port(request.host)
    if not _HOST.match(host):                   # not a DNS name or address: this verifier's configured host
        host = request.app[CONFIG].http_host
    if port is None:
        sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
        port = sock[1] if sock else None
    out = {"host": host, "udp_port": request.app[UDP_PORT] or None,
           "http_port": port, "dtls_port": request.app[DTLS_PORT] or None}
    if request.secure:                          # claimed over HTTPS: the board's HTTP calls stay on HTTPS
        out["tls"] = True
    return out


def _host_port(text):
    """A Host header's host and port (None when it names none, or is not a number)."""
    if text.startswith("["):                       # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    return host, (int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else None)


async def claim(request):
    if request.content_length is not None and request.content_length > core.REQUEST_MAX:
        data = b""
    else:
        data = await request.content.read(core.REQUEST_MAX + 1)
    answer = await request.app[CLAIMS].claim(data, request_source(request) or "?", _server(request),
                                             request.app[CONFIG].clock())
    return web.Response(body=answer, content_type="application/octet-stream")


def _tenant_name(request, tenant_id):
    return request.app[STORAGE].get_tenant(tenant_id)["name"]


async def create_batch(request):
    token_id, tenant_id = _role(request, "admin")
    body = await _json(request)
    now = _now(request)
    batch, secret, hook_secret = batches.create_batch(request.app[STORAGE], request.app[SEALER], tenant_id, body, now,
                                                      token_id)
    out = batches.batch_view(batch, _tenant_name(request, tenant_id), now)
    out["batch_secret"] = secret.hex()
    if hook_secret is not None:
        out["hook_secret"] = hook_secret
    return web.json_response(out, status=201)


async def list_batches(request):
    _, tenant_id = _role(request, "viewer")
    now, name = _now(request), _tenant_name(request, tenant_id)
    rows = request.app[STORAGE].list_claim_batches(tenant_id, _limit(request))
    return web.json_response({"batches": [batches.batch_view(b, name, now) for b in rows]})


async def get_batch(request):
    _, tenant_id = _role(request, "viewer")
    batch = batches.get_batch(request.app[STORAGE], tenant_id, request.match_info["batch_id"])
    return web.json_response(batches.batch_view(batch, _tenant_name(request, tenant_id), _now(request)))


async def revoke_batch(request):
    token_id, tenant_id = _role(request, "admin")
    st = request.app[STORAGE]
    batch = batches.get_batch(st, tenant_id, request.match_info["batch_id"])
    now = _now(request)
    batch = batches.revoke_batch(st, tenant_id, batch, now, token_id)
    return web.json_response(batches.batch_view(batch, _tenant_name(request, tenant_id), now))


async def list_claims(request):
    _, tenant_id = _role(request, "viewer")
    st = request.app[STORAGE]
    batch = batches.get_batch(st, tenant_id, request.match_info["batch_id"])
    limit = _limit(request)
    after = request.query.get("cursor")
    if after is not None:
        try:
            core.check_serial(after)
        except core.MalformedClaim:
            raise ValidationError("cursor must be a next_cursor value of an earlier page") from None
    rows = st.list_claims(batch["id"], after, limit)
    return web.json_response({"claims": [batches.claim_view(c) for c in rows],
                              "next_cursor": rows[-1]["serial"] if len(rows) == limit else None})


async def reset(request):
    token_id, tenant_id = _role(request, "admin")
    st = request.app[STORAGE]
    batch = batches.get_batch(st, tenant_id, request.match_info["batch_id"])
    serial = request.match_info["serial"]
    try:
        core.check_serial(serial)
    except core.MalformedClaim:
        raise NotFound("no claim of this serial in the batch") from None
    now = _now(request)

    async def decommission(device_id, doc):
        await actions.change_lifecycle(request.app, tenant_id, device_id, doc, now, token_id)

    out = await reset_claim(st, decommission, tenant_id, batch, serial, now, token_id)
    request.app[CORE].forget(bytes.fromhex(out["device_id"]))
    return web.json_response(out)


ROUTES = [
    ("POST", "/v1/claim", claim),
    ("POST", "/v1/claim-batches", create_batch),
    ("GET", "/v1/claim-batches", list_batches),
    ("GET", "/v1/claim-batches/{batch_id}", get_batch),
    ("POST", "/v1/claim-batches/{batch_id}/revoke", revoke_batch),
    ("GET", "/v1/claim-batches/{batch_id}/claims", list_claims),
    ("POST", "/v1/claim-batches/{batch_id}/claims/{serial:.+}/reset", reset),
]


async def _claims_ctx(app):
    """The claim service of this instance, with the pre-claim hook's HTTP client session (public addresses only
    unless Config.notify_private_targets, which defaults to Config.dev, as for webhooks)."""
    config = app[CONFIG]
    private = config.dev if config.notify_private_targets is None else config.notify_private_targets
    session = new_session(private)
    app[CLAIMS] = ClaimService(app[STORAGE], app[SEALER], app[CORE].summary, config, session,
                               on_policy=app[CORE].forget_tenant)
    yield
    await session.close()


async def _coap_ctx(app):
    """Claims over plain CoAP when Config.coap_claim_port is set (docs/claims.md 13). The answer's server is this
    verifier's configured HTTP host, its HTTP port (set by verifier.app.start_server once bound, else the configured
    one) and its UDP and DTLS ports."""
    config = app[CONFIG]
    if config.coap_claim_port is None:
        app[CLAIM_COAP] = None
        yield
        return

    def server():
        out = {"host": config.http_host, "udp_port": app[UDP_PORT] or None,
               "http_port": endpoint.http_port or config.http_port or None, "dtls_port": app[DTLS_PORT] or None}
        if config.tls_cert is not None:         # the HTTP API is HTTPS
            out["tls"] = True
        return out

    endpoint = await open_claim_coap(app[CLAIMS], server, config.clock, config.coap_claim_host, config.coap_claim_port)
    endpoint.http_port = None
    app[CLAIM_COAP] = endpoint
    yield
    await endpoint.close()


CLEANUP_CTX = (_claims_ctx, _coap_ctx)

