"""The app factory (the only way to build the verifier) and an in-process server starter.

create_app(config) wires storage, the binauth core, group commit, metrics and (if config.udp_port /
config.dtls_port is not None) the UDP and DTLS endpoints, all as cleanup_ctx resources, then adds each
feature of FEATURES: its cleanup contexts, its routes, and its part of the OpenAPI document.
start_server(config) runs it on real sockets and returns a handle with the bound ports, for
verifier/serve.py, e2e tests and benchmarks.
"""

import asyncio
import logging
import time

from aiohttp import web

from verifier.appkeys import BATCHER, CACHE_BUS, CONFIG, CORE, DTLS, DTLS_PORT, METRICS, OPENAPI, SEALER, STORAGE, UDP_PORT
from verifier.alerts import openapi as alerts_openapi, routes as alerts_routes
from verifier.attest import openapi as attest_openapi, routes as attest_routes
from verifier.claims import openapi as claims_openapi, routes as claims_routes
from verifier.console import routes as console_routes
from verifier.fleet import openapi as fleet_openapi, routes as fleet_routes
from verifier.binauth import openapi as binauth_openapi, routes as binauth_routes
from verifier.binauth.batch import AuthBatcher
from verifier.binauth.core import BinAuthCore
from verifier.binauth.metrics import Metrics
from verifier.binauth.udp import open_udp
from verifier.config import make_sealer
from verifier.dtls import open_dtls
from verifier.edge import openapi as edge_openapi, routes as edge_routes
from verifier.gateway import openapi as gateway_openapi, routes as gateway_routes
from verifier.health import openapi as health_openapi, routes as health_routes
from verifier.mqtt import openapi as mqtt_openapi, routes as mqtt_routes
from verifier.notify import openapi as notify_openapi, routes as notify_routes
from verifier.ota import openapi as ota_openapi, routes as ota_routes
from verifier.regions import openapi as regions_openapi, routes as regions_routes
from verifier.policy import openapi as policy_openapi, routes as policy_routes
from verifier.registry import audit, openapi as registry_openapi, routes as registry_routes
from verifier.registry.audit import RefusalSummary
from verifier.storage import open_storage
from verifier.tasks import stop
from verifier.tokens import openapi as tokens_openapi, routes as tokens_routes
from verifier.web import ops, tls
from verifier.web.middleware import error_middleware
from verifier.web.routing import RoutedApp

log = logging.getLogger("janua.verifier")

MAX_BODY = 16 * 1024 * 1024   # a bulk request of 10,000 rows fits

# The features the cloud verifier is made of, in the order of the router and of the served document:
# each gives its routes module (ROUTES, CLEANUP_CTX: its cleanup contexts, optionally setup(app)) and its part
# of the OpenAPI document (PATHS, SCHEMAS; None for the console, whose HTML pages are not part of the API). The only place that knows them all; no feature imports another's
# routes. A new feature adds one line here (docs/architecture.md).
FEATURES = (
    ("registry", registry_routes, registry_openapi),
    ("binauth", binauth_routes, binauth_openapi),
    ("ops", ops, ops),                       # /healthz, /metrics, /openapi.json (verifier/web/ops.py)
    ("ota", ota_routes, ota_openapi),
    ("tokens", tokens_routes, tokens_openapi),
    ("mqtt", mqtt_routes, mqtt_openapi),
    ("edge", edge_routes, edge_openapi),     # the cloud-side routes edge verifiers sync from
    ("notify", notify_routes, notify_openapi),   # webhooks for a tenant's security team (docs/api.md)
    ("gateway", gateway_routes, gateway_openapi),   # TPM attestation of edge gateways
    ("attest", attest_routes, attest_openapi),   # board attestation (docs/attestation.md)
    ("health", health_routes, health_openapi),   # device health reports (docs/health.md)
    ("fleet", fleet_routes, fleet_openapi),      # fleet status and gauges (docs/fleet.md)
    ("alerts", alerts_routes, alerts_openapi),   # anomaly rules and alerts (docs/health.md 5); after health
    ("regions", regions_routes, regions_openapi),   # endpoints per region, the board config (docs/regions.md)
    ("policy", policy_routes, policy_openapi),   # device policies (docs/policies.md): binary auth's policy source
    ("claims", claims_routes, claims_openapi),   # zero-touch claims: POST /v1/claim, claim batches (docs/claims.md)
    ("console", console_routes, None),           # the operator console's HTML pages (docs/console.md): no JSON API
)


