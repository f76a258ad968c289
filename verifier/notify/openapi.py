"""The notifications part of the OpenAPI document (webhooks and their delivery log): PATHS and SCHEMAS,
merged by the app factory (verifier/app.py). The schema is the validation: NewWebhook states exactly what
verifier/notify/core.py check_new_webhook accepts."""

from verifier.notify.core import EVENTS, TEST_EVENT, URL_MAX, URL_PATTERN, WEBHOOK_ID_PATTERN
from verifier.registry.model import TEXT_PATTERN
from verifier.web.openapi import with_roles as _with_roles, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

WEBHOOK_ID = {"name": "webhook_id", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": WEBHOOK_ID_PATTERN}}
EVENT = {"type": "string", "enum": list(EVENTS)}

SCHEMAS = {
    "NewWebhook": {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
        "url": {"type": "string", "maxLength": URL_MAX, "pattern": URL_PATTERN,
                "description": "http or https (use https outside a lab); a DNS name or IPv4 address, no "
                               "user:password@, printable ASCII"},
        "events": {"type": "array", "items": EVENT, "minItems": 1, "uniqueItems": True,
                   "description": "default: every event"},
        "description": {"type": "string", "pattern": TEXT_PATTERN}}},
    "Webhook": {"type": "object", "required": ["id", "url", "events", "description", "created"], "properties": {
        "id": {"type": "string", "pattern": WEBHOOK_ID_PATTERN}, "url": {"type": "string"},
        "events": {"type": "array", "items": EVENT}, "description": {"type": ["string", "null"]},
        "created": {"type": "integer"}}},
    "NewWebhookSecret": {"description": "Returned once, at creation: the webhook with its signing secret.",
                         "allOf": [_ref("Webhook"), {"type": "object", "required": ["secret"], "properties": {
                             "secret": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
                                        "description": "the HMAC key is this text's ASCII bytes"}}}]},
    "DeliveryAttempt": {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 1}, "at": {"type": "integer"},
        "status": {"type": ["integer", "null"], "description": "the receiver's HTTP status; null: no answer"},
        "error": {"type": ["string", "null"], "description": "timeout, connection error"},
        "duration_ms": {"type": "integer", "minimum": 0},
        "response": {"type": ["string", "null"], "description": "at most the first 256 bytes of the body"}}},
    "Delivery": {"type": "object", "properties": {
        "id": {"type": "string", "description": "the X-Janua-Delivery header, the same on every attempt"},
        "event_id": {"type": "integer"}, "event": {"type": "string", "enum": list(EVENTS) + [TEST_EVENT]},
        "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer", "minimum": 0},
        "next_at": {"type": ["integer", "null"], "description": "the next attempt, while pending"},
        "last_status": {"type": ["integer", "null"]}, "last_error": {"type": ["string", "null"]},
        "created": {"type": "integer"}, "updated": {"type": "integer"},
        "log": {"type": "array", "items": _ref("DeliveryAttempt")}}},
}

_ONE = {"parameters": [WEBHOOK_ID]}
PATHS = {
    "/v1/webhooks": {
        "post": _admin_op("Add a webhook; its signing secret is shown once", {
            "201": _json(_ref("NewWebhookSecret"), "Created"), "409": ERR},
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewWebhook")}}}),
        "get": _admin_op("The tenant's webhooks (never a secret)", {"200": _json({
            "type": "object", "properties": {"webhooks": {"type": "array", "items": _ref("Webhook")}}})}),
    },
    "/v1/webhooks/{webhook_id}": {
        **_ONE,
        "get": _admin_op("One webhook", {"200": _json(_ref("Webhook")), "404": ERR}),
        "delete": _admin_op("Delete a webhook, its pending deliveries and its delivery log",
                            {"204": {"description": "Deleted"}, "404": ERR}),
    },
    "/v1/webhooks/{webhook_id}/test": {
        **_ONE,
        "post": _admin_op("Queue a webhook.test event to this webhook only", {"202": _json({
            "type": "object", "properties": {"event_id": {"type": "integer"},
                                             "event": {"type": "string", "enum": [TEST_EVENT]}}}, "Queued"),
            "404": ERR}),
    },
    "/v1/webhooks/{webhook_id}/deliveries": {
        **_ONE,
        "get": _admin_op("The webhook's deliveries, newest first, each with its attempts", {"200": _json({
            "type": "object", "properties": {
                "deliveries": {"type": "array", "items": _ref("Delivery")},
                "next_cursor": {"type": ["string", "null"]}}}), "404": ERR},
            parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                       "default": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}]),
    },
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("POST", "/v1/webhooks"): ('admin',),
    ("GET", "/v1/webhooks"): ('viewer',),
    ("GET", "/v1/webhooks/{webhook_id}"): ('viewer',),
    ("DELETE", "/v1/webhooks/{webhook_id}"): ('admin',),
    ("POST", "/v1/webhooks/{webhook_id}/test"): ('operator',),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): ('viewer',),
}
PATHS = _with_roles(PATHS, ROLES)
