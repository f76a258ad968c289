"""OpenAPI paths and schemas of the tokens feature (docs/tokens.md), merged into verifier.openapi.OPENAPI."""

from verifier.web.openapi import with_roles as _with_roles, ERR, json_body as _json, ref as _ref


def _body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


DEVICE_BEARER = [{"deviceBearer": []}]
CHAIN_TOKEN = {"type": "string", "pattern": "^[0-9a-f]{214}$",
               "description": "a 107-byte offline chain token (docs/tokens.md section 3), hex"}
REFUSED = {"description": "refused; the reason goes only to the audit log (kind auth, transport offline)",
           "content": {"application/json": {"schema": {"type": "object", "properties": {
               "error": {"const": "unauthenticated"}, "message": {"const": "refused"}}}}}}
BIN_REFUSED = {"description": "binary auth refused: the body holds the binary reply (auth, hex) as for /v1/binauth",
               "content": {"application/json": {"schema": _ref("DeviceRefused")}}}

SCHEMAS = {
    "DeviceToken": {"type": "object", "required": ["token", "token_type", "expires_at", "refresh_at"], "properties": {
        "token": {"type": "string",
                  "description": "compact ES256 JWT: header {alg, kid}, claims {sub, iat, exp, scp, tid}"},
        "token_type": {"const": "Bearer"},
        "expires_at": {"type": "integer", "description": "the token's exp, unix seconds"},
        "refresh_at": {"type": "integer", "description": "exp - the tenant's token_refresh_s"},
        "auth": {"type": "string", "description": "the binary auth OK reply, hex (only from /v1/auth/device/token)"}}},
    "JWKS": {"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "object", "properties": {
        "kty": {"const": "EC"}, "crv": {"const": "P-256"}, "x": {"type": "string"}, "y": {"type": "string"},
        "kid": {"type": "string", "pattern": "^[0-9a-f]{8}$"}, "alg": {"const": "ES256"}, "use": {"const": "sig"}}}}}},
    "SyncReply": {"type": "object", "properties": {
        "used_ack": {"type": "array", "items": {"type": "integer"},
                     "description": "the reported indices the verifier has recorded as used"},
        "tokens": {"type": "array", "items": CHAIN_TOKEN, "description": "new chain tokens in index order (a top-up)"},
        "chain": {"type": ["object", "null"], "properties": {
            "period": {"type": "integer"}, "validity": {"type": "integer"}, "next_index": {"type": "integer"}}},
        "keys": _ref("JWKS"),
        "revocations": {"type": "object", "properties": {
            "devices": {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
            "next_update": {"type": "integer"}}},
        "config": {"type": "object", "additionalProperties": {"type": "integer"}},
        "update_available": {"type": "boolean"}}},
}

PATHS = {
    "/.well-known/jwks.json": {"get": {
        "summary": "The token-signing public keys (RFC 7517), the retired ones until their tokens have expired",
        "security": [], "responses": {"200": _json(_ref("JWKS"))}}},
    "/v1/auth/device/token": {"post": {
        "summary": "A device JWT for a fresh binary auth request (as /v1/ota/check authenticates)",
        "security": [],
        "requestBody": _body({"type": "object", "required": ["auth"], "properties": {
            "auth": {"type": "string", "pattern": "^[0-9a-f]{40}$",
                     "description": "a fresh 20-byte binary auth request (docs/protocol.md 3.1), hex"}}}),
        "responses": {"200": _json(_ref("DeviceToken")), "400": ERR, "401": BIN_REFUSED, "403": {
            "description": "binary auth refused (NOT_ACTIVE, the binary reply in auth), or the device's policy "
                           "refuses device tokens (error forbidden; docs/policies.md)",
            "content": {"application/json": {"schema": {"anyOf": [_ref("DeviceRefused"), _ref("Error")]}}}},
                      "409": BIN_REFUSED, "429": BIN_REFUSED}}},
    "/v1/auth/device/refresh": {"post": {
        "summary": "A new JWT for a still valid one whose device may still authenticate",
        "security": DEVICE_BEARER, "responses": {"200": _json(_ref("DeviceToken")), "401": ERR,
                                                 "403": ERR}}},
    "/v1/auth/device/whoami": {"get": {
        "summary": "The bearer's device: the simplest token-protected device resource",
        "security": DEVICE_BEARER, "responses": {"200": _json({"type": "object", "properties": {
            "device_id": {"type": "string"}, "tenant": {"type": "string"}, "status": {"type": "string"},
            "exp": {"type": "integer"}}}), "401": ERR}}},
    "/v1/auth/device/offline": {"post": {
        "summary": "Authenticate with an offline chain token: accepted once per index (persisted), within "
                   "[nbf - drift_s, exp + drift_s]",
        "security": [], "requestBody": _body({"type": "object", "required": ["token"], "properties": {
            "token": CHAIN_TOKEN}}),
        "responses": {"200": _json({"type": "object", "properties": {
            "ok": {"const": True}, "device_id": {"type": "string"}, "index": {"type": "integer"},
            "next_index": {"type": "integer"}, "next_nbf": {"type": "integer"}}}), "401": REFUSED,
            "429": {"description": "too many requests from this address (the verifier's per-source limit); "
                                   "Retry-After", "content": {"application/json": {"schema": {
                                       "$ref": "#/components/schemas/Error"}}}}}}},
    "/v1/auth/device/sync": {"post": {
        "summary": "Report used chain indices, get a top-up when fewer than chain_low_water remain, keys, "
                   "revocations, configuration and whether an update is available",
        "security": DEVICE_BEARER,
        "requestBody": _body({"type": "object", "properties": {
            "used": {"type": "array", "maxItems": 1000, "items": {"type": "integer", "minimum": 0, "maximum": 65535}},
            "have": {"type": "integer", "minimum": -1, "maximum": 65535,
                     "description": "the highest chain index the device holds, -1 for none (first chain)"},
            "ota": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["app", "firmware"]},
                                                     "version": {"type": ["string", "null"]},
                                                     "counter": {"type": "integer"}}}}}),
        "responses": {"200": _json(_ref("SyncReply")), "400": ERR, "401": ERR, "409": ERR}}},
    "/v1/tokens/introspect": {"post": {
        "summary": "RFC 7662 introspection of a device JWT for the tenant's services: inactive unless it "
                   "validates now and its device is the caller's tenant's",
        "security": [{"bearerAuth": []}],
        "requestBody": _body({"type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}),
        "responses": {"200": _json({"type": "object", "required": ["active"], "properties": {
            "active": {"type": "boolean"}, "sub": {"type": "string"}, "iat": {"type": "integer"},
            "exp": {"type": "integer"}, "scp": {"type": "string"}, "scope": {"type": "string"},
            "tid": {"type": "string"}, "token_type": {"type": "string"}}}), "400": ERR, "401": ERR}}},
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("POST", "/v1/tokens/introspect"): ('viewer',),
}
PATHS = _with_roles(PATHS, ROLES)
