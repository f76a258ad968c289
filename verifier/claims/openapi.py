"""The claims part of the OpenAPI document: POST /v1/claim (binary, unauthenticated) and the claim batches'
admin routes. PATHS and SCHEMAS, merged by the app factory (verifier/app.py). The schema is the validation:
NewClaimBatch states exactly what verifier/claims/batches.py check_new_batch accepts (not_after after not_before
is a 409, the one rule no schema can state)."""

from verifier.claims import batches, core
from verifier.notify.core import URL_MAX, URL_PATTERN
from verifier.registry.model import TEXT_PATTERN
from verifier.registry.openapi import METADATA, METADATA_IN, TEXT_OR_NULL
from verifier.web.openapi import ERR, OCTETS, admin_op as _admin_op, json_body as _json, ref as _ref, \
    with_roles as _with_roles

SERIAL = {"type": "string", "pattern": "^[!-~]{1,64}$", "description": "1-64 printable ASCII characters, no space"}
BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}
TIME = {"type": "integer", "minimum": 0, "maximum": batches.TIME_MAX}
_BOARD_VALUE = {"anyOf": [{"type": "integer", "minimum": -batches.BOARD_INT - 1, "maximum": batches.BOARD_INT},
                          {"type": "boolean"}, {"type": "null"}, {"type": "string", "pattern": batches.BOARD_TEXT}]}
TEMPLATE_IN = {"type": "object", "additionalProperties": False, "properties": {
    "model_id": TEXT_OR_NULL, "manufacturer_id": TEXT_OR_NULL, "metadata": METADATA_IN,
    "permissions": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 15},
    "trust_level": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
    "region": {"type": ["string", "null"], "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$",
               "description": "the region of the claimed device's configuration (regions: another feature)"},
    "transport": {"type": "string", "enum": list(batches.TRANSPORTS), "default": "auto"},
    "board": {"type": "object", "maxProperties": batches.BOARD_MAX_KEYS,
              "propertyNames": {"pattern": batches.BOARD_KEY}, "additionalProperties": _BOARD_VALUE,
              "description": "copied into the answer's config as \"board\""},
    "policy": {"type": "object", "description": "stored as given, for the policies feature"}}}

SCHEMAS = {
    "NewClaimBatch": {
        "type": "object", "required": ["name", "max_count"], "additionalProperties": False,
        "oneOf": [{"required": ["serials"]}, {"required": ["serial_pattern"]}],
        "description": "exactly one of serials and serial_pattern; not_after must be after not_before (409 otherwise)",
        "properties": {
            "name": {"type": "string", "pattern": TEXT_PATTERN},
            "serials": {"type": "array", "items": SERIAL, "minItems": 1, "maxItems": batches.SERIALS_MAX,
                        "uniqueItems": True},
            "serial_pattern": {"type": "string", "pattern": "^[!-~]{1,64}$",
                               "description": "* matches any run of characters, ? one; nothing else is special"},
            "not_before": {**TIME, "description": "unix seconds; default now"},
            "not_after": {**TIME, "description": "unix seconds; default not_before + 365 days"},
            "max_count": {"type": "integer", "minimum": 1, "maximum": batches.MAX_COUNT_MAX},
            "device": TEMPLATE_IN,
            "hook": {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
                "url": {"type": "string", "maxLength": URL_MAX, "pattern": URL_PATTERN}},
                "description": "the pre-claim hook (docs/claims.md)"}}},
    "ClaimBatch": {"type": "object", "required": ["batch_id", "name", "status", "max_count", "claimed_count"],
                   "properties": {
        "batch_id": {"type": "string"}, "tenant": {"type": "string"}, "name": {"type": "string"},
        "serials": {"type": "array", "items": {"type": "string"}}, "serial_pattern": {"type": "string"},
        "not_before": {"type": "integer"}, "not_after": {"type": "integer"},
        "max_count": {"type": "integer"}, "claimed_count": {"type": "integer"}, "remaining": {"type": "integer"},
        "status": {"type": "string", "enum": ["active", "pending", "expired", "revoked"]},
        "device": {"type": "object", "properties": {"metadata": METADATA}},
        "hook": {"type": ["object", "null"], "properties": {"url": {"type": "string"}}},
        "created": {"type": "integer"}, "revoked_at": {"type": ["integer", "null"]}}},
    "NewClaimBatchSecret": {"description": "Returned once, at creation: the batch with its secrets.",
                            "allOf": [_ref("ClaimBatch"), {"type": "object", "required": ["batch_secret"], "properties": {
                                "batch_secret": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                "hook_secret": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
                                                "description": "with a hook: its signing key (ASCII bytes of this text)"}}}]},
    "Claim": {"type": "object", "properties": {
        "serial": {"type": "string"}, "device_id": {"type": "string"}, "claimed_at": {"type": "integer"},
        "resumed": {"type": "integer", "description": "answers sent again to a retry (not counted)"}}},
}

