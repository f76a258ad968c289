"""HTTP edge of board attestation (docs/attestation.md 2.3, docs/api.md "Attestation"): the device
routes (a challenge for a binary-auth request; evidence as raw bytes, authenticated by its own tag),
the admin routes (request an attestation, a device's status, history and latest EAR, model references,
policy), and the background task that marks challenges past their deadline missed. Domain errors
become HTTP in verifier.web.middleware; evidence refusals are answered here (their statuses include 413).
"""

import asyncio
import logging

from aiohttp import web

from verifier.appkeys import CONFIG, CORE, DTLS, LIFECYCLE_HOOKS, SEALER, STORAGE
from verifier.attest import core as attest, policy as policies
from verifier.attest.evidence import MAX_EVIDENCE
from verifier.binauth.device import authenticate_device_request as _device, refused_response as _refused
from verifier.errors import NotFound
from verifier.registry import core as registry
from verifier.tasks import stop
from verifier.tokens.core import TOKEN_KEYS
from verifier.web.auth import require_role as _role
from verifier.web.request import limit_source, path_device_id as _device_id, read_json as _json, request_now as _now, request_source

log = logging.getLogger("janua.verifier.attest")

# docs/attestation.md 2.4
REFUSAL_HTTP = {"malformed": 400, "too_large": 413, "version": 400, "unknown_device": 404, "tag": 401,
                "stale_nonce": 409}
SWEEP_TICK_S = 5.0


async def sweep_ctx(app):
    """cleanup_ctx: the task that marks challenges past their deadline missed (attest.sweep)."""
    task = asyncio.create_task(_sweep_loop(app))
    yield
    await stop(task)


async def quarantine_changed(app, device_id, now):
    """Finish a quarantine that an appraisal set or lifted, as the lifecycle route does
    (registry.core.set_quarantined): the binary-auth and DTLS caches forget the device, then the
    lifecycle hooks run (MQTT: certificates on hold, broker client disabled)."""
    app[CORE].forget(device_id)
    for hook in app.get(LIFECYCLE_HOOKS, ()):
        await hook(app, device_id, now)


class AttestHooks:
    """What the CoAP resource /attest (verifier/dtls/coap.py) calls: the same core as the HTTP routes."""

    def __init__(self, app):
        self.app = app
        self.tasks = set()            # lifecycle hooks still running (the CoAP handler cannot await)

    def challenge(self, dev, now):
        st = self.app[STORAGE]
        ch = st.get_challenge(dev["id"])
        if ch is None or ch["expires_at"] <= now:
            return {k: v for k, v in attest.issue_challenge(st, dev, now, "manual").items() if k != "reason"}
        return {"nonce": ch["nonce"].hex(), "expires_at": ch["expires_at"]}

    def evidence(self, data, source, now):
        app = self.app
        try:
            result = attest.appraise(app[STORAGE], app[SEALER], app[TOKEN_KEYS], data, now, "coap", source,
                                     app[CORE].summary)
        except attest.AttestRefused as e:
            return {"reason": e.reason}
        # at once, before the next datagram: the quarantine flag, and the trust level and attestation status that
        # device policies check (docs/policies.md)
        app[CORE].forget(bytes.fromhex(result["device_id"]))
        if result["changed_quarantine"]:
            task = asyncio.get_running_loop().create_task(
                quarantine_changed(app, bytes.fromhex(result["device_id"]), now))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return attest.answer(result)


async def coap_ctx(app):
    """cleanup_ctx: give the CoAP resources (when DTLS runs) their attestation hooks."""
    dtls = app.get(DTLS)
    if dtls is not None:
        dtls.coap.attest = AttestHooks(app)
    yield


async def _sweep_loop(app):
    while True:
        await asyncio.sleep(SWEEP_TICK_S)
        try:
            while attest.sweep(app[STORAGE], app[CONFIG].clock()) == attest.SWEEP_BATCH:
                await asyncio.sleep(0)
        except Exception:            # a busy database must not end the loop: the next tick retries
            log.exception("marking missed attestation challenges failed")


# -- device routes -----------------------------------------------------------------------------

async def challenge(request):
    # open to a quarantined device: attesting (and updating) is how it gets out (docs/attestation.md 5)
    dev, _, reply = await _device(request, allow_quarantined=True)
    if dev is None:
        return _refused(reply)
    ch = attest.issue_challenge(request.app[STORAGE], dev, _now(request), "manual")
    return web.json_response({"auth": reply.hex(), "nonce": ch["nonce"], "expires_at": ch["expires_at"]})


