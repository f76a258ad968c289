"""The claim path of one verifier instance (docs/claims.md "Claim"): POST /v1/claim's bytes to an answer or a
refusal, in the order of the refusal table; the pre-claim hook; the operator reset.

Refusals before the tag is verified (rate limit per source, malformed, claim_invalid) are counted and summarised by
the audit trail's RefusalSummary, never one row each (anyone can send them). After the tag: the per-batch rate limit
is summarised too, every other refusal and every success writes one audit row (kind "claim"): those need a claim
key, and their rate is bounded by the per-batch bucket. Only immutable parts of a batch (its secrets, serials, template) and the
answer's config are cached in memory, so a second instance on the same database sees every revoke, claim and reset at once."""

import asyncio
import json
import logging
import os
import time

import aiohttp

from verifier.claims import batches, core
from verifier.claims.store import DuplicateClaim
from verifier.claims.writer import ClaimWriter
from verifier.errors import Conflict, CryptoError, NotFound
from verifier.notify.core import secret_text, sign
from verifier.regions import core as regions

log = logging.getLogger("janua.verifier.claims")

KEY_CACHE_MAX = 4096
CONFIG_TTL_S = 5.0          # how long an instance reuses a batch's answer config (a region may change)
_DUMMY_SECRET = bytes(32)       # an unknown batch costs the same key derivation and MAC as a known one
ACTION = "claim"


