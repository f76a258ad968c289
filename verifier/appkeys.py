"""Typed application state keys (web.AppKey), shared by the app factory and the handlers."""

from aiohttp import web

from verifier.binauth.batch import AuthBatcher
from verifier.binauth.core import BinAuthCore
from verifier.config import Config
from verifier.keys import Sealer
from verifier.binauth.metrics import Metrics
from verifier.store import Storage

CONFIG = web.AppKey("config", Config)
SEALER = web.AppKey("sealer", Sealer)
STORAGE = web.AppKey("storage", Storage)
CORE = web.AppKey("core", BinAuthCore)
BATCHER = web.AppKey("batcher", AuthBatcher)
CACHE_BUS = web.AppKey("cache_bus", object)      # verifier.cachebus.CacheBus on PostgreSQL, else None
METRICS = web.AppKey("metrics", Metrics)
UDP_PORT = web.AppKey("udp_port", int)
DTLS_PORT = web.AppKey("dtls_port", int)
DTLS = web.AppKey("dtls", object)          # the verifier.dtls.DTLSEndpoint, or None
OTA = web.AppKey("ota", object)            # verifier.ota.routes.OTAState: release files, download key
OPENAPI = web.AppKey("openapi", dict)     # the served document, composed by the app factory from the features' parts
LIFECYCLE_HOOKS = web.AppKey("lifecycle_hooks", list)  # async (app, device id bytes, now) after a lifecycle change
# async (app, tenant, device id bytes, now, {"certificates": n, "mqtt_password": bool}) after a DELETE
# /v1/devices/{id} that took certificates or an MQTT password with the device
DELETE_HOOKS = web.AppKey("delete_hooks", list)
# (storage, tenant_id) -> configure(fields) -> the board's config for a provisioning row (or None), raising
# UnknownRegion: set by verifier/regions/routes.py setup, called by the registry's provisioning and PATCH routes
DEVICE_CONFIG = web.AppKey("device_config", object)
NOTIFY = web.AppKey("notify", object)      # the verifier.notify.delivery.Deliverer of this instance
HEALTH = web.AppKey("health", object)      # the verifier.health.ingest.HealthIngest of this instance
POLICY = web.AppKey("policy", object)      # the verifier.policy.cache.PolicyCache of this instance
ALERTS = web.AppKey("alerts", object)      # the verifier.alerts.watch.AlertWatch of this instance
METRIC_SOURCES = web.AppKey("metric_sources", list)  # callables (app) -> bytes of Prometheus text, appended to /metrics
