"""The registry's part of the OpenAPI document (tenants, devices, lifecycle, PSK rotation, audit):
its PATHS and SCHEMAS, merged by the app factory (verifier/app.py) into the document served at
/openapi.json; tests/verifier/test_openapi_routes.py checks that the document names exactly the app's routes."""


from verifier.registry.model import (LIFECYCLE_ACTIONS, MAX_LIST, PSK_MAX_LIFETIME_DAYS, REGION_NAME_PATTERN, STATUSES,
                                     TEXT_PATTERN, TOKEN_POLICY_FIELDS)
from verifier.web.openapi import with_roles as _with_roles, DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

# what the server validates (verifier/registry/model.py), stated once here: the schema is the validation
TEXT = {"type": "string", "pattern": TEXT_PATTERN}
TEXT_OR_NULL = {"type": ["string", "null"], "pattern": TEXT_PATTERN}
TEXT_LIST = {"type": ["array", "null"], "maxItems": MAX_LIST, "items": TEXT, "description": "null: empty"}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
CURSOR = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
RATE = {"type": "object", "additionalProperties": False, "properties": {
    "capacity": {"type": "number", "minimum": 1, "maximum": 1e9},
    "refill_per_s": {"type": "number", "minimum": 0, "maximum": 1e9}}}
METADATA_IN = {"type": "object", "additionalProperties": False,
               "description": "partial: each field given replaces the stored one; null clears it", "properties": {
                   "firmware_version": TEXT_OR_NULL, "hardware_version": TEXT_OR_NULL, "capabilities": TEXT_LIST,
                   "location": TEXT_OR_NULL, "group": TEXT_OR_NULL, "tags": TEXT_LIST,
                   "region": {"type": ["string", "null"], "pattern": REGION_NAME_PATTERN,
                              "description": "one of the tenant's regions (GET /v1/regions; 409 unknown_region "
                                             "otherwise); docs/regions.md"}}}
# the board's configuration for the device's region (the BoardConfig schema of verifier/regions/openapi.py)
CONFIG = {"type": "object", "description": "the board's configuration for the device's region (metadata.region, "
                                           "else the tenant's default region); absent without either. "
                                           "docs/regions.md"}
_POLICY_INTS = {"drift_s": (0, 86400, 300), "session_ttl_s": (1, 30 * 86400, 3600),
                "lockout_failures": (1, 1000, 5), "lockout_s": (0, 30 * 86400, 300)}
