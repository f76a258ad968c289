"""HTTP edge of X.509 certificates and MQTT broker integration (docs/mqtt.md).

Admin routes (tenant admin bearer): device certificates (issue, get, revoke), the tenant CA and CRL, MQTT
passwords. Broker-facing routes: EMQX 5 HTTP authentication and mosquitto-go-auth's HTTP backend. Device
route: http-basic. The lifecycle hook (`on_lifecycle`, registered in app[LIFECYCLE_HOOKS]) holds, releases
or revokes a device's certificates and disables, enables or deletes its dynamic-security client.
Blocking broker I/O (files, SIGHUP, the admin MQTT connection) runs in a thread; storage stays on the loop.
"""

import asyncio
import logging
import secrets

from aiohttp import web

from verifier.registry import core as registry
from verifier.mqtt import core as auth
from verifier.mqtt import status as mqtt_status
from verifier.mqtt import x509 as vx
from verifier.appkeys import CONFIG, CORE, DELETE_HOOKS, LIFECYCLE_HOOKS, POLICY, SEALER, STORAGE
from verifier.errors import Conflict, NotFound, ValidationError, VerifierError
from verifier.web.auth import require_role as _role
from verifier.web.request import path_device_id as _device_id, read_json as _json, request_now as _now, request_source
from verifier.registry.lockout import EXHAUSTED, Lockout
from verifier.registry.model import Policy, as_int, parse_device_id
from verifier.mqtt.broker import Broker, tenant_short_id, topic_prefix
from verifier.tasks import stop

log = logging.getLogger("janua.verifier.mqtt")

MQTT = web.AppKey("mqtt", object)      # MQTTState
REASONS = ("unspecified", "key_compromise", "superseded", "cessation_of_operation", "affiliation_changed")
CRL_REFRESH_S = 6 * 3600
PEM = "application/x-pem-file"


class MQTTState:
    def __init__(self):
        self.crl_cache = {}            # tenant id -> (made_at, pem)
        self.status = None             # mqtt_status.Subscriber while one runs


def _broker(app):
    return Broker.from_storage(app[STORAGE], app[SEALER])


def _audit(st, now, dev_or_none, action, transport, source, result, reason=None, actor=None, kind="auth"):
    tenant = dev_or_none["tenant_id"] if dev_or_none else None
    did = dev_or_none["id"].hex() if dev_or_none else None
    st.add_audit([(now, tenant, kind, did, actor, action, transport, source, result, reason)])


# Refusals that come after the secret was proved (the device's state, a mismatched client id, an expired
# but genuine SAS): audited row by row, and they neither count as a failed guess nor reset the count.
AUTHENTICATED_REFUSALS = frozenset(("clientid_mismatch", "username_mismatch", "expired", "lifetime_too_long"))


def _after_proof(reason):
    # a refusal decided after the credential verified: the device's state, or its policy (docs/policies.md)
    return reason.startswith(("device_", "policy: ")) or reason in AUTHENTICATED_REFUSALS


def _refusal(app, now, did, action, transport, source, reason):
    """Audit a refusal: one row if the credential had verified (the device's own state refused it),
    else counted and summarised (verifier/registry/audit.py), since anyone can send those."""
    st = app[STORAGE]
    dev = st.get_device(did) if did else None
    if _after_proof(reason):
        _audit(st, now, dev, action, transport, source, "refused", reason)
    else:
        # a refusal during a lockout (nothing checked) is summarised apart from the failed guesses
        result = "locked_out" if reason.startswith("locked_out") else "refused"
        app[CORE].summary.note(now, dev["tenant_id"] if dev else None, dev["id"].hex() if dev else None, action,
                               transport, source, result, reason)


