"""The app factory (the only way to build the verifier) and an in-process server starter.

create_app(config) wires storage, the binauth core, group commit, metrics and (if config.udp_port /
config.dtls_port is not None) the UDP and DTLS endpoints, all as cleanup_ctx resources. start_server(config) runs it on real
sockets and returns a handle with the bound ports, for tools/serve.py, e2e tests and benchmarks.
"""

import asyncio
import logging

from aiohttp import web

from verifier import audit
from verifier.audit import RefusalSummary
from verifier.appkeys import BATCHER, CONFIG, CORE, DTLS, DTLS_PORT, METRICS, SEALER, STORAGE, UDP_PORT
from verifier.batch import AuthBatcher
from verifier.binauth import BinAuthCore
from verifier.config import load_kek
from verifier.dtls import open_dtls
from verifier.http import add_routes, error_middleware
from verifier.keys import Sealer
from verifier.metrics import Metrics
from verifier import mqtt_http, token_http
from verifier.ota_http import ota_ctx
from verifier.storage import SQLiteStorage
from verifier.udp import open_udp

log = logging.getLogger("janua.verifier")

MAX_BODY = 16 * 1024 * 1024   # a bulk request of 10,000 rows fits


def create_app(config):
    """Build the verifier application. Raises ConfigError at once if there is no KEK."""
    if config.edge is not None:              # an edge verifier (verifier/edge_app.py)
        from verifier.edge_app import create_edge_app
        return create_edge_app(config)
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[CONFIG] = config
    app[SEALER] = Sealer(load_kek(config))
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_audit_ctx)
    app.cleanup_ctx.append(_udp_ctx)
    app.cleanup_ctx.append(_dtls_ctx)
    app.cleanup_ctx.append(ota_ctx)
    app.cleanup_ctx.append(token_http.ctx)
    app.cleanup_ctx.append(mqtt_http.ctx)
    add_routes(app)
    return app


async def _storage_ctx(app):
    config = app[CONFIG]
    storage = SQLiteStorage(config.db_path)
    core = BinAuthCore(storage, app[SEALER], config.source_capacity, config.source_refill_per_s)
    core.summary = RefusalSummary(config.audit_summary_s)
    metrics = Metrics(core)
    app[STORAGE] = storage
    app[CORE] = core
    app[METRICS] = metrics
    app[BATCHER] = AuthBatcher(core, metrics, config.clock)
    yield
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
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
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
    """A running verifier: .http_host/.http_port, .udp_host/.udp_port, .dtls_host/.dtls_port (0: off),
    .url, .app; await .close()."""

    def __init__(self, app, runner, http_host, http_port, udp_host, udp_port, dtls_host="127.0.0.1", dtls_port=0):
        self.app, self._runner = app, runner
        self.http_host, self.http_port = http_host, http_port
        self.udp_host, self.udp_port = udp_host, udp_port
        self.dtls_host, self.dtls_port = dtls_host, dtls_port

    @property
    def url(self):
        return f"http://{self.http_host}:{self.http_port}"

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
        return f"janua serve: http={self.http_host}:{self.http_port} udp={udp} dtls={dtls}"

    async def close(self):
        await self._runner.cleanup()


async def start_server(config, access_log=False):
    """Start HTTP (and UDP) in this event loop; ports 0 mean any free port."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=log if access_log else None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.http_host, config.http_port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    http_port = runner.addresses[0][1]
    return ServerHandle(app, runner, config.http_host, http_port, config.udp_host, app[UDP_PORT],
                        config.dtls_host, app[DTLS_PORT])
