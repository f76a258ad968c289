"""Operations routes every verifier app serves: GET /healthz (the store is reachable), GET /metrics
(Prometheus text) and GET /openapi.json (the document the app factory composed, in app[OPENAPI])."""

from aiohttp import web

from verifier.appkeys import METRIC_SOURCES, METRICS, OPENAPI, STORAGE
from verifier.web.openapi import ERR, json_body as _json


async def healthz(request):
    request.app[STORAGE].ping()
    return web.json_response({"status": "ok"})


async def metrics(request):
    body = request.app[METRICS].render() + b"".join(src(request.app) for src in request.app.get(METRIC_SOURCES, ()))
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def openapi(request):
    return web.json_response(request.app[OPENAPI])


ROUTES = [
    ("GET", "/healthz", healthz),
    ("GET", "/metrics", metrics),
    ("GET", "/openapi.json", openapi),
]


CLEANUP_CTX = ()

SCHEMAS = {}
PATHS = {
    "/healthz": {"get": {"summary": "Liveness: the database is reachable", "security": [],
                         "responses": {"200": _json({"type": "object"}), "503": ERR}}},
    "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                         "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/openapi.json": {"get": {"summary": "This document", "security": [],
                              "responses": {"200": _json({"type": "object"})}}},
}