METADATA = {"type": "object", "properties": {
    "firmware_version": {"type": ["string", "null"]}, "hardware_version": {"type": ["string", "null"]},
    "capabilities": {"type": "array", "items": {"type": "string"}}, "location": {"type": ["string", "null"]},
    "group": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}},
    "region": {"type": "string"}},
    "additionalProperties": False}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    "Policy": {"type": "object", "additionalProperties": False,
               "description": "token_refresh_s must stay below token_ttl_s and chain_low_water at most chain_len, "
                              "after merging a partial change over the stored policy (409 otherwise)",
               "properties": {
        **{n: {"type": "integer", "minimum": lo, "maximum": hi, "default": d} for n, (lo, hi, d) in _POLICY_INTS.items()},
        "device_rate": RATE, "source_rate": RATE,
        **{n: {"type": "integer", "minimum": TOKEN_POLICY_FIELDS[n][0], "maximum": TOKEN_POLICY_FIELDS[n][1],
               "default": d, "description": "docs/tokens.md"} for n, d in (
            ("token_ttl_s", 3600), ("token_refresh_s", 300), ("chain_period_s", 86400), ("chain_validity_s", 86400),
            ("chain_len", 30), ("chain_low_water", 10))},
        "audit_max_age_days": {"type": "integer", "default": 90, "minimum": 1, "maximum": 3650,
                               "description": "audit rows older than this are deleted (docs/api.md)"},
        "audit_max_rows": {"type": "integer", "default": 1000000, "minimum": 1000, "maximum": 100000000,
                           "description": "past this many audit rows the oldest are deleted (docs/api.md)"}}},
    "Tenant": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                                "created": {"type": "integer"}, "policy": _ref("Policy")}},
    "Metadata": METADATA,
    "NewDevice": {"type": "object", "required": ["serial_number"], "additionalProperties": False, "properties": {
        "serial_number": TEXT, "manufacturer_id": TEXT_OR_NULL,
        "model_id": TEXT_OR_NULL, "credential_type": {"type": "string", "enum": ["symmetric"]},
        "metadata": METADATA_IN, "permissions": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 15},
        "trust_level": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50}}},
    "Device": {"type": "object", "properties": {
        "device_id": {"type": "string"}, "tenant": {"type": "string"}, "tenant_id": {"type": "string"},
        "serial_number": {"type": "string"}, "manufacturer_id": {"type": ["string", "null"]},
        "model_id": {"type": ["string", "null"]},
        "credential": {"type": "object", "properties": {"type": {"type": "string"}, "present": {"type": "boolean"}}},
        "metadata": METADATA,
        "status": {"type": "string", "enum": ["provisioning", "active", "suspended", "decommissioned"]},
        "provisioned_at": {"type": "integer"}, "last_seen_at": {"type": ["integer", "null"]},
        "last_authenticated_at": {"type": ["integer", "null"]}, "status_changed_at": {"type": "integer"},
        "security": {"type": "object", "properties": {"trust_level": {"type": "integer"},
                                                      "compromised": {"type": "boolean"},
                                                      "quarantined": {"type": "boolean"}}},
        "attestation_status": {"type": "string", "enum": ["unknown", "affirming", "warning", "contraindicated"],
                               "description": "the latest board attestation (docs/attestation.md 3)"},
        "permissions": {"type": "integer"}, "last_accepted_ts": {"type": "integer"},
        "psk": {"type": "object", "description": "The DTLS PSK's generation and expiry (docs/protocol.md 4.1); never the key",
                "properties": {"generation": {"type": "integer", "minimum": 0},
                               "expires_at": {"type": "integer", "description": "unix seconds"}}}}},
    "PSKRotation": {"description": "Returned once, by a rotation: the device's new DTLS PSK.", "type": "object",
                    "properties": {"device_id": {"type": "string"}, "psk_identity": {"type": "string"},
                                   "psk": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                   "psk_generation": {"type": "integer", "minimum": 1},
                                   "psk_expires_at": {"type": "integer"}}},
    "CredentialPackage": {"description": "Returned once, at provisioning: the device's master secret.",
                          "allOf": [_ref("Device"), {"type": "object", "properties": {
                              "master_secret": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                              "credential_type": {"type": "string"}, "created": {"type": "integer"},
                              "config": CONFIG}}]},
    "BulkResult": {"type": "object", "properties": {
        "tenant": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "ok": {"type": "boolean"}, "device_id": {"type": "string"},
            "serial_number": {"type": "string"}, "master_secret": {"type": "string"}, "config": CONFIG,
            "error": {"type": "string"}, "message": {"type": "string"}}}},
        "summary": {"type": "object", "properties": {"requested": {"type": "integer"},
                                                     "created": {"type": "integer"},
                                                     "failed": {"type": "integer"}}}}},
    "AuditEntry": {"type": "object", "properties": {
        "seq": {"type": "integer"}, "ts": {"type": "integer"}, "tenant_id": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": ["auth", "admin", "ota", "summary", "alert"],
                 "description": "summary: a count of refused unauthenticated requests (docs/api.md)"}, "device_id": {"type": ["string", "null"]},
        "actor": {"type": ["string", "null"], "description": "admin token id (never the token), cli or binauth"},
        "action": {"type": "string"}, "transport": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]}, "result": {"type": "string"}, "reason": {"type": ["string", "null"]},
        "detail": {"type": ["string", "null"], "description": "free text that goes with the reason code"}}},
}