async def publish_crl(app, tenant, now):
    """A fresh CRL for the tenant, cached for GET /v1/ca/crl and written to the broker (then SIGHUP)."""
    st = app[STORAGE]
    if st.get_ca(tenant["id"]) is None:
        return None
    pem = vx.crl_pem(vx.TenantCA.load(st, app[SEALER], tenant).crl(st, now))
    app[MQTT].crl_cache[tenant["id"]] = (now, pem)
    broker = _broker(app)
    if broker is not None:
        await asyncio.to_thread(broker.write_crl, tenant["id"], pem)
    return pem


async def _crl(app, tenant, now):
    cached = app[MQTT].crl_cache.get(tenant["id"])
    if cached is not None and now - cached[0] < CRL_REFRESH_S:
        return cached[1]
    return await publish_crl(app, tenant, now)


# -- certificates --------------------------------------------------------------------------------

def cert_view(row):
    return {"serial": row["serial"], "fingerprint": row["fingerprint"], "key_type": row["key_type"],
            "not_before": row["not_before"], "not_after": row["not_after"],
            "next_key_rotation": row["next_key_rotation"], "revoked_at": row["revoked_at"],
            "reason": row["reason"], "on_hold": row["held_at"] is not None}


async def issue_certificate(request):
    token_id, tenant_id = _role(request, "operator", "factory")
    did = _device_id(request)
    st, now = request.app[STORAGE], _now(request)
    dev = registry.get_device(st, tenant_id, did)
    body = await _json(request) if await request.read() else {}
    if not isinstance(body, dict) or set(body) - {"key_type", "days"}:
        raise ValidationError('body must be {"key_type": "p256"|"rsa2048", "days": N} (both optional)')
    key_type, days = body.get("key_type", "p256"), body.get("days", vx.DEVICE_DAYS)
    if key_type not in vx.KEY_TYPES:
        raise ValidationError(f"key_type must be one of {', '.join(vx.KEY_TYPES)}")
    days = as_int(days)
    if days is None or not 1 <= days <= vx.MAX_DEVICE_DAYS:
        raise ValidationError(f"days must be an integer in [1, {vx.MAX_DEVICE_DAYS}]")
    if dev["status"] in ("suspended", "decommissioned"):
        raise Conflict(f"cannot issue a certificate to a {dev['status']} device")
    tenant = st.get_tenant(tenant_id)
    ca = vx.TenantCA.load(st, request.app[SEALER], tenant, now)
    cert, key = vx.issue_device(ca.cert, ca.key, did.hex(), tenant["name"], now, days, key_type)
    info = vx.describe(cert)
    with st.transaction():
        st.add_certificate({**info, "tenant_id": tenant_id, "device_id": did, "key_type": key_type, "created": now})
        _audit(st, now, dev, "device.certificate.issue", None, None, "ok",
               f"serial {info['serial']}, {key_type}, until {info['not_after']}", token_id, "admin")
    out = {"device_id": did.hex(), "certificate_der": vx.b64(vx.cert_der(cert)), "key_der": vx.b64(vx.key_der(key)),
           "ca_der": vx.b64(vx.cert_der(ca.cert)), "key_type": key_type, "topic_prefix": topic_prefix(tenant_id, did.hex()),
           **info}
    return web.json_response(out, status=201, headers={"Cache-Control": "no-store"})


async def get_certificate(request):
    _, tenant_id = _role(request, "viewer")
    did = _device_id(request)
    st = request.app[STORAGE]
    registry.get_device(st, tenant_id, did)
    rows = st.list_certificates(tenant_id, did)
    now = _now(request)
    current = next((r for r in rows if r["revoked_at"] is None and r["not_after"] > now), None)
    return web.json_response({"device_id": did.hex(), "current": cert_view(current) if current else None,
                              "certificates": [cert_view(r) for r in rows]})


