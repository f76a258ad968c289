"""Binary auth (docs/protocol.md section 3): the 20-byte codec and the sans-IO verifier core.

`BinAuthCore.decide(request, source, now, transport)` follows the processing order of section 3.4 in
memory and queues what must become durable (accepted timestamps, activations, audit rows of the
decisions made after the tag verified; the refusals before that are counted and summarised by
`summary`, a verifier.registry.audit.RefusalSummary);
`flush()` writes the queue in one transaction. A driver (verifier.binauth.batch) calls decide for a batch,
then flush, and only then sends the replies, so an OK is never sent before its timestamp is durable.
`handle()` does both for one request. No sockets, no clock: `now` is a parameter.

Per-device state (derived key, status, flags, permissions, last accepted timestamp) is cached by
device id, at most `cache_devices` devices (verifier.binauth.cache: CLOCK eviction that never evicts an
entry whose accepted timestamp is not yet flushed); the registry calls forget()/forget_tenant() on every
admin change so the next packet sees it. Outward failures are opaque status codes; the reasons go to the audit trail.
"""

import collections
import hmac
import logging
import os
import struct
import sys

from verifier import keys
from verifier.binauth.cache import DeviceCache
from verifier.registry.audit import RefusalSummary
from verifier.errors import VerifierError
from verifier.registry.lockout import EXHAUSTED, Lockout
from verifier.registry.model import AUTHENTICATABLE, Policy

log = logging.getLogger("janua.verifier.binauth")

REQUEST_LEN = 20
PIGGY_MIN, PIGGY_MAX = 31, 156       # a request with a health report and its tag (docs/health.md 2.1)
OK, TIME_SYNC, SIGNATURE, UNKNOWN_DEVICE, NOT_ACTIVE, REPLAY, RATE_LIMITED, LOCKED_OUT, MALFORMED = range(9)
STATUS_NAMES = ("OK", "TIME_SYNC", "SIGNATURE", "UNKNOWN_DEVICE", "NOT_ACTIVE", "REPLAY", "RATE_LIMITED",
                "LOCKED_OUT", "MALFORMED")
AUTHENTICATED = frozenset((OK, TIME_SYNC, NOT_ACTIVE, REPLAY))
HTTP_STATUS = (200, 409, 401, 401, 403, 409, 429, 429, 400)   # section 3.5, indexed by status
ZERO_TAG = bytes(8)
_OK_BODY = struct.Struct(">BIIII")
_SHORT_BODY = struct.Struct(">BI")

Decision = collections.namedtuple("Decision", "status result device_id reason")


# codec

def encode_request(key, device_id, timestamp):
    """The 20-byte request of section 3.1 (device side; used by tests, tools and benchmarks)."""
    head = device_id + struct.pack(">I", timestamp & 0xFFFFFFFF)
    return head + hmac.digest(key, head, "sha256")[:8]


def encode_reply(key, request, status, server_time, session_id=0, expiry=0, permissions=0):
    """An authenticated reply (section 3.2): 25 bytes for OK, else 13."""
    if status == OK:
        body = _OK_BODY.pack(OK, server_time & 0xFFFFFFFF, session_id, expiry & 0xFFFFFFFF, permissions)
    else:
        body = _SHORT_BODY.pack(status, server_time & 0xFFFFFFFF)
    return body + hmac.digest(key, request + body, "sha256")[:8]


def unauthenticated_reply(status):
    """Status, server time 0, zero tag (section 3.2)."""
    return bytes((status,)) + bytes(12)


def decode_reply(key, request, reply):
    """Parse a reply; `authenticated` says whether its tag verifies under `key` for `request`."""
    if len(reply) not in (13, 25) or (len(reply) == 25) != (reply[0] == OK):
        raise VerifierError("malformed binauth reply")
    body, tag = reply[:-8], reply[-8:]
    out = {"status": reply[0], "server_time": int.from_bytes(reply[1:5], "big"),
           "authenticated": hmac.compare_digest(hmac.digest(key, request + body, "sha256")[:8], tag)}
    if reply[0] == OK:
        out["session_id"], out["expiry"], out["permissions"] = struct.unpack(">III", reply[5:17])
    return out


# the core

