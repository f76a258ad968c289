"""The OTA part of the OpenAPI document (docs/ota.md section 7; verifier/ota/routes.py): release keys,
releases, rollouts, the device check/report and the downloads. DeviceRefused (the JSON refusal of a
device route, verifier/binauth/device.py) is declared here because the document has always listed it
after the OTA schemas; the tokens part refers to it too."""

from verifier.web.openapi import with_roles as _with_roles, ERR, OCTETS, admin_op as _admin_op, json_body as _json, ref as _ref


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

SCHEMAS = {
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
}
_admin_ota = _admin_op
PATHS = {
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
                 "description": "Open to a quarantined device (it is how it gets repaired: docs/protocol.md 3.4 "
                                "step 6); a compromised, suspended or decommissioned one is 403 not_active.",
                 "security": [],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["auth"], "properties": {
                         **_DEVICE_AUTH, "kind": {"type": "string", "enum": ["app", "firmware"], "default": "app"},
                         "version": {"type": ["string", "null"]}, "counter": {"type": "integer", "default": 0},
                         "health": {"type": "string", "pattern": "^([0-9a-f]{2})*$", "maxLength": 256,
                                    "description": "a health report as lowercase hex (docs/health.md 2.4); the "
                                                   "answer's health is ok or the refusal reason"}}}}}},
                 "responses": {"200": _json({"type": "object", "properties": {
                     "auth": {"type": "string"}, "update": {"oneOf": [_ref("Update"), {"type": "null"}]},
                     "policy": {"type": "object", "required": ["decision", "reason", "deferred_until"],
                                "description": "present when the device's update policy holds every release back "
                                               "(docs/policies.md): update is then null",
                                "properties": {"decision": {"type": "string", "enum": ["deferred", "refused"]},
                                               "reason": {"type": "string"},
                                               "deferred_until": {"type": ["integer", "null"],
                                                                  "description": "when the maintenance window opens"}}},
                     "attest": {"type": "object", "description": "an attestation challenge to answer "
                                "(docs/attestation.md 5): present when one is outstanding or due",
                                "properties": {"nonce": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                               "expires_at": {"type": "integer"}}}}}),
                     "400": ERR, "401": _REFUSED, "403": _REFUSED, "409": _REFUSED, "429": _REFUSED}},
    },
    "/v1/ota/report": {
        "post": {"summary": "A device reports an update step; feeds the rollout's health",
                 "description": "Open to a quarantined device, like the check.",
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
        "responses": {"200": {"description": "OK", "content": ctype}, **more, "404": ERR}}}
       for name, summary, ctype, extra, more in (
           ("manifest.json", "The release's signed manifest bytes", {"application/json": {}}, [], {}),
           ("manifest.sig", "The manifest's signature", {"application/json": {}}, [], {}),
           ("files/{path}", "One file of the release (ETag: its quoted SHA-256; one byte range: Range, If-Range)",
            OCTETS, [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                     {"name": "Range", "in": "header", "schema": {"type": "string"},
                      "description": "one range, bytes=FIRST-LAST, FIRST- or -SUFFIX"}],
            {"206": {"description": "The range (Content-Range)", "content": OCTETS},
             "304": {"description": "If-None-Match names the file's ETag"},
             "416": {"description": "Range not satisfiable or not understood (Content-Range: bytes */SIZE)"}}))},
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("GET", "/v1/release-keys"): ('viewer',),
    ("POST", "/v1/release-keys"): ('admin',),
    ("POST", "/v1/release-keys/{kid}/retire"): ('admin',),
    ("POST", "/v1/releases"): ('admin',),
    ("GET", "/v1/releases"): ('viewer',),
    ("GET", "/v1/releases/{release_id}"): ('viewer',),
    ("POST", "/v1/releases/{release_id}/rollout"): ('operator',),
    ("GET", "/v1/rollouts"): ('viewer',),
    ("GET", "/v1/rollouts/{rollout_id}"): ('viewer',),
    ("POST", "/v1/rollouts/{rollout_id}/halt"): ('operator',),
    ("POST", "/v1/rollouts/{rollout_id}/resume"): ('operator',),
}
PATHS = _with_roles(PATHS, ROLES)
