"""The attestation policy (per tenant, with per-group overrides) and the per-model reference values an
operator registers (docs/attestation.md sections 3 and 5). Functions over a `Storage`; no HTTP. Admin
changes are audited with the acting token's id."""

import re
import secrets

from verifier.errors import Conflict, NotFound, ValidationError
from verifier.registry.model import as_int

DEFAULTS = {"interval_s": 3600, "deadline_s": 300, "quarantine": True}
BOUNDS = {"interval_s": (0, 30 * 86400), "deadline_s": (10, 86400)}
MAX_GROUP = 64
MAX_REF_MODULES = 96
MAX_REF_FILES = 64
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_MODEL = re.compile(r"[A-Za-z0-9_.\-]{1,32}\Z")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]+\Z")       # the schemas' pattern: no control character


def _printable(v, lo, hi):
    return isinstance(v, str) and lo <= len(v) <= hi and _TEXT.match(v) is not None


def _admin_audit(now, tenant_id, actor, action, target=None, result="ok", reason=None):
    return (int(now), tenant_id, "admin", target, actor, action, None, None, result, reason)


# -- policy --------------------------------------------------------------------------------------

def effective_policy(storage, tenant_id, group=None):
    """{interval_s, deadline_s, quarantine}: the defaults, then the tenant's row, then the group's."""
    out = dict(DEFAULTS)
    for g in ("", group) if isinstance(group, str) and group else ("",):
        row = storage.get_attest_policy(tenant_id, g)
        if row is not None:
            out.update({k: v for k, v in row.items() if v is not None})
    return out


def check_group(group):
    if not _printable(group, 1, MAX_GROUP):
        raise ValidationError(f"group must be 1-{MAX_GROUP} printable characters")
    return group


def put_policy(storage, tenant_id, group, doc, now, actor):
    """Merge `doc` ({interval_s?, deadline_s?, quarantine?}; null resets a field to what it inherits)
    into the tenant's ("" group) or a group's policy row; return the effective policy."""
    if not isinstance(doc, dict) or set(doc) - set(DEFAULTS):
        raise ValidationError("the body must be an object with interval_s, deadline_s and/or quarantine")
    row = storage.get_attest_policy(tenant_id, group) or dict.fromkeys(DEFAULTS)
    for name, value in doc.items():
        if value is None:
            row[name] = None
        elif name == "quarantine":
            if not isinstance(value, bool):
                raise ValidationError("quarantine must be true, false or null")
            row[name] = value
        else:
            v, (lo, hi) = as_int(value), BOUNDS[name]
            if v is None or not lo <= v <= hi:
                raise ValidationError(f"{name} must be an integer in [{lo}, {hi}] or null")
            row[name] = v
    with storage.transaction():
        storage.put_attest_policy(tenant_id, group, row["interval_s"], row["deadline_s"], row["quarantine"])
        storage.add_audit([_admin_audit(now, tenant_id, actor, "attest.policy", None, "ok",
                                        (f"group {group}: " if group else "tenant: ")
                                        + ", ".join(f"{k} {row[k]}" for k in sorted(row)))])
    return policy_view(storage, tenant_id, group)


def policy_view(storage, tenant_id, group=""):
    out = effective_policy(storage, tenant_id, group or None)
    if group:
        out = {"group": group, **out,
               "overrides": {k: v for k, v in (storage.get_attest_policy(tenant_id, group) or {}).items()
                             if v is not None}}
    return out


# -- references ----------------------------------------------------------------------------------

def _text(doc, name, hi, required=False):
    v = doc.get(name)
    if v is None:
        if required:
            raise ValidationError(f"{name} is required")
        return None
    if not _printable(v, 1, hi):
        raise ValidationError(f"{name} must be 1-{hi} printable characters")
    return v


def _entries(doc, name, key, cap):
    v = doc.get(name)
    if v is None:
        return None
    if not isinstance(v, list) or len(v) > cap:
        raise ValidationError(f"{name} must be a list of at most {cap} entries")
    out, seen = [], set()
    for e in v:
        if not isinstance(e, dict) or set(e) != {key, "size", "sha256"}:
            raise ValidationError(f"each of {name} must be {{{key}, size, sha256}}")
        n, size, digest = e[key], as_int(e["size"]), e["sha256"]
        if not _printable(n, 1, 64):
            raise ValidationError(f"{name}: {key} must be 1-64 characters, no control character")
        if n in seen:
            raise Conflict(f"{name}: {key} {n!r} is listed twice")
        if size is None or not 0 <= size < 2 ** 32:
            raise ValidationError(f"{name}: size must be an integer in [0, 4294967295]")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ValidationError(f"{name}: sha256 must be 64 lowercase hex characters")
        seen.add(n)
        out.append({key: n, "size": size, "sha256": digest})
    return sorted(out, key=lambda e: e[key])


def add_ref(storage, tenant_id, doc, now, actor):
    """Register a per-model reference: {model, micropython?, build?, modules?, app_files?}."""
    if not isinstance(doc, dict) or set(doc) - {"model", "micropython", "build", "modules", "app_files"}:
        raise ValidationError("the body must be {model, micropython?, build?, modules?, app_files?}")
    model = _text(doc, "model", 32, required=True)
    if not _MODEL.match(model):
        raise ValidationError("model must be the board id: letters, digits, _ . - (at most 32)")
    ref = {"id": "ref_" + secrets.token_hex(8), "tenant_id": tenant_id, "model": model,
           "micropython": _text(doc, "micropython", 32), "build": _text(doc, "build", 255),
           "modules": _entries(doc, "modules", "name", MAX_REF_MODULES),
           "app_files": _entries(doc, "app_files", "path", MAX_REF_FILES), "created": int(now)}
    with storage.transaction():
        storage.add_attest_ref(ref)
        storage.add_audit([_admin_audit(now, tenant_id, actor, "attest.ref.add", None, "ok",
                                        f"{ref['id']}: model {model}, micropython {ref['micropython'] or 'any'}")])
    return ref_view(ref)


def delete_ref(storage, tenant_id, ref_id, now, actor):
    with storage.transaction():
        if not storage.delete_attest_ref(tenant_id, ref_id):
            raise NotFound("no such reference")
        storage.add_audit([_admin_audit(now, tenant_id, actor, "attest.ref.delete", None, "ok", ref_id)])


def ref_view(ref):
    return {k: ref[k] for k in ("id", "model", "micropython", "build", "modules", "app_files", "created")}
