"""Cloud-side routes for edge verifiers (docs/tokens.md "Edge verifier"), tenant admin bearer:

- GET /v1/edge/devices/{device_id}: what an edge needs to authenticate one device: the derived
  binary-auth key (never the master secret), status, flags, tenant policy, recently used chain indices, and the
  device's authentication rule under its effective device policy (docs/policies.md 4).
- GET /v1/edge/snapshot[?after=cursor]: the token public keys (JWKS), the tenant's revocation list, the
  entries of devices changed after the cursor and the ids of those deleted, by the (tenant_id, changed_seq)
  index, and the cursor to pass next time; paged (`truncated`: ask again at once from the new cursor).
  `?since=unix` is the form of edges of the previous release: a scan of the tenant's devices, no deletes.
- POST /v1/edge/reports: what an edge accepted while it was on its own: used chain indices (marked used
  here, so the cloud refuses them too), binary-auth timestamps (the replay floor only rises) and audit rows
  (stored under the caller's tenant, actor "edge:<token id>") and the health reports piggy-backed on requests
  the edge accepted (docs/health.md 2.1: their tag is checked here under the device's K_health, which the
  edge does not have, and they are ingested as the cloud's own, with via "edge").

An edge sees only its token's tenant; another tenant's device is as absent as a missing one.
"""

import functools

from aiohttp import web

from verifier import keys
from verifier.registry import core as registry
from verifier.tokens import chain
from verifier.appkeys import CORE, HEALTH, POLICY, SEALER, STORAGE
from verifier.binauth.core import PIGGY_MAX, PIGGY_MIN, REQUEST_LEN
from verifier.errors import ValidationError
from verifier.policy.core import encode_auth_rule
from verifier.gateway.policy import require_attested_edge
from verifier.web.auth import require_role as _role
from verifier.web.request import path_device_id as _device_id, read_json as _json, request_now as _now
from verifier.registry.model import Policy, as_int, parse_device_id
from verifier.tokens.chain import REVOCATION_REFRESH_S, used_expires
from verifier.tokens.core import TOKEN_KEYS, device_may_authenticate

MAX_SNAPSHOT_DEVICES = 10_000
MAX_REPORT_ITEMS = 10_000
MAX_TEXT = 500
PAGE = 1000
NO_STORE = {"Cache-Control": "no-store"}


def edge_entry(app, dev, policy, now):
    """The edge's view of one device. The binary-auth key is derived here from the sealed master secret;
    the master secret itself never leaves this function."""
    did, tenant_id = dev["id"], dev["tenant_id"]
    key = keys.derive_key(app[SEALER].unseal(dev["sealed_secret"], did, tenant_id), keys.LABEL_BINAUTH)
    return {"device_id": did.hex(), "tenant_id": tenant_id, "status": dev["status"],
            "blocked": dev["compromised"] or dev["quarantined"], "permissions": dev["permissions"],
            "binauth_key": key.hex(), "policy": policy.to_json(), "chain_revoked": not device_may_authenticate(dev),
            "last_ts": dev["last_ts"], "status_changed_at": dev["status_changed_at"],
            "chain_used": _recent_used(app[STORAGE], did, now), "auth_rule": _auth_rule(app, dev)}


def _auth_rule(app, dev):
    """The device's resolved authentication rule under its effective policy (docs/policies.md 3, AuthRule), for
    the edge's binary auth: the protocols allowed, the trust or attestation refusal, drift_s, the permissions.
    None on an app without the policy feature."""
    cache = app.get(POLICY)
    if cache is None:
        return None
    return encode_auth_rule(cache.auth_rule(dev["tenant_id"], dev["id"], cache.pinfo(dev)))


def _recent_used(st, did, now):
    """Used chain indices around the one valid now (what an edge must not accept again)."""
    state = st.get_chain_state(did)
    if state is None or state["next_index"] == 0:
        return []
    period = max(state["period"], 1)
    current = (now - state["base"]) // period
    span = state["validity"] // period + 2
    lo, hi = max(0, current - span), min(state["next_index"] - 1, current + span)
    return sorted(st.used_chain_indices(did, lo, hi)) if lo <= hi else []


def _policy(st, tenant_id):
    return Policy.from_json(st.get_tenant(tenant_id)["policy"])


def _edge_caller(request):
    """(token id, tenant id) of an admin token that may sync as an edge: when it is bound to a gateway,
    that gateway's latest attestation passed and is fresh (docs/attestation.md 6.5); else Forbidden."""
    token_id, tenant_id = _role(request, "edge")
    require_attested_edge(request.app[STORAGE], token_id, tenant_id, _now(request))
    return token_id, tenant_id


