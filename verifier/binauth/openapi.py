"""The binary-auth part of the OpenAPI document: POST /v1/binauth (docs/protocol.md 3.5)."""

from verifier.web.openapi import OCTETS

BINAUTH_REPLY = {"content": OCTETS}

SCHEMAS = {}
PATHS = {
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
}