def openapi_document(parts):
    """The OpenAPI 3.1 document of an app made of `parts` (modules with PATHS and SCHEMAS), in order."""
    schemas, paths = {}, {}
    for part in parts:
        schemas.update(part.SCHEMAS)
        paths.update(part.PATHS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "janua verifier", "version": "1",
                 "description": "Device registry (tenant-scoped admin API) and binary auth (docs/protocol.md)."},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A tenant admin token (jna_...)."},
                                "deviceBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                                 "description": "A device token (ES256 JWT, docs/tokens.md)."}},
            "schemas": schemas,
        },
        "paths": paths,
    }


OPENAPI_DOCUMENT = openapi_document(part for _, _, part in FEATURES if part is not None)


def create_app(config):
    """Build the verifier application. Raises ConfigError at once if there is no KEK."""
    if config.edge is not None:              # an edge verifier (verifier/edge/app.py)
        from verifier.edge.app import create_edge_app
        return create_edge_app(config)
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[SEALER] = make_sealer(config)
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_audit_ctx)
    app.cleanup_ctx.append(_udp_ctx)
    app.cleanup_ctx.append(_dtls_ctx)
    app[OPENAPI] = OPENAPI_DOCUMENT
    for _, routes, _ in FEATURES:
        app.cleanup_ctx.extend(routes.CLEANUP_CTX)
    routed = RoutedApp(app)                  # {device_id} segments match device ids only (verifier/web/routing.py)
    for _, routes, _ in FEATURES:
        for method, path, handler in routes.ROUTES:
            routed.router.add_route(method, path, handler)
        setup = getattr(routes, "setup", None)   # anything else a feature adds to the app (mqtt: a lifecycle hook)
        if setup is not None:
            setup(routed)
    return app


async def _heartbeat(limits, instance):
    try:
        await limits.heartbeat_async(instance, time.time())
    except Exception as e:                    # the share stays as it was; the next beat tries again
        log.warning("heartbeat of this instance failed: %s", e)


async def _heartbeats(limits, instance):
    from verifier.registry.limits_pg import HEARTBEAT_S
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        await _heartbeat(limits, instance)


async def _storage_ctx(app):
    config = app[CONFIG]
    storage = open_storage(config.db_path)
    if getattr(storage, "async_auth", False):     # PostgreSQL: the auth path's own thread and connection
        await storage.aopen()
    core = BinAuthCore(storage, app[SEALER], config.source_capacity, config.source_refill_per_s,
                       cache_devices=config.auth_cache_devices)
    core.summary = RefusalSummary(config.audit_summary_s)
    metrics = Metrics(core)
    app[STORAGE] = storage
    app[CORE] = core
    app[METRICS] = metrics
    app[BATCHER] = AuthBatcher(core, metrics, config.clock)
    bus = None
    if getattr(storage, "async_auth", False):     # PostgreSQL: other instances' cache drops reach this one
        from verifier.cachebus import CacheBus
        bus = await CacheBus(storage.url, core).start()
    app[CACHE_BUS] = bus
    beat = None
    if getattr(storage.limits, "shared", False):  # PostgreSQL: each instance takes its share of the rate limits
        await _heartbeat(storage.limits, bus.instance)
        beat = asyncio.get_running_loop().create_task(_heartbeats(storage.limits, bus.instance))
    yield
    if beat is not None:
        beat.cancel()
        try:
            await storage.limits.heartbeat_async(bus.instance, time.time(), gone=True)
        except Exception:
            log.warning("could not remove this instance's heartbeat row (it expires by itself)")
    if bus is not None:
        await bus.close()
    if getattr(storage, "async_auth", False):
        await app[BATCHER].drain()               # the batches already handed over are written and answered
        await storage.aclose()
    storage.close()