async def revoke_certificate(request):
    token_id, tenant_id = _role(request, "operator")
    did = _device_id(request)
    st, now = request.app[STORAGE], _now(request)
    dev = registry.get_device(st, tenant_id, did)
    body = await _json(request) if await request.read() else {}
    if not isinstance(body, dict) or set(body) - {"serial", "reason"}:
        raise ValidationError('body must be {"serial": hex, "reason": ...} (both optional)')
    serial, reason = body.get("serial"), body.get("reason", "unspecified")
    if reason not in REASONS:
        raise ValidationError(f"reason must be one of {', '.join(REASONS)}")
    if "serial" in body and not isinstance(serial, str):
        raise ValidationError("serial must be a hex string")
    n = st.revoke_certificates(tenant_id, did, now, reason, serial)
    if n == 0:
        raise NotFound("no unrevoked certificate of this device" + (" with that serial" if serial else ""))
    _audit(st, now, dev, "device.certificate.revoke", None, None, "ok", f"{n} certificate(s), {reason}",
           token_id, "admin")
    await publish_crl(request.app, st.get_tenant(tenant_id), now)
    return web.json_response({"device_id": did.hex(), "revoked": n,
                              "certificates": [cert_view(r) for r in st.list_certificates(tenant_id, did)]})


async def get_ca(request):
    _, tenant_id = _role(request, "viewer", "factory")
    st, now = request.app[STORAGE], _now(request)
    tenant = st.get_tenant(tenant_id)
    ca = vx.TenantCA.load(st, request.app[SEALER], tenant, now)
    broker = _broker(request.app)
    return web.json_response({
        "tenant": tenant["name"], "tenant_short": tenant_short_id(tenant_id), "topic_root": f"janua/{tenant_short_id(tenant_id)}",
        "ca_pem": vx.cert_pem(ca.cert).decode(), "crl_pem": (await _crl(request.app, tenant, now)).decode(),
        "fingerprint": vx.fingerprint(ca.cert), "not_after": int(ca.cert.not_valid_after_utc.timestamp()),
        "broker": None if broker is None else {"host": broker.host, "tls_port": broker.tenant_ports.get(tenant_id),
                                               "password_port": broker.password_port(tenant_id)}})


async def get_crl(request):
    _, tenant_id = _role(request, "viewer")
    st, now = request.app[STORAGE], _now(request)
    tenant = st.get_tenant(tenant_id)
    pem = await _crl(request.app, tenant, now)
    if pem is None:
        raise NotFound("this tenant has no CA yet (issue a certificate first)")
    return web.Response(body=pem, content_type=PEM)


# -- MQTT passwords (dynamic security) -----------------------------------------------------------

async def mqtt_password(request):
    token_id, tenant_id = _role(request, "operator", "factory")
    did = _device_id(request)
    st, now = request.app[STORAGE], _now(request)
    dev = registry.get_device(st, tenant_id, did)
    if dev["status"] in ("suspended", "decommissioned"):
        raise Conflict(f"cannot set a password for a {dev['status']} device")
    password = secrets.token_urlsafe(32)
    broker = _broker(request.app)
    if broker is not None:
        await asyncio.to_thread(broker.set_device_password, tenant_id, did.hex(), password)
    st.set_mqtt_password(tenant_id, did, auth.hash_password(password), now)
    _audit(st, now, dev, "device.mqtt_password.set", None, None, "ok", None, token_id, "admin")
    return web.json_response({"device_id": did.hex(), "username": did.hex(), "client_id": did.hex(),
                              "password": password, "topic_prefix": topic_prefix(tenant_id, did.hex()),
                              "broker": None if broker is None else {"host": broker.host,
                                                                     "port": broker.password_port(tenant_id)}},
                             status=201, headers={"Cache-Control": "no-store"})


# -- broker-facing authentication ----------------------------------------------------------------

