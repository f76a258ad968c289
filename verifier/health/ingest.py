"""Health ingest (docs/health.md 3): reports from every transport are decoded at once, queued, and written
in one transaction per event-loop turn (executemany). The binary-auth piggy-back arrives through
`piggyback`, the hook BinAuthCore calls for an authenticated 31..156-byte datagram (wired by the app), and
the edge routes call for such a report an edge verifier forwarded (via "edge").
Each accepted report's traffic since the device's previous report in memory (core.byte_deltas) goes to the
fleet's per-tenant counters (`add_bytes(tenant, rx, tx)`, verifier/fleet/core.py PerfCounters, duck-typed;
`perf` returns them or None), which give GET /v1/fleet/status its data rate."""

import asyncio
import collections
import logging

from prometheus_client.core import CounterMetricFamily

from verifier.health import core
from verifier.registry.model import Policy

log = logging.getLogger("janua.verifier.health")

HISTORY_MEMORY = 8      # decoded reports per device kept in memory for the recommendations
FLUSH_S = 1.0           # accepted reports are written at most this long after they arrive (write-behind) ...
MAX_QUEUE = 20_000      # ... or at once when this many wait
MEMORY_DEVICES = 100_000    # devices whose recent reports and row the ingest keeps (least recently reporting dropped)