def _refusal(reason, message):
    return web.json_response({"error": reason, "message": message}, status=REFUSAL_HTTP[reason])


async def evidence(request):
    app, now = request.app, _now(request)
    st = app[STORAGE]
    limit_source(request, st.limits, "attest", now)
    summary = app[CORE].summary
    source = request_source(request) or "?"
    if request.content_length is not None and request.content_length > MAX_EVIDENCE:
        summary.note(now, None, None, attest.ACTION, "http", source, "REFUSED", "too_large")
        return _refusal("too_large", f"evidence is at most {MAX_EVIDENCE} bytes")
    data = bytearray()
    while len(data) <= MAX_EVIDENCE:
        chunk = await request.content.read(MAX_EVIDENCE + 1 - len(data))
        if not chunk:
            break
        data += chunk
    try:
        result = attest.appraise(st, app[SEALER], app[TOKEN_KEYS], bytes(data), now, "http", source, summary)
    except attest.AttestRefused as e:
        return _refusal(e.reason, str(e))
    app[CORE].forget(bytes.fromhex(result["device_id"]))   # its trust and attestation status (docs/policies.md)
    if result["changed_quarantine"]:
        await quarantine_changed(app, bytes.fromhex(result["device_id"]), now)
    return web.json_response(attest.answer(result))


# -- admin routes ------------------------------------------------------------------------------

def _tenant_device(request):
    """The caller's device of the path, for the GET routes (role viewer)."""
    _, tenant_id = _role(request, "viewer")
    return registry.get_device(request.app[STORAGE], tenant_id, _device_id(request))


async def request_attestation(request):
    token_id, tenant_id = _role(request, "operator")
    st, now = request.app[STORAGE], _now(request)
    dev = registry.get_device(st, tenant_id, _device_id(request))
    with st.transaction():
        ch = attest.issue_challenge(st, dev, now, "manual")
        st.add_audit([(now, tenant_id, "admin", dev["id"].hex(), token_id, "attest.request", None, None, "ok",
                       f"challenge expires at {ch['expires_at']}")])
    return web.json_response(ch, status=201)


async def get_attestation(request):
    dev = _tenant_device(request)
    return web.json_response(attest.attestation_view(request.app[STORAGE], dev))


async def get_ear(request):
    dev = _tenant_device(request)
    results = request.app[STORAGE].list_attest_results(dev["id"], 1)
    if not results:
        raise NotFound("the device has no attestation result yet")
    r = results[0]
    return web.json_response({"device_id": dev["id"].hex(), "created": r["created"], "status": r["status"],
                              "ear": r["ear"]})


async def add_ref(request):
    token_id, tenant_id = _role(request, "admin")
    out = policies.add_ref(request.app[STORAGE], tenant_id, await _json(request), _now(request), token_id)
    return web.json_response(out, status=201)


async def list_refs(request):
    _, tenant_id = _role(request, "viewer")
    refs = request.app[STORAGE].list_attest_refs(tenant_id, request.query.get("model"))
    return web.json_response({"refs": [policies.ref_view(r) for r in refs]})


async def delete_ref(request):
    token_id, tenant_id = _role(request, "admin")
    policies.delete_ref(request.app[STORAGE], tenant_id, request.match_info["ref_id"], _now(request), token_id)
    return web.Response(status=204)


def _group(request):
    return policies.check_group(request.match_info["group"]) if "group" in request.match_info else ""


async def get_policy(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response(policies.policy_view(request.app[STORAGE], tenant_id, _group(request)))


async def put_policy(request):
    token_id, tenant_id = _role(request, "admin")
    group = _group(request)
    out = policies.put_policy(request.app[STORAGE], tenant_id, group, await _json(request), _now(request), token_id)
    return web.json_response(out)


ROUTES = [
    ("POST", "/v1/attest/challenge", challenge),
    ("POST", "/v1/attest/evidence", evidence),
    ("POST", "/v1/devices/{device_id}/attest", request_attestation),
    ("GET", "/v1/devices/{device_id}/attestation", get_attestation),
    ("GET", "/v1/devices/{device_id}/attestation/ear", get_ear),
    ("POST", "/v1/attest/refs", add_ref),
    ("GET", "/v1/attest/refs", list_refs),
    ("DELETE", "/v1/attest/refs/{ref_id}", delete_ref),
    ("GET", "/v1/attest/policy", get_policy),
    ("PUT", "/v1/attest/policy", put_policy),
    ("GET", "/v1/attest/policy/groups/{group}", get_policy),
    ("PUT", "/v1/attest/policy/groups/{group}", put_policy),
]

CLEANUP_CTX = (sweep_ctx, coap_ctx)
