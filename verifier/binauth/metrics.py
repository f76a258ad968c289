"""Prometheus metrics with a per-app registry. The hot path bumps plain ints; they are folded
into metric families only when /metrics is scraped."""

import bisect

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from verifier.binauth.core import STATUS_NAMES

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Latency:
    """A histogram as a list of ints (observe is one bisect and two additions)."""

    def __init__(self):
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds):
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds


class Metrics:
    def __init__(self, core):
        self.core = core
        self.latency = {}          # transport -> Latency
        self.provisioned = 0
        self.batches = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def latency_for(self, transport):
        lat = self.latency.get(transport)
        if lat is None:
            lat = self.latency[transport] = Latency()
        return lat

    def collect(self):
        dec = CounterMetricFamily("janua_auth_decisions", "Binary auth decisions by transport and result",
                                  labels=("transport", "result"))
        for transport, counts in sorted(self.core.counts.items()):
            for status, n in enumerate(counts):
                if n:
                    dec.add_metric((transport, STATUS_NAMES[status]), n)
        yield dec
        hist = HistogramMetricFamily("janua_auth_latency_seconds",
                                     "Binary auth latency, datagram/request received to reply sent",
                                     labels=("transport",))
        for transport, lat in sorted(self.latency.items()):
            buckets, acc = [], 0
            for bound, n in zip(LATENCY_BUCKETS + (float("inf"),), lat.counts):
                acc += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
            hist.add_metric((transport,), buckets, lat.sum)
        yield hist
        summary = self.core.summary
        ref = CounterMetricFamily("janua_unauthenticated_refusals",
                                  "Refusals of requests that were not authenticated (every protocol), by "
                                  "transport and result; the audit trail holds only summaries of them",
                                  labels=("transport", "result"))
        for (transport, result), n in sorted(summary.counts.items()):
            ref.add_metric((transport, result), n)
        yield ref
        rows = CounterMetricFamily("janua_audit_summary_rows", "Summary rows written for unauthenticated refusals")
        rows.add_metric((), summary.rows_emitted)
        yield rows
        prov = CounterMetricFamily("janua_devices_provisioned", "Devices provisioned by this process")
        prov.add_metric((), self.provisioned)
        yield prov
        b = GaugeMetricFamily("janua_auth_batches", "Group-commit batches written by this process")
        b.add_metric((), self.batches)
        yield b
        cache = self.core.devices
        c = GaugeMetricFamily("janua_auth_cache_devices",
                              "Devices in the binary-auth cache (bound: --auth-cache-devices)")
        c.add_metric((), len(cache))
        yield c
        ev = CounterMetricFamily("janua_auth_cache_evictions",
                                 "Devices evicted from the binary-auth cache to make room")
        ev.add_metric((), cache.evictions)
        yield ev

    def render(self):
        return generate_latest(self.registry)
