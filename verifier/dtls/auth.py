"""Registry side of DTLS: PSK identities `deviceId@tenant`, the per-device PSK lookup, and the audit
rows and counters of every DTLS auth decision (docs/protocol.md section 4).

The lookup keeps per-identity state (derived PSK, status, flags, PSK expiry) in a bounded cache, like
binary auth's DeviceState cache: the sealed secret is opened and the PSK derived once, not per
handshake. The cache listens to BinAuthCore's forget()/forget_tenant()/forget_all(), which the admin
API calls after every device change, PSK rotation and policy change, so the next handshake sees it.
Expiry and lockout are checked against `now` on every lookup. A quarantined device completes the
handshake (only its repair resources answer it: verifier.dtls.coap). A device that is not authenticatable
still gets its real key: the refusal is sent only after the client has proved the key with its
Finished, so the status leaks to no one but the device. A locked-out source host (verifier.registry.lockout,
scope "dtls": per device and source host, plus the device's failure budget for hosts it was not
recently accepted from) gets a random key, so its handshakes fail without telling a guesser anything.

Refusals before the peer proved its key (unknown identity, bad Finished, locked out) are counted and
summarised (verifier/registry/audit.py), not written one row each. Audit rows and activations are queued and
written by flush(), one transaction per batch of datagrams (the driver calls it before it sends the
batch's replies: group commit, as verifier.binauth.batch does).
"""

import logging
import os

from verifier import keys
from verifier.binauth.core import AUTHENTICATED, LOCKED_OUT, NOT_ACTIVE, OK, SIGNATURE, STATUS_NAMES, UNKNOWN_DEVICE
from verifier.dtls.server import PSKGrant
from verifier.errors import VerifierError
from verifier.registry.lockout import EXHAUSTED, Lockout
from verifier.registry.model import AUTHENTICATABLE, PSK_LIFETIME_S, Policy, parse_device_id

log = logging.getLogger("janua.verifier.dtls")

TRANSPORT = "dtls"


def parse_identity(identity):
    """b"<16 hex device id>@<tenant name>" -> (device id bytes, tenant name), or None."""
    try:
        text = identity.decode("ascii")
    except UnicodeDecodeError:
        return None
    did_text, sep, tenant = text.partition("@")
    did = parse_device_id(did_text)
    if not sep or did is None or not tenant or not tenant.isprintable():
        return None
    return did, tenant


def psk_for(master, generation=0):
    """The device's DTLS PSK: K_dtls-psk, or for generation g > 0 the label "dtls-psk/<g>"."""
    return keys.dtls_psk(master, generation)


def psk_expires_at(dev):
    """When the device's current PSK expires (unix seconds); rows from before the column existed are
    given provisioned_at + 365 days by the storage migration, this fallback covers any other store."""
    at = dev.get("psk_expires_at")
    return at if at is not None else dev["provisioned_at"] + PSK_LIFETIME_S


class DeviceRef:
    """What a grant carries for the layers above: who the peer is, and why it would be refused."""

    __slots__ = ("device_id", "hex", "tenant_id", "status", "charge")

    def __init__(self, device_id, tenant_id, status, hex_id=None):
        self.device_id, self.hex, self.tenant_id, self.status = device_id, hex_id or device_id.hex(), tenant_id, status
        self.charge = None         # what verifier.registry.lockout's charge() said at the lookup


class PSKState:
    """Cached per-identity DTLS state (the derived PSK never leaves this object and the grants)."""

    __slots__ = ("device_id", "hex", "tenant_id", "key", "status", "blocked", "quarantined", "psk_expires_at",
                 "rule", "pgen", "pinfo")


def _refusal(status, blocked, expires_at, now):
    # `blocked`: compromised. A quarantined device is not refused here: it completes the handshake and
    # CoAP (verifier.dtls.coap) answers 4.03 "quarantined" to all but its repair resources
    if blocked:
        return NOT_ACTIVE, "blocked (compromised)"
    if status not in AUTHENTICATABLE:
        return NOT_ACTIVE, f"status {status}"
    if now >= expires_at:
        return NOT_ACTIVE, "PSK expired"
    return None