def _precheck(app, source, did, now):
    """Before a device secret is checked: the verifier-wide per-source bucket, then, for a known device,
    the lockout of verifier.registry.lockout (scope "mqtt": per device and source host, and the device's failure
    budget for hosts it was not recently accepted from). Return (refusal reason or None, guard)."""
    config, st = app[CONFIG], app[STORAGE]
    if not st.limits.take(("mqtt-src", source), config.source_capacity, config.source_refill_per_s, now):
        return "rate_limited", None
    dev = st.get_device(did) if did is not None else None
    if dev is None:
        return None, None
    pol = Policy.from_json(st.get_tenant(dev["tenant_id"])["policy"])
    lockout = Lockout(st.limits, "mqtt")
    if lockout.locked(did, source, now):
        return "locked_out", None
    charge = lockout.charge(did, source, pol, now)
    if charge == EXHAUSTED:
        return "locked_out (failure budget)", None
    return None, (lockout, did, pol, charge)


def _outcome(guard, source, now, reason=None):
    """After the check: accepted (reason None) resets the host's count and trusts it; a wrong secret
    counts a failure; a refusal after the secret was proved only gives the budget token back."""
    if guard is None:
        return
    lockout, did, pol, charge = guard
    if reason is None or _after_proof(reason):
        lockout.verified(did, charge, pol, now)
        if reason is None:
            lockout.accepted(did, source, now)
    elif lockout.failed(did, source, pol, now):
        log.warning("device %s: host %s locked out for %d s after %d failed MQTT/http-basic authentications",
                    did.hex(), source, pol.lockout_s, pol.lockout_failures)


def _broker_request(doc, *names):
    """A broker's request body: a JSON object whose fields `names`, where present, are strings (the
    OpenAPI document's EMQXAuthRequest, GoAuthUser, GoAuthACL); ValidationError (400) otherwise."""
    if not isinstance(doc, dict):
        raise ValidationError("the body must be a JSON object")
    for name in names:
        if name in doc and not isinstance(doc[name], str):
            raise ValidationError(f"{name} must be a string")
    return doc


async def _authenticate(request, doc, transport):
    """(device, method) or raise auth.Refused; audits both outcomes and updates last-seen."""
    app, now = request.app, _now(request)
    st = app[STORAGE]
    _broker_request(doc, "username", "password", "clientid", "peerhost")
    username, password, clientid = doc.get("username"), doc.get("password"), doc.get("clientid")
    source = doc.get("peerhost") if isinstance(doc.get("peerhost"), str) else (request_source(request) or "?")
    did = parse_device_id(username) if isinstance(username, str) else None
    source = source[:64]
    refusal, guard = _precheck(app, source, did, now)
    if refusal:
        _refusal(app, now, did, "mqtt.connect", transport, source, refusal)
        raise auth.Refused(refusal)
    try:
        dev, method = auth.authenticate_mqtt(app, st, app[SEALER], username, password, clientid, now)
        if POLICY in app:                # the device's policy: protocol and trust (docs/policies.md "MQTT")
            auth.verify_policy(app[POLICY].effective(dev)[0], dev, method)
    except auth.Refused as e:
        _outcome(guard, source, now, e.reason)
        _refusal(app, now, did, "mqtt.connect", transport, source, e.reason)
        raise
    _outcome(guard if dev["id"] == did else None, source, now)
    st.touch_last_seen(dev["id"], now)
    _audit(st, now, dev, "mqtt.connect", transport, source[:64], "ok", method)
    return _activate(app, dev, now, transport, source[:64]), method


def _activate(app, dev, now, transport, source):
    """A device still in provisioning that proved its credential becomes active, as on its first successful
    binary auth or DTLS handshake (the broker accepts its certificate already): one transaction, audited."""
    if dev["status"] != "provisioning":
        return dev
    row = (now, dev["tenant_id"], "admin", dev["id"].hex(), transport, "device.activate", transport, source, "ok",
           "provisioning -> active: first successful authentication")
    app[STORAGE].record_auth([], [(now, dev["id"])], [row])
    core = app.get(CORE)
    if core is not None:
        core.forget(dev["id"])          # the binary-auth cache still holds "provisioning"
    return {**dev, "status": "active", "status_changed_at": now}


