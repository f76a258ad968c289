"""The audit trail's two bounds: refusals of unauthenticated requests become counted summary rows, and
old rows expire (docs/api.md "Audit trail").

`RefusalSummary` is sans-IO. Every protocol hands it the refusals it decided before any tag, MAC,
password or signature was verified (a malformed packet, an unknown id, a rate limit, a wrong tag):
anyone can send those without limit, so they are counted (Prometheus, by transport and result) and
turn into at most one audit row per (tenant, device, action, transport, result) per interval, which
says how many requests were refused, from how many source hosts, a sample source and the last reason.
Its memory is bounded (MAX_KEYS open windows, MAX_SOURCES distinct hosts each, MAX_HOSTS in all). Decisions made after
the request was authenticated (OK, REPLAY, TIME_SYNC, NOT_ACTIVE) and admin actions keep one row each
and never come here.

`prune()` enforces the retention policy: for every tenant its policy's maximum age and row count, for
rows with no tenant the verifier-wide ones (Config.audit_untenanted_*). It deletes in small batches
and yields to the event loop between them, so it never holds the loop for long. `maintain()` is the
background task the app runs in its cleanup_ctx: it writes due summaries every few seconds and prunes
every Config.audit_prune_s.
"""

import asyncio
import logging

from verifier.registry.model import Policy

log = logging.getLogger("janua.verifier.audit")

SUMMARY_KIND = "summary"      # the audit `kind` of a summary row
MAX_KEYS = 1000               # open windows; past it new keys fold into their tenant-wide key (no device)
MAX_SOURCES = 1024            # distinct source hosts remembered per window; at it the count says "1024+"
MAX_HOSTS = 100_000           # and in all open windows together; past it new hosts mark their window "+"
PRUNE_BATCH = 500             # rows per DELETE statement (about 1 ms each on 1M rows)
SCAN_STEP = 10_000            # index entries per statement while finding the row-count cutoff
TICK_S = 5.0                  # how often maintain() writes due summaries


def source_host(source):
    """The host of a source: an (ip, port) tuple's ip; a string is already a host (or host:port text)."""
    return source[0] if type(source) is tuple else source


def source_text(source):
    return f"{source[0]}:{source[1]}" if type(source) is tuple else (None if source is None else str(source)[:64])


class _Window:
    __slots__ = ("first", "last", "count", "hosts", "full", "sample", "reason")


class RefusalSummary:
    """Counts unauthenticated refusals; emits at most one audit row per key per `interval_s`."""

    def __init__(self, interval_s=60):
        self.interval_s = interval_s
        self.counts = {}            # (transport, result) -> refusals noted (Prometheus, since start)
        self.rows_emitted = 0
        self.last_now = 0
        self.hosts_held = 0         # source hosts remembered in all open windows (at most MAX_HOSTS)
        self._open = {}             # key -> _Window, oldest first

    @property
    def open_windows(self):
        return len(self._open)

    def note(self, now, tenant_id, device_hex, action, transport, source, result, reason):
        """Count one refusal of an unauthenticated request (nothing is written here)."""
        tnow = int(now)
        if tnow > self.last_now:
            self.last_now = tnow
        ck = (transport, result)
        self.counts[ck] = self.counts.get(ck, 0) + 1
        key = (tenant_id, device_hex, action, transport, result)
        w = self._open.get(key)
        if w is None:
            if len(self._open) >= MAX_KEYS and device_hex is not None:
                key = (tenant_id, None, action, transport, result)
                w = self._open.get(key)
            if w is None:
                w = self._open[key] = _Window()
                w.first, w.count, w.hosts, w.full, w.sample = tnow, 0, set(), False, source_text(source)
        w.last = tnow
        w.count += 1
        w.reason = reason
        if not w.full:
            hosts = w.hosts
            n = len(hosts)
            if self.hosts_held >= MAX_HOSTS:
                if source_host(source) not in hosts:
                    w.full = True
                return
            hosts.add(source_host(source))
            if len(hosts) > n:
                self.hosts_held += 1
                if len(hosts) >= MAX_SOURCES:
                    w.full = True

    def due(self, now=None):
        """The summary rows of windows at least `interval_s` old at `now` (default: the latest time
        noted); those windows close, and the next refusal of the same key opens a new one."""
        now = self.last_now if now is None else max(int(now), self.last_now)
        limit = now - self.interval_s
        keys = []
        for k, w in self._open.items():     # oldest first: stop at the first window still open, so a
            if w.first > limit:             # flush per batch costs O(due), not O(open windows)
                break
            keys.append(k)
        return [self._row(k, self._open.pop(k)) for k in keys]

    def drain(self):
        """The rows of every open window (at shutdown)."""
        rows = [self._row(k, w) for k, w in self._open.items()]
        self._open.clear()
        return rows

    def _row(self, key, w):
        tenant_id, device_hex, action, transport, result = key
        self.rows_emitted += 1
        self.hosts_held -= len(w.hosts)
        hosts = f"{len(w.hosts)}+" if w.full else str(len(w.hosts))
        reason = (f"{w.count} refused from {hosts} source host(s) in [{w.first}, {w.last}]; "
                  f"last reason: {w.reason}")[:300]
        return (w.last, tenant_id, SUMMARY_KIND, device_hex, None, action, transport, w.sample, result, reason)