class ClaimService:
    def __init__(self, storage, sealer, summary, config, session=None, on_policy=None):
        self.storage, self.sealer, self.summary, self.config = storage, sealer, summary, config
        self.session = session
        self.on_policy = on_policy   # called with the tenant id after a claim stored a device policy document
        self.writer = ClaimWriter(storage)
        self._fixed = {}         # batch id -> (batch row, batch secret, hook secret text): what never changes
        self._configs = {}       # (batch id, server) -> the answer's config bytes
        self._tenants = {}       # tenant id -> name
        self.claimed = self.resumed = 0

    # ------------------------------------------------------------------ helpers
    def _batch(self, batch_id, serial=None):
        """(batch as decide() reads it, batch secret, hook secret text, the claim of `serial` or None), or Nones for an
        unknown id. The immutable parts (secrets, serials as a set, template) are cached; status, count and the claim
        are read every time (one query)."""
        state = self.storage.claim_batch_state(batch_id, serial)
        if state is None:
            return None, None, None, None
        got = self._fixed.get(batch_id)
        if got is None:
            b = self.storage.get_claim_batch(batch_id)
            secret = self.sealer.unseal(b["sealed_secret"], batches.seal_id(b["id"]), b["tenant_id"])
            hook = None
            if b["sealed_hook_secret"] is not None:
                hook = secret_text(self.sealer.unseal(b["sealed_hook_secret"], batches.seal_id(b["id"], batches.HOOK_SEAL),
                                                      b["tenant_id"]))
            if b["serials"] is not None:
                b["serials"] = frozenset(b["serials"])
            else:
                b["serial_regex"] = core.pattern_regex(b["serial_pattern"])
            b["metadata_json"] = json.dumps(b["device"]["metadata"])
            if len(self._fixed) >= KEY_CACHE_MAX:
                self._fixed.clear()
            got = self._fixed[batch_id] = (b, secret, hook)
        return dict(got[0], status=state[0], claimed_count=state[1]), got[1], got[2], state[2]

    def _tenant_name(self, tenant_id):
        name = self._tenants.get(tenant_id)
        if name is None:
            if len(self._tenants) >= KEY_CACHE_MAX:
                self._tenants.clear()
            name = self._tenants[tenant_id] = self.storage.get_tenant(tenant_id)["name"]
        return name

    # `src` below is (transport, source host): "http" for POST /v1/claim, "coap" for claims over CoAP (coap.py)
    def _note(self, now, tenant_id, result, reason, src):
        self.summary.note(now, tenant_id, None, ACTION, src[0], src[1], result, reason)

    def _audit(self, now, batch, serial, device_hex, action, result, detail, src):
        return (now, batch["tenant_id"], "claim", device_hex, "batch:" + batch["id"].hex(), action, src[0], src[1],
                result, None if result == "ok" else result, f"serial {serial}: {detail}")

    def _refuse(self, now, batch, serial, err, src, device_hex=None):
        self.storage.add_audit([self._audit(now, batch, serial, device_hex, "claim.refused", err.code, str(err), src)])
        raise err

    def _device_state(self, claim):
        dev = self.storage.get_device(claim["device_id"])
        if dev is None:
            return None
        return {"status": dev["status"], "authenticated": bool(dev["last_authenticated_at"]), "row": dev}

    # ------------------------------------------------------------------ the claim
    async def claim(self, data, source, server, now, via="http"):
        """The answer bytes to request `data` from `source` (a host), or the refusal raised. `server` is the
        auth endpoint for the answer's config ({"host", "udp_port", "http_port", "dtls_port"}); `via` the transport
        named in the audit trail ("http", "coap")."""
        src = (via, source)
        cfg, limits = self.config, self.storage.limits
        if not limits.take("claim-src:" + source, cfg.source_capacity, cfg.source_refill_per_s, now):
            self._note(now, None, "rate_limited", "source", src)
            raise core.ClaimRateLimited("too many claims from this address; retry later")
        try:
            req = core.decode_request_unverified(data)
        except core.MalformedClaim as e:
            self._note(now, None, "malformed_claim", str(e)[:60], src)
            raise
        try:
            batch, secret, hook_secret, claim = self._batch(req.batch_id, req.serial)
        except CryptoError:                  # a wrong KEK: as an unknown batch, and said in the log
            log.error("claim batch %s: its secret does not open under this KEK", req.batch_id.hex())
            batch = None
        if batch is None:
            secret, hook_secret = _DUMMY_SECRET, None
        k_c = core.claim_key(secret, req.serial)
        keys = core.claim_keys(k_c)
        k_mac = keys[0]
        try:
            core.verify_request(req, k_mac)
            if batch is None:
                raise core.ClaimInvalid("the claim is not valid")
        except core.ClaimInvalid:
            self._note(now, batch["tenant_id"] if batch else None, "claim_invalid",
                       "bad tag" if batch else "unknown batch", src)
            raise
        if not limits.take("claim-batch:" + batch["id"].hex(), cfg.claim_batch_capacity, cfg.claim_batch_refill_per_s,
                           now):
            self._note(now, batch["tenant_id"], "rate_limited", "batch " + batch["id"].hex(), src)
            raise core.ClaimRateLimited("too many claims for this batch; retry later")
        tnow = int(now)
        for attempt in range(3):      # a lost race (a concurrent claim of this serial) decides again
            if attempt:
                batch, _, _, claim = self._batch(batch["id"], req.serial)
            device = self._device_state(claim) if claim is not None else None
            try:
                outcome = core.decide(batch, req.serial, req.nonce, claim, device, tnow)
            except (core.BatchRevoked, core.BatchNotValid, core.SerialNotAllowed, core.ClaimReplayed,
                    core.AlreadyClaimed, core.BatchExhausted) as e:
                self._refuse(tnow, batch, req.serial, e, src, claim["device_id"].hex() if claim else None)
            if outcome == core.RESUME:
                answer = self._resume(batch, req, claim, device["row"], k_c, keys, server, tnow, src)
                if answer is not None:
                    return answer
                continue
            if batch["hook_url"]:
                await self._ask_hook(batch, hook_secret, req.serial, src, tnow)
            answer = await self._new(batch, req, k_c, keys, server, tnow, src)
            if answer is not None:
                return answer
        raise Conflict("the claim could not be decided against concurrent claims; retry")

    def _answer(self, k_c, keys, req, device_id, master, batch, server):
        ck = (batch["id"], tuple(server.items()))
        hit = self._configs.get(ck)
        if hit is None or hit[0] <= time.monotonic():
            region = regions.config_for(self.storage, batch["tenant_id"], batch["device"].get("region"), server)
            config = core.encode_config(core.answer_config(self._tenant_name(batch["tenant_id"]), batch["device"],
                                                           region))
            if len(self._configs) >= KEY_CACHE_MAX:
                self._configs.clear()
            # a region's change reaches the answers of this instance within CONFIG_TTL_S (docs/claims.md 6)
            self._configs[ck] = (time.monotonic() + CONFIG_TTL_S, config)
        else:
            config = hit[1]
        return core.encode_answer(k_c, req.nonce, device_id, os.urandom(core.NONCE_LEN), master, config, keys)

    def _resume(self, batch, req, claim, dev, k_c, keys, server, now, src):
        master = self.sealer.unseal(dev["sealed_secret"], dev["id"], dev["tenant_id"])
        row = self._audit(now, batch, req.serial, dev["id"].hex(), "claim.resume", "ok",
                          "the same device again (not counted)", src)
        if not self.storage.commit_resume(batch["id"], req.serial, claim["nonces"],
                                          core.keep_nonces(claim["nonces"], req.nonce), row):
            return None
        self.resumed += 1
        return self._answer(k_c, keys, req, dev["id"], master, batch, server)

    async def _new(self, batch, req, k_c, keys, server, now, src):
        rnd = os.urandom(40)
        device_id, master = rnd[:8], rnd[8:]
        dev_row = batches.device_row(batch, req.serial, device_id, master, self.sealer, now)
        row = self._audit(now, batch, req.serial, device_id.hex(), "claim.new", "ok", "device created", src)
        policy = batch["device"].get("policy")
        err = await self.writer.submit((batch["id"], req.serial, dev_row, core.keep_nonces((), req.nonce), now, row,
                                        policy))
        if err is None and policy is not None and self.on_policy is not None:
            self.on_policy(batch["tenant_id"])      # the policy caches learn of the new device's document
        if isinstance(err, core.BatchExhausted):
            fresh = self.storage.claim_batch_state(batch["id"])
            err = (core.BatchRevoked("this claim batch was revoked") if fresh[0] == "revoked"
                   else core.BatchExhausted("this claim batch has no claims left"))
            self._refuse(now, batch, req.serial, err, src)
        elif isinstance(err, DuplicateClaim):
            return None
        elif isinstance(err, Conflict):   # the tenant has a device of this serial (provisioned, or another batch's)
            self._refuse(now, batch, req.serial, core.AlreadyClaimed(
                "a device with this serial exists in the tenant; an operator must remove or reset it"), src)
        self.claimed += 1
        return self._answer(k_c, keys, req, device_id, master, batch, server)

    async def _ask_hook(self, batch, hook_secret, serial, src, now):
        body = core.hook_body(self._tenant_name(batch["tenant_id"]), batch["id"].hex(), serial, src[1], batch["device"])
        headers = {"Content-Type": "application/json", "User-Agent": "janua-verifier",
                   "X-Janua-Event": "claim.pre", "X-Janua-Signature": sign(hook_secret, now, body)}
        try:
            async with self.session.post(batch["hook_url"], data=body, headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=self.config.claim_hook_timeout_s)) as r:
                allow, reason = core.hook_answer(r.status, await r.content.read(4096))
        except core.HookUnavailable as e:
            self._refuse(now, batch, serial, e, src)
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
            self._refuse(now, batch, serial, core.HookUnavailable(
                f"the pre-claim hook could not be asked: {type(e).__name__}"), src)
        if not allow:
            self._refuse(now, batch, serial, core.ClaimDenied(
                "the pre-claim hook denied the claim" + (f": {reason}" if reason else "")), src)


