"""Registry side of DTLS: PSK identities `deviceId@tenant`, the per-device PSK lookup, and the audit
rows and counters of every DTLS auth decision (docs/protocol.md section 4).

The lookup reads the registry on every handshake (no cache, so an admin change applies to the next
handshake). A device that is not authenticatable still gets its real key: the refusal is sent only
after the client has proved the key with its Finished, so the status leaks to no one but the device.
A locked-out device gets a random key, so its handshakes fail without telling a guesser anything.
"""

import logging
import os

from verifier import keys
from verifier.binauth import LOCKED_OUT, NOT_ACTIVE, OK, SIGNATURE, STATUS_NAMES, UNKNOWN_DEVICE
from verifier.dtls.server import PSKGrant
from verifier.errors import VerifierError
from verifier.model import AUTHENTICATABLE, PSK_LIFETIME_S, Policy, parse_device_id

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

    __slots__ = ("device_id", "hex", "tenant_id", "status")

    def __init__(self, device_id, tenant_id, status):
        self.device_id, self.hex, self.tenant_id, self.status = device_id, device_id.hex(), tenant_id, status


class DTLSAuth:
    """The PSK lookup the DTLS core calls, and the recording of its decisions."""

    def __init__(self, storage, sealer, core, rand=os.urandom):
        self._storage = storage
        self._sealer = sealer
        self._core = core          # BinAuthCore: its counters by transport and its device cache
        self._rand = rand

    def policy(self, tenant_id):
        return Policy.from_json(self._storage.get_tenant(tenant_id)["policy"])

    def load(self, ref):
        """The device row behind a DeviceRef (fresh from the registry), or None."""
        return self._storage.get_device(ref.device_id, ref.tenant_id)

    def refusal(self, dev, now):
        """None if `dev` may authenticate now, else (status code, reason)."""
        if dev["compromised"] or dev["quarantined"]:
            return NOT_ACTIVE, "blocked (compromised or quarantined)"
        if dev["status"] not in AUTHENTICATABLE:
            return NOT_ACTIVE, f"status {dev['status']}"
        if now >= psk_expires_at(dev):
            return NOT_ACTIVE, "PSK expired"
        return None

    def lookup(self, identity, addr, now):
        parsed = parse_identity(identity)
        if parsed is None:
            return None
        did, tenant_name = parsed
        tenant = self._storage.get_tenant_by_name(tenant_name)
        dev = self._storage.get_device(did, tenant["id"]) if tenant else None
        if dev is None:
            return None
        ref = DeviceRef(did, dev["tenant_id"], OK)
        if self._storage.limits.locked_until(did, now):
            ref.status = LOCKED_OUT
            return PSKGrant(self._rand(32), "locked out after failed handshakes", ref)
        try:
            master = self._sealer.unseal(dev["sealed_secret"], did, dev["tenant_id"])
        except VerifierError:
            log.error("device %s: sealed secret does not open (wrong KEK?)", did.hex())
            return None
        refused = self.refusal(dev, now)
        if refused:
            ref.status = refused[0]
        return PSKGrant(psk_for(master, dev.get("psk_generation") or 0), refused and refused[1], ref)

    # decisions

    def established(self, event, now):
        """A handshake completed: audit it, count it, activate a device in provisioning."""
        ref = event.grant.context
        activated = []
        dev = self.load(ref)
        if dev is not None and dev["status"] == "provisioning":
            activated.append((int(now), ref.device_id))
        self._storage.limits.succeed(ref.device_id)
        self._record(OK, now, ref, event.addr, "dtls", f"handshake, suite {event.suite:04X}", activated)

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
                if self._storage.limits.fail(ref.device_id, pol.lockout_failures, pol.lockout_s, now):
                    log.warning("device %s locked out for %d s after %d failed DTLS handshakes",
                                ref.hex, pol.lockout_s, pol.lockout_failures)
        self._record(status, now, ref, event.addr, "dtls", event.reason)

    def record_coap_auth(self, status, now, ref, addr, reason=None):
        self._record(status, now, ref, addr, "coap.auth", reason, counts="coaps")

    def _record(self, status, now, ref, addr, action, reason, activated=(), counts=TRANSPORT):
        tnow = int(now)
        counters = self._core.counts.get(counts)
        if counters is None:
            counters = self._core.counts[counts] = [0] * len(STATUS_NAMES)
        counters[status] += 1
        source = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        rows = [(tnow, ref.tenant_id if ref else None, "auth", ref.hex if ref else None, None, action, TRANSPORT,
                 source, STATUS_NAMES[status], reason)]
        for _, did in activated:
            rows.append((tnow, ref.tenant_id, "admin", ref.hex, "dtls", "device.activate", TRANSPORT, source, "ok",
                         "provisioning -> active: first successful authentication"))
        try:
            self._storage.record_auth([], list(activated), rows)
        except VerifierError:
            log.exception("dtls: could not write %d audit row(s)", len(rows))
        if activated:
            self._core.forget(ref.device_id)
