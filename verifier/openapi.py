"""The OpenAPI 3.1 document of the verifier's HTTP API (served at /openapi.json).
tests/verifier/test_openapi.py checks that it names exactly the app's routes."""


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {"description": "error", "content": {"application/json": {"schema": _ref("Error")}}}
ADMIN = [{"bearerAuth": []}]
DEVICE_ID = {"name": "device_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}


def _admin_op(summary, responses, **kw):
    op = {"summary": summary, "security": ADMIN,
          "responses": {**responses, "400": ERR, "401": ERR}}
    op.update(kw)
    return op


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
        "lockout_failures": {"type": "integer", "default": 5}, "lockout_s": {"type": "integer", "default": 300}}},
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
        "permissions": {"type": "integer"}, "last_accepted_ts": {"type": "integer"}}},
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
        "kind": {"type": "string", "enum": ["auth", "admin"]}, "device_id": {"type": ["string", "null"]},
        "actor": {"type": ["string", "null"], "description": "admin token id (never the token), cli or binauth"},
        "action": {"type": "string"}, "transport": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]}, "result": {"type": "string"}, "reason": {"type": ["string", "null"]}}},
}

OCTETS = {"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}}
BINAUTH_REPLY = {"content": OCTETS}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "janua verifier", "version": "1",
             "description": "Device registry (tenant-scoped admin API) and binary auth (docs/protocol.md)."},
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                           "description": "A tenant admin token (jna_...)."}},
        "schemas": SCHEMAS,
    },
    "paths": {
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
        "/v1/binauth": {
            "post": {"summary": "Binary auth over HTTP (docs/protocol.md 3.5): the body is the 20-byte request; "
                                "the response body is always the binary reply and the status mirrors it",
                     "security": [],
                     "requestBody": {"required": True, "content": OCTETS},
                     "responses": {str(code): {"description": names, **BINAUTH_REPLY} for code, names in (
                         (200, "OK"), (400, "MALFORMED"), (401, "SIGNATURE, UNKNOWN_DEVICE"), (403, "NOT_ACTIVE"),
                         (409, "TIME_SYNC, REPLAY"), (429, "RATE_LIMITED, LOCKED_OUT"))}},
        },
        "/healthz": {"get": {"summary": "Liveness: the database is reachable", "security": [],
                             "responses": {"200": _json({"type": "object"}), "503": ERR}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": _json({"type": "object"})}}},
    },
}
