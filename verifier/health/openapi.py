"""The health part of the OpenAPI document (docs/health.md 4, docs/api.md "Device health")."""

from verifier.web.openapi import with_roles as _with_roles, DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

_INT = {"type": ["integer", "null"]}
_STR = {"type": ["string", "null"]}

SCHEMAS = {
    "HealthRecommendation": {"type": "object", "required": ["code", "severity", "message"], "properties": {
        "code": {"type": "string", "enum": ["heap_low", "reset_loop", "clock_drift", "credential_expiring",
                                            "firmware_behind", "weak_signal", "flash_low", "auth_failures_rising"]},
        "severity": {"type": "string", "enum": ["critical", "warning", "info"]},
        "message": {"type": "string"}}},
    "DeviceHealth": {"type": "object", "required": ["score", "bucket", "recommendations"], "properties": {
        "resources": {"type": "object", "properties": {"heap_free": _INT, "heap_min": _INT, "flash_free": _INT}},
        "network": {"type": "object", "properties": {"rssi": _INT, "bytes_tx": _INT, "bytes_rx": _INT,
                                                     "last_seen_at": _INT}},
        "security": {"type": "object", "properties": {"auth_failures": _INT, "psk_expires_at": _INT,
                                                      "attestation_status": _STR, "trust_level": _INT}},
        "operational": {"type": "object", "properties": {"uptime_s": _INT, "boot_count": _INT, "reset_cause": _STR,
                                                         "errors": _INT, "last_error": _STR,
                                                         "clock_offset_s": _INT}},
        "app_version": _STR,
        "slot": {"type": ["string", "null"], "enum": ["a", "b", None]},
        "score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
        "bucket": {"type": "string", "enum": ["healthy", "degraded", "unhealthy", "compromised", "unknown"]},
        "recommendations": {"type": "array", "items": _ref("HealthRecommendation")},
        "received_at": _INT,
        "via": {"type": ["string", "null"], "enum": ["binauth", "coap", "mqtt", "ota", "edge", None]}}},
    "HealthHistory": {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "required": ["received_at"]}}}},
}

PATHS = {
    "/v1/devices/{device_id}/health": {
        "get": _admin_op("The device's health document: its latest report, score, bucket and recommendations",
                         {"200": _json(_ref("DeviceHealth")), "404": ERR}, parameters=[DEVICE_ID]),
    },
    "/v1/devices/{device_id}/health/history": {
        "get": _admin_op("The device's reports of the last 24 h, one per 15-minute slot, oldest first",
                         {"200": _json(_ref("HealthHistory")), "404": ERR}, parameters=[DEVICE_ID]),
    },
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("GET", "/v1/devices/{device_id}/health"): ('viewer',),
    ("GET", "/v1/devices/{device_id}/health/history"): ('viewer',),
}
PATHS = _with_roles(PATHS, ROLES)
