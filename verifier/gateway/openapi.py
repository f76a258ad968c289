"""OpenAPI paths and schemas of the gateway attestation routes (verifier/gateway/routes.py)."""

from verifier.web.openapi import with_roles as _with_roles, ERR, admin_op as _admin_op, json_body as _json, ref as _ref


def _hex(lo, hi, description):
    return {"type": "string", "pattern": f"^([0-9a-f]{{2}}){{{lo},{hi}}}$", "description": description}


_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ID = {"name": "gateway_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^gw_[0-9a-f]{16}$"}}
_MODEL = {"name": "model", "in": "path", "required": True, "schema": _NAME}
_PCR_KEYS = [str(i) for i in range(8)]
_CERT = _hex(1, 4096, "DER X.509 certificate, hex")
_NULLABLE_INT = {"type": ["integer", "null"]}


def _body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SCHEMAS = {
    "Gateway": {"type": "object", "required": ["id", "name", "model", "status", "token_id", "credentials"],
                "properties": {
                    "id": {"type": "string", "pattern": "^gw_[0-9a-f]{16}$"}, "name": _NAME, "model": _NAME,
                    "status": {"type": "string", "enum": ["enrolling", "active", "failed"]},
                    "token_id": {"type": "string", "description": "the admin token bound to the gateway"},
                    "created": {"type": "integer"}, "updated": {"type": "integer"},
                    "attested_at": _NULLABLE_INT, "passed": {"type": "boolean"},
                    "credentials": {"type": "object", "properties": {"tpm": {"type": "object", "properties": {
                        "ekPublic": {"type": "string", "description": "TPM2B_PUBLIC of the EK, hex"},
                        "akPublic": {"type": "string", "description": "TPM2B_PUBLIC of the AK, hex"},
                        "pcrs": {"type": "object", "description": "the last quoted PCR values (SHA-256 bank)",
                                 "additionalProperties": _SHA256}}}}},
                    "last_result": {"type": ["object", "null"]}}},
    "GatewayResult": {"type": "object", "required": ["status", "passed", "trust_level", "ear", "details"],
                      "properties": {
                          "status": {"type": "string", "enum": ["affirming", "warning", "contraindicated", "none"]},
                          "passed": {"type": "boolean"}, "trust_level": {"type": "integer", "minimum": 0, "maximum": 100},
                          "ear": {"type": "string", "description": "EAR JWT (ear+jwt, ES256), verifiable with the JWKS"},
                          "details": {"type": "object", "properties": {
                              "signatureValid": {"type": "boolean"}, "pcrMatch": {"type": "boolean"},
                              "certificateValid": {"type": "boolean"},
                              "mismatchedPcrs": {"type": "array", "items": {"type": "integer"}},
                              "failure": {"type": ["string", "null"]},
                              "recommendations": {"type": "array", "items": {"type": "string"}}}}}},
    "GatewayPolicy": {"type": "object", "required": ["interval_s", "grace_s", "require_attested"], "properties": {
        "interval_s": {"type": "integer", "minimum": 60, "maximum": 2592000},
        "grace_s": {"type": "integer", "minimum": 0, "maximum": 86400},
        "require_attested": {"type": "boolean", "description": "every edge token must be bound to an attested gateway"}}},
    "EKCA": {"type": "object", "required": ["fingerprint", "subject", "cert"], "properties": {
        "fingerprint": _SHA256, "subject": {"type": "string"}, "created": {"type": "integer"},
        "cert": {"type": "string", "description": "PEM"}}},
}

