"""The edge verifier application (`janua serve --edge --upstream URL`, docs/tokens.md "Edge verifier").

verifier.app.create_app(config) hands over here when config.edge is set. The edge serves binary auth
(UDP and POST /v1/binauth) with the cloud's BinAuthCore and group commit, fed from the edge cache
(verifier.edge.EdgeBinAuthCore; a request carrying a health report is decided on its first 20 bytes and the
report queued for the upstream), offline chain tokens (POST /v1/auth/device/offline), /healthz, /metrics
and GET /v1/edge/status. It has no registry, no admin API and no DTLS endpoint. A background task syncs
with the upstream every sync_interval_s (sooner after a failure, and as soon as the upstream answers again).
"""

import asyncio
import logging

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from verifier.appkeys import BATCHER, CONFIG, CORE, DTLS, DTLS_PORT, METRICS, SEALER, UDP_PORT
from verifier.binauth.batch import AuthBatcher
from verifier.binauth.core import HTTP_STATUS, MALFORMED, PIGGY_MAX, PIGGY_MIN, REQUEST_LEN, unauthenticated_reply
from verifier.registry.audit import RefusalSummary, write_due
from verifier.tokens.chain import TOKEN_LEN
from verifier.config import make_sealer
from verifier.edge.attestor import Attestor
from verifier.edge.core import EdgeBinAuthCore, EdgeCore
from verifier.edge.store import EdgeStore
from verifier.edge.upstream import Upstream
from verifier.errors import ValidationError
from verifier.web import ops
from verifier.web.middleware import error_middleware
from verifier.web.request import limit_source, read_json, request_source
from verifier.binauth.metrics import Metrics
from verifier.binauth.udp import open_udp
from verifier.tasks import stop

log = logging.getLogger("janua.verifier.edge")

EDGE = web.AppKey("edge", EdgeCore)
EDGE_STORE = web.AppKey("edge_store", EdgeStore)
ATTESTOR = web.AppKey("attestor", Attestor)
POLL_S = 1.0                  # how often (real time) the sync task compares the clock with next_sync
MAX_WAITING = 256             # UDP datagrams held back while their devices are fetched from the upstream
MAX_BODY = 4096


