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


METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def with_roles(paths, roles):
    """`paths` with each admin-token operation's role (docs/api.md "Roles"): `roles` maps (METHOD, path) to the
    roles that may call it (admin covers every role); each such operation gets `x-janua-role` (that list), the
    roles in its description and a 403. Raises ValueError for an admin-token operation without a role, or a
    role for an operation that is not one, so that a feature's document cannot leave one out."""
    out = {}
    for path, item in paths.items():
        out[path] = {}
        for method, op in item.items():
            if method not in METHODS:          # e.g. path-level "parameters"
                out[path][method] = op
                continue
            key = (method.upper(), path)
            admin = any("bearerAuth" in s for s in op.get("security", ()))
            if admin != (key in roles):
                raise ValueError(f"{key}: an admin-token operation needs a role, and only one does")
            if admin:
                named = list(roles[key])
                text = "Role: " + " or ".join(named) + " (an admin token may call every route)."
                op = {**op, "x-janua-role": named,
                      "description": (op["description"] + "\n\n" + text) if op.get("description") else text,
                      "responses": {**op["responses"], "403": ERR}}
            out[path][method] = op
    missing = set(roles) - {(m.upper(), p) for p, item in paths.items() for m in item if m in METHODS}
    if missing:
        raise ValueError(f"roles for operations the document does not have: {sorted(missing)}")
    return out
