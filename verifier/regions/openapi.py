"""The regions part of the OpenAPI document (docs/regions.md): the Region document, which is its own validation
(verifier/regions/core.py check_region states the same rules), the board configuration it gives, and the routes."""

from verifier.regions.core import HOST_PATTERN, HTTPS_URL_PATTERN, URL_MAX
from verifier.registry.model import REGION_NAME_PATTERN
from verifier.web.openapi import with_roles as _with_roles, ERR, admin_op as _admin_op, json_body as _json, ref as _ref

NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": REGION_NAME_PATTERN}}
HOST = {"type": "string", "pattern": HOST_PATTERN, "description": "a DNS name or IPv4 address"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
URL = {"type": "string", "maxLength": URL_MAX, "pattern": HTTPS_URL_PATTERN}
ENDPOINT = {"type": "object", "additionalProperties": False, "required": ["host", "port"],
            "properties": {"host": HOST, "port": PORT}}
AUTH = {"type": "object", "additionalProperties": False, "required": ["host", "udp_port", "http_port", "dtls_port"],
        "description": "the verifier's device-facing endpoint in this region: binary auth over UDP and HTTP, DTLS; "
                       "udp_port and dtls_port must differ (409 port_clash)",
        "properties": {"host": HOST, "udp_port": PORT, "http_port": PORT, "dtls_port": PORT,
                       "tls": {"type": "boolean", "description": "the board speaks HTTPS to http_port"}}}
_FIELDS = {"auth": AUTH,
           "mqtt": {**ENDPOINT, "description": "the MQTT broker (mutual TLS); not auth.host:auth.http_port "
                                               "(409 port_clash)"},
           "coap": {**ENDPOINT, "description": "the CoAP server"},
           "https": {**URL, "description": "the HTTPS data endpoint"},
           "update": {**URL, "description": "where the board's OTA updates come from"}}

SCHEMAS = {
    "RegionBody": {"type": "object", "additionalProperties": False, "required": ["auth"], "properties": {
        **_FIELDS, "default": {"type": "boolean", "default": False,
                               "description": "the tenant's default region (for devices without metadata.region); "
                                              "setting it takes it from the previous default"}}},
    "Region": {"type": "object", "required": ["name", "auth", "default", "created", "updated"], "properties": {
        "name": {"type": "string", "pattern": REGION_NAME_PATTERN}, **_FIELDS, "default": {"type": "boolean"},
        "created": {"type": "integer"}, "updated": {"type": "integer"}}},
    "RegionList": {"type": "object", "required": ["regions"], "properties": {
        "regions": {"type": "array", "items": _ref("Region")}}},
    "BoardConfig": {"type": "object", "required": ["region", "server"],
                    "description": "the board's endpoints for its region (core.board_config; docs/regions.md): the "
                                   "\"config\" of provisioning and claim answers",
                    "properties": {"region": {"type": ["string", "null"]},
                                   "server": {"type": "object", "required": ["host", "udp_port", "http_port",
                                                                             "dtls_port"],
                                              "properties": {"host": HOST, "udp_port": PORT, "http_port": PORT,
                                                             "dtls_port": PORT, "tls": {"type": "boolean"}}},
                                   "mqtt": ENDPOINT, "coap": ENDPOINT, "update": URL}},
}

PATHS = {
    "/v1/regions": {
        "get": _admin_op("The tenant's regions, by name", {"200": _json(_ref("RegionList"))}),
    },
    "/v1/regions/{name}": {
        "get": _admin_op("One region", {"200": _json(_ref("Region")), "404": ERR}, parameters=[NAME]),
        "put": _admin_op("Define or replace a region (audited)",
                         {"200": _json(_ref("Region"), "replaced"), "201": _json(_ref("Region"), "created"),
                          "409": ERR}, parameters=[NAME],
                         requestBody={"required": True,
                                      "content": {"application/json": {"schema": _ref("RegionBody")}}}),
        "delete": _admin_op("Delete a region (audited); 409 region_in_use while devices name it in metadata.region",
                            {"204": {"description": "deleted"}, "404": ERR, "409": ERR}, parameters=[NAME]),
    },
}

ROLES = {
    ("GET", "/v1/regions"): ("viewer",),
    ("GET", "/v1/regions/{name}"): ("viewer",),
    ("PUT", "/v1/regions/{name}"): ("admin",),
    ("DELETE", "/v1/regions/{name}"): ("admin",),
}
PATHS = _with_roles(PATHS, ROLES)