class DeviceState:
    """Cached per-device auth state (the derived key never leaves this object). `blocked`: refused
    everywhere (compromised; on an edge, anything its snapshot marks blocked); `quarantined`: refused
    but where the request is decided with allow_quarantined (the OTA and attestation routes).
    `health_key` (K_health, docs/health.md 2.1) is derived on first use, so a lone 20-byte auth never pays
    for it: `sealer` opens the device's `sealed` secret again then (only the sealed bytes are kept; the
    sealer is the core's, shared by every entry: at a million devices each byte per entry counts)."""

    __slots__ = ("device_id", "hex", "tenant_id", "key", "status", "blocked", "quarantined",
                 "permissions", "last_ts", "sealed", "sealer", "_health_key", "ref", "epoch", "slot",
                 "rule", "pgen", "pinfo")

    def __init__(self):
        self.blocked = self.quarantined = self.ref = False
        self.sealed = self.sealer = self._health_key = None
        # the device's policy (verifier/policy: an AuthRule, or None without a policy source), the policy generation
        # it was resolved at, and what resolving it again needs of the device row
        self.rule = self.pinfo = None
        self.pgen = -1
        self.epoch = -1         # verifier.binauth.cache: the flush epoch of its last accepted timestamp

    @property
    def health_key(self):
        k = self._health_key
        if k is None:
            if self.sealed is None:
                raise VerifierError(f"device {self.hex}: no secret to derive its health key from")
            master = self.sealer.unseal(self.sealed, self.device_id, self.tenant_id)
            k = self._health_key = keys.derive_key(master, keys.LABEL_HEALTH)
            self.sealed = None
        return k