async def device(request):
    _, tenant_id = _edge_caller(request)
    st = request.app[STORAGE]
    dev = registry.get_device(st, tenant_id, _device_id(request))
    return web.json_response(edge_entry(request.app, dev, _policy(st, tenant_id), _now(request)), headers=NO_STORE)


def _query_int(request, name, what):
    v = request.query.get(name)
    if v is None:
        return None
    try:
        n = int(v)
    except ValueError:
        n = -1
    if n < 0:
        raise ValidationError(f"{name} must be {what}")
    return n


def _changes(app, st, tenant_id, after, now):
    """(entries, deleted hex ids, truncated, cursor) of the changes after the cursor `after`, by the index.
    A cursor above the database's counter is from before a restore of an older backup: it starts over at 0 (one
    past a 64-bit integer, which no counter reaches, too: the database could not even compare it)."""
    if after >= 1 << 63:
        after = 0
    changes, current = st.device_changes(tenant_id, after, MAX_SNAPSHOT_DEVICES + 1)
    if after > current:
        changes, current = st.device_changes(tenant_id, 0, MAX_SNAPSHOT_DEVICES + 1)
    truncated = len(changes) > MAX_SNAPSHOT_DEVICES
    changes = changes[:MAX_SNAPSHOT_DEVICES]
    policy = _policy(st, tenant_id) if changes else None
    devices = [edge_entry(app, dev, policy, now) for _, dev, _ in changes if dev is not None]
    deleted = [did.hex() for _, dev, did in changes if dev is None]
    # truncated: continue after the last change sent; else every change up to `current` was sent
    cursor = changes[-1][0] if truncated else current
    return devices, deleted, truncated, cursor


async def snapshot(request):
    _, tenant_id = _edge_caller(request)
    st, now = request.app[STORAGE], _now(request)
    since = _query_int(request, "since", "unix seconds")
    after = _query_int(request, "after", "a cursor (a non-negative integer)")
    devices, deleted, truncated = [], [], False
    if after is not None:                                  # (a `since` beside it is ignored)
        devices, deleted, truncated, cursor = _changes(request.app, st, tenant_id, after, now)
    else:
        cursor = st.device_changes(tenant_id, 0, 0)[1]     # where the next snapshot starts
    if since is not None and after is None:
        # the previous release's edges: a scan of every device of the tenant (deletes are not seen)
        policy, after = _policy(st, tenant_id), None
        while not truncated:
            page = st.list_devices(tenant_id, after=after, limit=PAGE)
            for dev in page:
                if dev["status_changed_at"] >= since or dev["provisioned_at"] >= since:
                    if len(devices) == MAX_SNAPSHOT_DEVICES:
                        truncated = True
                        break
                    devices.append(edge_entry(request.app, dev, policy, now))
            if len(page) < PAGE:
                break
            after = page[-1]["id"]
    return web.json_response({
        "keys": request.app[TOKEN_KEYS].jwks(now),
        "revocations": {"devices": [d.hex() for d in st.revoked_device_ids(tenant_id)],
                        "next_update": now + REVOCATION_REFRESH_S},
        "devices": devices, "deleted": deleted, "truncated": truncated, "cursor": cursor, "now": now,
        "tenant": {"id": tenant_id, "policy": _policy(st, tenant_id).to_json()}}, headers=NO_STORE)


def _list(body, name):
    items = body.get(name, [])
    if not isinstance(items, list) or len(items) > MAX_REPORT_ITEMS or not all(isinstance(i, dict) for i in items):
        raise ValidationError(f"{name} must be a list of at most {MAX_REPORT_ITEMS} objects")
    return items


def _int(v, name, hi=chain.MAX_U32):
    n = as_int(v)
    if n is None or not 0 <= n <= hi:
        raise ValidationError(f"{name} must be an integer in [0, {hi}]")
    return n


def _did(v, name):
    did = parse_device_id(v)
    if did is None:
        raise ValidationError(f"{name}.device_id must be a device id (16 lowercase hex)")
    return did


def _text(a, name, nullable=True):
    """An optional string field of an audit row (cut at MAX_TEXT); None when absent (or null, where allowed)."""
    v = a.get(name)
    if name not in a or (v is None and nullable):
        return None
    if not isinstance(v, str):
        raise ValidationError(f"audit.{name} must be a string" + (" or null" if nullable else ""))
    return v[:MAX_TEXT]


def _hex(v, name, lo, hi):
    try:
        b = bytes.fromhex(v) if isinstance(v, str) and len(v) <= 2 * hi else None
    except ValueError:
        b = None
    if b is None or not lo <= len(b) <= hi:
        raise ValidationError(f"{name} must be {lo}" + (f" to {hi}" if hi != lo else "") + " bytes as hex")
    return b


