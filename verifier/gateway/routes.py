"""Gateway attestation routes (docs/attestation.md section 6, docs/api.md "Gateways"), tenant admin bearer:

- POST /v1/gateways: enrol (EK public, EK certificate and its intermediates, AK public) -> the credential
  blob and encrypted secret only the TPM holding that EK, with that AK loaded, can turn back into the
  credential. The caller's admin token is bound to the gateway.
- POST /v1/gateways/{gateway_id}/activate: the decrypted credential -> active.
- POST /v1/gateways/{gateway_id}/challenge -> a quote nonce; POST /v1/gateways/{gateway_id}/quote -> the
  result as an EAR signed with the token key.
- GET /v1/gateways, GET /v1/gateways/{gateway_id}; PUT /v1/gateways/models/{model}/pcrs;
  POST|GET /v1/gateways/ek-cas; GET|PUT /v1/gateways/policy.
"""

import asyncio
import hashlib
import hmac
import re
import logging
import secrets

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from verifier.appkeys import CONFIG, STORAGE
from verifier.attest import ear
from verifier.errors import Conflict, Forbidden, NotFound, ValidationError
from verifier.gateway import core
from verifier.gateway.policy import cut_off, policy_of, sweep
from verifier.notify import core as notify
from verifier.tasks import stop
from verifier.tokens.core import TOKEN_KEYS
from verifier.web.auth import require_role as _role
from verifier.web.request import MAX_LIST, read_json as _json, request_now as _now

ID_RE = "gw_[0-9a-f]{16}"
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
HEX_RE = re.compile(r"(?:[0-9a-f]{2})*\Z")
ACTIVATION_TTL_S = 600
NONCE_TTL_S = 300
NONCE_BYTES = 32
MAX_CHAIN = 4
BUILD = "janua-verifier/1"
NO_STORE = {"Cache-Control": "no-store"}


def _obj(body, required, optional=()):
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    extra = set(body) - set(required) - set(optional)
    if extra:
        raise ValidationError(f"unknown field {sorted(extra)[0]}")
    missing = [k for k in required if k not in body]
    if missing:
        raise ValidationError(f"{missing[0]} is required")
    return body


def _hex(v, name, lo, hi):
    if not isinstance(v, str) or not lo * 2 <= len(v) <= hi * 2 or not HEX_RE.match(v):
        raise ValidationError(f"{name} must be {lo} to {hi} bytes as lowercase hex")
    return bytes.fromhex(v)


