"""Webhook delivery (docs/api.md "Notifications"): the background task that fans outbox events out to
the tenants' webhooks and sends them, signed, with retries.

One pass (`Deliverer.run_once(now)`): fan out new outbox events into pending deliveries (store.fan_out,
one transaction, a cursor shared by every instance on the database); then take up to `concurrency`
due deliveries, each by a claim (a conditioned UPDATE that moves its next_at past the lease, so
another instance skips it while it is in flight, and takes it over if this one dies mid-send), and
send them concurrently: one POST each, `timeout_s` in all, no redirect followed, at most
RESPONSE_KEEP bytes of the answer read. 2xx is delivered; anything else (a status, a timeout, a
refused connection) is logged and retried on core.RETRY_S, then failed. `maintain` runs passes every
tick and prunes the log every prune_every_s. Unless private targets are allowed (Config.notify_private_targets,
on by default only with --dev), a webhook's host must be, or resolve to, a globally routable address:
the check is on the address actually connected to (PublicResolver, and the URL's own IP literal), so a
tenant admin cannot make the verifier POST to its loopback, a private network or a cloud metadata
endpoint and read the answer in the delivery log, even through a DNS name that changes its answer.
What it does not do: order deliveries (a retry may arrive
after a later event), or promise exactly once (a lease that expires mid-send, or a lost 2xx, means a
second send of the same X-Janua-Delivery id: receivers drop duplicates by it)."""

import asyncio
import ipaddress
import logging
import os
import socket
import time

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

from verifier.errors import CryptoError
from verifier.notify import core

log = logging.getLogger("janua.verifier.notify")

LEASE_S = 60                   # a claimed delivery is another instance's to take after this (at least 2x the timeout)
CONCURRENCY = 8                # deliveries in flight per instance
FAN_OUT_BATCH = 500
KEEP_S = 30 * 86400            # finished deliveries (and their attempts) are kept 30 days ...
MAX_PER_WEBHOOK = 1000         # ... and at most this many per webhook
OUTBOX_KEEP_S = 7 * 86400      # fanned-out outbox rows with nothing pending are kept 7 days
ERROR_MAX = 200                # characters of an error kept in the log


def _delivery_id():
    return "dlv_" + os.urandom(12).hex()


def is_public(host):
    """Whether `host` is an IP address that is globally routable (not loopback, private, link-local,
    shared, documentation or reserved space)."""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class PublicResolver(AbstractResolver):
    """aiohttp's default resolver, keeping only the globally routable addresses of a name."""

    def __init__(self):
        self._inner = DefaultResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        found = [r for r in await self._inner.resolve(host, port, family) if is_public(r["host"])]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no public address (private targets are not allowed)")
        return found

    async def close(self):
        await self._inner.close()


def new_session(private_targets):
    """The HTTP client session of a Deliverer: CONCURRENCY connections, no decompression, and unless
    `private_targets` the PublicResolver."""
    kw = {} if private_targets else {"resolver": PublicResolver()}
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY, **kw), auto_decompress=False)