async def reset_claim(app_storage, change_lifecycle, tenant_id, batch, serial, now, actor):
    """The operator re-claim (docs/claims.md "Reset"): the claim is forgotten, its slot given back, and its device
    (if any) decommissioned (`change_lifecycle(device_id, doc)`, the registry's audited path) and renamed
    "<serial>~<device id>" so that the serial is free for the next claim. Returns the reset's view."""
    claim = app_storage.get_claim(batch["id"], serial)
    if claim is None:
        raise NotFound("no claim of this serial in the batch")
    dev = app_storage.get_device(claim["device_id"], tenant_id)
    if dev is not None and dev["status"] != "decommissioned":
        await change_lifecycle(claim["device_id"], {"action": "decommission", "reason": "claim reset"})
    update = None if dev is None else (claim["device_id"], tenant_id, f"{serial}~{claim['device_id'].hex()}", now)
    row = (now, tenant_id, "admin", claim["device_id"].hex(), actor, "claim.reset", None, None, "ok", None,
           f"batch {batch['id'].hex()} serial {serial}")
    if not app_storage.delete_claim(batch["id"], serial, update, [row]):
        raise NotFound("no claim of this serial in the batch")
    return {"batch_id": batch["id"].hex(), "serial": serial, "device_id": claim["device_id"].hex(),
            "device_status": "decommissioned" if dev is not None else None}