# retention

async def prune(storage, now, untenanted_max_age_s, untenanted_max_rows):
    """Delete expired audit rows (by age, then by count), tenant by tenant; return the number deleted."""
    deleted = 0
    scopes = [(None, untenanted_max_age_s, untenanted_max_rows)]
    for tenant in storage.list_tenants():
        pol = Policy.from_json(tenant["policy"])
        scopes.append((tenant["id"], pol.audit_max_age_days * 86400, pol.audit_max_rows))
    for tenant_id, max_age_s, max_rows in scopes:
        while True:                                  # oldest first while they are older than the limit
            n = storage.delete_audit(tenant_id, PRUNE_BATCH, older_than=int(now) - max_age_s)
            deleted += n
            await asyncio.sleep(0)
            if n < PRUNE_BATCH:
                break
        cutoff = await _row_cutoff(storage, tenant_id, max_rows)
        while cutoff is not None:                   # everything older than the max_rows-th newest row
            n = storage.delete_audit(tenant_id, PRUNE_BATCH, below_seq=cutoff)
            deleted += n
            await asyncio.sleep(0)
            if n < PRUNE_BATCH:
                break
    return deleted


async def _row_cutoff(storage, tenant_id, keep):
    """The seq of the tenant's keep-th newest row if it has more than `keep` rows, else None. Walks the
    (tenant_id, seq) index backwards SCAN_STEP entries per statement, yielding in between."""
    bounds = storage.audit_bounds(tenant_id)
    if bounds is None or bounds[1] - bounds[0] + 1 <= keep:     # seq span bounds the count: nothing to do
        return None
    below, remaining = None, keep
    while remaining > 0:
        step = min(SCAN_STEP, remaining)
        below = storage.audit_seq_before(tenant_id, below, step - 1)
        if below is None:
            return None
        remaining -= step
        await asyncio.sleep(0)
    return below


async def write_due(storage, summary, now, final=False):
    """Write the summary rows due at `now` (final: every open one). A failure is logged; the counts
    stay in the metrics."""
    rows = summary.drain() if final else summary.due(now)
    if rows:
        try:
            storage.add_audit(rows)
        except Exception:          # sqlite3.Error or StorageError: the task must outlive a bad moment
            log.exception("audit: could not write %d summary row(s)", len(rows))


async def maintain(storage, summary, clock, prune_every_s, untenanted_max_age_s, untenanted_max_rows):
    """The background task: due summaries every TICK_S, pruning at start and every prune_every_s."""
    next_prune = None
    while True:
        now = clock()
        await write_due(storage, summary, now)
        if next_prune is None or now >= next_prune:
            next_prune = now + prune_every_s
            try:
                n = await prune(storage, now, untenanted_max_age_s, untenanted_max_rows)
            except Exception:
                log.exception("audit: pruning failed; next attempt in %d s", prune_every_s)
            else:
                if n:
                    log.info("audit: pruned %d expired row(s)", n)
        await asyncio.sleep(TICK_S)
