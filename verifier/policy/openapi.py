"""The policy part of the OpenAPI document (docs/policies.md and the routes table of docs/api.md). The schema
PolicyDocument is exactly what verifier.policy.core.validate_document accepts."""

from verifier.policy import core
from verifier.web.openapi import DEVICE_ID, ERR, admin_op as _admin_op, json_body as _json, ref as _ref, \
    with_roles as _with_roles

KEY_PATTERN = core.KEY_PATTERN     # a text without "/" (the device scope takes a device id, the tenant scope "default")
SCOPE = {"name": "scope", "in": "path", "required": True, "schema": {"type": "string", "enum": list(core.SCOPES)}}
CURSOR_PATTERN = ("^(tenant/default|(model|group)/" + KEY_PATTERN[1:-1] + "|device/[0-9a-f]{16})$")
KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string", "pattern": KEY_PATTERN},
       "description": "tenant: `default`; model: a model_id; group: a metadata.group; device: a device id"}


def _set(item, description):
    return {"type": "array", "items": item, "uniqueItems": True, "maxItems": core.MAX_ITEMS, "description": description}


def _int(lo, hi, description):
    return {"type": "integer", "minimum": lo, "maximum": hi, "description": description}


_AUTH = {"type": "object", "additionalProperties": False, "properties": {
    "protocols": _set({"type": "string", "enum": list(core.PROTOCOLS)},
                      "the protocols the device may authenticate with"),
    "credential_types": _set({"type": "string", "enum": list(core.CREDENTIAL_TYPES)},
                             "the credentials it may use (symmetric: binary auth, DTLS, tokens; x509: mqtt_cert; "
                             "password: mqtt_password)"),
    "min_trust_level": _int(0, 100, "refused below this trust level (the device's trust_level)"),
    "attestation": {"type": "string", "enum": list(core.ATTESTATION),
                    "description": "any; not_failed: refused while contraindicated; affirming: only while affirming"},
    "token_ttl_s": _int(*core.TOKEN_TTL, "device token lifetime (default: the tenant policy's)"),
    "drift_s": _int(*core.DRIFT, "binary auth's timestamp allowance (default: the tenant policy's)")}}
_ACCESS = {"type": "object", "additionalProperties": False, "properties": {
    "permissions": _int(0, 0xFFFFFFFF,
                        "the permission bits of the session (docs/protocol.md 3.6; default: the device's)"),
    "coap_resources": _set({"type": "string", "pattern": core.COAP_PATH},
                           "CoAP paths the device may use; `/x/*` covers /x and below (default: all)"),
    "mqtt_topics": {"type": "object", "additionalProperties": False, "properties": {
        "publish": _set({"type": "string", "pattern": core.TOPIC}, "filters under the device's prefix"),
        "subscribe": _set({"type": "string", "pattern": core.TOPIC}, "filters under the device's prefix")},
        "description": "topics relative to the device's prefix (default: the ACL of docs/mqtt.md)"},
    "token_scopes": _set({"type": "string", "pattern": core.SCOPE_TEXT},
                         "the scope claim of its device tokens (default: the tenant's)")}}
_WINDOW = {"type": "object", "additionalProperties": False, "required": ["start", "end", "tz"], "properties": {
    "days": {"type": "array", "items": {"type": "string", "enum": list(core.DAYS)}, "uniqueItems": True,
             "minItems": 1, "description": "the days it opens on (default: every day)"},
    "start": {"type": "string", "pattern": core.HHMM}, "end": {"type": "string", "pattern": core.HHMM,
                                                              "description": "at or before start: the next day"},
    "tz": {"type": "string", "enum": list(core.TIMEZONES), "description": "an IANA time zone"}}}
_UPDATE = {"type": "object", "additionalProperties": False, "properties": {
    "mode": {"type": "string", "enum": list(core.UPDATE_MODES)}, "window": _WINDOW, "allowed": {"type": "boolean"}}}

