"""HTTP edge of device tokens, offline token chains and sync (docs/tokens.md).

Routes: the JWKS; a device JWT for a binary auth request (the same device authentication as
/v1/ota/check); refresh and whoami with the JWT as bearer; offline chain-token authentication (one use
per index, persisted); sync (used indices reconciled, chain top-up, keys, revocations, config); and RFC
7662 introspection for tenant admins. Domain errors become HTTP in verifier.web.middleware. A
background task prunes the used-index marks no token can need any more (docs/tokens.md section 3.3).
"""

import asyncio
import dataclasses
import functools
import logging

from aiohttp import web

from verifier.ota import rollout as ota_rollout
from verifier.tokens import chain
from verifier.tokens.chain import REVOCATION_REFRESH_S, used_expires
from verifier.appkeys import CONFIG, CORE, POLICY, STORAGE
from verifier.errors import Conflict, Forbidden, Unauthorized, ValidationError
from verifier.policy import core as policies
from verifier.registry.model import as_int
from verifier.web.auth import require_role as _role
from verifier.web.request import limit_source, read_json as _json, request_now as _now, request_source
from verifier.binauth.device import authenticate_device_request as _device, refused_response as _refused
from verifier.tasks import stop
from verifier.tokens.refusal_sampler import join_detail
from verifier.tokens.core import (TOKEN_KEYS, bearer, device_may_authenticate, issue_device_token, policy_of, scopes_of,
                             token_keys_for, validate_device_token)

log = logging.getLogger("janua.verifier.tokens")


MAX_BODY = 16 * 1024
MAX_USED = 1000                  # indices per sync
MAX_ABANDON = 2000               # newest unreceived indices voided when a device reports a lower `have`
JWKS_MAX_AGE_S = 300
OTA_KINDS = ("app", "firmware")
# Retention of chain_used (docs/tokens.md section 3.3): a row goes once the clock is past its `expires`
# (an upper bound of the token's exp) + the largest drift_s a Policy allows + a margin for clock steps.
MAX_DRIFT_S = 86400              # = the upper bound of Policy.drift_s (verifier/registry/model.py)
PRUNE_MARGIN_S = 3600
CHAIN_USED_KEEP_S = MAX_DRIFT_S + PRUNE_MARGIN_S
PRUNE_FIRST_S = 60               # real seconds from start to the first prune, then every PRUNE_INTERVAL_S
PRUNE_INTERVAL_S = 3600
PRUNE_BATCH = 1000               # rows per transaction; the event loop runs between batches


async def ctx(app):
    """cleanup_ctx resource of this feature (app.py appends it): load (or create) the signing keys, and
    run the chain_used pruning task for as long as the app runs."""
    app[TOKEN_KEYS] = token_keys_for(app, int(app[CONFIG].clock()))
    task = asyncio.create_task(_prune_loop(app))
    yield
    await stop(task)


async def _prune_loop(app):
    await asyncio.sleep(PRUNE_FIRST_S)
    while True:
        try:
            await prune_chain_used(app[STORAGE], app[CONFIG].clock())
        except Exception:            # a bug or a busy database must not end the loop: the next run retries
            log.exception("pruning used chain indices failed")
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def prune_chain_used(st, now, batch=PRUNE_BATCH):
    """Delete the chain_used rows with expires < now - CHAIN_USED_KEEP_S, `batch` rows per transaction;
    returns how many went. Safe: such a row's token has exp <= expires, so verify_chain_token refuses it
    as expired (now > exp + drift_s for every drift_s a policy allows) without the row, also later,
    unless the clock steps back by more than PRUNE_MARGIN_S."""
    before, total = int(now) - CHAIN_USED_KEEP_S, 0
    while True:
        n = st.prune_chain_used(before, batch)
        total += n
        if n < batch:
            break
        await asyncio.sleep(0)
    if total:
        log.info("pruned %d used chain indices that expired before %d", total, before)
    return total


def _audit(now, dev, action, transport, source, result, reason, device_hex=None, detail=None):
    """An auth audit row: `reason` a bare code (None for OK), `detail` free text (an index, an exp)."""
    return (now, dev["tenant_id"] if dev else None, "auth", dev["id"].hex() if dev else device_hex, None, action,
            transport, source, result, reason, detail)


async def _body(request):
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ValidationError(f"the body must be JSON of at most {MAX_BODY} bytes")
    doc = await _json(request)
    if not isinstance(doc, dict):
        raise ValidationError("the body must be a JSON object")
    return doc


def _token_reply(token, claims, refresh_at):
    return {"token": token, "token_type": "Bearer", "expires_at": claims["exp"], "refresh_at": refresh_at}


