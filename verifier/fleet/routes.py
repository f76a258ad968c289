"""Fleet status (docs/fleet.md): GET /v1/fleet/status, the fleet gauges on /metrics (a METRIC_SOURCES
entry: verifier/web/ops.py appends what it renders), and the fleet task: it flushes the in-process
PerfCounters into fleet_perf every FLUSH_S, folds last-seen buckets older than 7 days and prunes
fleet_perf rows older than a day."""

import asyncio
import logging

from aiohttp import web

from verifier.appkeys import CONFIG, CORE, HEALTH, METRIC_SOURCES, STORAGE
from verifier.fleet import core as fleet
from verifier.tasks import stop
from verifier.web.auth import require_role as _role
from verifier.web.request import request_now as _now

log = logging.getLogger("janua.verifier.fleet")

FLUSH_S = 10.0
MAINTAIN_EVERY = 60           # flushes between two folds/prunes (10 min)
METRIC_ROWS = 1000            # gauges' rows per dimension at most (label cardinality stays bounded)


status = fleet.status       # the document (verifier/fleet/core.py); the console renders it too


async def get_status(request):
    _, tenant_id = _role(request, "viewer")
    ingest = request.app.get(HEALTH)
    if ingest is not None:          # the health reports written behind count in the buckets and firmware
        ingest.sync()
    return web.json_response(status(request.app[STORAGE], tenant_id, _now(request)))


def _esc(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(storage, now):
    """The fleet gauges as Prometheus text (bytes), from the aggregate tables."""
    names = {"status": ("janua_fleet_devices", "status", "Devices by lifecycle status"),
             "health": ("janua_fleet_health", "bucket", "Devices by health bucket"),
             "firmware": ("janua_fleet_firmware", "version", "Devices by firmware version")}
    by = {d: [] for d in names}
    for tenant, dim, key, n in storage.fleet_metrics(METRIC_ROWS):
        by[dim].append(f'{names[dim][0]}{{tenant="{_esc(tenant)}",{names[dim][1]}="{_esc(key)}"}} {n}')
    lines = []
    for dim, (name, _, doc) in names.items():
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} gauge"] + by[dim]
    lines += ["# HELP janua_fleet_online Devices authenticated within the online window",
              "# TYPE janua_fleet_online gauge"]
    since = (int(now) - fleet.ONLINE_WINDOW_S) // 60
    lines += [f'janua_fleet_online{{tenant="{_esc(t)}"}} {n}' for t, n in storage.fleet_online(since)]
    return ("\n".join(lines) + "\n").encode()


def flush(storage, perf, now):
    storage.add_fleet_perf(int(now) // 60, perf.take())


def maintain_once(storage, now):
    minute = int(now) // 60
    storage.fold_seen((int(now) - fleet.FOLD_AFTER_S) // 60)
    storage.prune_fleet_perf(minute - 1440)


async def _fleet_ctx(app):
    storage, clock, perf = app[STORAGE], app[CONFIG].clock, fleet.PerfCounters()
    app[CORE].perf = perf

    async def run():
        n = 0
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                flush(storage, perf, clock())
                if n % MAINTAIN_EVERY == 0:
                    maintain_once(storage, clock())
            except Exception:
                log.exception("fleet: flush/maintenance failed")
            n += 1

    task = asyncio.create_task(run())
    yield
    await stop(task)
    try:
        flush(storage, perf, clock())
    except Exception:
        log.exception("fleet: last flush failed")


def setup(app):
    app.setdefault(METRIC_SOURCES, []).append(lambda a: render_metrics(a[STORAGE], a[CONFIG].clock()))


ROUTES = [("GET", "/v1/fleet/status", get_status)]
CLEANUP_CTX = [_fleet_ctx]
