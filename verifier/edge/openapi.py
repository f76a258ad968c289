"""OpenAPI paths and schemas of the cloud-side routes for edge verifiers (verifier/edge/routes.py),
merged into verifier.openapi.OPENAPI. The edge app's own routes are a subset of the cloud's
(/v1/binauth, /v1/auth/device/offline, /healthz, /metrics) plus GET /v1/edge/status (docs/tokens.md)."""

from verifier.web.openapi import with_roles as _with_roles, DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

_HEX_ID = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
_U32 = {"type": "integer", "minimum": 0, "maximum": 4294967295}
_AUDIT_IN = {"type": "object", "description": "an audit row queued at the edge (as in GET /v1/audit, without seq); "
                                             "strings are cut at 500 characters, a device_id that is not a device id "
                                             "is stored as null",
             "properties": {"ts": _U32, "kind": {"type": "string", "enum": ["auth", "admin", "summary"]},
                            "device_id": {"type": ["string", "null"]}, "action": {"type": "string"},
                            "transport": {"type": ["string", "null"]}, "source": {"type": ["string", "null"]},
                            "result": {"type": "string"}, "reason": {"type": ["string", "null"]},
                            "detail": {"type": ["string", "null"]}},
             "required": ["ts"]}

_HEALTH_IN = {"type": "object", "description": "a health report piggy-backed on a binary-auth request the edge "
                                               "decided OK (docs/health.md 2.1), as received: the edge cannot check "
                                               "its tag (no K_health); the cloud does, and ingests it with via edge",
              "required": ["device_id", "request", "rest", "received_at"],
              "properties": {"device_id": _HEX_ID,
                             "request": {"type": "string", "pattern": "^[0-9a-fA-F]{40}$",
                                         "description": "the 20-byte request, hex; its first 8 bytes are device_id"},
                             "rest": {"type": "string", "pattern": "^([0-9a-fA-F]{2}){11,136}$",
                                      "description": "what followed it: the report and its 8-byte tag, hex"},
                             "received_at": {**_U32, "description": "when the edge received it (its clock; the "
                                             "cloud takes the earlier of it and its own now)"},
                             "transport": {"type": "string", "maxLength": 16, "description": "udp or http"}}}

SCHEMAS = {
    "EdgeDevice": {"type": "object", "description": "what an edge needs to authenticate one device; never the "
                   "master secret", "required": ["device_id", "tenant_id", "status", "blocked", "permissions",
                                                 "binauth_key", "policy", "chain_revoked"],
                   "properties": {
                       "device_id": _HEX_ID, "tenant_id": {"type": "string"},
                       "status": {"type": "string", "enum": ["provisioning", "active", "suspended", "decommissioned"]},
                       "blocked": {"type": "boolean", "description": "compromised or quarantined"},
                       "permissions": {"type": "integer"},
                       "binauth_key": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                                       "description": "K_binauth = HKDF(M, \"binauth\"), hex"},
                       "policy": _ref("Policy"),
                       "chain_revoked": {"type": "boolean", "description": "offline chain tokens of this device "
                                         "must be refused (not active, compromised or quarantined)"},
                       "last_ts": {"type": "integer", "description": "last accepted binary-auth timestamp"},
                       "status_changed_at": {"type": "integer"},
                       "chain_used": {"type": "array", "items": {"type": "integer"},
                                      "description": "used chain indices around the one valid now"},
                       "auth_rule": {"type": ["object", "null"], "description": "the device's binary-auth rule "
                                     "under its effective device policy (docs/policies.md 4); null: no policies",
                                     "required": ["protocols", "refusal", "drift_s", "permissions"],
                                     "properties": {
                                         "protocols": {"type": "array", "items": {"type": "string"},
                                                       "description": "the protocols it may authenticate with"},
                                         "refusal": {"type": ["string", "null"], "description": "why its trust "
                                                     "or attestation refuses every protocol, or null"},
                                         "drift_s": {"type": "integer"}, "permissions": {"type": "integer"}}}}},
}

PATHS = {
    "/v1/edge/devices/{device_id}": {"get": _admin_op(
        "An edge fetches one device of its tenant (cloud fallback)", {"200": _json(_ref("EdgeDevice")), "403": ERR, "404": ERR},
        parameters=[DEVICE_ID])},
    "/v1/edge/snapshot": {"get": _admin_op(
        "An edge's periodic sync: keys, revocations, the devices changed and deleted after the cursor `after`",
        {"200": _json({"type": "object", "required": ["keys", "revocations", "devices", "deleted", "truncated",
                                                      "cursor", "now"], "properties": {
            "keys": {"type": "object", "description": "JWK Set (RFC 7517) of the token keys"},
            "revocations": {"type": "object", "properties": {
                "devices": {"type": "array", "items": _HEX_ID}, "next_update": {"type": "integer"}}},
            "devices": {"type": "array", "items": _ref("EdgeDevice"),
                        "description": "with `after`: the devices changed after it, in change order; with `since`: "
                                       "those provisioned or whose status changed at or after it; else empty. "
                                       "At most 10,000 (with `deleted`)"},
            "deleted": {"type": "array", "items": _HEX_ID,
                        "description": "with `after`: the devices deleted after it (forget them)"},
            "truncated": {"type": "boolean", "description": "more changes follow: ask again at once with "
                                                            "after=`cursor`"},
            "cursor": {"type": "integer", "minimum": 0, "description": "the `after` of the next snapshot"},
            "now": {"type": "integer"},
            "tenant": {"type": "object", "description": "the edge's tenant: {id, policy}", "properties": {
                "id": {"type": "string"}, "policy": _ref("Policy")}}}}), "403": ERR},
        parameters=[{"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
                     "description": "change cursor: the previous snapshot's `cursor` (`since` is then ignored)"},
                    {"name": "since", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
                     "description": "unix seconds (the previous snapshot's `now`): the form of edges of the "
                                    "previous release, a scan of the tenant's devices that sees no delete"}])},
    "/v1/edge/reports": {"post": _admin_op(
        "An edge delivers what it accepted on its own: used chain indices, binary-auth timestamps, audit rows, "
        "health reports",
        {"200": _json({"type": "object", "properties": {
            "used": {"type": "integer"}, "ignored": {"type": "integer"}, "binauth": {"type": "integer"},
            "audit": {"type": "integer"},
            "health": {"type": "integer", "description": "health reports ingested"},
            "health_refused": {"type": "integer", "description": "health reports refused (a bad tag, a report "
                               "that does not decode): counted in janua_health_reports_total{via=\"edge\"}, "
                               "not stored"}}}), "403": ERR},
        requestBody={"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": {
                "used": {"type": "array", "maxItems": 10000, "items": {
                    "type": "object", "required": ["device_id", "index", "ts"], "properties": {
                        "device_id": _HEX_ID, "index": {"type": "integer", "minimum": 0, "maximum": 65535},
                        "ts": _U32}}},
                "binauth": {"type": "array", "maxItems": 10000, "items": {
                    "type": "object", "required": ["device_id", "last_ts"], "properties": {
                        "device_id": _HEX_ID, "last_ts": _U32}}},
                "audit": {"type": "array", "maxItems": 10000, "items": _AUDIT_IN},
                "health": {"type": "array", "maxItems": 10000, "items": _HEALTH_IN}}}}}})},
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("GET", "/v1/edge/devices/{device_id}"): ('edge',),
    ("GET", "/v1/edge/snapshot"): ('edge',),
    ("POST", "/v1/edge/reports"): ('edge',),
}
PATHS = _with_roles(PATHS, ROLES)
