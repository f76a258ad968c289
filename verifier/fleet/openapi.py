"""The fleet part of the OpenAPI document (docs/fleet.md, docs/api.md "Fleet"): GET /v1/fleet/status."""

from verifier.web.openapi import with_roles as _with_roles, admin_op as _admin_op, json_body as _json, ref as _ref

_N = {"type": "integer", "minimum": 0}
_MAP = {"type": "object", "additionalProperties": _N}
_RATE = {"type": ["number", "null"]}

PATHS = {
    "/v1/fleet/status": {"get": _admin_op(
        "The tenant's fleet status: totals, lifecycle status, health buckets, connectivity, firmware "
        "versions, locations, performance over the last hour, open alerts (docs/fleet.md)",
        {"200": _json(_ref("FleetStatus"))})},
}

SCHEMAS = {
    "FleetStatus": {"type": "object", "additionalProperties": False, "required": [
        "tenant_id", "generated_at", "totals", "by_status", "health", "connectivity", "firmware_versions",
        "locations", "performance", "alerts"], "properties": {
        "tenant_id": {"type": "string"}, "generated_at": _N,
        "totals": {"type": "object", "required": ["devices"], "additionalProperties": False,
                   "properties": {"devices": _N}},
        "by_status": _MAP,
        "health": {"type": "object", "additionalProperties": False,
                   "required": ["healthy", "degraded", "unhealthy", "compromised", "unknown"],
                   "properties": {k: _N for k in ("healthy", "degraded", "unhealthy", "compromised", "unknown")}},
        "connectivity": {"type": "object", "additionalProperties": False, "required": [
            "online", "offline", "rule", "online_window_s", "seen_1h", "seen_24h", "seen_7d", "never_seen"],
            "properties": {"online": _N, "offline": _N, "rule": {"type": "string"}, "online_window_s": _N,
                           "seen_1h": _N, "seen_24h": _N, "seen_7d": _N, "never_seen": _N}},
        "firmware_versions": {**_MAP, "description": "the 50 largest, the rest under \"other\""},
        "locations": {**_MAP, "description": "the 50 largest, the rest under \"other\""},
        "performance": {"type": "object", "additionalProperties": False, "required": [
            "window_s", "auth_attempts", "auth_failures", "auth_success_rate", "avg_auth_latency_ms",
            "data_rate_bps"], "properties": {
            "window_s": _N, "auth_attempts": _N, "auth_failures": _N, "auth_success_rate": _RATE,
            "avg_auth_latency_ms": _RATE, "data_rate_bps": {"type": "number", "minimum": 0}}},
        "alerts": {"type": "object", "required": ["open"], "additionalProperties": False,
                   "properties": {"open": _N}},
    }},
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("GET", "/v1/fleet/status"): ('viewer',),
}
PATHS = _with_roles(PATHS, ROLES)