_BINARY = {"description": "the claim answer (docs/claims.md)", "content": OCTETS}
_ONE = {"parameters": [BATCH_ID]}
PATHS = {
    "/v1/claim": {"post": {
        "summary": "A board's claim (docs/claims.md): its request bytes in, its identity (encrypted) and config out",
        "security": [], "requestBody": {"required": True, "content": OCTETS},
        "description": f"{core.REQUEST_MIN} to {core.REQUEST_MAX} bytes. Refusals are JSON errors: 400 malformed_claim, "
                       "401 claim_invalid, 403 batch_revoked / batch_not_valid / serial_not_allowed / batch_exhausted "
                       "/ claim_denied, 409 claim_replayed / already_claimed, 429 rate_limited, 503 hook_unavailable.",
        "responses": {"200": _BINARY, "400": ERR, "401": ERR, "403": ERR, "409": ERR, "429": ERR, "503": ERR}}},
    "/v1/claim-batches": {
        "post": _admin_op("Create a claim batch; its batch secret (and hook secret) are shown once", {
            "201": _json(_ref("NewClaimBatchSecret"), "Created"), "409": ERR},
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewClaimBatch")}}}),
        "get": _admin_op("The tenant's claim batches, oldest first (never a secret)", {"200": _json({
            "type": "object", "properties": {"batches": {"type": "array", "items": _ref("ClaimBatch")}}})},
            parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                       "default": 100}}]),
    },
    "/v1/claim-batches/{batch_id}": {
        **_ONE, "get": _admin_op("One claim batch, with its claimed count and status", {
            "200": _json(_ref("ClaimBatch")), "404": ERR})},
    "/v1/claim-batches/{batch_id}/revoke": {
        **_ONE, "post": _admin_op("Revoke a claim batch: every later claim of it is refused (batch_revoked)", {
            "200": _json(_ref("ClaimBatch")), "404": ERR, "409": ERR})},
    "/v1/claim-batches/{batch_id}/claims": {
        **_ONE, "get": _admin_op("The batch's claims in serial order", {"200": _json({"type": "object", "properties": {
            "claims": {"type": "array", "items": _ref("Claim")}, "next_cursor": {"type": ["string", "null"]}}}),
            "404": ERR},
            parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                       "default": 100}},
                        {"name": "cursor", "in": "query", "schema": SERIAL}])},
    "/v1/claim-batches/{batch_id}/claims/{serial}/reset": {
        "parameters": [BATCH_ID, {"name": "serial", "in": "path", "required": True, "schema": SERIAL}],
        "post": _admin_op("Forget a claim so that the serial may claim again; its device is decommissioned", {
            "200": _json({"type": "object", "properties": {
                "batch_id": {"type": "string"}, "serial": {"type": "string"}, "device_id": {"type": "string"},
                "device_status": {"type": ["string", "null"]}}}), "404": ERR})},
}

ROLES = {
    ("POST", "/v1/claim-batches"): ("admin",),
    ("GET", "/v1/claim-batches"): ("viewer",),
    ("GET", "/v1/claim-batches/{batch_id}"): ("viewer",),
    ("POST", "/v1/claim-batches/{batch_id}/revoke"): ("admin",),
    ("GET", "/v1/claim-batches/{batch_id}/claims"): ("viewer",),
    ("POST", "/v1/claim-batches/{batch_id}/claims/{serial}/reset"): ("admin",),
}
PATHS = _with_roles(PATHS, ROLES)
