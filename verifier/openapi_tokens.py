"""OpenAPI paths and schemas of the tokens feature, merged into verifier.openapi.OPENAPI."""

PATHS = {}
SCHEMAS = {}
