"""The attestation part of the OpenAPI document (docs/attestation.md, docs/api.md "Attestation";
verifier/attest/routes.py): the device's challenge and evidence routes, the admin routes for a
device's attestation, the model references and the policy."""

from verifier.web.openapi import with_roles as _with_roles, DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

_STATUS = {"type": "string", "enum": ["unknown", "none", "affirming", "warning", "contraindicated"]}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_REF_ID = {"name": "ref_id", "in": "path", "required": True, "schema": {"type": "string"}}
_GROUP = {"name": "group", "in": "path", "required": True,
          "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\x00-\\x1f\\x7f]+$"}}
_DEVICE_AUTH = {"auth": {"type": "string", "pattern": "^[0-9a-f]{40}$",
                         "description": "a fresh 20-byte binary auth request (docs/protocol.md 3.1), hex"}}
_REFUSED = {"description": "binary auth refused: the body holds the binary reply (auth, hex) as for /v1/binauth",
            "content": {"application/json": {"schema": _ref("DeviceRefused")}}}
_EVIDENCE_REFUSED = {"description": "evidence refused (docs/attestation.md 2.4): error is the reason",
                     "content": {"application/json": {"schema": _ref("AttestRefusal")}}}


def _entries(key, cap):
    return {"type": ["array", "null"], "maxItems": cap, "items": {
        "type": "object", "required": [key, "size", "sha256"], "additionalProperties": False, "properties": {
            key: {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
            "size": {"type": "integer", "minimum": 0, "maximum": 4294967295}, "sha256": _HEX64}}}


_POLICY_FIELDS = {"interval_s": {"type": ["integer", "null"], "minimum": 0, "maximum": 2592000,
                                 "description": "seconds between attestations; 0 turns continuous attestation off"},
                  "deadline_s": {"type": ["integer", "null"], "minimum": 10, "maximum": 86400,
                                 "description": "a challenge's lifetime"},
                  "quarantine": {"type": ["boolean", "null"], "description": "quarantine on contraindicated"}}

SCHEMAS = {
    "AttestAnswer": {"type": "object", "required": ["status", "trust_level", "quarantined", "ear"], "properties": {
        "status": _STATUS, "trust_level": {"type": "integer", "minimum": 0, "maximum": 100},
        "quarantined": {"type": "boolean"}, "ear": {"type": "string", "description": "the EAR (ear+jwt)"}}},
    "AttestRefusal": {"type": "object", "properties": {
        "error": {"type": "string", "enum": ["malformed", "too_large", "version", "unknown_device", "tag",
                                             "stale_nonce", "rate_limited"]},
        "message": {"type": "string"}}},
    "AttestChallenge": {"type": "object", "properties": {
        "nonce": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "expires_at": {"type": "integer"},
        "reason": {"type": "string", "enum": ["manual", "periodic"]}}},
    "AttestResult": {"type": "object", "properties": {
        "id": {"type": "integer"}, "created": {"type": "integer"}, "status": _STATUS,
        "trust_level": {"type": "integer"},
        "vector": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "AR4SI trustworthiness vector (claims not made are left out)"},
        "details": {"type": "object", "properties": {
            "signatureValid": {"type": "boolean"}, "certificateValid": {"type": ["boolean", "null"]},
            "pcrMatch": {"type": ["boolean", "null"]},
            "recommendations": {"type": "array", "items": {"type": "string"}}}},
        "ear": {"type": ["string", "null"]}}},
    "Attestation": {"type": "object", "properties": {
        "device_id": {"type": "string"}, "attestation_status": _STATUS, "trust_level": {"type": "integer"},
        "quarantined": {"type": "boolean"}, "quarantined_by_attestation": {"type": "boolean"},
        "challenge": {"oneOf": [_ref("AttestChallenge"), {"type": "null"}]},
        "latest": {"oneOf": [_ref("AttestResult"), {"type": "null"}]},
        "history": {"type": "array", "maxItems": 50, "items": _ref("AttestResult")}}},
    "AttestRef": {"type": "object", "properties": {
        "id": {"type": "string"}, "model": {"type": "string"}, "micropython": {"type": ["string", "null"]},
        "build": {"type": ["string", "null"]}, "modules": _entries("name", 96), "app_files": _entries("path", 64),
        "created": {"type": "integer"}}},
    "AttestPolicy": {"type": "object", "properties": {
        "group": {"type": "string"}, "interval_s": {"type": "integer"}, "deadline_s": {"type": "integer"},
        "quarantine": {"type": "boolean"}, "overrides": {"type": "object"}}},
}

_POLICY_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False, "properties": _POLICY_FIELDS}}}}