class Deliverer:
    """Fan-out and delivery for one verifier instance on `storage`; `sealer` opens webhook secrets."""

    def __init__(self, storage, sealer, session, timeout_s=core.TIMEOUT_S, concurrency=CONCURRENCY,
                 private_targets=False):
        self.storage, self.sealer, self.session = storage, sealer, session
        self.timeout_s, self.concurrency, self.private_targets = timeout_s, concurrency, private_targets
        self.sent = 0               # attempts made by this instance (metrics, tests)

    async def run_once(self, now):
        """One pass at `now`: fan out, then send what is due (at most `concurrency` deliveries);
        return the number of attempts made."""
        while self.storage.fan_out(now, _delivery_id, core.matches, FAN_OUT_BATCH) == FAN_OUT_BATCH:
            await asyncio.sleep(0)
        lease, lease_s = os.urandom(12).hex(), max(LEASE_S, 2 * int(self.timeout_s) + 1)
        claimed = []
        for seq in self.storage.due_deliveries(now, self.concurrency):
            job = self.storage.claim_delivery(seq, now, lease, int(now) + lease_s)
            if job is not None:
                claimed.append((seq, job))
        if claimed:
            await asyncio.gather(*(self._attempt(seq, lease, job, now) for seq, job in claimed))
        return len(claimed)

    async def _attempt(self, seq, lease, job, now):
        d, hook, ev = job["delivery"], job["webhook"], job["event"]
        body = core.encode_body(ev["id"], ev["event"], d["tenant_id"], ev["created"], ev["data"])
        try:
            secret = core.secret_text(self.sealer.unseal(hook["sealed_secret"], core.seal_id(hook["id"]),
                                                         hook["tenant_id"]))
        except CryptoError as e:           # a wrong KEK or a tampered row: retrying cannot help
            self._finish(seq, lease, {"at": int(now), "status": None, "duration_ms": 0, "response": None,
                                      "error": f"the signing secret does not open: {type(e).__name__}"},
                         d, now, final=True)
            return
        headers = {"Content-Type": "application/json", "User-Agent": "janua-verifier",
                   "X-Janua-Event": ev["event"], "X-Janua-Delivery": d["id"],
                   "X-Janua-Signature": core.sign(secret, now, body)}
        status = error = response = None
        start = time.monotonic()
        host = URL(hook["url"]).host or ""
        try:
            if not self.private_targets and not is_public(host) and _is_ip(host):
                raise OSError(f"{host} is not a public address (private targets are not allowed)")
            async with self.session.post(hook["url"], data=body, headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                status = resp.status
                response = (await resp.content.read(core.RESPONSE_KEEP)).decode("utf-8", "replace")
        except asyncio.TimeoutError:
            error = f"timeout after {self.timeout_s:g} s"
        except aiohttp.ClientError as e:
            error = f"{type(e).__name__}: {e}"[:ERROR_MAX]
        except (OSError, ValueError) as e:   # e.g. a name that does not resolve, a URL aiohttp refuses
            error = f"{type(e).__name__}: {e}"[:ERROR_MAX]
        attempt = {"at": int(now), "status": status, "error": error, "response": response,
                   "duration_ms": int((time.monotonic() - start) * 1000)}
        self.sent += 1
        self._finish(seq, lease, attempt, d, now, final=False)

    def _finish(self, seq, lease, attempt, d, now, final):
        n = d["attempts"] + 1
        if attempt["status"] is not None and 200 <= attempt["status"] < 300:
            state, next_at = "delivered", None
        elif final:
            state, next_at = "failed", None
        else:
            state, next_at = core.after_failure(n, now)
        if not self.storage.finish_attempt(seq, lease, attempt, state, next_at, now):
            log.info("notify: delivery %s was taken over or its webhook deleted while in flight", d["id"])
        elif state == "failed":
            log.warning("notify: delivery %s of event %s to webhook %s failed after %d attempt(s)",
                        d["id"], d["event_id"], d["webhook_id"], n)


async def maintain(deliverer, clock, tick_s, prune_every_s=300):
    """The background task the app runs (verifier/notify/routes.py): a pass every tick_s (at once again
    while a pass found a full batch due), pruning at start and every prune_every_s."""
    next_prune = None
    while True:
        now = clock()
        busy = False
        try:
            if next_prune is None or now >= next_prune:
                next_prune = now + prune_every_s
                n = deliverer.storage.prune_notifications(now, KEEP_S, MAX_PER_WEBHOOK, OUTBOX_KEEP_S)
                if n:
                    log.info("notify: pruned %d row(s)", n)
            busy = await deliverer.run_once(now) >= deliverer.concurrency
        except Exception:          # sqlite3.Error, StorageError: the task must outlive a bad moment
            log.exception("notify: delivery pass failed; next in %g s", tick_s)
        await asyncio.sleep(0 if busy else tick_s)