PATHS = {
    "/v1/gateways": {
        "post": _admin_op(
            "Enrol a gateway's TPM (binds the caller's admin token to it): the answer is a credential only that "
            "TPM can activate", {"201": _json({"type": "object", "required": ["id", "credential_blob", "encrypted_secret"],
                                               "properties": {
                                                   "id": {"type": "string"}, "status": {"type": "string"},
                                                   "credential_blob": {"type": "string", "description": "TPM2B_ID_OBJECT, hex"},
                                                   "encrypted_secret": {"type": "string",
                                                                        "description": "TPM2B_ENCRYPTED_SECRET, hex"},
                                                   "expires_at": {"type": "integer"}}}, "enrolling"),
                                 "403": ERR, "409": ERR},
            requestBody=_body({"type": "object", "additionalProperties": False,
                               "required": ["name", "model", "ek_public", "ek_cert", "ak_public"], "properties": {
                                   "name": _NAME, "model": _NAME,
                                   "ek_public": _hex(1, 1024, "TPM2B_PUBLIC of the RSA 2048 EK, hex"),
                                   "ek_cert": _CERT,
                                   "ek_chain": {"type": "array", "maxItems": 4, "items": _CERT,
                                                "description": "intermediate CA certificates"},
                                   "ak_public": _hex(1, 1024, "TPM2B_PUBLIC of the AK (RSA 2048 or ECC P-256), hex")}})),
        "get": _admin_op("The tenant's gateways (at most 1000 after `after`)",
                         {"200": _json({"type": "object", "properties": {
                             "gateways": {"type": "array", "items": _ref("Gateway")}}})},
                         parameters=[{"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
                                      "description": "a gateway id: list the ones after it"}])},
    "/v1/gateways/ek-cas": {
        "post": _admin_op("Register an EK CA certificate (a trust anchor for EK certificates)",
                          {"201": _json(_ref("EKCA"), "added"), "200": _json(_ref("EKCA"), "already registered"),
                           "403": ERR},
                          requestBody=_body({"type": "object", "additionalProperties": False, "required": ["cert"],
                                             "properties": {"cert": {"type": "string", "maxLength": 8192,
                                                                     "pattern": "^-----BEGIN CERTIFICATE-----",
                                                                     "description": "PEM"}}})),
        "get": _admin_op("The tenant's EK CA certificates", {"200": _json({"type": "object", "properties": {
            "cas": {"type": "array", "items": _ref("EKCA")}}})})},
    "/v1/gateways/policy": {
        "get": _admin_op("The tenant's gateway attestation policy", {"200": _json(_ref("GatewayPolicy"))}),
        "put": _admin_op("Change the tenant's gateway attestation policy (fields left out keep their value)",
                         {"200": _json(_ref("GatewayPolicy")), "403": ERR},
                         requestBody=_body({"type": "object", "additionalProperties": False, "properties": {
                             "interval_s": {"type": "integer", "minimum": 60, "maximum": 2592000},
                             "grace_s": {"type": "integer", "minimum": 0, "maximum": 86400},
                             "require_attested": {"type": "boolean"}}}))},
    "/v1/gateways/models/{model}/pcrs": {
        "put": _admin_op("Set the reference PCR values (SHA-256 bank) of a gateway model",
                         {"200": _json({"type": "object", "properties": {
                             "model": _NAME, "pcrs": {"type": "object", "additionalProperties": _SHA256}}}),
                          "403": ERR, "404": ERR},
                         parameters=[_MODEL],
                         requestBody=_body({"type": "object", "additionalProperties": False, "required": ["pcrs"],
                                            "properties": {"pcrs": {
                                                "type": "object", "minProperties": 1, "additionalProperties": False,
                                                "properties": {k: _SHA256 for k in _PCR_KEYS}}}}))},
    "/v1/gateways/{gateway_id}": {
        "get": _admin_op("One gateway", {"200": _json(_ref("Gateway")), "404": ERR}, parameters=[_ID])},
    "/v1/gateways/{gateway_id}/activate": {
        "post": _admin_op("Finish enrolment with the credential the gateway's TPM activated",
                          {"200": _json(_ref("Gateway")), "403": ERR, "404": ERR, "409": ERR}, parameters=[_ID],
                          requestBody=_body({"type": "object", "additionalProperties": False, "required": ["credential"],
                                             "properties": {"credential": _hex(1, 64, "the activated credential")}}))},
    "/v1/gateways/{gateway_id}/challenge": {
        "post": _admin_op("A fresh quote nonce (single use, 300 s; replaces the previous one)",
                          {"200": _json({"type": "object", "required": ["nonce", "expires_at"], "properties": {
                              "nonce": _SHA256, "expires_at": {"type": "integer"}}}), "404": ERR, "409": ERR},
                          parameters=[_ID])},
    "/v1/gateways/{gateway_id}/quote": {
        "post": _admin_op("Appraise a TPM2_Quote of PCRs 0-7 (SHA-256) over the outstanding nonce",
                          {"200": _json(_ref("GatewayResult")), "404": ERR, "409": ERR}, parameters=[_ID],
                          requestBody=_body({"type": "object", "additionalProperties": False,
                                             "required": ["quote", "signature", "pcrs"], "properties": {
                                                 "quote": _hex(1, 1024, "TPMS_ATTEST, hex"),
                                                 "signature": _hex(1, 600, "TPMT_SIGNATURE, hex"),
                                                 "pcrs": _hex(256, 256, "PCR 0 to 7 of the SHA-256 bank, concatenated, hex")}}))},
}


# the roles that may call each admin-token operation (docs/api.md "Roles"; the routes check them)
ROLES = {
    ("POST", "/v1/gateways"): ('edge',),
    ("GET", "/v1/gateways"): ('viewer',),
    ("POST", "/v1/gateways/ek-cas"): ('admin',),
    ("GET", "/v1/gateways/ek-cas"): ('viewer',),
    ("GET", "/v1/gateways/policy"): ('viewer', 'edge'),
    ("PUT", "/v1/gateways/policy"): ('admin',),
    ("PUT", "/v1/gateways/models/{model}/pcrs"): ('admin',),
    ("GET", "/v1/gateways/{gateway_id}"): ('viewer',),
    ("POST", "/v1/gateways/{gateway_id}/activate"): ('edge',),
    ("POST", "/v1/gateways/{gateway_id}/challenge"): ('edge',),
    ("POST", "/v1/gateways/{gateway_id}/quote"): ('edge',),
}
PATHS = _with_roles(PATHS, ROLES)
