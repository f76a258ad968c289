"""The registry's part of the OpenAPI document (tenants, devices, lifecycle, PSK rotation, audit):
its PATHS and SCHEMAS, merged by the app factory (verifier/app.py) into the document served at
/openapi.json; tests/verifier/test_openapi_routes.py checks that the document names exactly the app's routes."""


from verifier.web.openapi import DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref


RATE = {"type": "object", "properties": {"capacity": {"type": "number", "minimum": 1},
                                         "refill_per_s": {"type": "number", "minimum": 0}}}
METADATA = {"type": "object", "properties": {
    "firmware_version": {"type": ["string", "null"]}, "hardware_version": {"type": ["string", "null"]},
    "capabilities": {"type": "array", "items": {"type": "string"}}, "location": {"type": ["string", "null"]},
    "group": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}},
    "additionalProperties": False}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    "Policy": {"type": "object", "properties": {
        "drift_s": {"type": "integer", "default": 300}, "session_ttl_s": {"type": "integer", "default": 3600},
        "device_rate": RATE, "source_rate": RATE,
        "lockout_failures": {"type": "integer", "default": 5}, "lockout_s": {"type": "integer", "default": 300},
        **{n: {"type": "integer", "default": d, "description": "docs/tokens.md"} for n, d in (
            ("token_ttl_s", 3600), ("token_refresh_s", 300), ("chain_period_s", 86400), ("chain_validity_s", 86400),
            ("chain_len", 30), ("chain_low_water", 10))}}},
    "Tenant": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                                "created": {"type": "integer"}, "policy": _ref("Policy")}},
    "Metadata": METADATA,
    "NewDevice": {"type": "object", "required": ["serial_number"], "additionalProperties": False, "properties": {
        "serial_number": {"type": "string", "maxLength": 128}, "manufacturer_id": {"type": "string"},
        "model_id": {"type": "string"}, "credential_type": {"type": "string", "enum": ["symmetric"]},
        "metadata": METADATA, "permissions": {"type": "integer", "minimum": 0, "maximum": 4294967295, "default": 15},
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
                              "credential_type": {"type": "string"}, "created": {"type": "integer"}}}]},
    "BulkResult": {"type": "object", "properties": {
        "tenant": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object", "properties": {
            "index": {"type": "integer"}, "ok": {"type": "boolean"}, "device_id": {"type": "string"},
            "serial_number": {"type": "string"}, "master_secret": {"type": "string"},
            "error": {"type": "string"}, "message": {"type": "string"}}}},
        "summary": {"type": "object", "properties": {"requested": {"type": "integer"},
                                                     "created": {"type": "integer"},
                                                     "failed": {"type": "integer"}}}}},
    "AuditEntry": {"type": "object", "properties": {
        "seq": {"type": "integer"}, "ts": {"type": "integer"}, "tenant_id": {"type": ["string", "null"]},
        "kind": {"type": "string", "enum": ["auth", "admin", "ota"]}, "device_id": {"type": ["string", "null"]},
        "actor": {"type": ["string", "null"], "description": "admin token id (never the token), cli or binauth"},
        "action": {"type": "string"}, "transport": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]}, "result": {"type": "string"}, "reason": {"type": ["string", "null"]}}},
}

# (the paths keep the indentation they had inside OPENAPI["paths"] in verifier/openapi.py, so that
# git follows this file through the issue #10 merge; reindent after it)
PATHS = {
        "/v1/devices": {
            "post": _admin_op("Provision one device; the response is the only time its master secret is shown",
                              {"201": _json(_ref("CredentialPackage"), "created"), "409": ERR},
                              requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewDevice")}}}),
            "get": _admin_op("List the tenant's devices, ordered by id", {"200": _json({"type": "object", "properties": {
                "devices": {"type": "array", "items": _ref("Device")},
                "next_cursor": {"type": ["string", "null"]}}})},
                parameters=[{"name": n, "in": "query", "schema": {"type": t}} for n, t in
                            (("status", "string"), ("group", "string"), ("tag", "string"),
                             ("limit", "integer"), ("cursor", "string"))]),
        },
        "/v1/devices/bulk": {
            "post": _admin_op("Provision up to 10,000 devices; valid rows in one transaction, invalid rows reported",
                              {"200": _json(_ref("BulkResult"))},
                              requestBody={"required": True, "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["devices"], "properties": {
                                      "devices": {"type": "array", "maxItems": 10000, "items": _ref("NewDevice")}}}}}}),
        },
        "/v1/devices/{device_id}": {
            "get": _admin_op("One device (a device of another tenant is 404)",
                             {"200": _json(_ref("Device")), "404": ERR}, parameters=[DEVICE_ID]),
            "patch": _admin_op("Update metadata, trust_level, compromised, quarantined, permissions",
                               {"200": _json(_ref("Device")), "404": ERR}, parameters=[DEVICE_ID],
                               requestBody={"required": True, "content": {"application/json": {"schema": {
                                   "type": "object", "additionalProperties": False, "properties": {
                                       "metadata": METADATA, "trust_level": {"type": "integer"},
                                       "compromised": {"type": "boolean"}, "quarantined": {"type": "boolean"},
                                       "permissions": {"type": "integer"}}}}}}),
        },
        "/v1/devices/{device_id}/lifecycle": {
            "post": _admin_op("Change lifecycle status; an illegal transition is 409",
                              {"200": _json(_ref("Device")), "404": ERR, "409": ERR}, parameters=[DEVICE_ID],
                              requestBody={"required": True, "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["action"], "properties": {
                                      "action": {"type": "string", "enum": ["activate", "suspend", "resume", "decommission"]},
                                      "reason": {"type": "string"}}}}}}),
        },
        "/v1/devices/{device_id}/psk/rotate": {
            "post": _admin_op("Rotate the device's DTLS PSK to the next generation; the response is the only time the "
                              "new PSK is shown, and the previous generation is refused from the next handshake on",
                              {"200": _json(_ref("PSKRotation")), "404": ERR, "409": ERR}, parameters=[DEVICE_ID],
                              requestBody={"required": False, "content": {"application/json": {"schema": {
                                  "type": "object", "additionalProperties": False, "properties": {
                                      "lifetime_days": {"type": "integer", "minimum": 1, "maximum": 3650,
                                                        "default": 365}}}}}}),
        },
        "/v1/tenant": {
            "get": _admin_op("The caller's tenant and policy", {"200": _json(_ref("Tenant"))}),
            "patch": _admin_op("Change the caller's tenant policy (partial)", {"200": _json(_ref("Tenant"))},
                               requestBody={"required": True, "content": {"application/json": {"schema": {
                                   "type": "object", "properties": {"policy": _ref("Policy")}}}}}),
        },
        "/v1/audit": {
            "get": _admin_op("The caller's tenant's audit trail, newest first", {"200": _json({
                "type": "object", "properties": {"entries": {"type": "array", "items": _ref("AuditEntry")}}})},
                parameters=[{"name": "device_id", "in": "query", "schema": {"type": "string"}},
                            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}}]),
        },
    }