class DTLSAuth:
    """The PSK lookup the DTLS core calls, and the recording of its decisions."""

    MAX_CACHED = 100_000         # identities; past it the oldest entry goes

    def __init__(self, storage, sealer, core, rand=os.urandom):
        self._storage = storage
        self._lockout = Lockout(storage.limits, "dtls")
        self._sealer = sealer
        self._core = core          # BinAuthCore: its counters by transport; its forget*() calls reach us
        self._rand = rand
        self._cache = {}           # identity bytes -> PSKState, oldest first
        self._identities = {}      # device id -> identity bytes in the cache
        self._policies = {}        # tenant id -> Policy
        self._activated = []       # (now, device id) waiting for flush()
        self._seen = []            # (now, device id) of established handshakes: last_authenticated_at
        self._audit = []
        self._now = 0              # the latest decision's time: flush() writes the summaries due by then
        core.listeners.append(self)

    @property
    def cached_count(self):
        return len(self._cache)

    # cache control (through BinAuthCore's forget*(), called by the admin API after every change)

    def forget(self, device_id):
        identity = self._identities.pop(device_id, None)
        if identity is not None:
            self._cache.pop(identity, None)

    def forget_tenant(self, tenant_id):
        self._policies.pop(tenant_id, None)

    def forget_all(self):
        self._cache.clear()
        self._identities.clear()
        self._policies.clear()

    def policy(self, tenant_id):
        pol = self._policies.get(tenant_id)
        if pol is None:
            pol = self._policies[tenant_id] = Policy.from_json(self._storage.get_tenant(tenant_id)["policy"])
        return pol

    def load(self, ref):
        """The device row behind a DeviceRef (fresh from the registry), or None."""
        return self._storage.get_device(ref.device_id, ref.tenant_id)

    def refusal(self, dev, now):
        """None if the device row `dev` may authenticate now, else (status code, reason). A quarantined
        device may (the caller restricts what it may then do)."""
        return _refusal(dev["status"], dev["compromised"], psk_expires_at(dev), now)

    def _load(self, identity):
        parsed = parse_identity(identity)
        if parsed is None:
            return None
        did, tenant_name = parsed
        tenant = self._storage.get_tenant_by_name(tenant_name)
        dev = self._storage.get_device(did, tenant["id"]) if tenant else None
        if dev is None:
            return None                # not cached: a flood of made-up identities must not fill memory
        try:
            master = self._sealer.unseal(dev["sealed_secret"], did, dev["tenant_id"])
        except VerifierError:
            log.error("device %s: sealed secret does not open (wrong KEK?)", did.hex())
            return None
        st = PSKState()
        st.device_id, st.hex, st.tenant_id = did, did.hex(), dev["tenant_id"]
        st.key = psk_for(master, dev.get("psk_generation") or 0)
        st.status = dev["status"]
        st.blocked = bool(dev["compromised"])
        st.quarantined = bool(dev["quarantined"])
        st.psk_expires_at = psk_expires_at(dev)
        st.rule = st.pinfo = None
        st.pgen = -1
        src = self._core.policy_source        # device policies (docs/policies.md), as binary auth resolves them
        if src is not None:
            st.pinfo = src.pinfo(dev)
            st.pgen = self._core.policy_gen
            st.rule = src.auth_rule(st.tenant_id, did, st.pinfo)
        old = self._identities.get(did)
        if old is not None:
            self._cache.pop(old, None)
        if len(self._cache) >= self.MAX_CACHED:
            evicted = self._cache.pop(next(iter(self._cache)))
            self._identities.pop(evicted.device_id, None)
        self._cache[identity] = st
        self._identities[did] = identity
        return st

    def lookup(self, identity, addr, now):
        st = self._cache.get(identity) or self._load(identity)
        if st is None:
            return None
        ref = DeviceRef(st.device_id, st.tenant_id, OK, st.hex)
        host = addr[0] if type(addr) is tuple else addr
        if self._lockout.locked(st.device_id, host, int(now)):
            ref.status = LOCKED_OUT
            return PSKGrant(self._rand(32), "locked out after failed handshakes from this host", ref)
        ref.charge = self._lockout.charge(st.device_id, host, self.policy(st.tenant_id), now)
        if ref.charge == EXHAUSTED:
            ref.status = LOCKED_OUT
            return PSKGrant(self._rand(32), "failure budget exhausted (untrusted host)", ref)
        refused = _refusal(st.status, st.blocked, st.psk_expires_at, now) or self._policy_refusal(st)
        if refused:
            ref.status = refused[0]
            return PSKGrant(st.key, refused[1], ref)
        return PSKGrant(st.key, None, ref)

    def _policy_refusal(self, st):
        # the device's policy: protocol "dtls" allowed, trust and attestation met; refused like a status (the real
        # key, the refusal after the client's Finished proved it)
        core = self._core
        src = core.policy_source
        if src is None:
            return None
        if st.pgen != core.policy_gen:        # a policy changed since this entry was resolved
            st.pgen = core.policy_gen
            st.rule = src.auth_rule(st.tenant_id, st.device_id, st.pinfo)
        rule = st.rule
        if "dtls" not in rule.protocols:
            return NOT_ACTIVE, "policy: protocol dtls not allowed"
        if rule.refusal is not None:
            return NOT_ACTIVE, rule.refusal
        return None

    # decisions (queued; flush() makes them durable)

    def established(self, event, now):
        """A handshake completed: audit it, count it, activate a device in provisioning."""
        ref = event.grant.context
        activated = ()
        st = self._cache.get(event.identity)
        if st is not None and st.device_id == ref.device_id:
            if st.status == "provisioning":
                st.status = "active"
                activated = ((int(now), ref.device_id),)
        else:                            # forgotten mid-handshake (an admin change): ask the registry
            dev = self.load(ref)
            if dev is not None and dev["status"] == "provisioning":
                activated = ((int(now), ref.device_id),)
        host = event.addr[0] if type(event.addr) is tuple else event.addr
        self._lockout.verified(ref.device_id, ref.charge, self.policy(ref.tenant_id), now)
        self._lockout.accepted(ref.device_id, host, int(now))
        self._seen.append((int(now), ref.device_id))
        quarantined = ", quarantined" if st is not None and st.device_id == ref.device_id and st.quarantined else ""
        self._record(OK, now, ref, event.addr, "dtls", f"handshake, suite {event.suite:04X}{quarantined}", activated)

    def refused(self, event, now):
        ref = event.grant.context if event.grant is not None else None
        if ref is None:
            ident = event.identity[:64].decode("ascii", "replace")
            self._record(UNKNOWN_DEVICE, now, None, event.addr, "dtls", f"unknown PSK identity {ident!r}")
            return
        status = ref.status
        if ref.status == OK or event.reason.startswith("bad Finished"):
            status = SIGNATURE if ref.status != LOCKED_OUT else LOCKED_OUT
            if status == SIGNATURE:
                pol = self.policy(ref.tenant_id)
                host = event.addr[0] if type(event.addr) is tuple else event.addr
                if self._lockout.failed(ref.device_id, host, pol, int(now)):
                    log.warning("device %s: host %s locked out for %d s after %d failed DTLS handshakes",
                                ref.hex, host, pol.lockout_s, pol.lockout_failures)
        else:                            # the client proved the key (a refusal for the device's state)
            self._lockout.verified(ref.device_id, ref.charge, self.policy(ref.tenant_id), now)
        self._record(status, now, ref, event.addr, "dtls", event.reason)

    def record_coap_auth(self, status, now, ref, addr, reason=None):
        self._record(status, now, ref, addr, "coap.auth", reason, counts="coaps")

    def _record(self, status, now, ref, addr, action, reason, activated=(), counts=TRANSPORT):
        tnow = self._now = int(now)
        counters = self._core.counts.get(counts)
        if counters is None:
            counters = self._core.counts[counts] = [0] * len(STATUS_NAMES)
        counters[status] += 1
        source = f"{addr[0]}:{addr[1]}" if type(addr) is tuple else str(addr)
        if status not in AUTHENTICATED:       # before the peer proved its key: counted and summarised
            self._core.summary.note(tnow, ref.tenant_id if ref else None, ref.hex if ref else None, action,
                                    TRANSPORT, addr, STATUS_NAMES[status], reason)
            return
        self._audit.append((tnow, ref.tenant_id if ref else None, "auth", ref.hex if ref else None, None, action,
                            TRANSPORT, source, STATUS_NAMES[status], reason))
        for _, did in activated:
            self._activated.append((tnow, did))
            self._audit.append((tnow, ref.tenant_id, "admin", ref.hex, "dtls", "device.activate", TRANSPORT, source,
                                "ok", "provisioning -> active: first successful authentication"))

    def flush(self):
        """Write the queued audit rows and activations in one transaction. A failure is logged (the
        handshakes it describes have happened); the caches are dropped, as they may be ahead."""
        due = self._core.summary.due(self._now)
        if due:
            self._audit[:0] = due         # they describe earlier requests than the rows queued since
        if not self._audit:
            return
        activated, audit, seen = self._activated, self._audit, self._seen
        self._activated, self._audit, self._seen = [], [], []
        try:
            self._storage.record_auth([], activated, audit, seen)
        except VerifierError:
            log.exception("dtls: could not write %d audit row(s)", len(audit))
            self.forget_all()
            return
        for _, did in activated:
            self._core.forget(did)       # binary auth's cached status (and ours: reloaded as active)