def create_edge_app(config):
    """Build the edge verifier. Raises ConfigError at once if there is no KEK (the edge's own)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[SEALER] = make_sealer(config)
    app.cleanup_ctx.append(_edge_ctx)
    app.cleanup_ctx.append(_udp_ctx)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app


async def _edge_ctx(app):
    config = app[CONFIG]
    store = EdgeStore(config.db_path, config.edge.health_outbox_max, config.edge.health_outbox_bytes)
    upstream = Upstream(config.edge.upstream, config.edge.token)
    task = attesting = None
    try:
        await upstream.open()
        if config.edge.tpm:                  # attest this gateway before the first sync (its keys depend on it)
            attestor = app[ATTESTOR] = Attestor(config.edge, upstream)
            await attestor.start()
            attesting = asyncio.ensure_future(attestor.loop())
        edge = EdgeCore(config.edge, store, app[SEALER], upstream)
        core = EdgeBinAuthCore(edge, store, config.source_capacity, config.source_refill_per_s,
                               config.auth_cache_devices)
        core.summary = RefusalSummary(config.audit_summary_s)    # unauthenticated refusals (verifier/registry/audit.py)
        app[EDGE], app[EDGE_STORE], app[CORE] = edge, store, core
        app[METRICS] = Metrics(core)
        app[METRICS].registry.register(_HealthOutboxMetrics(core, edge, store))
        app[BATCHER] = AuthBatcher(core, app[METRICS], config.clock)
        app[DTLS_PORT], app[DTLS] = 0, None
        await edge.sync(config.clock())
        edge.serving(config.clock())
        task = asyncio.ensure_future(_sync_loop(edge, config.clock, core.summary, store))
        yield
    finally:
        await stop(attesting)
        if task is not None:
            await stop(task)
            await write_due(store, core.summary, config.clock(), final=True)   # into the outbox
        await upstream.close()
        store.close()


async def _sync_loop(edge, clock, summary, store):
    while True:
        await asyncio.sleep(POLL_S)
        now = clock()
        await write_due(store, summary, now)     # refusal summaries due while no datagram flushed them
        if now >= edge.next_sync:
            try:
                await edge.sync(now)
            except Exception:           # a bug must not end the loop: the next tick retries
                log.exception("edge: sync failed")


def _auth_request(data):
    """True for a binary-auth request, with or without a health report: its device is looked up first."""
    return len(data) == REQUEST_LEN or PIGGY_MIN <= len(data) <= PIGGY_MAX


class _HealthOutboxMetrics:
    """/metrics: the health reports queued for the upstream, forwarded (acknowledged), dropped by the bound."""

    def __init__(self, core, edge, store):
        self._core, self._edge, self._store = core, edge, store

    def collect(self):
        for name, text, n in (
                ("janua_edge_health_queued", "Health reports piggy-backed on accepted requests, queued for the "
                 "upstream", self._core.health_queued),
                ("janua_edge_health_forwarded", "Health reports delivered to the upstream (acknowledged)",
                 self._edge.health_forwarded),
                ("janua_edge_health_dropped", "Undelivered health reports dropped by the outbox bound (oldest first)",
                 self._store.health_dropped)):
            fam = CounterMetricFamily(name, text)
            fam.add_metric((), n)
            yield fam
        fam = GaugeMetricFamily("janua_edge_health_pending", "Health reports waiting for delivery to the upstream")
        fam.add_metric((), self._store.health_pending()[0])
        yield fam


class _EdgeUDP:
    """Between the UDP driver and the batcher: a datagram for a device the edge does not hold yet
    waits (bounded) for the upstream look-up; the others are decided at once."""

    def __init__(self, batcher, edge, clock):
        self._batcher, self._edge, self._clock = batcher, edge, clock
        self._waiting = 0
        self._tasks = set()

    def process_udp(self, datagrams, udp):
        now = self._clock()
        ready, later = [], []
        for d in datagrams:
            if _auth_request(d[0]) and self._waiting + len(later) < MAX_WAITING \
                    and not self._edge.known(d[0][:8], now):
                later.append(d)
            else:
                ready.append(d)
        if ready:
            self._batcher.process_udp(ready, udp)
        if later:
            self._waiting += len(later)
            task = asyncio.ensure_future(self._after_fetch(later, udp, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _after_fetch(self, datagrams, udp, now):
        try:
            await asyncio.gather(*(self._edge.ensure(d[0][:8], now) for d in datagrams), return_exceptions=True)
        finally:
            self._waiting -= len(datagrams)
        self._batcher.process_udp(datagrams, udp)


async def _udp_ctx(app):
    config = app[CONFIG]
    if config.udp_port is None:
        app[UDP_PORT] = 0
        yield
        return
    udp = await open_udp(_EdgeUDP(app[BATCHER], app[EDGE], config.clock), config.udp_host, config.udp_port)
    app[UDP_PORT] = udp.port
    yield
    udp.close()


# routes

async def binauth(request):
    if request.content_length is not None and request.content_length > PIGGY_MAX:
        reply = unauthenticated_reply(MALFORMED)
    else:
        data = await request.content.read(PIGGY_MAX + 1)
        if _auth_request(data):
            await request.app[EDGE].ensure(data[:8], request.app[CONFIG].clock())
        # the protocol as the cloud's POST /v1/binauth names it: the device's rule (docs/policies.md 4) applies
        reply = await request.app[BATCHER].submit(data, request_source(request) or "?", "http",
                                                  protocol="binauth_http")
    return web.Response(body=reply, status=HTTP_STATUS[reply[0]], content_type="application/octet-stream")


async def offline(request):
    """The cloud's POST /v1/auth/device/offline, decided from the edge cache."""
    limit_source(request, request.app[EDGE_STORE].limits, "offline", request.app[CONFIG].clock())
    raw = b""
    try:
        doc = await read_json(request)
        text = doc.get("token") if isinstance(doc, dict) else None
        if isinstance(text, str) and len(text) == 2 * TOKEN_LEN:
            raw = bytes.fromhex(text)
    except (ValidationError, ValueError):
        raw = b""
    ok, out = await request.app[EDGE].offline(raw, request_source(request), request.app[CONFIG].clock())
    if not ok:
        return web.json_response({"error": "unauthenticated", "message": "refused"}, status=401,
                                 headers={"WWW-Authenticate": "Bearer"})
    return web.json_response(out)


async def status(request):
    """Local operations view: no secrets, no device list."""
    edge, now = request.app[EDGE], request.app[CONFIG].clock()
    return web.json_response({
        "upstream": edge.upstream.url, "serving": edge.serving(now), "last_sync": edge.last_sync,
        "next_sync": edge.next_sync, "max_offline_s": edge.settings.max_offline_s,
        "cached_devices": edge.cached_count(), "pending": request.app[EDGE_STORE].pending_counts()})


async def healthz(request):
    request.app[EDGE_STORE].ping()
    return web.json_response({"status": "ok"})


ROUTES = [
    ("POST", "/v1/binauth", binauth),
    ("POST", "/v1/auth/device/offline", offline),
    ("GET", "/v1/edge/status", status),
    ("GET", "/healthz", healthz),
    ("GET", "/metrics", ops.metrics),
]