async def emqx_auth(request):
    """EMQX 5 HTTP authentication: 200 {"result": "allow"|"deny"|"ignore", "is_superuser", "acl"}."""
    doc = _broker_request(await _json(request), "username", "password", "clientid", "peerhost")
    username, password = doc.get("username"), doc.get("password")
    if parse_device_id(username) is None and not (isinstance(password, str) and password.startswith(auth.TOKEN_PREFIX)):
        return web.json_response({"result": "ignore"})        # not a janua device: the next authenticator decides
    try:
        dev, _ = await _authenticate(request, doc, "mqtt-emqx")
    except auth.Refused:
        return web.json_response({"result": "deny", "is_superuser": False})
    policy = request.app[POLICY].effective(dev)[0] if POLICY in request.app else None
    return web.json_response({"result": "allow", "is_superuser": False, "acl": auth.device_acl(dev, policy)})


def _go(ok, status=200):
    return web.json_response({"ok": True} if ok else {"ok": False, "error": "refused"}, status=200 if ok else 403)


async def go_user(request):
    try:
        await _authenticate(request, await _json(request), "mqtt-go-auth")
    except auth.Refused:
        return _go(False)
    return _go(True)


async def go_acl(request):
    doc = _broker_request(await _json(request), "username", "clientid", "topic")
    if doc.get("acc") not in (1, 2, 3, 4) or type(doc["acc"]) not in (int, float):
        raise ValidationError("acc must be 1 (read), 2 (write), 3 (readwrite) or 4 (subscribe)")
    try:
        cache = request.app.get(POLICY)
        auth.check_acl(request.app[STORAGE], doc.get("username"), doc.get("clientid"), doc.get("topic"), doc["acc"],
                       (lambda dev: cache.effective(dev)[0]) if cache is not None else None)
    except auth.Refused:
        return _go(False)
    return _go(True)


async def go_superuser(request):
    _broker_request(await _json(request))   # a body that is not a JSON object is a 400 (documented)
    return _go(False)           # no device is ever a superuser


# -- http-basic ----------------------------------------------------------------------------------

async def basic(request):
    app, now = request.app, _now(request)
    st = app[STORAGE]
    source = request_source(request) or "?"
    did = guard = None
    try:
        user, secret = auth.parse_basic_unverified(request.headers.get("Authorization"))
        did = bytes.fromhex(user)
        refusal, guard = _precheck(app, source, did, now)
        if refusal:
            raise auth.Refused(refusal)
        dev = auth.verify_basic(st, app[SEALER], user, secret)
    except auth.Refused as e:
        _outcome(guard, source, now, e.reason)
        _refusal(app, now, did, "http.basic", "http-basic", source, e.reason)
        return web.json_response({"error": "unauthenticated", "message": "refused"}, status=401,
                                 headers={"WWW-Authenticate": 'Basic realm="janua"'})
    _outcome(guard, source, now)
    st.touch_last_seen(dev["id"], now)
    _audit(st, now, dev, "http.basic", "http-basic", source, "ok")
    dev = _activate(app, dev, now, "http-basic", source)
    return web.json_response({"device_id": dev["id"].hex(), "status": dev["status"]})


# -- lifecycle -----------------------------------------------------------------------------------