_EFFECTIVE_AUTH = {**_AUTH, "required": list(core.SECTIONS["auth"])}
_EFFECTIVE_ACCESS = {"type": "object", "required": list(core.SECTIONS["access"]), "properties": {
    k: {"oneOf": [v, {"type": "null"}]} if k != "permissions" else v for k, v in _ACCESS["properties"].items()}}
_EFFECTIVE_UPDATE = {"type": "object", "required": list(core.SECTIONS["update"]), "properties": {
    **_UPDATE["properties"], "window": {"oneOf": [_WINDOW, {"type": "null"}]}}}

SCHEMAS = {
    "PolicyDocument": {"type": "object", "additionalProperties": False,
                       "properties": {"auth": _AUTH, "access": _ACCESS, "update": _UPDATE},
                       "description": "every field optional; a field no scope sets keeps today's behaviour"},
    "DevicePolicy": {"type": "object", "required": ["scope", "key", "policy", "updated_at", "updated_by"],
                     "properties": {
        "scope": {"type": "string", "enum": list(core.SCOPES)}, "key": {"type": "string"},
        "policy": _ref("PolicyDocument"), "updated_at": {"type": "integer"},
        "updated_by": {"type": ["string", "null"], "description": "the admin token id"}}},
    "DevicePolicyList": {"type": "object", "required": ["policies", "next_cursor"], "properties": {
        "policies": {"type": "array", "items": _ref("DevicePolicy")}, "next_cursor": {"type": ["string", "null"]}}},
    "EffectivePolicy": {"type": "object", "required": ["device_id", "policy", "sources"], "properties": {
        "device_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "policy": {"type": "object", "required": ["auth", "access", "update"], "properties": {
            "auth": _EFFECTIVE_AUTH, "access": _EFFECTIVE_ACCESS, "update": _EFFECTIVE_UPDATE}},
        "sources": {"type": "object", "required": list(core.FIELDS),
                    "additionalProperties": {"type": "string"},
                    "description": "per field: tenant, model:<id>, group:<name>, device, or where today's value "
                                   "comes from (default, tenant_policy, device_column)"}}},
}

PATHS = {
    "/v1/policies": {
        "get": _admin_op("The tenant's policy documents, in merge order (tenant, model, group, device), then by key",
                         {"200": _json(_ref("DevicePolicyList"))}, parameters=[
            {"name": "scope", "in": "query", "schema": {"type": "string", "enum": list(core.SCOPES)}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                        "default": 100}},
            {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": CURSOR_PATTERN},
             "description": "next_cursor of the previous page"}]),
    },
    "/v1/policies/{scope}/{key}": {
        "put": _admin_op("Set (replace) the policy document of a scope", {
            "200": _json(_ref("DevicePolicy"), "Replaced"), "201": _json(_ref("DevicePolicy"), "Created"), "404": ERR},
            parameters=[SCOPE, KEY], requestBody={"required": True, "content": {
                "application/json": {"schema": _ref("PolicyDocument")}}}),
        "get": _admin_op("The policy document of a scope", {"200": _json(_ref("DevicePolicy")), "404": ERR},
                         parameters=[SCOPE, KEY]),
        "delete": _admin_op("Remove the policy document of a scope",
                            {"204": {"description": "Deleted"}, "404": ERR}, parameters=[SCOPE, KEY]),
    },
    "/v1/devices/{device_id}/policy": {
        "get": _admin_op("The device's effective policy and the source of each field (docs/policies.md)",
                         {"200": _json(_ref("EffectivePolicy")), "404": ERR}, parameters=[DEVICE_ID]),
    },
}

ROLES = {
    ("GET", "/v1/policies"): ("viewer",),
    ("PUT", "/v1/policies/{scope}/{key}"): ("admin",),
    ("GET", "/v1/policies/{scope}/{key}"): ("viewer",),
    ("DELETE", "/v1/policies/{scope}/{key}"): ("admin",),
    ("GET", "/v1/devices/{device_id}/policy"): ("viewer",),
}
PATHS = _with_roles(PATHS, ROLES)