async def _audit_ctx(app):
    """The audit trail's background task (summaries of unauthenticated refusals, retention). At shutdown
    the summaries still open are written: cleanup runs in reverse order, so the UDP and DTLS endpoints
    (registered later) are closed by then and nothing more is noted."""
    config, storage, summary = app[CONFIG], app[STORAGE], app[CORE].summary
    task = asyncio.create_task(audit.maintain(storage, summary, config.clock, config.audit_prune_s,
                                              config.audit_untenanted_max_age_days * 86400,
                                              config.audit_untenanted_max_rows))
    yield
    await stop(task)
    await audit.write_due(storage, summary, config.clock(), final=True)


async def _udp_ctx(app):
    config = app[CONFIG]
    if config.udp_port is None:
        app[UDP_PORT] = 0
        yield
        return
    udp = await open_udp(app[BATCHER], config.udp_host, config.udp_port)
    app[UDP_PORT] = udp.port
    yield
    udp.close()


async def _dtls_ctx(app):
    config = app[CONFIG]
    if config.dtls_port is None:
        app[DTLS_PORT] = 0
        app[DTLS] = None
        yield
        return
    dtls = await open_dtls(app[STORAGE], app[SEALER], app[CORE], config.clock, config.dtls_host, config.dtls_port)
    app[DTLS_PORT] = dtls.port
    app[DTLS] = dtls
    yield
    dtls.close()


class ServerHandle:
    """A running verifier: .http_host/.http_port, .tls (HTTPS or not), .udp_host/.udp_port,
    .dtls_host/.dtls_port, .coap_claim_host/.coap_claim_port (0: off), .url, .app; await .close()."""

    def __init__(self, app, runner, http_host, http_port, udp_host, udp_port, dtls_host="127.0.0.1", dtls_port=0,
                 tls=False, coap_claim_host="127.0.0.1", coap_claim_port=0):
        self.app, self._runner = app, runner
        self.coap_claim_host, self.coap_claim_port = coap_claim_host, coap_claim_port
        self.http_host, self.http_port = http_host, http_port
        self.tls = tls
        self.udp_host, self.udp_port = udp_host, udp_port
        self.dtls_host, self.dtls_port = dtls_host, dtls_port

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://{self.http_host}:{self.http_port}"

    @property
    def storage(self):
        return self.app[STORAGE]

    @property
    def core(self):
        return self.app[CORE]

    def listen_line(self):
        """The machine-readable line `janua serve` prints once listening."""
        udp = f"{self.udp_host}:{self.udp_port}" if self.udp_port else "off"
        dtls = f"{self.dtls_host}:{self.dtls_port}" if self.dtls_port else "off"
        line = f"janua serve: http={self.http_host}:{self.http_port} udp={udp} dtls={dtls}"
        line = line + " tls=on" if self.tls else line
        if self.coap_claim_port:
            line += f" coap-claim={self.coap_claim_host}:{self.coap_claim_port}"
        return line

    async def close(self):
        await self._runner.cleanup()


async def start_server(config, access_log=False):
    """Start HTTP or HTTPS (and UDP, DTLS) in this event loop; ports 0 mean any free port. ConfigError
    before anything starts for plain HTTP on a non-loopback address without config.insecure_http, or an
    unusable TLS certificate/key (verifier/web/tls.py)."""
    ssl_context = tls.check_exposure(config)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=log if access_log else None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.http_host, config.http_port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    http_port = runner.addresses[0][1]
    coap = app.get(claims_routes.CLAIM_COAP)
    if coap is not None:                     # the claim answers over CoAP name this bound HTTP port
        coap.http_port = http_port
    return ServerHandle(app, runner, config.http_host, http_port, config.udp_host, app[UDP_PORT],
                        config.dtls_host, app[DTLS_PORT], tls=ssl_context is not None,
                        coap_claim_host=config.coap_claim_host, coap_claim_port=coap.port if coap is not None else 0)
