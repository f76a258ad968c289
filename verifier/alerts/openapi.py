"""The alerts part of the OpenAPI document (docs/health.md 5.3 and the routes table of docs/api.md)."""

from verifier.alerts.core import RULES, SEVERITIES
from verifier.web.openapi import with_roles as _with_roles, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

ALERT_ID = {"name": "alert_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}
_INT = {"type": ["integer", "null"]}

SCHEMAS = {
    "Alert": {"type": "object", "required": ["id", "tenant_id", "device_id", "rule", "severity", "state", "opened_at",
                                             "last_seen_at", "count", "details", "resolved_at", "resolved_by"],
              "properties": {
                  "id": {"type": "integer", "minimum": 1}, "tenant_id": {"type": "string"},
                  "device_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{16}$",
                                "description": "null for a fleet rule"},
                  "rule": {"type": "string", "enum": list(RULES)},
                  "severity": {"type": "string", "enum": list(SEVERITIES)},
                  "state": {"type": "string", "enum": ["open", "resolved"]},
                  "opened_at": {"type": "integer"}, "last_seen_at": {"type": "integer"},
                  "count": {"type": "integer", "minimum": 1,
                            "description": "evaluation windows (hours; minutes for the fleet rule) it was seen in"},
                  "details": {"type": "object", "description": "the rule's numbers (docs/health.md 5)"},
                  "resolved_at": _INT,
                  "resolved_by": {"type": ["string", "null"], "description": "the admin token id that resolved it"}}},
    "AlertList": {"type": "object", "required": ["alerts", "next_cursor"], "properties": {
        "alerts": {"type": "array", "items": _ref("Alert")}, "next_cursor": {"type": ["string", "null"]}}},
}

PATHS = {
    "/v1/alerts": {
        "get": _admin_op("The tenant's alerts, newest first", {"200": _json(_ref("AlertList"))}, parameters=[
            {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["open", "resolved", "all"],
                                                        "default": "open"}},
            {"name": "device_id", "in": "query", "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
            {"name": "rule", "in": "query", "schema": {"type": "string", "enum": list(RULES)}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                        "default": 100}},
            {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}]),
    },
    "/v1/alerts/{alert_id}": {
        "get": _admin_op("One alert", {"200": _json(_ref("Alert")), "404": ERR}, parameters=[ALERT_ID]),
    },
    "/v1/alerts/{alert_id}/resolve": {
        "post": _admin_op("Resolve an alert (idempotent: resolving a resolved alert answers it unchanged)",
                          {"200": _json(_ref("Alert")), "404": ERR}, parameters=[ALERT_ID]),
    },
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("GET", "/v1/alerts"): ('viewer',),
    ("GET", "/v1/alerts/{alert_id}"): ('viewer',),
    ("POST", "/v1/alerts/{alert_id}/resolve"): ('operator',),
}
PATHS = _with_roles(PATHS, ROLES)
