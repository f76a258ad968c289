"""The OpenAPI 3.1 document of the verifier's HTTP API (served at /openapi.json).
tests/verifier/test_openapi.py checks that it names exactly the app's routes."""


from verifier.model import ACTIONS, MAX_LIST, PSK_MAX_LIFETIME_DAYS, STATUSES, TEXT_PATTERN, TOKEN_POLICY_FIELDS
from verifier.openapi_common import DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

# what the server validates (verifier/model.py), stated once here: the schema is the validation
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
                   "location": TEXT_OR_NULL, "group": TEXT_OR_NULL, "tags": TEXT_LIST}}
_POLICY_INTS = {"drift_s": (0, 86400, 300), "session_ttl_s": (1, 30 * 86400, 3600),
                "lockout_failures": (1, 1000, 5), "lockout_s": (0, 30 * 86400, 300)}
METADATA = {"type": "object", "properties": {
    "firmware_version": {"type": ["string", "null"]}, "hardware_version": {"type": ["string", "null"]},
    "capabilities": {"type": "array", "items": {"type": "string"}}, "location": {"type": ["string", "null"]},
    "group": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}},
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
        "kind": {"type": "string", "enum": ["auth", "admin", "summary"],
                 "description": "summary: a count of refused unauthenticated requests (docs/api.md)"}, "device_id": {"type": ["string", "null"]},
        "actor": {"type": ["string", "null"], "description": "admin token id (never the token), cli or binauth"},
        "action": {"type": "string"}, "transport": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]}, "result": {"type": "string"}, "reason": {"type": ["string", "null"]},
        "detail": {"type": ["string", "null"], "description": "free text that goes with the reason code"}}},
}