# -- JWT ------------------------------------------------------------------------------------------

async def jwks(request):
    return web.json_response(request.app[TOKEN_KEYS].jwks(_now(request)),
                             headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"})


def _token_policy(request, dev, now, action):
    """(tenant Policy with the device policy's token_ttl_s, scp names or None) for a device token; Forbidden (403,
    audited) when the device's policy does not allow the protocol "token" or its trust (docs/policies.md)."""
    st = request.app[STORAGE]
    policy = policy_of(st, dev["tenant_id"])
    cache = request.app.get(POLICY)
    if cache is None:
        return policy, None
    eff, _ = cache.effective(dev)
    why = policies.protocol_refusal(eff["auth"], "token", dev["trust_level"],
                                    dev.get("attestation_status") or "unknown")
    if why is not None:
        st.add_audit([_audit(now, dev, action, "http", request_source(request), "NOT_ACTIVE", why)])
        raise Forbidden(why)
    ttl = eff["auth"]["token_ttl_s"]
    # the refresh lead stays below the lifetime: at most half of a policy lifetime shorter than the tenant's lead
    policy = dataclasses.replace(policy, token_ttl_s=ttl, token_refresh_s=min(policy.token_refresh_s, ttl // 2))
    scopes = eff["access"]["token_scopes"]
    if scopes is None and eff["access"]["permissions"] != dev["permissions"]:
        scopes = scopes_of(eff["access"]["permissions"]).split()
    return policy, scopes


async def issue(request):
    dev, _, reply = await _device(request)
    if dev is None:
        return _refused(reply)
    st, now = request.app[STORAGE], _now(request)
    policy, scopes = _token_policy(request, dev, now, "token.issue")
    token, claims, refresh_at = issue_device_token(request.app[TOKEN_KEYS], dev, policy, now, scopes)
    st.add_audit([_audit(now, dev, "token.issue", "http", request_source(request), "OK", None, detail=f"exp {claims['exp']}")])
    out = _token_reply(token, claims, refresh_at)
    out["auth"] = reply.hex()
    return web.json_response(out, headers={"Cache-Control": "no-store"})


async def refresh(request):
    st, now = request.app[STORAGE], _now(request)
    dev, _ = validate_device_token(request.app, bearer(request), now)
    policy, scopes = _token_policy(request, dev, now, "token.refresh")
    token, claims, refresh_at = issue_device_token(request.app[TOKEN_KEYS], dev, policy, now, scopes)
    st.add_audit([_audit(now, dev, "token.refresh", "http", request_source(request), "OK", None, detail=f"exp {claims['exp']}")])
    return web.json_response(_token_reply(token, claims, refresh_at), headers={"Cache-Control": "no-store"})


async def whoami(request):
    dev, claims = validate_device_token(request.app, bearer(request), _now(request))
    tenant = request.app[STORAGE].get_tenant(dev["tenant_id"])
    return web.json_response({"device_id": dev["id"].hex(), "tenant": tenant["name"], "status": dev["status"],
                              "exp": claims["exp"]})


async def introspect(request):
    """RFC 7662: {"active": false} for anything that does not validate now or is another tenant's."""
    _, tenant_id = _role(request, "viewer")
    doc = await _body(request)
    if not isinstance(doc.get("token"), str):
        raise ValidationError('body must be {"token": "<JWT>"}')
    try:
        dev, claims = validate_device_token(request.app, doc["token"], _now(request))
    except Unauthorized:
        return web.json_response({"active": False})
    if dev["tenant_id"] != tenant_id:
        return web.json_response({"active": False})
    return web.json_response({"active": True, **claims, "scope": claims["scp"], "token_type": "Bearer"})


# -- offline chain tokens -------------------------------------------------------------------------

def authenticate_offline(app, raw, now, source):
    """Decide one offline chain token (bytes) at the cloud: (device, fields, chain state), or raise
    ChainTokenRefused after writing its audit row. Accepted tokens are marked used before returning.
    A refusal before the signature verifies (chain.UNAUTHENTICATED_REASONS) is audited under the tenant of
    the device the token names, if it is known (also when the token is malformed but 107 bytes long), as a
    summary row (verifier/registry/audit.py: counted, at most one row per device and interval), never row by row."""
    st, dev, reason, detail = app[STORAGE], None, None, None
    try:
        fields = chain.decode_chain_token_unverified(raw)
        detail = f"index {fields['index']}"
        dev = st.get_device(fields["device_id"])
        drift = policy_of(st, dev["tenant_id"]).drift_s if dev else 0
        fields = chain.verify_chain_token(raw, app[TOKEN_KEYS].chain_keys(now), now, drift)
        if dev is None or fields["tenant_hash"] != chain.tenant_hash(dev["tenant_id"]):
            raise chain.ChainTokenRefused("unknown_device")
        if not device_may_authenticate(dev):
            raise chain.ChainTokenRefused("revoked")
        if not st.use_chain_token(dev["id"], fields["index"], now, "offline", fields["exp"]):
            raise chain.ChainTokenRefused("replayed")
    except chain.ChainTokenRefused as e:
        reason = e.reason
        named = bytes(raw[5:13]) if len(raw) == chain.TOKEN_LEN else None
        if dev is None and named is not None and reason == "malformed":
            dev = st.get_device(named)                  # a malformed token naming a known device: its tenant sees it
        detail = detail if e.detail is None else join_detail(e.detail, detail)
        row = _audit(now, dev, "offline", "offline", source, "REFUSED", reason, named.hex() if named else None, detail)
        if reason in chain.UNAUTHENTICATED_REASONS:     # before the signature verified: counted, summarised, keyed
            app[CORE].summary.note(now, row[1], dev["id"].hex() if dev else None,   # by a known device only
                                   "offline", "offline", source, "REFUSED", reason)
        else:
            st.add_audit([row])
        log.info("offline token refused: %s", reason)
        raise
    st.add_audit([_audit(now, dev, "offline", "offline", source, "OK", None, detail=f"index {fields['index']}")])
    return dev, fields, st.get_chain_state(dev["id"])


async def offline(request):
    now = _now(request)
    limit_source(request, request.app[STORAGE].limits, "offline", now)
    raw = b""
    try:
        doc = await _body(request)
        text = doc.get("token")
        if isinstance(text, str) and len(text) == 2 * chain.TOKEN_LEN:
            raw = bytes.fromhex(text)
    except (ValidationError, ValueError):
        raw = b""
    dev, fields, state = authenticate_offline(request.app, raw, now, request_source(request))
    nxt = fields["index"] + 1
    if state is not None and nxt >= state["seg_first"]:
        next_nbf = state["base"] + nxt * state["period"]
    else:
        period = state["period"] if state else policy_of(request.app[STORAGE], dev["tenant_id"]).chain_period_s
        next_nbf = fields["nbf"] + period
    return web.json_response({"ok": True, "device_id": dev["id"].hex(), "index": fields["index"],
                              "next_index": nxt, "next_nbf": next_nbf})


# -- sync -----------------------------------------------------------------------------------------

def _indices(used, have):
    if not isinstance(used, list) or len(used) > MAX_USED or \
            any(as_int(i) is None or not 0 <= i <= chain.MAX_INDEX for i in used):
        raise ValidationError(f"used must be a list of at most {MAX_USED} chain indices (0..65535)")
    if as_int(have) is None or not -1 <= have <= chain.MAX_INDEX:
        raise ValidationError("have must be the highest chain index the device holds, or -1")
    return sorted({int(i) for i in used}), int(have)


def sync_chain(st, keys, dev, policy, used, have, now):
    """Reconcile a device's reported used indices and top its chain up (docs/tokens.md section 4.4).
    Returns (used_ack, new tokens as bytes, chain state after)."""
    did = dev["id"]
    used, have = _indices(used, have)
    state = st.get_chain_state(did)
    last = state["next_index"] - 1 if state else -1
    if have > last:
        raise ValidationError(f"have {have} is beyond the last chain index issued ({last})")
    ack = [i for i in used if i <= last]
    cap = functools.cache(keys.max_signed_until)
    st.mark_chain_used(did, [(i, used_expires(state, i, cap)) for i in ack], now, "device")
    if have < last:              # tokens the device never received (a lost response, a wiped flash): void them
        st.mark_chain_used(did, [(i, used_expires(state, i, cap))
                                 for i in range(max(have + 1, last + 1 - MAX_ABANDON), last + 1)], now, "abandoned")
    remaining = 0
    if state and have >= state["seg_first"]:
        spent = st.used_chain_indices(did, state["seg_first"], have)
        remaining = sum(1 for i in range(state["seg_first"], have + 1)
                        if i not in spent and state["base"] + i * state["period"] + state["validity"] > now)
    if remaining >= policy.chain_low_water and state is not None:
        return ack, [], state
    nxt = state["next_index"] if state else 0
    count = min(policy.chain_len - remaining, chain.MAX_INDEX + 1 - nxt)
    if count <= 0:
        return ack, [], state
    new = dict(state) if state else {"seg_first": 0}
    new.update(period=policy.chain_period_s, validity=policy.chain_validity_s, next_index=nxt + count, updated_at=now)
    if state is None or remaining == 0:
        # a new segment whose first token is valid from now; whatever is left of the old one is dead.
        # Tokens already past exp + CHAIN_USED_KEEP_S need no mark (refused as expired; pruned anyway).
        if state:
            spent = st.used_chain_indices(did, state["seg_first"], nxt - 1)
            dead = [(i, used_expires(state, i, cap)) for i in range(state["seg_first"], nxt) if i not in spent]
            st.mark_chain_used(did, [d for d in dead if d[1] >= now - CHAIN_USED_KEEP_S], now, "abandoned")
        new.update(base=now - nxt * policy.chain_period_s, seg_first=nxt)
    elif (state["period"], state["validity"]) != (policy.chain_period_s, policy.chain_validity_s):
        # the policy changed: a new segment that starts where the old schedule would have
        new.update(base=state["base"] + nxt * state["period"] - nxt * policy.chain_period_s, seg_first=nxt)
    key = keys.active(now)
    prev = state["last_hash"] if state else chain.ZERO_PREV
    base, period, validity = new["base"], new["period"], new["validity"]
    tokens = []
    for index in range(nxt, nxt + count):
        nbf = base + index * period
        tok = chain.encode_chain_token(key.kid_bytes, did, index, nbf, nbf + validity,
                                       chain.tenant_hash(dev["tenant_id"]), prev, chain.signer(key.private))
        tokens.append(tok)
        prev = chain.chain_link(tok)
    new["last_hash"] = prev
    keys.note_signed(key, base + (nxt + count - 1) * period + validity)
    if not st.put_chain_state(did, state["next_index"] if state else None, new):
        raise Conflict("the device's chain changed during this sync; retry")
    return ack, tokens, new


async def sync(request):
    st, now = request.app[STORAGE], _now(request)
    dev, _ = validate_device_token(request.app, bearer(request), now)
    doc = await _body(request)
    policy = policy_of(st, dev["tenant_id"])
    ota = doc.get("ota")
    if ota is not None and (not isinstance(ota, dict) or ota.get("kind", "app") not in OTA_KINDS
                            or not isinstance(ota.get("version"), (str, type(None)))
                            or type(ota.get("counter", 0)) is not int):
        raise ValidationError("ota must be {kind: app|firmware, version, counter}")
    keys = request.app[TOKEN_KEYS]
    with st.transaction():
        ack, tokens, state = sync_chain(st, keys, dev, policy, doc.get("used", []), doc.get("have", -1), now)
        st.add_audit([_audit(now, dev, "sync", "http", request_source(request), "OK", None,
                             detail=f"used {len(ack)}, issued {len(tokens)}")])
    update = False
    held = request.app[POLICY].update_gate(dev, now) if POLICY in request.app and ota is not None else None
    if ota is not None and held is None:     # an update policy that holds releases back offers none (docs/policies.md)
        update = ota_rollout.choose_update(st, dev, ota.get("kind", "app"), ota.get("version"),
                                           ota.get("counter", 0), now) is not None
    return web.json_response({
        "used_ack": ack,
        "tokens": [t.hex() for t in tokens],
        "chain": {"period": state["period"], "validity": state["validity"], "next_index": state["next_index"]}
        if state else None,
        "keys": keys.jwks(now),
        "revocations": {"devices": [d.hex() for d in st.revoked_device_ids(dev["tenant_id"])],
                        "next_update": now + REVOCATION_REFRESH_S},
        "config": {"token_ttl_s": policy.token_ttl_s, "token_refresh_s": policy.token_refresh_s,
                   "drift_s": policy.drift_s, "session_ttl_s": policy.session_ttl_s,
                   "chain_period_s": policy.chain_period_s, "chain_validity_s": policy.chain_validity_s,
                   "chain_len": policy.chain_len, "chain_low_water": policy.chain_low_water},
        "update_available": update,
    }, headers={"Cache-Control": "no-store"})


ROUTES = [
    ("GET", "/.well-known/jwks.json", jwks),
    ("POST", "/v1/auth/device/token", issue),
    ("POST", "/v1/auth/device/refresh", refresh),
    ("GET", "/v1/auth/device/whoami", whoami),
    ("POST", "/v1/auth/device/offline", offline),
    ("POST", "/v1/auth/device/sync", sync),
    ("POST", "/v1/tokens/introspect", introspect),
]


CLEANUP_CTX = (ctx,)
