"""Building blocks of the OpenAPI document, shared by verifier/<feature>/openapi.py (the features' parts,
composed by verifier/app.py) so that none of them imports another."""


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERR = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
ADMIN = [{"bearerAuth": []}]
DEVICE_ID = {"name": "device_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}
OCTETS = {"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}}


def admin_op(summary, responses, **kw):
    op = {"summary": summary, "security": ADMIN,
          "responses": {**responses, "400": ERR, "401": ERR}}
    op.update(kw)
    return op
