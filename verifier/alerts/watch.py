"""The alerts of this verifier instance (docs/health.md 5): `AlertWatch` keeps the per-device baselines
in memory (health_state is their persisted copy, read once per device per process and written in the
health ingest's batch transaction), counts failed binary-auth decisions per tenant and minute (the
binary-auth core's `auth_failure_sink`), and opens alerts: the alert row, an audit row (kind "alert"),
the notify event `alert.opened` in the same transaction, and `janua_alerts_total{rule}`."""

import collections
import logging
import time

from prometheus_client.core import CounterMetricFamily

from verifier.alerts import core
from verifier.notify.core import emit

log = logging.getLogger("janua.verifier.alerts")

ACTOR = "alerts"
AUTO = "auto"                   # resolved_by of an alert the verifier resolved (core.AUTO_RESOLVE_S)
STATE_WRITE_S = 60              # changed baselines are written at most this often (and with every alert, and at stop)


def open_alerts(storage, items, now):
    """items: [(tenant_id, device_id or None, rule, details)]; in one transaction. The rules opened."""
    opened = []
    with storage.transaction():
        for tenant_id, device_id, rule, details in items:
            severity = core.SEVERITY[rule]
            alert_id, new = storage.raise_alert(tenant_id, device_id, rule, severity, details, now)
            if not new:
                continue
            hex_id = device_id.hex() if device_id is not None else None
            storage.add_audit([(int(now), tenant_id, "alert", hex_id, ACTOR, "alert.opened", None, None, "open",
                                rule, f"alert {alert_id}")])
            emit(storage, tenant_id, "alert.opened", {"alert_id": alert_id, "rule": rule, "severity": severity,
                                                      "device_id": hex_id, "details": details}, now)
            opened.append(rule)
    return opened


class AlertWatch:
    def __init__(self, storage, clock=time.time):
        self._storage = storage
        self._clock = clock           # the app's clock (config.clock)
        self._wrote = clock()         # when the changed baselines were last written
        self.final = False            # set at stop: the next write() writes every changed baseline
        self._baselines = {}          # device id -> core.Baseline
        self._dirty = {}              # device id -> tenant id: baselines to write at the next flush
        self._pending = []            # (tenant, device, rule, details, now) to open at the next flush
        self.fleet = core.FleetWindow()
        self.opened = collections.Counter()      # rule -> alerts opened by this instance

    @property
    def dirty(self):
        """Something to write in this batch: an alert to open, or changed baselines whose time has come."""
        return bool(self._pending or (self._dirty and self._due()))

    def _due(self):
        return self.final or self._clock() - self._wrote >= STATE_WRITE_S

    # the health ingest's side (verifier/health/ingest.py: HealthIngest.watch)

    def observe(self, device_id, tenant_id, fields, now):
        b = self._baselines.get(device_id)
        if b is None:
            b = self._baselines[device_id] = core.Baseline(self._storage.get_health_state(device_id))
        for rule, details in core.observe(b, fields, now):
            self._pending.append((tenant_id, device_id, rule, details, int(now)))
        self._dirty[device_id] = tenant_id

    def write(self, storage):
        """Called inside the ingest's batch transaction: the alerts, and the baselines that changed when
        STATE_WRITE_S has passed since the last write (or an alert opens, or at stop): a restart loses at most
        that much of the current hour's counts, and a report costs no baseline write of its own."""
        pending, self._pending = self._pending, []
        if self._dirty and (pending or self._due()):
            dirty, self._dirty = self._dirty, {}
            self._wrote = self._clock()
            storage.save_health_states([(did, tid, self._baselines[did].row()) for did, tid in dirty.items()])
        for tenant_id, device_id, rule, details, now in pending:
            for r in open_alerts(storage, [(tenant_id, device_id, rule, details)], now):
                self.opened[r] += 1

    # the binary-auth side (BinAuthCore.auth_failure_sink) and the periodic evaluation of the fleet rule

    def auth_failed(self, tenant_id, device_id, result, now):
        self.fleet.note(tenant_id, device_id, result, now)

    def tick(self, now):
        """Evaluate the fleet rule for the tenants with enough failing devices this minute, and resolve
        the alerts not seen for AUTO_RESOLVE_S."""
        items = []
        for tenant_id, minute, failures, devices in self.fleet.candidates(now):
            base = (self._storage.fleet_perf(tenant_id, minute - core.FLEET_BASELINE_MIN)["failures"]
                    - self._storage.fleet_perf(tenant_id, minute)["failures"])
            details = core.fleet_anomaly(minute, failures, devices, base)
            if details is not None:
                self.fleet.fired(tenant_id, minute)
                items.append((tenant_id, None, core.FLEET_AUTH_SPIKE, details))
        if items:
            for r in open_alerts(self._storage, items, now):
                self.opened[r] += 1
        self.resolve_stale(now)

    def resolve_stale(self, now):
        """Resolve (as AUTO) the open alerts not seen for AUTO_RESOLVE_S, with an audit row each."""
        storage, done = self._storage, []
        stale = storage.stale_alerts(int(now) - core.AUTO_RESOLVE_S, core.AUTO_RESOLVE_BATCH)
        if not stale:                # the usual case: one indexed read, no write transaction
            return done
        with storage.transaction():
            for a in stale:
                got, resolved = storage.resolve_alert(a["tenant_id"], a["id"], now, AUTO)
                if resolved:         # not resolved meanwhile by an admin or another instance
                    done.append(got)
                    storage.add_audit([(int(now), a["tenant_id"], "alert", a["device_id"], ACTOR, "alert.resolve",
                                        None, None, "ok", a["rule"],
                                        f"alert {a['id']}: not seen since {a['last_seen_at']}")])
        return done

    def collect(self):
        fam = CounterMetricFamily("janua_alerts", "Alerts opened, by rule (docs/health.md 5)", labels=("rule",))
        for rule in core.RULES:
            fam.add_metric((rule,), self.opened.get(rule, 0))
        yield fam
