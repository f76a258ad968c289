"""OpenAPI paths and schemas of the mqtt feature, merged into verifier.openapi.OPENAPI (docs/mqtt.md)."""


from verifier.web.openapi import with_roles as _with_roles, ADMIN, DEVICE_ID, ERR, json_body as _json, ref as _ref
PEM = {"description": "PEM", "content": {"application/x-pem-file": {"schema": {"type": "string"}}}}


def _admin_op(summary, responses, **kw):
    op = {"summary": summary, "security": ADMIN, "parameters": [DEVICE_ID],
          "responses": {**responses, "400": ERR, "401": ERR, "404": ERR}}
    op.update(kw)
    return op


def _body(schema, required=False):
    return {"required": required, "content": {"application/json": {"schema": schema}}}


GO_OK = {"200": _json(_ref("GoAuthResult"), "allowed"), "403": _json(_ref("GoAuthResult"), "refused")}

SCHEMAS = {
    "CertificateRequest": {"type": "object", "additionalProperties": False, "properties": {
        "key_type": {"type": "string", "enum": ["p256", "rsa2048"], "default": "p256"},
        "days": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 365}}},
    "CertificateInfo": {"type": "object", "properties": {
        "serial": {"type": "string", "description": "hex"}, "fingerprint": {"type": "string", "description": "SHA-256 of the DER, hex"},
        "key_type": {"type": "string"}, "not_before": {"type": "integer"}, "not_after": {"type": "integer"},
        "next_key_rotation": {"type": "integer", "description": "unix seconds: after 80 % of the lifetime"},
        "revoked_at": {"type": ["integer", "null"]}, "reason": {"type": ["string", "null"]},
        "on_hold": {"type": "boolean", "description": "listed as certificateHold while the device is suspended"}}},
    "IssuedCertificate": {"description": "Returned once: the device's private key (generated on the verifier).",
                          "type": "object", "properties": {
        "device_id": {"type": "string"}, "certificate_der": {"type": "string", "contentEncoding": "base64"},
        "key_der": {"type": "string", "contentEncoding": "base64",
                    "description": "SEC1 DER (P-256) or PKCS#1 DER (RSA): what MicroPython's tls loads"},
        "ca_der": {"type": "string", "contentEncoding": "base64"}, "key_type": {"type": "string"},
        "topic_prefix": {"type": "string"}, "serial": {"type": "string"}, "fingerprint": {"type": "string"},
        "not_before": {"type": "integer"}, "not_after": {"type": "integer"}, "next_key_rotation": {"type": "integer"}}},
    "DeviceCertificates": {"type": "object", "properties": {
        "device_id": {"type": "string"}, "current": {"oneOf": [_ref("CertificateInfo"), {"type": "null"}]},
        "certificates": {"type": "array", "items": _ref("CertificateInfo")}}},
    "RevokeRequest": {"type": "object", "additionalProperties": False, "properties": {
        "serial": {"type": "string"}, "reason": {"type": "string", "enum": [
            "unspecified", "key_compromise", "superseded", "cessation_of_operation", "affiliation_changed"]}}},
    "TenantCA": {"type": "object", "properties": {
        "tenant": {"type": "string"}, "tenant_short": {"type": "string"}, "topic_root": {"type": "string"},
        "ca_pem": {"type": "string"}, "crl_pem": {"type": "string"}, "fingerprint": {"type": "string"},
        "not_after": {"type": "integer"},
        "broker": {"type": ["object", "null"], "properties": {
            "host": {"type": "string"}, "tls_port": {"type": ["integer", "null"]}, "password_port": {"type": ["integer", "null"]}}}}},
    "MQTTPassword": {"description": "Returned once; stored only as a hash.", "type": "object", "properties": {
        "device_id": {"type": "string"}, "username": {"type": "string"}, "client_id": {"type": "string"},
        "password": {"type": "string"}, "topic_prefix": {"type": "string"},
        "broker": {"type": ["object", "null"], "properties": {"host": {"type": "string"}, "port": {"type": ["integer", "null"]}}}}},
    "EMQXAuthRequest": {"type": "object", "properties": {
        "clientid": {"type": "string"}, "username": {"type": "string"},
        "password": {"type": "string", "description": "MQTT password, mqtt-sas token, or token:<device JWT>"},
        "peerhost": {"type": "string"}}},
    "EMQXAuthResult": {"type": "object", "required": ["result"], "properties": {
        "result": {"type": "string", "enum": ["allow", "deny", "ignore"]}, "is_superuser": {"type": "boolean"},
        "acl": {"type": "array", "items": {"type": "object", "properties": {
            "permission": {"type": "string", "enum": ["allow", "deny"]},
            "action": {"type": "string", "enum": ["publish", "subscribe", "all"]}, "topic": {"type": "string"}}}}}},
    "GoAuthUser": {"type": "object", "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                                                    "clientid": {"type": "string"}}},
    "GoAuthACL": {"type": "object", "required": ["acc"], "properties": {
        "username": {"type": "string"}, "clientid": {"type": "string"}, "topic": {"type": "string"},
        "acc": {"type": "integer", "enum": [1, 2, 3, 4], "description": "1 read, 2 write, 3 readwrite, 4 subscribe"}}},
    "GoAuthResult": {"type": "object", "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}}},
}

PATHS = {
    "/v1/devices/{device_id}/certificate": {
        "post": _admin_op("Issue a device certificate from the tenant CA; the key pair is generated here and returned once",
                          {"201": _json(_ref("IssuedCertificate"), "issued"), "409": ERR},
                          requestBody=_body(_ref("CertificateRequest"))),
        "get": _admin_op("The device's certificates (never keys), newest first",
                         {"200": _json(_ref("DeviceCertificates"))}),
    },
    "/v1/devices/{device_id}/certificate/revoke": {
        "post": _admin_op("Revoke the device's certificates (or one serial); the CRL is regenerated and the broker reloaded",
                          {"200": _json({"type": "object", "properties": {
                              "device_id": {"type": "string"}, "revoked": {"type": "integer"},
                              "certificates": {"type": "array", "items": _ref("CertificateInfo")}}})},
                          requestBody=_body(_ref("RevokeRequest"))),
    },
    "/v1/devices/{device_id}/mqtt-password": {
        "post": _admin_op("Set a new random MQTT password (dynamic-security client, username = client id = device id)",
                          {"201": _json(_ref("MQTTPassword"), "created"), "409": ERR}),
    },
    "/v1/ca": {"get": {"summary": "The tenant CA (PEM), its current CRL (PEM), topic root and broker ports",
                       "security": ADMIN, "responses": {"200": _json(_ref("TenantCA")), "401": ERR}}},
    "/v1/ca/crl": {"get": {"summary": "The tenant's current CRL (PEM)", "security": ADMIN,
                           "responses": {"200": PEM, "401": ERR, "404": ERR}}},
    "/v1/mqtt/auth": {"post": {
        "summary": "EMQX 5 HTTP authentication: allow with the device's ACL, deny, or ignore (not a device)",
        "requestBody": _body(_ref("EMQXAuthRequest"), True),
        "responses": {"200": _json(_ref("EMQXAuthResult")), "400": ERR}}},
    "/v1/mqtt/go-auth/user": {"post": {"summary": "mosquitto-go-auth HTTP backend: user check",
                                       "requestBody": _body(_ref("GoAuthUser"), True), "responses": {**GO_OK, "400": ERR}}},
    "/v1/mqtt/go-auth/acl": {"post": {"summary": "mosquitto-go-auth HTTP backend: ACL check (own subtree only)",
                                      "requestBody": _body(_ref("GoAuthACL"), True), "responses": {**GO_OK, "400": ERR}}},
    "/v1/mqtt/go-auth/superuser": {"post": {"summary": "mosquitto-go-auth HTTP backend: no device is a superuser (403)",
                                            "requestBody": _body({"type": "object"}, True),
                                            "responses": {"403": _json(_ref("GoAuthResult"), "never"),
                                                          "400": ERR}}},
    "/v1/auth/device/basic": {"get": {
        "summary": "http-basic: Authorization: Basic base64(<device id>:<hex of K_http-basic>)",
        "security": [{"deviceBasic": []}],
        "responses": {"200": _json({"type": "object", "properties": {"device_id": {"type": "string"},
                                                                     "status": {"type": "string"}}}),
                      "401": ERR}}},
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("POST", "/v1/devices/{device_id}/certificate"): ('operator', 'factory'),
    ("GET", "/v1/devices/{device_id}/certificate"): ('viewer',),
    ("POST", "/v1/devices/{device_id}/certificate/revoke"): ('operator',),
    ("POST", "/v1/devices/{device_id}/mqtt-password"): ('operator', 'factory'),
    ("GET", "/v1/ca"): ('viewer', 'factory'),
    ("GET", "/v1/ca/crl"): ('viewer',),
}
PATHS = _with_roles(PATHS, ROLES)
