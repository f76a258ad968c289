"""The edge verifier's core (docs/tokens.md "Edge verifier"): a device cache filled from the upstream on
demand (cloud fallback), periodic sync (reports up, keys, revocations and changed devices down), the
offline window, offline chain-token verification, and the binary-auth core seam (which also queues the
health reports piggy-backed on accepted requests for the upstream: the edge cannot check their tag).

The edge holds no master secret: per device only the derived binary-auth key (sealed at rest under the
edge's own KEK), status, flags and tenant policy; for chain tokens only the public keys. It refuses
everything once `max_offline_s` has passed without a successful sync, and a device revoked upstream as
soon as a sync (or a fetch) has told it so. Replay state (binary-auth timestamps, used chain indices) is
in the edge's SQLite file before a reply is sent, so a restart does not reopen a replay window.
Every function that depends on time takes `now`; the only I/O is through `Upstream` and `EdgeStore`.
"""

import asyncio
import collections
import logging

from cryptography.hazmat.primitives.asymmetric import ec

from verifier.tokens import chain
from verifier.binauth.core import UNKNOWN_DEVICE, BinAuthCore, DeviceState, unauthenticated_reply
from verifier.edge.upstream import UpstreamUnavailable
from verifier.policy.core import decode_auth_rule
from verifier.errors import VerifierError
from verifier.registry.model import STATUSES, Policy, parse_device_id
from verifier.tokens.core import b64url_decode
from verifier.tokens.refusal_sampler import RefusalSampler, join_detail

log = logging.getLogger("janua.verifier.edge")

NEGATIVE_TTL_S = 60          # an id the upstream does not know is not asked for again this long
NEGATIVE_MAX = 10_000
RETRY_S = 60                 # after an upstream failure: no on-demand fetch, next sync attempt this soon
FETCH_CAPACITY, FETCH_REFILL_PER_S = 100.0, 20.0   # edge-wide budget of upstream look-ups of unknown ids
REPORT_BATCH = 1000
MAX_REPORT_ROUNDS = 100
MAX_SNAPSHOT_ROUNDS = 1000   # pages of one sync (10,000 changes each); the next sync continues from the cursor
PRUNE_MARGIN_S = 86400       # a used token is kept this long past its exp (the largest drift_s)
STALE = "edge: no successful sync within max_offline_s"       # binary auth's audit reason
STALE_CODE = "stale"                                            # an offline token's, with STALE_DETAIL
STALE_DETAIL = "no successful sync within max_offline_s"


class EdgeError(VerifierError):
    """The upstream sent something the edge cannot use."""

    code = "edge_error"


class Entry:
    """One cached device, as the upstream described it (the key is the derived binary-auth key)."""

    __slots__ = ("id", "hex", "tenant_id", "tenant_hash", "status", "blocked", "permissions", "chain_revoked",
                 "policy", "rule", "doc", "key", "fetched_at")


def parse_entry(doc, fetched_at):
    """An upstream device entry -> (Entry, doc without the key). Raises EdgeError if it is not one."""
    try:
        e = Entry()
        e.id = parse_device_id(doc["device_id"])
        e.key = bytes.fromhex(doc["binauth_key"])
        e.tenant_id, e.status, e.permissions = doc["tenant_id"], doc["status"], doc["permissions"]
        e.blocked, e.chain_revoked = bool(doc["blocked"]), bool(doc["chain_revoked"])
        e.policy = Policy.from_json(doc["policy"])
        ok = e.id is not None and len(e.key) == 32 and e.status in STATUSES and isinstance(e.tenant_id, str) \
            and type(e.permissions) is int
    except (KeyError, TypeError, ValueError, VerifierError) as x:
        raise EdgeError(f"bad device entry from upstream: {type(x).__name__}") from None
    if not ok:
        raise EdgeError("bad device entry from upstream")
    e.rule = _rule(doc.get("auth_rule"))
    e.hex, e.tenant_hash, e.fetched_at = e.id.hex(), chain.tenant_hash(e.tenant_id), fetched_at
    e.doc = {k: v for k, v in doc.items() if k != "binauth_key"}
    return e