def _health_item(h):
    """(device id, request, rest, received_at) of a forwarded piggy-back (docs/health.md 2.1): the 20-byte
    request of that device, then the report and its tag, unchecked by the edge."""
    did = _did(h.get("device_id"), "health")
    req = _hex(h.get("request"), "health.request", REQUEST_LEN, REQUEST_LEN)
    rest = _hex(h.get("rest"), "health.rest", PIGGY_MIN - REQUEST_LEN, PIGGY_MAX - REQUEST_LEN)
    if req[:8] != did:
        raise ValidationError("health.request must be a request of health.device_id")
    transport = h.get("transport", "udp")
    if not isinstance(transport, str) or len(transport) > 16:
        raise ValidationError("health.transport must be a string of at most 16 characters")
    return did, req, rest, _int(h.get("received_at"), "received_at"), transport


class _Forwarded:
    """What the health ingest reads of a device for a forwarded piggy-back (BinAuthCore's DeviceState has
    the same names): K_health is derived here from the sealed master secret, which stays in this module."""

    __slots__ = ("device_id", "tenant_id", "health_key")

    def __init__(self, app, dev):
        self.device_id, self.tenant_id = dev["id"], dev["tenant_id"]
        master = app[SEALER].unseal(dev["sealed_secret"], dev["id"], dev["tenant_id"])
        self.health_key = keys.derive_key(master, keys.LABEL_HEALTH)


def _audit_row(a, tenant_id, actor):
    if a.get("kind", "auth") not in ("auth", "admin", "summary"):
        raise ValidationError("audit.kind must be auth, admin or summary")
    device = _text(a, "device_id")
    return (_int(a.get("ts"), "ts"), tenant_id, a.get("kind", "auth"),
            device if parse_device_id(device) else None, actor, _text(a, "action", False) or "edge",
            _text(a, "transport"), _text(a, "source"), _text(a, "result", False) or "?", _text(a, "reason"),
            _text(a, "detail"))


async def reports(request):
    token_id, tenant_id = _edge_caller(request)
    st, now = request.app[STORAGE], _now(request)
    body = await _json(request)
    if not isinstance(body, dict) or set(body) - {"used", "binauth", "audit", "health"}:
        raise ValidationError('body must be {"used": [...], "binauth": [...], "audit": [...], "health": [...]}')
    used, auth, audit = _list(body, "used"), _list(body, "binauth"), _list(body, "audit")
    health = [_health_item(h) for h in _list(body, "health")]
    # validate everything before writing anything
    used = [(_did(u.get("device_id"), "used"), _int(u.get("index"), "index", chain.MAX_INDEX),
             _int(u.get("ts"), "ts")) for u in used]
    auth = [(_did(a.get("device_id"), "binauth"), _int(a.get("last_ts"), "last_ts")) for a in auth]
    actor = f"edge:{token_id}"
    rows = [_audit_row(a, tenant_id, actor) for a in audit]
    ours = {}

    def mine(did):
        if did not in ours:
            ours[did] = did is not None and st.get_device(did, tenant_id)
        return ours[did]

    accepted, ignored, states = 0, 0, {}
    cap = functools.cache(request.app[TOKEN_KEYS].max_signed_until)
    with st.transaction():
        for did, index, ts in used:
            if mine(did):
                if did not in states:
                    states[did] = st.get_chain_state(did)
                st.use_chain_token(did, index, ts, "edge", used_expires(states[did], index, cap))
                accepted += 1
            else:
                ignored += 1
        floors = []
        for did, last_ts in auth:
            dev = mine(did)
            if not dev:
                ignored += 1
            elif last_ts > dev["last_ts"]:
                floors.append((last_ts, now, did))
        if floors:
            st.record_auth(floors, [], [])
        if rows:
            st.add_audit(rows)
    for _, _, did in floors:
        request.app[CORE].forget(did)
    ingested = refused = 0
    ingest = request.app.get(HEALTH)
    for did, req, rest, received_at, transport in health:
        dev = mine(did)
        if not dev or ingest is None:
            ignored += 1
            continue
        # the edge's receive time, but never in the cloud's future (the edge's clock is not trusted)
        if ingest.piggyback(_Forwarded(request.app, dev), req, rest, min(received_at, now), transport,
                            via="edge") == "ok":
            ingested += 1
        else:
            refused += 1          # counted in janua_health_reports_total{via="edge",result=reason}, not stored
    return web.json_response({"used": accepted, "ignored": ignored, "binauth": len(floors), "audit": len(rows),
                              "health": ingested, "health_refused": refused})


ROUTES = [
    ("GET", "/v1/edge/devices/{device_id}", device),
    ("GET", "/v1/edge/snapshot", snapshot),
    ("POST", "/v1/edge/reports", reports),
]


CLEANUP_CTX = ()
