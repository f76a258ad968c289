"""Building blocks of the OpenAPI document, shared by the features' parts (verifier/<feature>/openapi.py)
so that none of them imports another, and document(parts), with which the app factory composes them."""


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
ADMIN = [{"bearerAuth": []}]
DEVICE_ID = {"name": "device_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}


def admin_op(summary, responses, **kw):
    op = {"summary": summary, "security": ADMIN,
          "responses": {**responses, "400": ERR, "401": ERR}}
    op.update(kw)
    return op
OCTETS = {"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}}


def document(parts):
    """The OpenAPI 3.1 document of an app made of `parts` (modules with PATHS and SCHEMAS), in order."""
    schemas, paths = {}, {}
    for part in parts:
        schemas.update(part.SCHEMAS)
        paths.update(part.PATHS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "janua verifier", "version": "1",
                 "description": "Device registry (tenant-scoped admin API) and binary auth (docs/protocol.md)."},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A tenant admin token (jna_...)."},
                                "deviceBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                                 "description": "A device token (ES256 JWT, docs/tokens.md)."}},
            "schemas": schemas,
        },
        "paths": paths,
    }