def _rule(doc):
    """The entry's auth_rule (docs/policies.md 4): an AuthRule, or None (an upstream without policies)."""
    if doc is None:
        return None
    try:
        return decode_auth_rule(doc)
    except ValueError:
        raise EdgeError("bad device entry from upstream: auth_rule") from None


def public_keys_from_jwks(jwks):
    """{kid bytes: EllipticCurvePublicKey} of the ES256 P-256 keys of an RFC 7517 JWK Set."""
    out = {}
    for k in jwks.get("keys", []) if isinstance(jwks, dict) else ():
        try:
            if k["kty"] != "EC" or k["crv"] != "P-256" or k.get("alg", "ES256") != "ES256":
                continue
            x, y, kid = b64url_decode(k["x"]), b64url_decode(k["y"]), bytes.fromhex(k["kid"])
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        except (KeyError, TypeError, ValueError):
            continue
        if len(kid) == chain.KID_LEN:
            out[kid] = pub
    return out


class EdgeCore:
    def __init__(self, settings, store, sealer, upstream):
        self.settings, self.upstream = settings, upstream
        self._store, self._sealer = store, sealer
        self.core = None                          # the EdgeBinAuthCore, told when an entry changes
        self._entries = collections.OrderedDict()  # id -> Entry, least recently used first
        self._policies = {}                       # tenant id -> Policy (from the newest entry)
        self._unknown = {}                        # id -> time until which it is not looked up again
        self._inflight = {}                       # id -> task fetching it
        self._down_until = 0.0
        self._refusing = None
        self._lock = asyncio.Lock()
        self._sampler = RefusalSampler(store.limits)   # bounds the audit rows of unauthenticated refusals
        self.last_sync = store.get_meta("last_sync")      # edge clock time of the last successful sync
        self._synced_here = False                 # True once this process has synced (not only a previous run)
        self.next_sync = 0.0
        self.health_forwarded = 0                 # health reports the upstream acknowledged (this process)
        self._since = store.get_meta("since")             # the upstream's clock at that sync
        self._cursor = store.get_meta("cursor")           # the upstream's change cursor (None: previous release)
        self._jwks = store.get_meta("jwks", {"keys": []})
        self.public_keys = public_keys_from_jwks(self._jwks)
        self._revoked = set(store.get_meta("revoked", []))
        self._tenant = None                       # {"id", "policy"} of the edge's tenant, from the snapshot
        self._set_tenant(store.get_meta("tenant"))
        for did, _, doc, sealed, fetched_at in store.load_devices(settings.cache_size):
            try:
                doc = dict(doc, binauth_key=sealer.unseal(sealed, did, doc["tenant_id"]).hex())
                self._put(parse_entry(doc, fetched_at))
            except VerifierError as x:
                log.error("edge: cached device %s does not open (wrong KEK?): %s", did.hex(), x)

    def _set_tenant(self, doc):
        try:
            self._tenant = {"id": doc["id"], "policy": Policy.from_json(doc["policy"])} if doc else None
        except (KeyError, TypeError, VerifierError):
            self._tenant = None

    # the offline window
    def serving(self, now):
        """True while the last successful sync is at most max_offline_s old; logs each change."""
        ok = self.last_sync is not None and now - self.last_sync <= self.settings.max_offline_s
        if self._refusing is None or ok == self._refusing:      # first call, or a change
            if ok and self._synced_here:
                log.info("edge: synced with %s; serving", self.upstream.url)
            elif ok:
                log.warning("edge: not synced with upstream %s since start; serving from the cache of the last "
                            "sync %d s ago (max_offline_s %d)", self.upstream.url, now - self.last_sync,
                            self.settings.max_offline_s)
            elif self.last_sync is None:
                log.error("edge: never synced with upstream %s: refusing every authentication until the first "
                          "successful sync", self.upstream.url)
            else:
                log.error("edge: no successful sync with upstream %s for %d s (max_offline_s %d): refusing every "
                          "authentication until the upstream is back", self.upstream.url, now - self.last_sync,
                          self.settings.max_offline_s)
            self._refusing = not ok
        return ok

    # the cache
    def cached_count(self):
        return len(self._entries)

    def entry(self, device_id):
        return self._entries.get(device_id)

    def policy(self, tenant_id):
        return self._policies.get(tenant_id) or Policy()

    def listed_revoked(self, hex_id):
        """True if the last synced revocation list names the device."""
        return hex_id in self._revoked

    def revoked(self, e):
        """True if the device may not authenticate here (binary auth keeps its own status checks)."""
        return e.hex in self._revoked or e.blocked or e.status != "active" or e.chain_revoked

    def _put(self, e):
        self._entries[e.id] = e
        self._entries.move_to_end(e.id)
        self._policies[e.tenant_id] = e.policy
        evicted = []
        while len(self._entries) > self.settings.cache_size:
            evicted.append(self._entries.popitem(last=False)[0])
        return evicted

    def _accept(self, doc, now):
        """Cache an upstream entry (memory and file, key sealed); returns it."""
        e = parse_entry(doc, int(now))
        old = self._entries.get(e.id)
        evicted = self._put(e)
        self._store.put_devices([(e.id, e.tenant_id, e.doc, self._sealer.seal(e.key, e.id, e.tenant_id), e.fetched_at)])
        if evicted:
            self._store.delete_devices(evicted)
        last_ts = doc.get("last_ts")
        if type(last_ts) is int and last_ts > 0:
            self._store.raise_floor(e.id, last_ts)
        used = doc.get("chain_used")
        if isinstance(used, list) and used:
            self._store.mark_used_upstream(e.id, [i for i in used if type(i) is int and 0 <= i <= chain.MAX_INDEX],
                                           now)
        if self.core is not None:
            for did in evicted + [e.id]:
                self.core.forget(did)
            if old is None or old.policy != e.policy:
                self.core.forget_tenant(e.tenant_id)
        return e

    def activated(self, device_id):
        """The binary-auth core moved a provisioning device to active (the upstream does so on its own)."""
        e = self._entries.get(device_id)
        if e is not None and e.status == "provisioning":
            e.status = "active"

    def known(self, device_id, now):
        """True if a look-up would not ask the upstream now (cached, or known unknown, or upstream down)."""
        return device_id in self._entries or self._unknown.get(device_id, 0) > now or now < self._down_until

    async def ensure(self, device_id, now):
        """The cached entry of a device, fetched from the upstream first if absent (cloud fallback).
        A stale entry (older than cache_ttl_s) is returned at once and refreshed in the background."""
        e = self._entries.get(device_id)
        if e is not None:
            self._entries.move_to_end(device_id)
            if now - e.fetched_at >= self.settings.cache_ttl_s and now >= self._down_until:
                self._fetch_task(device_id, now)
            return e
        if self._unknown.get(device_id, 0) > now or now < self._down_until:
            return None
        if device_id not in self._inflight and \
                not self._store.limits.take("edge-fetch", FETCH_CAPACITY, FETCH_REFILL_PER_S, now):
            return None
        return await asyncio.shield(self._fetch_task(device_id, now))

    def _fetch_task(self, device_id, now):
        task = self._inflight.get(device_id)
        if task is None:
            task = self._inflight[device_id] = asyncio.ensure_future(self._fetch(device_id, now))
            task.add_done_callback(lambda _: self._inflight.pop(device_id, None))
        return task

    async def _fetch(self, device_id, now):
        try:
            doc = await self.upstream.device(device_id.hex())
            if doc is None:
                if len(self._unknown) >= NEGATIVE_MAX:
                    self._unknown = {k: v for k, v in self._unknown.items() if v > now}
                    if len(self._unknown) >= NEGATIVE_MAX:
                        self._unknown.clear()
                self._unknown[device_id] = now + NEGATIVE_TTL_S
                if self._entries.pop(device_id, None) is not None:     # gone upstream: forget it here too
                    self._store.delete_devices([device_id])
                    if self.core is not None:
                        self.core.forget(device_id)
                return None
            e = self._accept(doc, now)
        except (UpstreamUnavailable, EdgeError) as x:
            self._upstream_failed(now, x)
            return self._entries.get(device_id)
        if self._down_until:              # the upstream is back: deliver what was queued soon
            self._down_until = 0.0
            self.next_sync = min(self.next_sync, now)
        return e

    def _upstream_failed(self, now, err):
        if now >= self._down_until:
            since = "never synced" if self.last_sync is None else f"last sync {int(now - self.last_sync)} s ago"
            log.warning("edge: upstream %s unavailable (%s); serving from the cache (%s, max_offline_s %d)",
                        self.upstream.url, err, since, self.settings.max_offline_s)
        self._down_until = now + RETRY_S

    # sync
    async def sync(self, now):
        """Deliver queued reports, then take the upstream's snapshot. True on success."""
        async with self._lock:
            try:
                delivered = await self._deliver()
                for _ in range(MAX_SNAPSHOT_ROUNDS):
                    if self._cursor is not None:
                        snap = await self.upstream.snapshot(after=self._cursor)
                    else:           # first sync of an edge upgraded from the previous release, or old upstream
                        snap = await self.upstream.snapshot(since=self._since)
                    more = self._apply_changes(snap, now)
                    if not more:
                        break
                self._apply(snap, now)
            except (UpstreamUnavailable, EdgeError) as x:
                self._upstream_failed(now, x)
                self.next_sync = now + min(RETRY_S, self.settings.sync_interval_s)
                return False
        self.next_sync = now + self.settings.sync_interval_s
        log.info("edge: synced with %s (%d reports delivered, %d devices cached, %d revoked)", self.upstream.url,
                 delivered, len(self._entries), len(self._revoked))
        return True

    async def _deliver(self):
        n = 0
        for _ in range(MAX_REPORT_ROUNDS):
            body, marker = self._store.pending_reports(REPORT_BATCH)
            count = sum(len(v) for v in body.values())
            if not count:
                break
            await self.upstream.report(body)
            self._store.reports_delivered(marker)
            self.health_forwarded += len(body.get("health", ()))
            n += count
        return n

    def _apply_changes(self, snap, now):
        """One page of a snapshot: fresh entries for the cached devices that changed, deleted ones forgotten,
        the cursor kept. True if the page was truncated and the upstream gave a cursor to continue from."""
        devices, deleted, cursor = snap.get("devices", []), snap.get("deleted", []), snap.get("cursor")
        if not isinstance(devices, list) or not isinstance(deleted, list) \
                or (cursor is not None and (type(cursor) is not int or cursor < 0)):
            raise EdgeError("bad snapshot from upstream")
        for doc in devices:
            did = parse_device_id(doc.get("device_id")) if isinstance(doc, dict) else None
            if did in self._entries:
                self._accept(doc, now)
        gone = [did for did in map(parse_device_id, deleted) if did in self._entries]
        for did in gone:
            del self._entries[did]
            if self.core is not None:
                self.core.forget(did)
        if gone:
            self._store.delete_devices(gone)
        if cursor is not None:
            self._cursor = cursor
            self._store.set_meta({"cursor": cursor})
        return cursor is not None and snap.get("truncated") is True

    def _apply(self, snap, now):
        keys = public_keys_from_jwks(snap.get("keys"))
        rev = snap.get("revocations")
        if not keys or not isinstance(rev, dict) or not isinstance(rev.get("devices"), list) \
                or type(snap.get("now")) is not int:
            raise EdgeError("bad snapshot from upstream")
        revoked = {d for d in rev["devices"] if parse_device_id(d) is not None}
        changed = revoked ^ self._revoked
        self._jwks, self.public_keys, self._revoked = snap["keys"], keys, revoked
        self._since, self.last_sync, self._down_until = snap["now"], now, 0.0
        if not self._synced_here:
            self._synced_here = True
            self._refusing = None                 # serving() logs the first sync of this process
        tenant = snap.get("tenant")
        if isinstance(tenant, dict):
            self._set_tenant(tenant)
            self._tenant_policy_changed()
        self._store.set_meta({"jwks": self._jwks, "revoked": sorted(revoked), "since": self._since,
                              "last_sync": now, "tenant": tenant if self._tenant else None})
        self._store.prune_used(int(now) - PRUNE_MARGIN_S)
        dropped = self._store.trim_outbox()
        if dropped:
            log.warning("edge: audit outbox full; dropped the %d oldest undelivered rows", dropped)
        if self.core is not None:
            for h in changed:
                self.core.forget(bytes.fromhex(h))

    def _tenant_policy_changed(self):
        """A tenant policy changed upstream is no change of a device (no change marker): the snapshot's
        `tenant` brings it, and the cached entries of the tenant take it here."""
        if self._tenant is None:
            return
        tid, pol = self._tenant["id"], self._tenant["policy"]
        if tid in self._policies and self._policies[tid] != pol:
            self._policies[tid] = pol
            for e in self._entries.values():
                if e.tenant_id == tid:
                    e.policy = pol
            if self.core is not None:
                self.core.forget_tenant(tid)

    # offline chain tokens
    async def offline(self, data, source, now):
        """Verify one offline chain token: (True, response doc) or (False, reason). Audited either way."""
        tnow, e, tok = int(now), None, None
        try:
            tok = chain.decode_chain_token_unverified(data)
            if not self.serving(now):
                return self._offline_refused(tnow, None, tok, source, STALE_CODE)
            e = self._entries.get(tok["device_id"])
            if e is None:
                # the signature first, so that garbage never makes the edge ask the upstream
                key = self.public_keys.get(tok["kid"])
                if key is None:
                    raise chain.ChainTokenRefused("unknown_key")
                if not chain.es256_verify(key, tok["signature"], tok["signed"]):
                    raise chain.ChainTokenRefused("bad_signature")
            e = await self.ensure(tok["device_id"], now)
            if e is None:
                e = self._uncached(tok["device_id"], now)
            if e is None or e.tenant_hash != tok["tenant_hash"]:
                raise chain.ChainTokenRefused("unknown_device")
            chain.verify_chain_token(data, self.public_keys, now, e.policy.drift_s)
            if self.revoked(e):
                raise chain.ChainTokenRefused("revoked")
        except chain.ChainTokenRefused as x:
            if tok is None and e is None and isinstance(data, (bytes, bytearray)) and len(data) == chain.TOKEN_LEN:
                e = self._entries.get(bytes(data[5:13]))   # malformed, but naming a device this edge holds
            return self._offline_refused(tnow, e, tok, source, x.reason, x.detail)
        row = _audit(tnow, e.tenant_id, e.hex, source, "OK", None, f"index {tok['index']}")
        if not self._store.use_token(e.id, tok["index"], tnow, tok["exp"], row):
            return self._offline_refused(tnow, e, tok, source, "replayed")
        period = e.policy.chain_period_s
        return True, {"ok": True, "device_id": e.hex, "index": tok["index"], "next_index": tok["index"] + 1,
                      "next_nbf": tok["nbf"] + period}

    def _uncached(self, device_id, now):
        """A stand-in entry for a device of the edge's tenant that is not cached while the upstream cannot be
        asked: a chain token needs no device secret (the upstream's signature, the synced revocation list and
        the edge's own used-token state decide), so it is checked with the tenant's synced policy. None if the
        upstream said it does not know the device, or the edge has not learnt its tenant yet."""
        if self._unknown.get(device_id, 0) > now or self._tenant is None:
            return None
        e = Entry()
        e.id, e.hex, e.tenant_id = device_id, device_id.hex(), self._tenant["id"]
        e.tenant_hash, e.policy = chain.tenant_hash(e.tenant_id), self._tenant["policy"]
        e.status, e.blocked, e.chain_revoked, e.rule = "active", False, False, None
        return e

    def _offline_refused(self, tnow, e, tok, source, reason, extra=None):
        if reason in chain.UNAUTHENTICATED_REASONS or reason == STALE_CODE:     # before any signature check
            more = self._sampler.admit(e.id if e is not None else None, tnow)
            if more is None:
                return False, reason                       # counted; reported in the next admitted row
            extra = join_detail(extra, more)
        hex_id = e.hex if e is not None else (tok["device_id"].hex() if tok is not None else None)
        detail = join_detail(None if tok is None else f"index {tok['index']}",
                             STALE_DETAIL if reason == STALE_CODE else None, extra)
        self._store.add_audit([_audit(tnow, e.tenant_id if e is not None else None, hex_id, source, "REFUSED",
                                      reason, detail)])
        return False, reason