PATHS = {
    "/v1/devices": {
        "post": _admin_op("Provision one device; the response is the only time its master secret is shown",
                          {"201": _json(_ref("CredentialPackage"), "created"),
                           "409": {**ERR, "description": "duplicate_serial, or unknown_region (metadata.region names "
                                                         "no region of the tenant)"}},
                          requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewDevice")}}}),
        "get": _admin_op("List the tenant's devices, ordered by id", {"200": _json({"type": "object", "properties": {
            "devices": {"type": "array", "items": _ref("Device")},
            "next_cursor": {"type": ["string", "null"]}}})},
            parameters=[{"name": n, "in": "query", "schema": t} for n, t in
                        (("status", {"type": "string", "enum": list(STATUSES)}), ("group", {"type": "string"}),
                         ("tag", {"type": "string"}), ("limit", LIMIT), ("cursor", CURSOR))]),
    },
    "/v1/devices/bulk": {
        "post": _admin_op("Provision up to 10,000 devices; valid rows in one transaction, invalid rows reported",
                          {"200": _json(_ref("BulkResult"))},
                          requestBody={"required": True, "content": {"application/json": {"schema": {
                              "type": "object", "required": ["devices"], "additionalProperties": False,
                              "properties": {"devices": {
                                  "type": "array", "minItems": 1, "maxItems": 10000,
                                  "description": "rows as NewDevice; a row that is not one is not a refusal of "
                                                 "the request: it is reported in results (ok: false) and the "
                                                 "other rows are provisioned",
                                  "items": {}}}}}}}),
    },
    "/v1/devices/{device_id}": {
        "get": _admin_op("One device (a device of another tenant is 404)",
                         {"200": _json(_ref("Device")), "404": ERR}, parameters=[DEVICE_ID]),
        "patch": _admin_op("Update metadata, trust_level, compromised, quarantined, permissions",
                           {"200": _json(_ref("Device")), "404": ERR,
                            "409": {**ERR, "description": "unknown_region: metadata.region names no region of the "
                                                          "tenant"}}, parameters=[DEVICE_ID],
                           requestBody={"required": True, "content": {"application/json": {"schema": {
                               "type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
                                   "metadata": METADATA_IN, "trust_level": {"type": "integer", "minimum": 0, "maximum": 100},
                                   "compromised": {"type": "boolean"}, "quarantined": {"type": "boolean"},
                                   "permissions": {"type": "integer", "minimum": 0, "maximum": 4294967295}}}}}}),
        "delete": _admin_op("Delete a device that never authenticated (a mistaken provisioning, a failed board "
                            "write), freeing its serial; in the same transaction its certificates are revoked "
                            "(they stay on the CRL) and its MQTT password removed; audited as device.delete. 409 "
                            "once it has authenticated (decommission it instead)",
                            {"204": {"description": "deleted"}, "404": ERR, "409": ERR}, parameters=[DEVICE_ID]),
    },
    "/v1/devices/{device_id}/lifecycle": {
        "post": _admin_op("Change lifecycle status (activate, suspend, resume, decommission), or quarantine the "
                          "device (only OTA and attestation stay open to it; its status is kept) or release it; "
                          "an illegal transition, or quarantining a quarantined device (releasing one that is "
                          "not), is 409",
                          {"200": _json(_ref("Device")), "404": ERR, "409": ERR}, parameters=[DEVICE_ID],
                          requestBody={"required": True, "content": {"application/json": {"schema": {
                              "type": "object", "required": ["action"], "additionalProperties": False, "properties": {
                                  "action": {"type": "string", "enum": list(LIFECYCLE_ACTIONS)},
                                  "reason": {"type": ["string", "null"], "maxLength": 500}}}}}}),
    },
    "/v1/devices/{device_id}/psk/rotate": {
        "post": _admin_op("Rotate the device's DTLS PSK to the next generation; the response is the only time the "
                          "new PSK is shown, and the previous generation is refused from the next handshake on",
                          {"200": _json(_ref("PSKRotation")), "404": ERR, "409": ERR}, parameters=[DEVICE_ID],
                          requestBody={"required": False, "content": {"application/json": {"schema": {
                              "type": "object", "additionalProperties": False, "properties": {
                                  "lifetime_days": {"type": "integer", "minimum": 1, "maximum": PSK_MAX_LIFETIME_DAYS,
                                                    "default": 365}}}}}}),
    },
    "/v1/tenant": {
        "get": _admin_op("The caller's tenant and policy", {"200": _json(_ref("Tenant"))}),
        "patch": _admin_op("Change the caller's tenant policy (partial)", {"200": _json(_ref("Tenant")), "409": ERR},
                           requestBody={"required": True, "content": {"application/json": {"schema": {
                               "type": "object", "required": ["policy"], "additionalProperties": False,
                               "properties": {"policy": _ref("Policy")}}}}}),
    },
    "/v1/audit": {
        "get": _admin_op("The caller's tenant's audit trail, newest first, a page at a time: pass the "
                         "answer's next_cursor as cursor for the next (older) page; null: no more", {"200": _json({
            "type": "object", "required": ["entries", "next_cursor"], "properties": {
                "entries": {"type": "array", "items": _ref("AuditEntry")},
                "next_cursor": {"type": ["string", "null"]}}})},
            parameters=[{"name": "device_id", "in": "query", "schema": CURSOR},
                        {"name": "limit", "in": "query", "schema": LIMIT},
                        {"name": "cursor", "in": "query",
                         "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}]),
    },
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("POST", "/v1/devices"): ('factory',),
    ("POST", "/v1/devices/bulk"): ('factory',),
    ("GET", "/v1/devices"): ('viewer',),
    ("GET", "/v1/devices/{device_id}"): ('viewer',),
    ("PATCH", "/v1/devices/{device_id}"): ('operator',),
    ("DELETE", "/v1/devices/{device_id}"): ('factory',),
    ("POST", "/v1/devices/{device_id}/lifecycle"): ('operator',),
    ("POST", "/v1/devices/{device_id}/psk/rotate"): ('operator',),
    ("GET", "/v1/tenant"): ('viewer', 'factory'),
    ("PATCH", "/v1/tenant"): ('admin',),
    ("GET", "/v1/audit"): ('viewer',),
}
PATHS = _with_roles(PATHS, ROLES)
