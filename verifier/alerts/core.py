"""Anomaly rules (docs/health.md 5), sans-IO: per-device baselines (EWMA per hour of resets, auth failures
and reports) updated by every accepted health report, the three device rules evaluated on that update,
and the fleet rule (failed binary-auth decisions of many devices of a tenant within one minute). Time is
always an argument; nothing here reads the clock or touches storage."""

HALF_LIFE_H = 24                          # the baselines' half-life, hours
ALPHA = 1 - 0.5 ** (1 / HALF_LIFE_H)      # EWMA weight of one completed hour (about 0.0285)
MIN_HOURS = 3         # a device rule fires only after this many completed hours since the device's first report
MIN_REPORTS = 3       # ... and this many reports before the current hour
MAX_GAP_H = 24 * 365  # hours of silence decayed at most (beyond that the baselines are 0 anyway)

RESET_MIN, RESET_FACTOR = 3, 3.0          # device.reset_spike: resets this hour >= 3 and > 3 x baseline
AUTH_MIN, AUTH_FACTOR = 5, 3.0            # device.auth_failures_spike: failures this hour >= 5 and > 3 x baseline
FLOOD_MIN, FLOOD_FACTOR = 12, 4.0         # device.report_flood: reports this hour >= 12 and > 4 x baseline

FLEET_MIN_DEVICES = 10        # fleet.auth_failure_spike: distinct failing devices in the minute >= 10
FLEET_FACTOR = 5.0            # ... and failures in the minute > 5 x the tenant's baseline per minute
FLEET_BASELINE_MIN = 60       # the baseline: fleet_perf failures per minute over the 60 minutes before
FLEET_MAX_DEVICES = 10_000    # distinct devices remembered per tenant and minute (the count stops there)
# binary-auth results that count as a failure for the fleet rule (TIME_SYNC is a board's normal first
# contact and NOT_ACTIVE an admin's decision: neither is counted)
FLEET_FAILURES = frozenset(("SIGNATURE", "REPLAY", "RATE_LIMITED", "LOCKED_OUT"))

AUTO_RESOLVE_S = 86400       # an open alert not seen for this long is resolved by the verifier ("auto")
AUTO_RESOLVE_BATCH = 500      # alerts resolved per evaluation at most

RESET_SPIKE = "device.reset_spike"
AUTH_SPIKE = "device.auth_failures_spike"
REPORT_FLOOD = "device.report_flood"
FLEET_AUTH_SPIKE = "fleet.auth_failure_spike"
RULES = (RESET_SPIKE, AUTH_SPIKE, REPORT_FLOOD, FLEET_AUTH_SPIKE)
SEVERITY = {RESET_SPIKE: "critical", AUTH_SPIKE: "warning", REPORT_FLOOD: "warning", FLEET_AUTH_SPIKE: "critical"}
SEVERITIES = ("critical", "warning")


class Baseline:
    """One device's baselines and its current hour's counts (the health_state row)."""

    __slots__ = ("hour", "reports_h", "resets_h", "failures_h", "ewma_reports", "ewma_resets", "ewma_failures",
                 "hours", "reports", "boot_count", "auth_failures", "fired")
    COLUMNS = __slots__

    def __init__(self, row=None):
        row = row or {}
        for name in self.COLUMNS:
            setattr(self, name, row.get(name))
        for name in ("reports_h", "resets_h", "failures_h", "hours", "reports"):
            if getattr(self, name) is None:
                setattr(self, name, 0)
        for name in ("ewma_reports", "ewma_resets", "ewma_failures"):
            if getattr(self, name) is None:
                setattr(self, name, 0.0)
        self.fired = dict(self.fired or {})       # rule -> the hour it last fired in

    def row(self):
        return {name: getattr(self, name) for name in self.COLUMNS}


def _ewma(old, x, first):
    return float(x) if first else ALPHA * x + (1 - ALPHA) * old