def _audit(tnow, tenant_id, hex_id, source, result, reason, detail=None):
    """An offline-token audit row: `reason` a bare code (chain.REASONS or "stale"; None for OK), `detail`
    free text such as the token's index."""
    return (tnow, tenant_id, "auth", hex_id, None, "offline", "offline", source, result, reason, detail)


class EdgeBinAuthCore(BinAuthCore):
    """The binary-auth core of the cloud, with device state from the edge cache instead of the registry
    (no master secret to unseal: the entry holds the derived key) and the offline window in front."""

    def __init__(self, edge, store, source_capacity=1000.0, source_refill_per_s=500.0, cache_devices=200_000):
        super().__init__(store, None, source_capacity, source_refill_per_s, cache_devices=cache_devices)
        self._edge = edge
        edge.core = self
        # a request with a health report (docs/health.md 2.1) whose head was decided OK: the report and its
        # tag go to the upstream as received, in flush()'s transaction (before the OK is sent). The edge has
        # no K_health (only the derived binary-auth key), so it neither parses nor trusts them.
        self.health_sink = self._queue_health
        self._health = []
        self.health_queued = 0          # health reports queued for the upstream by this process

    def _queue_health(self, st, request20, rest, now, transport):
        self._health.append((st.device_id, request20, rest, now, transport))

    def _load(self, device_id):
        e = self._edge.entry(device_id)
        if e is None:
            return None
        st = DeviceState()
        st.device_id, st.hex, st.tenant_id, st.key = device_id, e.hex, e.tenant_id, e.key
        st.status = "revoked" if self._edge.listed_revoked(e.hex) else e.status
        st.blocked, st.permissions = e.blocked, e.permissions
        # the device policy as the upstream resolved it (docs/policies.md 4): refreshed with the entry
        st.rule, st.pgen = e.rule, self.policy_gen
        st.last_ts = self._storage.last_ts(device_id)
        self.devices.add(st)
        return st

    def _policy(self, tenant_id):
        pol = self._policies[tenant_id] = self._edge.policy(tenant_id)
        return pol

    def decide(self, req, source, now, transport="udp", allow_quarantined=False, protocol=None):
        # the edge's snapshot has no quarantine flag of its own ("blocked" covers it: st.blocked), so an
        # edge refuses a quarantined device everywhere; it serves no OTA or attestation route
        if not self._edge.serving(now):
            return self._finish(UNKNOWN_DEVICE, transport, source, int(now), None, STALE,
                                unauthenticated_reply(UNKNOWN_DEVICE))
        return super().decide(req, source, now, transport, allow_quarantined, protocol)

    def flush(self):
        activated = [did for _, did in self._activated]
        lost = super().flush()
        for did in activated:
            self._edge.activated(did)
        return lost

    def _write(self, accepted, activated, audit):
        health, self._health = self._health, []      # not kept if the transaction fails (no OK is sent)
        dropped = self._storage.record_auth(accepted, activated, audit, health=health)
        self.health_queued += len(health)
        if dropped:
            log.warning("edge: health outbox full; dropped the %d oldest undelivered reports", dropped)
        return ()   # the edge's own file: one instance, nothing lost