PATHS = {
    "/v1/attest/challenge": {
        "post": {"summary": "A device asks for a challenge (docs/attestation.md 2.1); authenticated by a binary "
                            "auth request; replaces any outstanding one",
                 "security": [],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["auth"], "properties": _DEVICE_AUTH}}}},
                 "responses": {"200": _json({"type": "object", "properties": {
                     "auth": {"type": "string"}, "nonce": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                     "expires_at": {"type": "integer"}}}),
                     "400": ERR, "401": _REFUSED, "403": _REFUSED, "409": _REFUSED, "429": _REFUSED}},
    },
    "/v1/attest/evidence": {
        "post": {"summary": "A device answers its challenge with board evidence (docs/attestation.md 2.2), "
                            "authenticated by the evidence's own tag; the answer carries the EAR",
                 "security": [],
                 "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {
                     "type": "string", "format": "binary", "maxLength": 8192}}}},
                 "responses": {"200": _json(_ref("AttestAnswer")), "400": _EVIDENCE_REFUSED,
                               "401": _EVIDENCE_REFUSED, "404": _EVIDENCE_REFUSED, "409": _EVIDENCE_REFUSED,
                               "413": _EVIDENCE_REFUSED, "429": ERR}},
    },
    "/v1/devices/{device_id}/attest": {
        "post": _admin_op("Issue a challenge to the device now (it gets it at its next check-in)",
                          {"201": _json(_ref("AttestChallenge"), "created"), "404": ERR}, parameters=[DEVICE_ID]),
    },
    "/v1/devices/{device_id}/attestation": {
        "get": _admin_op("The device's attestation status, trust level, outstanding challenge, latest result "
                         "(with its EAR) and history (the newest 50)",
                         {"200": _json(_ref("Attestation")), "404": ERR}, parameters=[DEVICE_ID]),
    },
    "/v1/devices/{device_id}/attestation/ear": {
        "get": _admin_op("The device's latest EAR, for relying parties (verify it with /.well-known/jwks.json)",
                         {"200": _json({"type": "object", "properties": {
                             "device_id": {"type": "string"}, "created": {"type": "integer"}, "status": _STATUS,
                             "ear": {"type": "string"}}}), "404": ERR}, parameters=[DEVICE_ID]),
    },
    "/v1/attest/refs": {
        "get": _admin_op("The tenant's per-model reference values",
                         {"200": _json({"type": "object", "properties": {
                             "refs": {"type": "array", "items": _ref("AttestRef")}}})},
                         parameters=[{"name": "model", "in": "query", "schema": {"type": "string"}}]),
        "post": _admin_op("Register reference values for a board model (and MicroPython version)",
                          {"201": _json(_ref("AttestRef"), "created"), "409": ERR},
                          requestBody={"required": True, "content": {"application/json": {"schema": {
                              "type": "object", "required": ["model"], "additionalProperties": False,
                              "properties": {
                                  "model": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-]{1,32}$"},
                                  "micropython": {"type": ["string", "null"], "minLength": 1, "maxLength": 32,
                                                  "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
                                  "build": {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
                                            "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
                                  "modules": _entries("name", 96), "app_files": _entries("path", 64)}}}}}),
    },
    "/v1/attest/refs/{ref_id}": {
        "delete": _admin_op("Delete a reference", {"204": {"description": "deleted"}, "404": ERR},
                            parameters=[_REF_ID]),
    },
    "/v1/attest/policy": {
        "get": _admin_op("The tenant's attestation policy (defaults filled in)", {"200": _json(_ref("AttestPolicy"))}),
        "put": _admin_op("Change the tenant's attestation policy (fields given change; null resets to the default)",
                         {"200": _json(_ref("AttestPolicy"))}, requestBody=_POLICY_BODY),
    },
    "/v1/attest/policy/groups/{group}": {
        "get": _admin_op("The effective policy of a device group (metadata.group) and its overrides",
                         {"200": _json(_ref("AttestPolicy"))}, parameters=[_GROUP]),
        "put": _admin_op("Override the tenant's policy for a group (null inherits the tenant's value)",
                         {"200": _json(_ref("AttestPolicy"))}, parameters=[_GROUP], requestBody=_POLICY_BODY),
    },
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("POST", "/v1/devices/{device_id}/attest"): ('operator',),
    ("GET", "/v1/devices/{device_id}/attestation"): ('viewer',),
    ("GET", "/v1/devices/{device_id}/attestation/ear"): ('viewer',),
    ("POST", "/v1/attest/refs"): ('admin',),
    ("GET", "/v1/attest/refs"): ('viewer',),
    ("DELETE", "/v1/attest/refs/{ref_id}"): ('admin',),
    ("GET", "/v1/attest/policy"): ('viewer',),
    ("PUT", "/v1/attest/policy"): ('admin',),
    ("GET", "/v1/attest/policy/groups/{group}"): ('viewer',),
    ("PUT", "/v1/attest/policy/groups/{group}"): ('admin',),
}
PATHS = _with_roles(PATHS, ROLES)