async def on_lifecycle(app, device_id, now):
    """After an admin lifecycle change: suspended, quarantined or compromised -> certificates on hold +
    dynsec client disabled (the broker's own listeners ask the verifier nothing, and a quarantined device
    may not use MQTT: issue #12); active and neither (resumed, released) -> hold lifted + client enabled;
    decommissioned -> certificates revoked + client and password deleted. A broker that cannot be reached
    is logged and audited; the change itself stands."""
    st = app[STORAGE]
    dev = st.get_device(device_id)
    if dev is None:
        return
    tenant, hexid, status = st.get_tenant(dev["tenant_id"]), device_id.hex(), dev["status"]
    held = status == "suspended" or bool(dev["quarantined"]) or bool(dev["compromised"])
    if status == "decommissioned":
        changed = st.revoke_certificates(tenant["id"], device_id, now, "cessation_of_operation")
    else:
        changed = st.hold_certificates(tenant["id"], device_id, now, held)
    has_password = st.get_mqtt_password(device_id) is not None
    if status == "decommissioned":
        st.delete_mqtt_password(device_id)
    try:
        if changed:
            await publish_crl(app, tenant, now)
        broker = _broker(app)
        if broker is not None and has_password:
            call = (broker.delete_device if status == "decommissioned" else broker.disable_device if held
                    else broker.enable_device if status == "active" else None)
            if call is not None:
                await asyncio.to_thread(call, hexid)
    except (VerifierError, OSError) as e:
        log.error("broker update after %s of %s failed: %s", status, hexid, e)
        _audit(st, now, dev, "mqtt.lifecycle", None, None, "error", str(e)[:300], "verifier", "admin")


async def on_delete(app, tenant, device_id, now, creds):
    """After DELETE /v1/devices/{id} took a device's credentials with it (its certificates revoked and its
    password removed in the registry's transaction): a fresh CRL, and the broker's client deleted. A broker
    that cannot be reached is logged and audited; the delete itself stands."""
    st = app[STORAGE]
    try:
        if creds["certificates"]:
            await publish_crl(app, tenant, now)
        broker = _broker(app)
        if broker is not None and creds["mqtt_password"]:
            await asyncio.to_thread(broker.delete_device, device_id.hex())
    except (VerifierError, OSError) as e:
        log.error("broker update after the delete of %s failed: %s", device_id.hex(), e)
        st.add_audit([(now, tenant["id"], "admin", device_id.hex(), "verifier", "mqtt.delete", None, None, "error",
                       str(e)[:300])])


# -- wiring --------------------------------------------------------------------------------------

async def _refresh_crls(app):
    """Keep every tenant's CRL file fresh (a CRL past its nextUpdate makes OpenSSL refuse every client)."""
    while True:
        now = int(app[CONFIG].clock())
        st = app[STORAGE]
        try:
            if st.get_mqtt_broker() is not None:
                for t in st.list_tenants_brief():
                    await publish_crl(app, st.get_tenant(t["id"]), now)
        except (VerifierError, OSError) as e:
            log.error("CRL refresh failed: %s", e)
        await asyncio.sleep(CRL_REFRESH_S)


async def ctx(app):
    """cleanup_ctx resource of this feature (app.py appends it)."""
    app[MQTT] = MQTTState()
    tasks = [asyncio.create_task(_refresh_crls(app)), asyncio.create_task(mqtt_status.run(app, app[MQTT]))]
    yield
    for task in tasks:
        await stop(task)


ROUTES = [
    ("POST", "/v1/devices/{device_id}/certificate", issue_certificate),
    ("GET", "/v1/devices/{device_id}/certificate", get_certificate),
    ("POST", "/v1/devices/{device_id}/certificate/revoke", revoke_certificate),
    ("POST", "/v1/devices/{device_id}/mqtt-password", mqtt_password),
    ("GET", "/v1/ca", get_ca),
    ("GET", "/v1/ca/crl", get_crl),
    ("POST", "/v1/mqtt/auth", emqx_auth),
    ("POST", "/v1/mqtt/go-auth/user", go_user),
    ("POST", "/v1/mqtt/go-auth/acl", go_acl),
    ("POST", "/v1/mqtt/go-auth/superuser", go_superuser),
    ("GET", "/v1/auth/device/basic", basic),
]


def setup(app):
    """What the feature needs besides its ROUTES (verifier/app.py calls it after adding them)."""
    app.setdefault(LIFECYCLE_HOOKS, []).append(on_lifecycle)
    app.setdefault(DELETE_HOOKS, []).append(on_delete)


CLEANUP_CTX = (ctx,)