class HealthIngest:
    def __init__(self, storage, clock, slot_s=900, perf=lambda: None):
        self._storage = storage
        self._clock = clock
        self._slot_s = slot_s
        self._perf = perf           # () -> the fleet's counters with add_bytes(tenant, rx, tx), or None
        self._queue = []
        self._scheduled = False
        self._recent = {}           # device id -> deque of core.brief() of its last reports
        self._devices = {}          # device id -> (the device columns the score reads, drift_s), in report order
        self._written = {}          # device id -> (health_score, reported_version) as last written
        self.counts = collections.Counter()     # (via, result) -> reports
        # the alerts feature's baselines (verifier/alerts/watch.py, duck-typed): observe(device_id, tenant_id,
        # fields, now) per accepted report, .dirty, and write(storage) inside this batch's transaction
        self.watch = None

    def _device(self, device_id):
        # (the few device columns the score reads, the tenant's drift_s), kept while the device reports
        got = self._devices.pop(device_id, None)
        if got is None:
            dev = self._storage.get_device(device_id)
            if dev is None:
                return None, None
            tenant = self._storage.get_tenant(dev["tenant_id"])
            got = ({k: dev.get(k) for k in ("psk_expires_at", "health_score", "reported_version")},
                   Policy.from_json(tenant["policy"]).drift_s)
            if len(self._devices) >= MEMORY_DEVICES:         # the least recently reporting device goes
                old = next(iter(self._devices))
                del self._devices[old]
                self._recent.pop(old, None)
                self._written.pop(old, None)
        self._devices[device_id] = got                       # last in the order: the most recent
        return got

    def collect(self):
        """janua_health_reports_total{via,result} (registered on the app's metrics registry)."""
        fam = CounterMetricFamily("janua_health_reports", "Health reports by transport and result (ok or the "
                                  "refusal reason, docs/health.md 1)", labels=("via", "result"))
        for (via, result), n in sorted(self.counts.items()):
            fam.add_metric((via, result), n)
        yield fam

    # binary auth's cache listener (BinAuthCore.listeners): told of every admin change

    def forget(self, device_id):
        """The device changed (lifecycle, credentials) or is gone: its row is read again; a deleted device's
        queued reports are dropped (they would write rows for a device that no longer exists)."""
        self._devices.pop(device_id, None)
        self._written.pop(device_id, None)
        if any(r[0] == device_id for r in self._queue) and self._storage.get_device(device_id) is None:
            self._queue = [r for r in self._queue if r[0] != device_id]
            self._recent.pop(device_id, None)

    def forget_tenant(self, tenant_id):
        # a policy change (drift_s): every device's row is read again at its next report
        self._devices.clear()

    def forget_all(self):
        self._devices.clear()
        self._written.clear()

    def piggyback(self, st, request20, rest, now, transport, via="binauth"):
        """Check the tag under the device's K_health and ingest; the refusal reason or "ok". `st` has
        device_id, tenant_id and health_key; `via` is "edge" for a report an edge verifier forwarded
        (verifier/edge/routes.py: its request was decided OK there)."""
        try:
            fields = core.check_piggyback(st.health_key, request20, rest)
        except core.Refused as e:
            self.counts[(via, e.reason)] += 1
            return e.reason
        return self._accept(st.device_id, st.tenant_id, via, rest[:-core.TAG_LEN], fields, now)

    def ingest(self, device_id, tenant_id, via, report, now):
        """A report that its transport authenticated (CoAP, MQTT, OTA check): "ok" or the refusal reason."""
        try:
            fields = core.decode(report)
        except core.Refused as e:
            self.counts[(via, e.reason)] += 1
            return e.reason
        return self._accept(device_id, tenant_id, via, report, fields, now)

    def _accept(self, device_id, tenant_id, via, report, fields, now):
        self.counts[(via, "ok")] += 1
        dev, drift = self._device(device_id)
        recent = self._recent.get(device_id)
        if recent is None:
            recent = self._recent[device_id] = collections.deque(maxlen=HISTORY_MEMORY)
        elif recent[-1][0] is not None and recent[-1][0] > now:
            # older than a report this process already took (an edge's, delivered late): history only; the
            # score, baselines, traffic and the latest report stay those of the newer one
            self._queue.append((device_id, tenant_id, int(now), via, bytes(report), fields,
                                core.slot_of(now, self._slot_s), None, None))
            self._schedule()
            return "ok"
        latest = fields.copy()
        latest["received_at"] = now
        found = core.findings(latest, recent, dev, {"now": now, "drift_s": drift})
        rx, tx = core.deltas(recent, latest)
        recent.append(core.brief(fields, now))
        perf = self._perf()
        if perf is not None and (rx or tx):
            perf.add_bytes(tenant_id, rx, tx)
        if self.watch is not None:
            self.watch.observe(device_id, tenant_id, fields, now)
        score = core.score_of(found)
        ver = fields.get("app_version")
        was = self._written.get(device_id)
        if was is None:
            was = (dev.get("health_score"), dev.get("reported_version")) if dev else (None, None)
        cols = (score, ver if ver is not None else was[1])
        if cols == was:
            score = None                # the device columns hold these already: no UPDATE in the batch
        else:
            self._written[device_id] = cols
        self._queue.append((device_id, tenant_id, int(now), via, bytes(report), fields,
                            core.slot_of(now, self._slot_s), score, ver))
        self._schedule()
        return "ok"

    def _schedule(self):
        if len(self._queue) >= MAX_QUEUE:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:        # no loop (a sans-loop caller): written at the next flush()
                self._scheduled = False

    def briefs(self, device_id):
        """core.brief() of the device's last reports this process accepted, oldest first, or None."""
        recent = self._recent.get(device_id)
        return list(recent) if recent else None

    def sync(self):
        """Write what is queued now, so a read that follows sees it (the health, fleet and alert routes)."""
        if self._queue:
            self.flush()

    def flush(self):
        # the timer that a first queued report set may still fire after an early flush: it then writes
        # what queued since (or nothing), and the next report sets a new one
        self._scheduled = False
        rows, self._queue = self._queue, []
        watch = self.watch
        if rows or (watch is not None and watch.dirty):
            storage = self._storage
            try:
                with storage.transaction():      # the reports, the baselines and any alert: one commit
                    if rows:
                        storage.add_health_reports(rows)
                    if watch is not None:
                        watch.write(storage)
            except Exception:
                log.exception("health: could not write %d reports", len(rows))
                for r in rows:              # not written: the next report of each writes its columns again
                    self._written.pop(r[0], None)


async def maintain(storage, clock, every_s=300, keep_s=86400):
    """Delete history older than `keep_s`, every `every_s` seconds."""
    while True:
        try:
            storage.prune_health(clock() - keep_s)
        except Exception:
            log.exception("health: prune failed")
        await asyncio.sleep(every_s)
