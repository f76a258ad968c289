"""Group commit for binary auth: requests that arrive together are decided together, their durable
state is written in one transaction, and only then are the replies sent.

The UDP driver hands over every datagram it drained from its socket (`process_udp`); HTTP handlers
await `submit()`, whose queue is processed once per event-loop turn (loop.call_soon) or with the
next UDP batch. Decisions are made one after another in memory, so two requests with the same
timestamp, in the same batch or not, get exactly one OK.

On a storage that writes asynchronously (PostgreSQL, verifier/store_pg.py) the same steps run in a task instead:
the devices named are loaded, the batches waiting are decided, written in one awaited transaction, answered;
meanwhile the event loop goes on (more datagrams arrive and wait for the next round).
"""

import asyncio
import bisect
import logging
import time

from verifier.binauth.core import OK, REQUEST_LEN
from verifier.binauth.metrics import LATENCY_BUCKETS

log = logging.getLogger("janua.verifier.batch")


class AuthBatcher:
    def __init__(self, core, metrics, clock):
        self._core = core
        self._metrics = metrics
        self._clock = clock
        # queued HTTP requests: (data, source, transport, future, t0, allow_quarantined, policy protocol)
        self._items = []
        self._scheduled = False
        # a storage that writes asynchronously (PostgreSQL): batches go through _work(), one transaction at a time
        self._async = core.async_storage
        self._pending = []        # batches waiting for _work(): (datagrams, udp, queued, t0)
        self._worker = None

    def submit(self, data, source, transport="http", allow_quarantined=False, protocol=None):
        """Queue one request; the returned future resolves to the reply once it may be sent.
        `allow_quarantined`: decided for a route open to a quarantined device; `protocol`: the policy protocol
        (BinAuthCore.decide: "binauth_http" for POST /v1/binauth, None for the device routes)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._items.append((data, source, transport, fut, time.perf_counter(), allow_quarantined, protocol))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run)
        return fut

    def _run(self):
        self._scheduled = False
        if self._items:
            self.process_udp((), None)

    def process_udp(self, datagrams, udp):
        """Decide a batch of (data, addr) datagrams plus any queued HTTP requests; commit; reply."""
        t0 = time.perf_counter()
        queued, self._items = self._items, []
        if self._async:
            self._pending.append((datagrams, udp, queued, t0))
            if self._worker is None:
                self._worker = asyncio.get_running_loop().create_task(self._work())
            return
        now = self._clock()
        replies, http_replies = self._decide(datagrams, queued, now)
        durable, lost = True, None
        try:
            lost = self._core.flush()
        except Exception:
            durable = False
            log.exception("binauth: could not persist a batch of %d; OK replies withheld",
                          len(replies) + len(http_replies))
        self._deliver(datagrams, udp, queued, replies, http_replies, durable, lost, now, t0)

    async def _work(self):
        """The async group commit (a storage with record_auth_async: PostgreSQL): one transaction in flight at a
        time; whatever arrives meanwhile is decided and written together next. The event loop never waits on the
        database: the devices a group names are loaded with one awaited query before it is decided, and its
        writes are awaited before its replies go out."""
        core = self._core
        try:
            while self._pending:
                group, self._pending = self._pending, []
                # (device id, source host) of every request: the devices to load, the lockout state to read
                pairs = [(bytes(d[:8]), a[0]) for g in group for d, a in g[0] if len(d) >= REQUEST_LEN]
                pairs += [(bytes(it[0][:8]), it[1][0] if type(it[1]) is tuple else it[1])
                          for g in group for it in g[2] if len(it[0]) >= REQUEST_LEN]
                ids = {p[0] for p in pairs}
                now = self._clock()
                try:
                    await core.prefetch(ids, pairs, now)
                except Exception:
                    log.exception("binauth: could not load %d devices; their requests are decided one by one", len(ids))
                decided = [self._decide(g[0], g[2], now) for g in group]
                durable, lost = True, None
                try:
                    lost = await core.flush_async()
                except Exception:
                    durable = False
                    log.exception("binauth: could not persist a batch of %d; OK replies withheld",
                                  sum(len(r) + len(h) for r, h in decided))
                for (datagrams, udp, queued, t0), (replies, http_replies) in zip(group, decided):
                    self._deliver(datagrams, udp, queued, replies, http_replies, durable, lost, now, t0)
        finally:
            self._worker = None

    async def drain(self):
        """Wait until every batch handed over has been written and answered (at shutdown)."""
        while self._worker is not None:
            await asyncio.shield(self._worker)

    def _decide(self, datagrams, queued, now):
        decide = self._core.decide
        replies = [decide(data, addr, now, "udp", False, "binauth_udp") for data, addr in datagrams]
        # each queued request keeps its own allow_quarantined: an OTA check and a POST /v1/binauth of
        # the same device in one batch are decided by their own route's rule
        http_replies = [decide(it[0], it[1], now, it[2], it[5], it[6]) for it in queued]
        return replies, http_replies

    def _deliver(self, datagrams, udp, queued, replies, http_replies, durable, lost, now, t0):
        core = self._core
        if durable and lost:       # another instance took these devices' timestamps first (a shared database)
            lost_reply = core.lost_reply
            replies = [lost_reply(lost[bytes(d[:8])], d, now) if r[0] == OK and bytes(d[:8]) in lost else r
                       for (d, _), r in zip(datagrams, replies)]
            http_replies = [lost_reply(lost[bytes(it[0][:8])], it[0], now)
                            if r[0] == OK and bytes(it[0][:8]) in lost else r for it, r in zip(queued, http_replies)]
        metrics = self._metrics
        metrics.batches += 1
        withheld = core.withheld       # what a batch that could not be written does not send (OK; SIGNATURE too
                                       # when lockouts are shared: the guess went uncounted)
        if datagrams:
            send = udp.sendto
            for (data, addr), reply in zip(datagrams, replies):
                if not durable and reply[0] in withheld:
                    continue
                # a datagram of the wrong length never gets more bytes back than it had (no amplification);
                # a request with a health report (31..156 bytes) always passes: replies are 13 or 25 bytes
                if len(data) == REQUEST_LEN or len(reply) <= len(data):
                    send(reply, addr)
        for (data, source, transport, fut, _, _, _), reply in zip(queued, http_replies):
            if fut.done():
                continue
            if not durable and reply[0] in withheld:
                fut.set_exception(RuntimeError("binauth state could not be persisted"))
            else:
                fut.set_result(reply)
        t_end = time.perf_counter()
        if datagrams:
            # every datagram of the batch waited at most from the drain to the last send
            lat = metrics.latency_for("udp")
            lat.counts[_bucket(t_end - t0)] += len(datagrams)
            lat.sum += (t_end - t0) * len(datagrams)
        for it in queued:
            metrics.latency_for(it[2]).observe(t_end - it[4])
        if core.perf is not None:
            core.perf.end_batch(t_end - t0)


def _bucket(seconds):
    return bisect.bisect_left(LATENCY_BUCKETS, seconds)