class BinAuthCore:
    perf = None             # per-tenant counters with note(tenant, ok) and end_batch(s): the fleet sets it

    def __init__(self, storage, sealer, source_capacity=1000.0, source_refill_per_s=500.0, rand=os.urandom,
                 cache_devices=200_000):
        self._storage = storage
        self._limits = storage.limits
        self._lockout = Lockout(storage.limits, "binauth")
        self._sealer = sealer
        self._source_capacity = source_capacity
        self._source_refill = source_refill_per_s
        self._rand = rand
        self.devices = DeviceCache(cache_devices)
        self._cache = self.devices.map   # device id (8 bytes) -> DeviceState, read on the hot path
        self._absent = frozenset()       # ids the last prefetch() found in no registry row: _load asks no query
        # a storage that writes (and loads) asynchronously: the batcher then awaits flush_async() and prefetch()
        self.async_storage = bool(getattr(storage, "async_auth", False))
        # lockouts shared between instances (verifier.registry.limits_pg): batches begin and commit there too, and
        # a batch whose state could not be written sends neither its OKs nor its SIGNATUREs (an uncounted guess)
        self.shared_limits = self.async_storage and bool(getattr(storage.limits, "shared", False))
        self.withheld = (OK, SIGNATURE) if self.shared_limits else (OK,)
        self._policies = {}     # tenant id -> Policy
        self._accepted = []     # (last_ts, now, device_id) waiting for flush()
        self._activated = []    # (now, device_id)
        self._audit = []
        self._last = None       # (status, DeviceState or None, reason) of the latest decision, for handle()
        self._now = 0           # its time: flush() writes the summaries due by then
        self.summary = RefusalSummary()   # unauthenticated refusals; the app sets its interval
        self.counts = {}        # transport -> [count per status]; folded into Prometheus at scrape time
        self.listeners = []     # other caches of device state (DTLS): told of every forget*() call
        # health piggy-back (docs/health.md 2.1): called with (state, request[0:20], rest, now, transport)
        # for a 31..156-byte datagram whose first 20 bytes were decided OK; set by the app
        self.health_sink = None
        # anomaly alerts (docs/health.md 5): called with (tenant id, device id, result name, now) for every
        # decision about a known device that is not OK; set by the app
        self.auth_failure_sink = None
        # device policies (docs/policies.md): an object with auth_rule(tenant id, device id, pinfo) and
        # pinfo(device row), set by the policy feature; every forget_tenant/forget_all starts a new generation, and
        # a cached device whose rule is of an older one is resolved again (from memory) on its next request
        self.policy_source = None
        self.policy_gen = 0

    # cache control (called by the registry's HTTP handlers after every admin change)
    def forget(self, device_id):
        self.devices.discard(device_id)
        for other in self.listeners:
            other.forget(device_id)

    def forget_tenant(self, tenant_id):
        self._policies.pop(tenant_id, None)
        self.policy_gen += 1
        for other in self.listeners:
            other.forget_tenant(tenant_id)

    def forget_all(self):
        self.devices.clear()
        self._policies.clear()
        self.policy_gen += 1
        for other in self.listeners:
            other.forget_all()

    def _load(self, device_id):
        if device_id in self._absent:
            return None
        return self._state(device_id, self._storage.get_device(device_id))

    async def prefetch(self, device_ids, requests=(), now=0.0):
        """Load the devices of `device_ids` not in the cache with one awaited query (async storages), so the
        batch decided next reads no row on the event loop; an id without a row is remembered as absent until the
        next prefetch. With lockouts shared between instances (verifier.registry.limits_pg), also begin the batch
        there: `requests` are its (device id, source host) pairs, `now` the time it is decided at."""
        try:
            await self._prefetch_devices(device_ids)
        finally:
            if self.shared_limits:
                await self._begin_limits(device_ids, requests, now)

    async def _prefetch_devices(self, device_ids):
        missing = [d for d in device_ids if d not in self._cache]
        self._absent = frozenset()
        if not missing:
            return
        rows = await self._storage.load_devices_async(missing)
        for did in missing:
            dev = rows.get(did)
            if dev is not None and did not in self._cache:
                self._state(did, dev)
        self._absent = frozenset(d for d in missing if d not in rows)

    async def _begin_limits(self, device_ids, requests, now):
        # the budget tokens this batch may need: one per request from a host not trusted for its device as this
        # instance knows it (at most the budget's capacity per device), taken in the database before any tag is
        # checked; begin_async reads the trusted hosts of those devices in the same round trip, and a token taken for
        # a host that turns out trusted is given back at the end of the batch
        limits, tnow, wants = self._limits, int(now), {}
        try:
            for did, host in requests:
                st = self._cache.get(did)
                if st is None:
                    continue
                pol = self._policies.get(st.tenant_id) or self._policy(st.tenant_id)
                if pol.lockout_s <= 0 or limits.trusted_here(("binauth", did), host, tnow):
                    continue
                n = wants[did][0] if did in wants else 0
                if n < pol.lockout_failures:
                    wants[did] = (n + 1, pol.lockout_failures, pol.lockout_failures / pol.lockout_s)
        except Exception:
            log.exception("binauth: could not prepare the lockout state of a batch; it is decided closed")
            limits.begin_closed("binauth", now)
            return
        await limits.begin_async("binauth", device_ids, wants, now)

    def _state(self, device_id, dev):
        if dev is None:
            return None
        try:
            master = self._sealer.unseal(dev["sealed_secret"], device_id, dev["tenant_id"])
        except VerifierError:
            log.error("device %s: sealed secret does not open (wrong KEK?)", device_id.hex())
            return None
        st = DeviceState()
        st.device_id = device_id
        st.hex = device_id.hex()
        st.tenant_id = sys.intern(dev["tenant_id"])    # one copy per tenant and per status, not per device
        st.key = keys.derive_key(master, keys.LABEL_BINAUTH)
        st.sealed, st.sealer = dev["sealed_secret"], self._sealer
        st.status = sys.intern(dev["status"])
        st.blocked = bool(dev["compromised"])
        st.quarantined = bool(dev["quarantined"])
        st.permissions = dev["permissions"]
        st.last_ts = dev["last_ts"]
        if self.policy_source is not None:
            st.pinfo = self.policy_source.pinfo(dev)
            self._resolve(st)
        self.devices.add(st)
        return st

    def _resolve(self, st):
        st.pgen = self.policy_gen            # read first: a change during the call starts a newer generation
        st.rule = self.policy_source.auth_rule(st.tenant_id, st.device_id, st.pinfo)
        return st.rule

    def _policy(self, tenant_id):
        pol = self._policies.get(tenant_id)
        if pol is None:
            tenant = self._storage.get_tenant(tenant_id)
            pol = self._policies[tenant_id] = Policy.from_json(tenant["policy"])
        return pol

    def _finish(self, status, transport, source, now, st, reason, reply):
        counts = self.counts.get(transport)
        if counts is None:
            counts = self.counts[transport] = [0] * 9
        counts[status] += 1
        if st is not None and self.perf is not None:   # the fleet's per-tenant counters (verifier/fleet/core.py)
            self.perf.note(st.tenant_id, status == OK)
        if st is not None and status != OK and self.auth_failure_sink is not None:
            self.auth_failure_sink(st.tenant_id, st.device_id, STATUS_NAMES[status], now)
        self._last = (status, st, reason)
        self._now = now
        if status in AUTHENTICATED:          # the tag verified: one row per decision
            self._audit.append((now, st.tenant_id, "auth", st.hex, None, "binauth",
                                transport, source, STATUS_NAMES[status], reason))
        else:                                # anyone can send these: counted, summarised (verifier/registry/audit.py)
            self.summary.note(now, st.tenant_id if st else None, st.hex if st else None, "binauth", transport,
                              source, STATUS_NAMES[status], reason)
        return reply

    def decide(self, req, source, now, transport="udp", allow_quarantined=False, protocol=None):
        """Decide one request (section 3.4) and return the reply; durable writes wait for flush().

        `allow_quarantined`: the request authenticates a route open to a quarantined device (OTA,
        attestation: verifier.binauth.device), so the quarantine flag alone does not make it
        NOT_ACTIVE; freshness, replay and rate limits apply as to any request. Only the device-route
        check passes it: UDP and POST /v1/binauth never do.

        `protocol`: the policy protocol the request uses (docs/policies.md: "binauth_udp" for a datagram,
        "binauth_http" for POST /v1/binauth); a device whose policy does not allow it, or whose trust level or
        attestation status is below the policy's, is answered NOT_ACTIVE. None (the device routes): the route
        checks its own protocol; the policy's drift and permissions apply all the same."""
        tnow = int(now)
        host = source[0] if type(source) is tuple else source
        if len(req) != REQUEST_LEN:
            if PIGGY_MIN <= len(req) <= PIGGY_MAX and self.health_sink is not None:
                head = bytes(req[:REQUEST_LEN])
                reply = self.decide(head, source, now, transport, allow_quarantined, protocol)
                if reply[0] == OK:
                    self.health_sink(self._last[1], head, bytes(req[REQUEST_LEN:]), int(now), transport)
                return reply
            return self._finish(MALFORMED, transport, source, tnow, None, f"length {len(req)}",
                                unauthenticated_reply(MALFORMED))
        limits = self._limits
        if not limits.take(host, self._source_capacity, self._source_refill, now):
            return self._finish(RATE_LIMITED, transport, source, tnow, None, "source rate (verifier-wide)",
                                unauthenticated_reply(RATE_LIMITED))
        did = req[:8]
        st = self._cache.get(did)
        if st is not None:
            st.ref = True                    # CLOCK's reference bit (verifier.binauth.cache)
        else:
            st = self._load(did)
        if st is None:
            return self._finish(UNKNOWN_DEVICE, transport, source, tnow, None, f"unknown id {did.hex()}",
                                unauthenticated_reply(UNKNOWN_DEVICE))
        pol = self._policies.get(st.tenant_id) or self._policy(st.tenant_id)
        lockout = self._lockout
        if lockout.locked(did, host, tnow):
            return self._finish(LOCKED_OUT, transport, source, tnow, st, "locked out after failed tags from this host",
                                unauthenticated_reply(LOCKED_OUT))
        if not limits.take((st.tenant_id, host), pol.source_capacity, pol.source_refill_per_s, now):
            return self._finish(RATE_LIMITED, transport, source, tnow, st, "source rate (tenant)",
                                unauthenticated_reply(RATE_LIMITED))
        charge = lockout.charge(did, host, pol, now)
        if charge == EXHAUSTED:
            return self._finish(LOCKED_OUT, transport, source, tnow, st, "failure budget exhausted (untrusted host)",
                                unauthenticated_reply(LOCKED_OUT))
        key = st.key
        if not hmac.compare_digest(hmac.digest(key, req[:12], "sha256")[:8], req[12:20]):
            if lockout.failed(did, host, pol, tnow):
                log.warning("device %s: host %s locked out for %d s after %d failed tags",
                            st.hex, host, pol.lockout_s, pol.lockout_failures)
            return self._finish(SIGNATURE, transport, source, tnow, st, "tag does not verify",
                                unauthenticated_reply(SIGNATURE))
        lockout.verified(did, charge, pol, now)
        if st.blocked or st.status not in AUTHENTICATABLE or (st.quarantined and not allow_quarantined):
            return self._finish(NOT_ACTIVE, transport, source, tnow, st,
                                "blocked (compromised)" if st.blocked else
                                f"status {st.status}" if st.status not in AUTHENTICATABLE else "quarantined",
                                encode_reply(key, req, NOT_ACTIVE, tnow))
        rule = st.rule
        if st.pgen != self.policy_gen and self.policy_source is not None:
            rule = self._resolve(st)
        drift, permissions = pol.drift_s, st.permissions
        if rule is not None:
            if protocol is not None and (protocol not in rule.protocols or rule.refusal is not None):
                why = rule.refusal if protocol in rule.protocols else f"policy: protocol {protocol} not allowed"
                return self._finish(NOT_ACTIVE, transport, source, tnow, st, why,
                                    encode_reply(key, req, NOT_ACTIVE, tnow))
            drift, permissions = rule.drift_s, rule.permissions
        ts = int.from_bytes(req[8:12], "big")
        if abs(ts - tnow) > drift:
            return self._finish(TIME_SYNC, transport, source, tnow, st, f"timestamp {ts} vs server {tnow}",
                                encode_reply(key, req, TIME_SYNC, tnow))
        if ts <= st.last_ts:
            return self._finish(REPLAY, transport, source, tnow, st, f"timestamp {ts} <= last accepted {st.last_ts}",
                                encode_reply(key, req, REPLAY, tnow))
        # the device bucket limits accepted authentications: only a fresh genuine request takes from it,
        # so neither spoofed junk nor a replayed packet can drain it
        if not limits.take(did, pol.device_capacity, pol.device_refill_per_s, now):
            return self._finish(RATE_LIMITED, transport, source, tnow, st, "device rate",
                                unauthenticated_reply(RATE_LIMITED))
        lockout.accepted(did, host, tnow)
        st.last_ts = ts
        st.epoch = self.devices.epoch        # dirty until flush(): not evicted before then
        self._accepted.append((ts, tnow, did))
        if st.status == "provisioning":
            st.status = "active"
            self._activated.append((tnow, did))
            self._audit.append((tnow, st.tenant_id, "admin", st.hex, "binauth", "device.activate", transport,
                                source, "ok", "provisioning -> active: first successful authentication"))
        sid = int.from_bytes(self._rand(4), "big")
        return self._finish(OK, transport, source, tnow, st,
                            "quarantined: admitted to a repair route (OTA, attestation)" if st.quarantined else None,
                            encode_reply(key, req, OK, tnow, sid, tnow + pol.session_ttl_s, permissions))

    def flush(self):
        """Make the queued accepted timestamps, activations and audit rows durable, in one transaction.
        Returns {device id: key} of the devices whose timestamps another instance took first (see
        RegistryStorage.record_auth): the caller answers their OK requests of this batch with lost_reply().

        If it fails, the cache is dropped (it may be ahead of the database) and the error propagates:
        the caller must not send the OK replies of this batch.
        """
        work = self._take()
        if work is None:
            return {}
        try:
            lost = self._write(*work)
        except BaseException:
            self.forget_all()
            raise
        return self._settle(lost)

    def _write(self, accepted, activated, audit):
        """flush()'s one transaction (the edge adds its queued health reports to it); returns the lost devices."""
        return self._storage.record_auth(accepted, activated, audit)

    async def flush_async(self):
        """flush() on an async storage (record_auth_async): the same, awaited; then the batch's lockout state
        (shared limits), whose failure also withholds the batch's replies."""
        work = self._take()
        try:
            lost = await self._storage.record_auth_async(*work) if work is not None else set()
            if self.shared_limits:
                await self._limits.commit_async()
        except BaseException:
            if self.shared_limits:
                self._limits.abandon()
            self.forget_all()
            raise
        return self._settle(lost) if work is not None else {}

    def _take(self):
        # what flush() writes: (accepted, activated, audit rows), or None for nothing
        due = self.summary.due(self._now)
        if due:
            self._audit[:0] = due         # they describe earlier requests than the rows queued since
        if not (self._accepted or self._audit):
            return None
        accepted, activated, audit = self._accepted, self._activated, self._audit
        self._accepted, self._activated, self._audit = [], [], []
        audit = [r if type(r[7]) is not tuple else r[:7] + (f"{r[7][0]}:{r[7][1]}",) + r[8:] for r in audit]
        return accepted, activated, audit

    def _settle(self, lost):
        self.devices.flushed()
        if not lost:
            return {}
        # another instance accepted a packet of these devices first (a shared database): their OK replies of this
        # batch become REPLAY (tagged with the key held now), and their entries are reloaded on the next request
        out = {}
        for did in lost:
            st = self._cache.get(did)
            if st is not None:
                out[did] = st.key
                self.forget(did)
        return out

    @staticmethod
    def lost_reply(key, request, now):
        """The reply that replaces an OK whose timestamp another instance took first (flush())."""
        return encode_reply(key, bytes(request[:REQUEST_LEN]), REPLAY, int(now))

    def handle(self, request, source, now, transport="test", allow_quarantined=False, protocol=None):
        """Decide and persist one request: (reply, Decision)."""
        reply = self.decide(request, source, now, transport, allow_quarantined, protocol)
        status, st, reason = self._last
        decision = Decision(reply[0], STATUS_NAMES[status], st.hex if st else None, reason)
        lost = self.flush()
        if reply[0] == OK and bytes(request[:8]) in lost:
            reply = self.lost_reply(lost[bytes(request[:8])], request, now)
            decision = Decision(REPLAY, STATUS_NAMES[REPLAY], decision.device_id, "timestamp taken by another instance")
        return reply, decision