OCTETS = {"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}}
BINAUTH_REPLY = {"content": OCTETS}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "janua verifier", "version": "1",
             "description": "Device registry (tenant-scoped admin API) and binary auth (docs/protocol.md)."},
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                           "description": "A tenant admin token (jna_...)."},
                            "deviceBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                             "description": "A device token (ES256 JWT, docs/tokens.md)."}},
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
                               {"200": _json(_ref("Device")), "404": ERR}, parameters=[DEVICE_ID],
                               requestBody={"required": True, "content": {"application/json": {"schema": {
                                   "type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
                                       "metadata": METADATA_IN, "trust_level": {"type": "integer", "minimum": 0, "maximum": 100},
                                       "compromised": {"type": "boolean"}, "quarantined": {"type": "boolean"},
                                       "permissions": {"type": "integer", "minimum": 0, "maximum": 4294967295}}}}}}),
            "delete": _admin_op("Delete a device that never authenticated and holds no certificate or MQTT password "
                                "(a mistaken provisioning), freeing its serial; audited as device.delete. 409 once it "
                                "has authenticated (decommission it instead) or while it holds such a credential",
                                {"204": {"description": "deleted"}, "404": ERR, "409": ERR}, parameters=[DEVICE_ID]),
        },
        "/v1/devices/{device_id}/lifecycle": {
            "post": _admin_op("Change lifecycle status; an illegal transition is 409",
                              {"200": _json(_ref("Device")), "404": ERR, "409": ERR}, parameters=[DEVICE_ID],
                              requestBody={"required": True, "content": {"application/json": {"schema": {
                                  "type": "object", "required": ["action"], "additionalProperties": False, "properties": {
                                      "action": {"type": "string", "enum": list(ACTIONS)},
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
        "/v1/binauth": {
            "post": {"summary": "Binary auth over HTTP (docs/protocol.md 3.5): the body is the 20-byte request; "
                                "the response body is always the binary reply and the status mirrors it",
                     "security": [],
                     "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {
                         "type": "string", "format": "binary", "minLength": 20, "maxLength": 20}}}},
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


# -- signed OTA (docs/ota.md section 7; verifier/ota_http.py) ---------------------------------

_RID = {"name": "release_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^rel_[0-9a-f]{16}$"}}
_ROID = {"name": "rollout_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^ro_[0-9a-f]{16}$"}}
_KID = {"name": "kid", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}
_TOKEN = {"name": "t", "in": "query", "required": True, "description": "download capability from /v1/ota/check",
          "schema": {"type": "string"}}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
_PHASES = {"type": "array", "minItems": 1, "maxItems": 10,
           "description": "percents increase and the last is 100 (409 otherwise)",
           "items": {"type": "object", "required": ["percent"], "properties": {
               "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
               "hours": {"type": "number", "minimum": 0, "maximum": 8760}}}}
_DEVICE_AUTH = {"auth": {"type": "string", "pattern": "^[0-9a-f]{40}$",
                         "description": "a fresh 20-byte binary auth request (docs/protocol.md 3.1), hex"}}
_REFUSED = {"description": "binary auth refused: the body holds the binary reply (auth, hex) as for /v1/binauth",
            "content": {"application/json": {"schema": _ref("DeviceRefused")}}}

SCHEMAS.update({
    "ReleaseKey": {"type": "object", "properties": {
        "kid": {"type": "string"}, "alg": {"const": "Ed25519"}, "pub": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "name": {"type": ["string", "null"]}, "created": {"type": "integer"},
        "retired_at": {"type": ["integer", "null"]}, "active": {"type": "boolean"}}},
    "Release": {"type": "object", "properties": {
        "id": {"type": "string"}, "kind": {"type": "string", "enum": ["app", "firmware"]},
        "name": {"type": ["string", "null"]}, "version": {"type": "string"}, "counter": {"type": "integer"},
        "kid": {"type": "string"}, "size": {"type": "integer"}, "created": {"type": "integer"},
        "manifest_sha256": {"type": "string"}, "rollout": {"type": ["object", "null"]},
        "rollout_id": {"type": ["string", "null"]},
        "files": {"type": "array", "items": {"type": "object", "properties": {
            "path": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"}}}}}},
    "Rollout": {"type": "object", "properties": {
        "id": {"type": "string"}, "release_id": {"type": "string"},
        "state": {"type": "string", "enum": ["pending", "active", "halted"]},
        "phase": {"type": "integer", "minimum": 1}, "phases": _PHASES,
        "eligible_percent": {"type": "number"}, "phase_started_at": {"type": ["integer", "null"]},
        "next_phase_at": {"type": ["integer", "null"]}, "created": {"type": "integer"},
        "started_at": {"type": ["integer", "null"]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "devices by their latest report state"},
        "failure_rate": {"type": "number"}, "failed": {"type": "integer"}, "outcomes": {"type": "integer"},
        "health_threshold": {"type": "number"}, "halt_threshold": {"type": "number"},
        "halt_min_reports": {"type": "integer"}, "halted": {"type": "boolean"},
        "halt_reason": {"type": ["string", "null"]}, "held": {"type": ["string", "null"]}}},
    "Update": {"type": "object", "properties": {
        "release_id": {"type": "string"}, "rollout_id": {"type": "string"}, "kind": {"type": "string"},
        "version": {"type": "string"}, "counter": {"type": "integer"}, "size": {"type": "integer"},
        "manifest_url": {"type": "string"}, "sig_url": {"type": "string"},
        "files_url": {"type": "string", "description": "replace {path} with a manifest file path"},
        "expires": {"type": "integer"}}},
    "DeviceRefused": {"type": "object", "properties": {
        "error": {"const": "unauthenticated"}, "message": {"type": "string"},
        "auth": {"type": "string", "description": "the binary auth reply, hex"}}},
})
_admin_ota = _admin_op
OPENAPI["paths"].update({
    "/v1/release-keys": {
        "get": _admin_ota("The tenant's release-signing public keys", {"200": _json({"type": "object", "properties": {
            "keys": {"type": "array", "items": _ref("ReleaseKey")}}})}),
        "post": _admin_ota("Trust a release-signing Ed25519 public key (the private key never comes here)",
                           {"201": _json(_ref("ReleaseKey"), "created"), "409": ERR},
                           requestBody={"required": True, "content": {"application/json": {"schema": {
                               "type": "object", "required": ["pub"], "additionalProperties": False, "properties": {
                                   "pub": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                   "kid": {"type": "string", "pattern": "^[0-9a-f]{16}$",
                                           "description": "if given, the key's id (409 when it is not)"},
                                   "alg": {"const": "Ed25519"},
                                   "name": {"type": "string", "maxLength": 64}}}}}}),
    },
    "/v1/release-keys/{kid}/retire": {
        "post": _admin_ota("Retire a key: releases signed by it are refused from now on",
                           {"200": _json(_ref("ReleaseKey")), "404": ERR}, parameters=[_KID]),
    },
    "/v1/releases": {
        "post": _admin_ota("Publish a signed release bundle (multipart: manifest.json, manifest.sig, files/<path>...); "
                           "the signature, every file's size and SHA-256, duplicates and the counter are checked "
                           "before anything is stored",
                           {"201": _json(_ref("Release"), "created"), "409": ERR},
                           requestBody={"required": True, "content": {"multipart/form-data": {"schema": {
                               "type": "object", "required": ["manifest.json", "manifest.sig"], "properties": {
                                   "manifest.json": {"type": "string", "format": "binary"},
                                   "manifest.sig": {"type": "string", "format": "binary"}},
                               "patternProperties": {"^files/": {"type": "string", "format": "binary"}},
                               "additionalProperties": False}}}}),
        "get": _admin_ota("The tenant's releases, newest first", {"200": _json({"type": "object", "properties": {
            "releases": {"type": "array", "items": _ref("Release")}}})},
            parameters=[{"name": "kind", "in": "query", "schema": {"type": "string"}}, _LIMIT]),
    },
    "/v1/releases/{release_id}": {
        "get": _admin_ota("One release with its files", {"200": _json(_ref("Release")), "404": ERR}, parameters=[_RID]),
    },
    "/v1/releases/{release_id}/rollout": {
        "post": _admin_ota("Create the release's rollout (phases default to the manifest's); start at once with "
                           "start: true, else it waits for /resume",
                           {"201": _json(_ref("Rollout"), "created"), "404": ERR, "409": ERR}, parameters=[_RID],
                           requestBody={"required": False, "content": {"application/json": {"schema": {
                               "type": "object", "additionalProperties": False, "properties": {
                                   "phases": _PHASES, "start": {"type": "boolean", "default": False},
                                   "health_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                                                        "default": 0.05},
                                   "halt_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                                                      "default": 0.2},
                                   "halt_min_reports": {"type": "integer", "minimum": 1, "maximum": 100000,
                                                        "default": 5}}}}}}),
    },
    "/v1/rollouts": {
        "get": _admin_ota("The tenant's rollouts with their status, newest first", {"200": _json({
            "type": "object", "properties": {"rollouts": {"type": "array", "items": _ref("Rollout")}}})},
            parameters=[{"name": "state", "in": "query", "schema": {"type": "string"}}, _LIMIT]),
    },
    "/v1/rollouts/{rollout_id}": {
        "get": _admin_ota("Rollout status: phase, eligible percent, devices by report state, halted and why",
                          {"200": _json(_ref("Rollout")), "404": ERR}, parameters=[_ROID]),
    },
    "/v1/rollouts/{rollout_id}/halt": {
        "post": _admin_ota("Stop offering the release", {"200": _json(_ref("Rollout")), "404": ERR, "409": ERR},
                           parameters=[_ROID], requestBody={"required": False, "content": {"application/json": {
                               "schema": {"type": "object", "properties": {"reason": {"type": ["string", "null"], "maxLength": 500}}}}}}),
    },
    "/v1/rollouts/{rollout_id}/resume": {
        "post": _admin_ota("Start a pending rollout or resume a halted one (its phase starts over)",
                           {"200": _json(_ref("Rollout")), "404": ERR, "409": ERR}, parameters=[_ROID]),
    },
    "/v1/ota/check": {
        "post": {"summary": "A device asks what it should run; authenticated by a binary auth request",
                 "security": [],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["auth"], "properties": {
                         **_DEVICE_AUTH, "kind": {"type": "string", "enum": ["app", "firmware"], "default": "app"},
                         "version": {"type": ["string", "null"]}, "counter": {"type": "integer", "default": 0}}}}}},
                 "responses": {"200": _json({"type": "object", "properties": {
                     "auth": {"type": "string"}, "update": {"oneOf": [_ref("Update"), {"type": "null"}]}}}),
                     "400": ERR, "401": _REFUSED, "403": _REFUSED, "409": _REFUSED, "429": _REFUSED}},
    },
    "/v1/ota/report": {
        "post": {"summary": "A device reports an update step; feeds the rollout's health",
                 "security": [],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["auth", "state"], "properties": {
                         **_DEVICE_AUTH, "release_id": {"type": "string"},
                         "version": {"type": "string", "description": "when release_id is unknown"},
                         "state": {"type": "string", "enum": ["downloading", "verified", "installed", "confirmed",
                                                              "rolled_back", "failed"]},
                         "reason": {"type": "string", "maxLength": 200}}}}}},
                 "responses": {"200": _json({"type": "object"}), "400": ERR, "404": ERR,
                               "401": _REFUSED, "403": _REFUSED, "409": _REFUSED, "429": _REFUSED}},
    },
    **{f"/v1/ota/releases/{{release_id}}/{name}": {"get": {
        "summary": summary, "security": [], "parameters": [_RID, _TOKEN] + extra,
        "responses": {"200": {"description": "OK", "content": ctype}, "404": ERR}}}
       for name, summary, ctype, extra in (
           ("manifest.json", "The release's signed manifest bytes", {"application/json": {}}, []),
           ("manifest.sig", "The manifest's signature", {"application/json": {}}, []),
           ("files/{path}", "One file of the release", OCTETS,
            [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}]))},
})
SCHEMAS["AuditEntry"]["properties"]["kind"]["enum"] = ["auth", "admin", "ota"]

# feature documents kept beside their handlers' owners (verifier/token_http.py, verifier/mqtt_http.py)
from verifier import openapi_edge, openapi_mqtt, openapi_tokens  # noqa: E402
for _feature in (openapi_tokens, openapi_mqtt, openapi_edge):
    OPENAPI["paths"].update(_feature.PATHS)
    SCHEMAS.update(_feature.SCHEMAS)
