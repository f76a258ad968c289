"""Fleet status (docs/fleet.md), sans-IO: the health bucket rule, the status document built from the
aggregate rows the store keeps, and `PerfCounters`, the per-tenant auth counters binary auth bumps in
process memory and the fleet task flushes into fleet_perf. Time is always an argument."""

ONLINE_WINDOW_S = 600         # online = authenticated within the last ONLINE_WINDOW_S seconds
PERF_WINDOW_S = 3600          # the performance section sums the last hour of fleet_perf
FOLD_AFTER_S = 7 * 86400      # last-seen minute buckets older than this are folded into one
TOP = 50                      # firmware versions and locations listed; the rest is "other"
HEALTH_BUCKETS = ("healthy", "degraded", "unhealthy", "compromised", "unknown")


def health_bucket(compromised, attestation_status, health_score):
    """The device's health bucket (its compromised flag, attestation status and reported health score);
    the same rule as the SQL of verifier/fleet/store.py HEALTH_SQL."""
    if compromised or attestation_status == "contraindicated":
        return "compromised"
    if health_score is None:
        return "unknown"
    if health_score > 80:
        return "healthy"
    if health_score >= 50:
        return "degraded"
    return "unhealthy"


def top(counts, n=TOP):
    """{key: count} with the n largest (ties by key) and the rest summed under "other"."""
    items = sorted(((k, v) for k, v in counts.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
    out = dict(items[:n])
    rest = sum(v for _, v in items[n:])
    if rest:
        out["other"] = out.get("other", 0) + rest
    return out


def status_document(tenant_id, now, counts, seen, perf, open_alerts, online_window_s=ONLINE_WINDOW_S):
    """The fleet status (docs/fleet.md) from the aggregates: counts {dim: {key: n}} (dims status, health,
    firmware, location), seen [(minute, n)] (minute 0 = folded, older than 7 days), perf {attempts,
    failures, latency_ms_sum, latency_n, rx_bytes, tx_bytes} over the last PERF_WINDOW_S."""
    by_status = {k: v for k, v in sorted(counts.get("status", {}).items()) if v > 0}
    total = sum(by_status.values())
    health = {b: counts.get("health", {}).get(b, 0) for b in HEALTH_BUCKETS}

    def seen_since(seconds):
        first = (int(now) - seconds) // 60
        return sum(n for m, n in seen if m > 0 and m >= first)

    ever = sum(n for _, n in seen)
    online = seen_since(online_window_s)
    attempts, failures = perf["attempts"], perf["failures"]
    return {
        "tenant_id": tenant_id,
        "generated_at": int(now),
        "totals": {"devices": total},
        "by_status": by_status,
        "health": health,
        "connectivity": {
            "online": online, "offline": total - online,
            "rule": f"online = authenticated within the last online_window_s (default {ONLINE_WINDOW_S} s)",
            "online_window_s": online_window_s,
            "seen_1h": seen_since(3600), "seen_24h": seen_since(86400), "seen_7d": seen_since(7 * 86400),
            "never_seen": max(total - ever, 0),
        },
        "firmware_versions": top(counts.get("firmware", {})),
        "locations": top(counts.get("location", {})),
        "performance": {
            "window_s": PERF_WINDOW_S, "auth_attempts": attempts, "auth_failures": failures,
            "auth_success_rate": None if not attempts else round((attempts - failures) / attempts, 4),
            "avg_auth_latency_ms": None if not perf["latency_n"] else round(perf["latency_ms_sum"] / perf["latency_n"], 3),
            "data_rate_bps": round((perf["rx_bytes"] + perf["tx_bytes"]) * 8 / PERF_WINDOW_S, 3),
        },
        "alerts": {"open": open_alerts},
    }


def status(storage, tenant_id, now):
    """The tenant's fleet status document: reads only the aggregate tables (GET /v1/fleet/status, the console)."""
    minute = int(now) // 60
    return status_document(
        tenant_id, now, storage.fleet_counts(tenant_id), storage.fleet_seen(tenant_id),
        storage.fleet_perf(tenant_id, minute - PERF_WINDOW_S // 60 + 1), storage.count_open_alerts(tenant_id))


class PerfCounters:
    """Per-tenant counters accumulated in process. Binary auth calls `note` for each decision about a
    known device and `end_batch` with the batch's latency (verifier/binauth/core.py, batch.py: they
    hold it as `core.perf`, duck-typed, so binauth imports no fleet module); the health feature calls
    `add_bytes` with the byte deltas a board reports. `take` empties them for the flush."""

    def __init__(self):
        self._t = {}              # tenant -> [attempts, failures, latency_ms_sum, latency_n, rx, tx]
        self._batch = {}          # tenant -> decisions in the current batch

    def _row(self, tenant_id):
        row = self._t.get(tenant_id)
        if row is None:
            row = self._t[tenant_id] = [0, 0, 0.0, 0, 0, 0]
        return row

    def note(self, tenant_id, ok):
        row = self._row(tenant_id)
        row[0] += 1
        if not ok:
            row[1] += 1
        self._batch[tenant_id] = self._batch.get(tenant_id, 0) + 1

    def end_batch(self, seconds):
        """Every decision of the batch took `seconds` (from the drain to the last reply)."""
        ms = seconds * 1000.0
        for tenant_id, n in self._batch.items():
            row = self._row(tenant_id)
            row[2] += ms * n
            row[3] += n
        self._batch.clear()

    def add_bytes(self, tenant_id, rx, tx):
        """Bytes a board reported received (rx) and sent (tx) since its last report (deltas >= 0)."""
        row = self._row(tenant_id)
        row[4] += max(int(rx), 0)
        row[5] += max(int(tx), 0)

    def take(self):
        """{tenant: (attempts, failures, latency_ms_sum, latency_n, rx, tx)} since the last take."""
        out, self._t = self._t, {}
        return {k: tuple(v) for k, v in out.items()}
