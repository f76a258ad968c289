"""OpenAPI paths and schemas of the mqtt feature, merged into verifier.openapi.OPENAPI."""

PATHS = {}
SCHEMAS = {}