def _roll(b, hour):
    """Fold the counts of b.hour (and zeros for the silent hours up to `hour`) into the baselines."""
    gap = hour - b.hour
    first = b.hours == 0
    b.ewma_reports = _ewma(b.ewma_reports, b.reports_h, first)
    b.ewma_resets = _ewma(b.ewma_resets, b.resets_h, first)
    b.ewma_failures = _ewma(b.ewma_failures, b.failures_h, first)
    decay = (1 - ALPHA) ** min(gap - 1, MAX_GAP_H)
    b.ewma_reports *= decay
    b.ewma_resets *= decay
    b.ewma_failures *= decay
    b.hours += gap
    b.hour, b.reports_h, b.resets_h, b.failures_h = hour, 0, 0, 0


def observe(b, fields, now):
    """Count one accepted report (its decoded fields) into the baselines `b` and return the anomalies it
    shows: [(rule, details)], each rule at most once per device per clock hour."""
    hour = int(now) // 3600
    if b.hour is None:
        b.hour = hour
    elif hour > b.hour:
        _roll(b, hour)
    # a report older than the current hour (a clock step back) counts into the current hour
    resets = failures = 0
    boot = fields.get("boot_count")
    if boot is not None:
        if b.boot_count is not None and boot > b.boot_count:
            resets = boot - b.boot_count
        b.boot_count = boot
    af = fields.get("auth_failures")
    if af is not None:
        if b.auth_failures is not None:
            # the board counts since boot: after a reboot (or a counter that went down) the count restarts
            failures = af if (resets or af < b.auth_failures) else af - b.auth_failures
        b.auth_failures = af
    b.reports += 1
    b.reports_h += 1
    b.resets_h += resets
    b.failures_h += failures
    if b.hours < MIN_HOURS or b.reports - b.reports_h < MIN_REPORTS:
        return []
    out = []
    for rule, value, base, least, factor in (
            (RESET_SPIKE, b.resets_h, b.ewma_resets, RESET_MIN, RESET_FACTOR),
            (AUTH_SPIKE, b.failures_h, b.ewma_failures, AUTH_MIN, AUTH_FACTOR),
            (REPORT_FLOOD, b.reports_h, b.ewma_reports, FLOOD_MIN, FLOOD_FACTOR)):
        if value >= least and value > factor * base and b.fired.get(rule) != hour:
            b.fired[rule] = hour
            out.append((rule, {"hour_start": hour * 3600, "value": value, "baseline": round(base, 3),
                               "min": least, "factor": factor}))
    return out


class FleetWindow:
    """Failed binary-auth decisions per tenant in the current minute: their count and distinct devices."""

    def __init__(self):
        self._t = {}                 # tenant -> [minute, failures, set of device ids]
        self._fired = {}             # tenant -> the minute the rule last fired in

    def note(self, tenant_id, device_id, result, now):
        if result not in FLEET_FAILURES:
            return
        minute = int(now) // 60
        w = self._t.get(tenant_id)
        if w is None or w[0] != minute:
            w = self._t[tenant_id] = [minute, 0, set()]
        w[1] += 1
        if len(w[2]) < FLEET_MAX_DEVICES:
            w[2].add(device_id)

    def candidates(self, now):
        """[(tenant, minute, failures, devices)] of this minute with enough distinct devices, not yet fired."""
        minute = int(now) // 60
        out = []
        for tenant_id, (m, n, devs) in list(self._t.items()):
            if m < minute - 1:
                del self._t[tenant_id]
            elif len(devs) >= FLEET_MIN_DEVICES and self._fired.get(tenant_id) != m:
                out.append((tenant_id, m, n, len(devs)))
        return out

    def fired(self, tenant_id, minute):
        self._fired[tenant_id] = minute


def fleet_anomaly(minute, failures, devices, baseline_failures):
    """The fleet rule's details if it holds: `baseline_failures` failed decisions in the FLEET_BASELINE_MIN
    minutes before `minute` (fleet_perf); None otherwise."""
    per_min = baseline_failures / FLEET_BASELINE_MIN
    if devices >= FLEET_MIN_DEVICES and failures > FLEET_FACTOR * per_min:
        return {"minute_start": minute * 60, "failures": failures, "devices": devices,
                "baseline_per_min": round(per_min, 3), "min_devices": FLEET_MIN_DEVICES, "factor": FLEET_FACTOR}
    return None