def _name(v, what):
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise ValidationError(f"{what} must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
    return v


def _tpm(fn, *args):
    """Run a core parser; its TPMError is a 400 here."""
    try:
        return fn(*args)
    except core.TPMError as e:
        raise ValidationError(str(e)) from None


def _gateway_json(g):
    return {"id": g["id"], "name": g["name"], "model": g["model"], "status": g["status"], "token_id": g["token_id"],
            "created": g["created"], "updated": g["updated"], "attested_at": g["attested_at"], "passed": g["passed"],
            "credentials": {"tpm": {"ekPublic": g["ek_public"].hex(), "akPublic": g["ak_public"].hex(),
                                    "pcrs": g["pcrs"] or {}}},
            "last_result": g["last_result"]}


def _get(request, tenant_id):
    g = request.app[STORAGE].get_gateway(tenant_id, request.match_info["gateway_id"])
    if g is None:
        raise NotFound("no such gateway")
    return g


def _roots(st, tenant_id):
    return [core.load_cert(ca["der"]) for ca in st.list_ek_cas(tenant_id)]


def _not_a_gateway(st, token_id):
    """The appraisal's inputs (reference PCRs, EK CAs, policy) are not for a gateway's own token to change:
    a compromised gateway would register its own measurements."""
    g = st.gateway_of_token(token_id)
    if g is not None:
        raise Forbidden(f"this admin token is bound to gateway {g['id']}: it may not change what gateways are "
                        "appraised against; use another admin token")


def _audit(st, now, g, action, result, reason=None, detail=None):
    st.add_audit([(now, g["tenant_id"], "admin", None, f"gateway:{g['id']}", action, None, None, result, reason,
                   detail)])


async def enrol(request):
    token_id, tenant_id = _role(request, "edge")
    st, now = request.app[STORAGE], _now(request)
    body = _obj(await _json(request), ("name", "model", "ek_public", "ek_cert", "ak_public"), ("ek_chain",))
    name, model = _name(body["name"], "name"), _name(body["model"], "model")
    ek_raw = _hex(body["ek_public"], "ek_public", 1, core.MAX_PUBLIC)
    ak_raw = _hex(body["ak_public"], "ak_public", 1, core.MAX_PUBLIC)
    cert_raw = _hex(body["ek_cert"], "ek_cert", 1, core.MAX_CERT)
    chain = body.get("ek_chain", [])
    if not isinstance(chain, list) or len(chain) > MAX_CHAIN:
        raise ValidationError(f"ek_chain must be a list of at most {MAX_CHAIN} certificates")
    chain_raw = [_hex(c, "ek_chain[]", 1, core.MAX_CERT) for c in chain]
    ek, ak = _tpm(core.decode_public, ek_raw), _tpm(core.decode_public, ak_raw)
    _tpm(core.verify_ek_public, ek)
    _tpm(core.verify_ak_public, ak)
    ek_cert = _tpm(core.load_cert, cert_raw)
    inter = [_tpm(core.load_cert, c) for c in chain_raw]
    why = core.verify_ek_chain(ek_cert, inter, _roots(st, tenant_id), ek, now)
    if why is not None:
        raise Forbidden(f"the EK certificate is not accepted ({why}): it must certify ek_public and chain to an "
                        "EK CA registered with POST /v1/gateways/ek-cas")
    credential = secrets.token_bytes(core.CREDENTIAL_BYTES)
    blob, secret = core.make_credential(ek, ak.name, credential)
    fields = {"name": name, "model": model, "ek_public": ek_raw, "ak_public": ak_raw, "ek_cert": cert_raw,
              "ek_chain": chain_raw, "status": "enrolling", "updated": now, "pcrs": None, "attested_at": None,
              "passed": False, "last_result": None}
    mine = st.gateway_of_token(token_id)
    same_name = st.find_gateway(tenant_id, name=name)
    with st.transaction():
        if mine is not None:
            if mine["status"] != "enrolling":
                raise Conflict(f"this admin token is bound to gateway {mine['id']} already; issue another token")
            if same_name is not None and same_name["id"] != mine["id"]:
                raise Conflict(f"a gateway named {name} exists")
            gid = mine["id"]
            st.update_gateway(gid, fields)        # an enrolment that was never activated is replaced
            st.set_pending(gid, "activation", hashlib.sha256(credential).digest(), now + ACTIVATION_TTL_S)
        else:
            if same_name is not None:
                raise Conflict(f"a gateway named {name} exists")
            gid = "gw_" + secrets.token_hex(8)
            st.add_gateway({**fields, "id": gid, "tenant_id": tenant_id, "token_id": token_id, "created": now},
                           hashlib.sha256(credential).digest(), now + ACTIVATION_TTL_S)
        _audit(st, now, {"id": gid, "tenant_id": tenant_id}, "gateway.enrol", "ok", None, f"{name} model {model}")
    return web.json_response({"id": gid, "status": "enrolling", "credential_blob": blob.hex(),
                              "encrypted_secret": secret.hex(), "expires_at": now + ACTIVATION_TTL_S},
                             status=201, headers=NO_STORE)


async def activate(request):
    _, tenant_id = _role(request, "edge")
    st, now = request.app[STORAGE], _now(request)
    g = _get(request, tenant_id)
    body = _obj(await _json(request), ("credential",))
    credential = _hex(body["credential"], "credential", 1, 64)
    if g["status"] != "enrolling":
        raise Conflict(f"gateway {g['id']} is {g['status']}, not enrolling")
    pending = st.take_pending(g["id"], "activation")        # single use: a wrong answer needs a new enrolment
    ok = (pending is not None and now <= pending[1]
          and hmac.compare_digest(hashlib.sha256(credential).digest(), pending[0]))
    if not ok:
        reason = "expired" if pending is not None and now > pending[1] else "credential"
        _audit(st, now, g, "gateway.activate", "refused", reason)
        raise Forbidden("credential activation failed: enrol again (POST /v1/gateways) and activate with the "
                        "credential the gateway's TPM returns")
    with st.transaction():
        st.update_gateway(g["id"], {"status": "active", "updated": now})
        _audit(st, now, g, "gateway.activate", "ok")
    return web.json_response(_gateway_json(st.get_gateway(tenant_id, g["id"])))


async def challenge(request):
    _, tenant_id = _role(request, "edge")
    st, now = request.app[STORAGE], _now(request)
    g = _get(request, tenant_id)
    if g["status"] == "enrolling":
        raise Conflict(f"gateway {g['id']} has not activated its AK yet")
    nonce = secrets.token_bytes(NONCE_BYTES)
    st.set_pending(g["id"], "nonce", nonce, now + NONCE_TTL_S)
    return web.json_response({"nonce": nonce.hex(), "expires_at": now + NONCE_TTL_S}, headers=NO_STORE)


async def quote(request):
    _, tenant_id = _role(request, "edge")
    st, now = request.app[STORAGE], _now(request)
    g = _get(request, tenant_id)
    body = _obj(await _json(request), ("quote", "signature", "pcrs"))
    attest = _hex(body["quote"], "quote", 1, core.MAX_ATTEST)
    signature = _hex(body["signature"], "signature", 1, core.MAX_SIGNATURE)
    pcr_raw = _hex(body["pcrs"], "pcrs", 256, 256)
    if g["status"] == "enrolling":
        raise Conflict(f"gateway {g['id']} has not activated its AK yet")
    ek, ak = core.decode_public(g["ek_public"]), core.decode_public(g["ak_public"])
    q, failure = _tpm(core.verify_quote, ak, attest, signature, pcr_raw, core.qualified_name_under_ek(ek, ak))
    pending = st.take_pending(g["id"], "nonce")             # any well-formed quote uses up the nonce
    if pending is None or now > pending[1] or (failure is None and not hmac.compare_digest(q.extra_data, pending[0])):
        _audit(st, now, g, "gateway.attest", "refused", "stale_nonce")
        raise Conflict("stale_nonce: the quote does not answer this gateway's outstanding challenge; "
                       "POST /v1/gateways/{id}/challenge again")
    values = core.pcr_values_of(pcr_raw)
    reference = st.get_reference_pcrs(tenant_id, g["model"])
    ref_bytes = {i: bytes.fromhex(v) for i, v in (reference or {}).items()}
    mismatched = core.compare_pcrs(values, ref_bytes) if failure is None else []
    ek_verified = core.verify_ek_chain(core.load_cert(g["ek_cert"]), [core.load_cert(c) for c in g["ek_chain"]],
                                       _roots(st, tenant_id), ek, now) is None
    status, vector, trust = core.appraise(failure, mismatched, reference is not None, ek_verified)
    passed = status == "affirming"
    policy = policy_of(st, tenant_id)
    keys = request.app[TOKEN_KEYS]
    key = keys.active(now)
    exp = now + policy["interval_s"] + policy["grace_s"]
    details = {"signatureValid": failure not in ("signature", "signer"), "pcrMatch": failure is None and not mismatched
               and reference is not None, "certificateValid": ek_verified, "mismatchedPcrs": mismatched,
               "failure": failure, "recommendations": _recommendations(failure, mismatched, reference, ek_verified)}
    token = ear.encode_ear(key, submod=g["id"], status=status, vector=vector, policy_id=core.POLICY_ID,
                           nonce=pending[0], iat=now, exp=exp, build=BUILD,
                           extra={"janua.trust-level": trust, "janua.details": details})
    keys.note_signed(key, exp)
    result = {"status": status, "passed": passed, "trust_level": trust, "at": now, "details": details,
              "clock": {"reset_count": q.reset_count, "restart_count": q.restart_count}}
    reported = {str(i): v.hex() for i, v in enumerate(values)} if failure is None else g["pcrs"]
    with st.transaction():
        st.update_gateway(g["id"], {"pcrs": reported, "last_result": result, "updated": now,
                                    **({"status": "active", "passed": True, "attested_at": now} if passed else {})})
        _audit(st, now, g, "gateway.attest", "ok" if passed else "failed", None if passed else status,
               f"trust {trust}; {failure or ('pcrs ' + ','.join(map(str, mismatched)) if mismatched else 'ok')}")
        if not passed:
            notify.emit(st, tenant_id, "gateway.attestation.failed",
                        {"gateway_id": g["id"], "name": g["name"], "status": status, "failure": failure,
                         "mismatched_pcrs": mismatched}, now)
            cut_off(st, g, status, now, f"attestation {status}")
    return web.json_response({"status": status, "passed": passed, "trust_level": trust, "ear": token,
                              "details": details}, headers=NO_STORE)


def _recommendations(failure, mismatched, reference, ek_verified):
    out = []
    if failure == "signature" or failure == "signer":
        out.append("the quote is not signed by the gateway's activated AK: re-enrol the gateway")
    elif failure is not None:
        out.append("the quote does not cover PCRs 0-7 of the SHA-256 bank with the reported values")
    if reference is None:
        out.append("register reference PCRs for this model: PUT /v1/gateways/models/{model}/pcrs")
    if mismatched:
        out.append(f"PCRs {', '.join(map(str, mismatched))} differ from the model's reference: check the boot chain")
    if not ek_verified:
        out.append("the EK certificate no longer chains to a registered EK CA")
    return out


async def list_gateways(request):
    _, tenant_id = _role(request, "viewer")
    after = request.query.get("after")
    page = request.app[STORAGE].list_gateways(tenant_id, after=after, limit=MAX_LIST)
    return web.json_response({"gateways": [_gateway_json(g) for g in page]})


async def get_gateway(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response(_gateway_json(_get(request, tenant_id)))


async def put_reference(request):
    token_id, tenant_id = _role(request, "admin")
    st, now = request.app[STORAGE], _now(request)
    _not_a_gateway(st, token_id)
    model = request.match_info["model"]
    if not NAME_RE.match(model):
        raise NotFound("no such model (a model is 1 to 64 characters of A-Z a-z 0-9 . _ -)")
    body = _obj(await _json(request), ("pcrs",))
    pcrs = body["pcrs"]
    if not isinstance(pcrs, dict) or not pcrs or set(pcrs) - {str(i) for i in core.PCR_INDICES}:
        raise ValidationError('pcrs must map PCR indices "0" to "7" to SHA-256 values (64 lowercase hex)')
    ref = {int(k): _hex(v, f"pcrs.{k}", 32, 32).hex() for k, v in pcrs.items()}
    with st.transaction():
        st.set_reference_pcrs(tenant_id, model, ref, now)
        st.add_audit([(now, tenant_id, "admin", None, token_id, "gateway.reference", None, None, "ok", None,
                       f"model {model}: PCRs {','.join(str(i) for i in sorted(ref))}")])
    return web.json_response({"model": model, "pcrs": {str(k): v for k, v in sorted(ref.items())}})


def _ca_json(ca):
    return {"fingerprint": ca["fingerprint"], "subject": ca["subject"], "created": ca["created"],
            "cert": core.load_cert(ca["der"]).public_bytes(serialization.Encoding.PEM).decode()}


async def add_ek_ca(request):
    token_id, tenant_id = _role(request, "admin")
    st, now = request.app[STORAGE], _now(request)
    _not_a_gateway(st, token_id)
    body = _obj(await _json(request), ("cert",))
    if not isinstance(body["cert"], str) or not body["cert"].startswith("-----BEGIN CERTIFICATE-----"):
        raise ValidationError("cert must be one PEM certificate")
    cert = _tpm(core.load_cert, body["cert"].encode())
    if not core.is_ca(cert):
        raise ValidationError("cert is not a CA certificate (basicConstraints CA:TRUE)")
    der = cert.public_bytes(serialization.Encoding.DER)
    fp = hashlib.sha256(der).hexdigest()
    with st.transaction():
        added = st.add_ek_ca(tenant_id, fp, der, cert.subject.rfc4514_string()[:256], now)
        if added:
            st.add_audit([(now, tenant_id, "admin", None, token_id, "gateway.ek_ca.add", None, None, "ok", None, fp)])
    ca = next(c for c in st.list_ek_cas(tenant_id) if c["fingerprint"] == fp)
    return web.json_response(_ca_json(ca), status=201 if added else 200)


async def list_ek_cas(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response({"cas": [_ca_json(c) for c in request.app[STORAGE].list_ek_cas(tenant_id)]})


POLICY_BOUNDS = {"interval_s": (60, 30 * 86400), "grace_s": (0, 86400)}


async def get_policy(request):
    _, tenant_id = _role(request, "viewer", "edge")
    return web.json_response(policy_of(request.app[STORAGE], tenant_id))


async def put_policy(request):
    token_id, tenant_id = _role(request, "admin")
    st, now = request.app[STORAGE], _now(request)
    _not_a_gateway(st, token_id)
    body = _obj(await _json(request), (), ("interval_s", "grace_s", "require_attested"))
    policy = policy_of(st, tenant_id)
    for k, (lo, hi) in POLICY_BOUNDS.items():
        if k in body:
            v = body[k]
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if type(v) is not int or not lo <= v <= hi:
                raise ValidationError(f"{k} must be an integer in [{lo}, {hi}]")
            policy[k] = v
    if "require_attested" in body:
        if not isinstance(body["require_attested"], bool):
            raise ValidationError("require_attested must be true or false")
        policy["require_attested"] = body["require_attested"]
    with st.transaction():
        st.set_gateway_policy(tenant_id, policy)
        st.add_audit([(now, tenant_id, "admin", None, token_id, "gateway.policy", None, None, "ok", None,
                       f"interval {policy['interval_s']} s, grace {policy['grace_s']} s, "
                       f"require_attested {policy['require_attested']}")])
    return web.json_response(policy)


_GW = "/v1/gateways/{gateway_id:" + ID_RE + "}"
ROUTES = [
    ("POST", "/v1/gateways", enrol),
    ("GET", "/v1/gateways", list_gateways),
    ("POST", "/v1/gateways/ek-cas", add_ek_ca),
    ("GET", "/v1/gateways/ek-cas", list_ek_cas),
    ("GET", "/v1/gateways/policy", get_policy),
    ("PUT", "/v1/gateways/policy", put_policy),
    ("PUT", "/v1/gateways/models/{model}/pcrs", put_reference),
    ("GET", _GW, get_gateway),
    ("POST", _GW + "/activate", activate),
    ("POST", _GW + "/challenge", challenge),
    ("POST", _GW + "/quote", quote),
]

SWEEP_TICK_S = 60.0
log = logging.getLogger("janua.verifier.gateway")


async def _sweep_loop(app):
    while True:
        await asyncio.sleep(SWEEP_TICK_S)
        try:
            sweep(app[STORAGE], int(app[CONFIG].clock()))
        except Exception:            # a busy database must not end the loop: the next tick retries
            log.exception("cutting off gateways with a stale attestation failed")


async def sweep_ctx(app):
    """cleanup_ctx: every SWEEP_TICK_S, cut off the gateways whose attestation went stale (policy.sweep)."""
    task = asyncio.create_task(_sweep_loop(app))
    yield
    await stop(task)


CLEANUP_CTX = (sweep_ctx,)
