"""Registry operations: tenants, admin tokens, provisioning, device views, patches and lifecycle.

Functions over a `Storage`; no HTTP and no wire protocol. Every admin action is audited with the
acting token's id (never the token). Secrets appear only in the provisioning result, once.
"""

import json
import os
import secrets
import time

from verifier import keys
from verifier.errors import (Conflict, DuplicateSerial, InvalidTransition, NotFound, Unauthorized, ValidationError,
                             VerifierError)
from verifier.registry.model import (DEFAULT_PERMISSIONS, FLAG_ACTIONS, PSK_LIFETIME_S, ROLES, Policy, next_status,
                                     validate_device_patch, validate_new_device, validate_psk_rotation)

BULK_MAX_ROWS = 10_000     # per HTTP request; provision_bulk itself takes any number
CHUNK = 5_000
_RAND_PER_DEVICE = keys.DEVICE_ID_LEN + keys.MASTER_SECRET_LEN + keys.NONCE_LEN


def _admin_audit(now, tenant_id, actor, action, target=None, result="ok", reason=None):
    return (now, tenant_id, "admin", target, actor, action, None, None, result, reason)


# tenants and tokens

def create_tenant(storage, name, now, policy=None):
    """Create a tenant with the default (or given) policy; return its dict."""
    if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
        raise ValidationError("tenant name must be 1-64 printable characters")
    tenant_id = secrets.token_hex(8)
    with storage.transaction():
        storage.create_tenant(tenant_id, name, int(now), (policy or Policy()).to_json())
        storage.add_audit([_admin_audit(int(now), tenant_id, "cli", "tenant.create", tenant_id)])
    return storage.get_tenant(tenant_id)


def issue_token(storage, tenant_id, now, label=None, actor="cli", role="admin"):
    """Create an admin token of `role` (docs/api.md "Roles") for a tenant. Returns (token_id, token); only
    the hash is stored."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
    token = keys.new_token()
    token_id = "tok_" + secrets.token_hex(6)
    with storage.transaction():
        storage.add_token(token_id, tenant_id, keys.hash_token(token), label, int(now), role)
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, "token.issue", token_id, reason=f"role {role}")])
    return token_id, token


def revoke_token(storage, tenant_id, token_id, now, actor="cli"):
    """Revoke one of a tenant's admin tokens at once (the next request with it gets 401)."""
    with storage.transaction():
        if not storage.revoke_token(tenant_id, token_id, int(now)):
            raise NotFound(f"no active token {token_id!r} in this tenant")
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, "token.revoke", token_id)])


def authenticate_token(storage, authorization):
    """`Authorization: Bearer <token>` -> (token_id, tenant_id, role), else Unauthorized. The role is checked by
    the caller (verifier.web.auth.require_role)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("an admin token is required: Authorization: Bearer <token>")
    token = authorization[7:].strip()
    if not token.startswith(keys.TOKEN_PREFIX) or len(token) > 128:
        raise Unauthorized("invalid admin token")
    h = keys.hash_token(token)
    found = storage.find_token(h)
    if found is None or not keys.ct_eq(found[2], h):
        raise Unauthorized("invalid admin token")
    return found[0], found[1], found[3]


def tenant_view(tenant):
    return {"id": tenant["id"], "name": tenant["name"], "created": tenant["created"], "policy": tenant["policy"]}


def patch_tenant_policy(storage, tenant_id, doc, now, actor):
    """Merge a partial policy into the tenant's; return the new tenant dict."""
    tenant = storage.get_tenant(tenant_id)
    if not isinstance(doc, dict) or set(doc) - {"policy"} or "policy" not in doc:
        raise ValidationError('body must be {"policy": {...}}')
    policy = Policy.from_json(doc["policy"], Policy.from_json(tenant["policy"]))
    with storage.transaction():
        storage.set_tenant_policy(tenant_id, policy.to_json())
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, "tenant.policy", tenant_id)])
    return storage.get_tenant(tenant_id)


# provisioning

def provision_bulk(storage, kek, tenant_id, rows, now=None, actor="api", configure=None):
    """Provision many devices; valid rows are inserted in one transaction, invalid rows skipped.

    `kek` is the 32-byte KEK (or a keys.Sealer). Returns {"results": [{index, ok, device_id,
    serial_number, master_secret[, config]} | {index, ok: false, error, message}], "summary": {...}}.
    The master secrets in the result are the only copy outside the sealed database rows.
    `configure`: None, or fields -> the board's configuration for the row (a dict, or None for none), raising a
    VerifierError that refuses the row (the regions feature's, app[DEVICE_CONFIG]: unknown_region).
    """
    now = int(time.time() if now is None else now)
    sealer = kek if isinstance(kek, keys.Sealer) else keys.Sealer(kek)
    if not isinstance(rows, list):
        raise ValidationError("devices must be a list")
    results = [None] * len(rows)
    valid = []                        # (index, fields)
    seen = {}
    for i, row in enumerate(rows):
        try:
            f = validate_new_device(row)
            if configure is not None:
                f["config"] = configure(f)
        except VerifierError as e:
            results[i] = {"index": i, "ok": False, "error": e.code, "message": str(e)}
            continue
        sn = f["serial_number"]
        if sn in seen:
            results[i] = {"index": i, "ok": False, "error": DuplicateSerial.code,
                          "message": f"serial_number {sn!r} repeats row {seen[sn]}"}
            continue
        seen[sn] = i
        valid.append((i, f))
    taken = storage.existing_serials(tenant_id, seen) if seen else set()
    if taken:
        keep = []
        for i, f in valid:
            if f["serial_number"] in taken:
                results[i] = {"index": i, "ok": False, "error": DuplicateSerial.code,
                              "message": f"serial_number {f['serial_number']!r} already exists in this tenant"}
            else:
                keep.append((i, f))
        valid = keep

    for attempt in range(3):          # a 64-bit device id collision is astronomically rare; retry anyway
        try:
            created = _insert(storage, sealer, tenant_id, valid, now, actor)
            break
        except Conflict:
            if attempt == 2:
                raise
    for r in created:
        results[r["index"]] = r
    failed = [r for r in results if not r["ok"]]
    if failed:
        storage.add_audit([_admin_audit(now, tenant_id, actor, "device.provision", None, "error",
                                        f"row {r['index']}: {r['message']}") for r in failed])
    return {"results": results,
            "summary": {"requested": len(rows), "created": len(created), "failed": len(failed)}}


def _insert(storage, sealer, tenant_id, valid, now, actor):
    created = []
    ids = set()
    with storage.transaction():
        for start in range(0, len(valid), CHUNK):
            chunk = valid[start:start + CHUNK]
            rnd = os.urandom(_RAND_PER_DEVICE * len(chunk))
            dev_rows = []
            for n, (i, f) in enumerate(chunk):
                o = n * _RAND_PER_DEVICE
                did = rnd[o:o + 8]
                while did in ids:
                    did = os.urandom(8)
                ids.add(did)
                secret = rnd[o + 8:o + 40]
                sealed = sealer.seal(secret, did, tenant_id, rnd[o + 40:o + 52])
                dev_rows.append((did, tenant_id, f["serial_number"], f["manufacturer_id"], f["model_id"],
                                 f["credential_type"], sealed, json.dumps(f["metadata"]), "provisioning",
                                 now, now, f["trust_level"], 0, 0, f["permissions"], 0, now + PSK_LIFETIME_S))
                created.append({"index": i, "ok": True, "device_id": did.hex(), "serial_number": f["serial_number"],
                                "master_secret": secret.hex()})
                if f.get("config") is not None:
                    created[-1]["config"] = f["config"]
            storage.insert_devices(dev_rows)
        if created:
            # One audit row per call (a device's own provisioning time is its provisioned_at); a single
            # device is named as the target so that GET /v1/audit?device_id= finds it.
            target = created[0]["device_id"] if len(created) == 1 else None
            storage.add_audit([_admin_audit(now, tenant_id, actor, "device.provision", target, "ok",
                                            f"{len(created)} device(s) created")])
    return created


def provision_one(storage, kek, tenant, row, now, actor, configure=None):
    """Provision one device; return its credential package (the only time the secret is shown), with the board's
    "config" where `configure` (as for provision_bulk) gives one."""
    if configure is not None:                # its own refusal (e.g. unknown_region, 409), not a bulk row's text
        configure(validate_new_device(row))
    out = provision_bulk(storage, kek, tenant["id"], [row], now, actor, configure)["results"][0]
    if not out["ok"]:
        err = DuplicateSerial if out["error"] == DuplicateSerial.code else ValidationError
        raise err(out["message"])
    dev = storage.get_device(bytes.fromhex(out["device_id"]), tenant["id"])
    view = device_view(dev, tenant["name"])
    view.pop("credential")
    view.update({"credential_type": dev["credential_type"], "master_secret": out["master_secret"],
                 "created": dev["provisioned_at"]})
    if "config" in out:
        view["config"] = out["config"]
    return view


# devices

def device_view(dev, tenant_name=None):
    """The public form of a device: never the secret, only that one is present."""
    return {
        "device_id": dev["id"].hex(),
        "tenant": dev["tenant_id"] if tenant_name is None else tenant_name,
        "tenant_id": dev["tenant_id"],
        "serial_number": dev["serial_number"],
        "manufacturer_id": dev["manufacturer_id"],
        "model_id": dev["model_id"],
        "credential": {"type": dev["credential_type"], "present": bool(dev["sealed_secret"])},
        "metadata": dev["metadata"],
        "status": dev["status"],
        "provisioned_at": dev["provisioned_at"],
        "last_seen_at": dev["last_seen_at"],
        "last_authenticated_at": dev["last_authenticated_at"],
        "status_changed_at": dev["status_changed_at"],
        "security": {"trust_level": dev["trust_level"], "compromised": dev["compromised"],
                     "quarantined": dev["quarantined"]},
        "attestation_status": dev.get("attestation_status") or "unknown",
        "permissions": dev["permissions"],
        "last_accepted_ts": dev["last_ts"],
        "psk": {"generation": dev["psk_generation"], "expires_at": dev["psk_expires_at"]},
    }


def get_device(storage, tenant_id, device_id):
    """The tenant's device, else NotFound (a foreign device is as absent as a missing one)."""
    dev = storage.get_device(device_id, tenant_id) if device_id is not None else None
    if dev is None:
        raise NotFound("no such device")
    return dev


def patch_device(storage, tenant_id, device_id, doc, now, actor, configure=None):
    """Apply a PATCH body; `configure` (as for provision_bulk) may refuse the patched metadata (unknown_region)."""
    dev = get_device(storage, tenant_id, device_id)
    fields = validate_device_patch(doc, dev)
    if configure is not None and "metadata" in fields:
        configure({"metadata": fields["metadata"]})
    with storage.transaction():
        storage.update_device(tenant_id, device_id, fields)
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, "device.patch", device_id.hex(), "ok",
                                        "fields: " + ", ".join(sorted(fields)))])
    return storage.get_device(device_id, tenant_id)


MAX_REASON = 500


def _check_reason(reason):
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise ValidationError(f"reason must be a string of at most {MAX_REASON} characters")


def set_quarantined(storage, tenant_id, device_id, quarantined, reason, actor, now):
    """Set (True) or clear (False) the tenant's device's quarantine flag and return the device.

    A quarantined device keeps its status; it may reach only the routes that repair it (OTA and
    attestation: docs/protocol.md 3.4), everything else refuses it as before. The change and its
    audit row (`device.quarantine` or `device.release`, actor `actor`, reason `reason`: text of at
    most 500 characters, or None) commit together. A flag that already has the value changes nothing
    and writes no row (so a caller that quarantines on every failed appraisal writes one row, not
    many). NotFound for a device of another tenant.

    This function has only the storage, so the caller finishes the change as the lifecycle route does
    (verifier/registry/routes.py `lifecycle`): `app[CORE].forget(device_id)` (binary auth's and DTLS's
    device caches: the next packet sees the flag), then `await hook(app, device_id, now)` for each hook
    of `app[LIFECYCLE_HOOKS]` (MQTT: certificates on hold, broker client disabled while quarantined)."""
    if type(quarantined) is not bool:
        raise ValidationError("quarantined must be true or false")
    _check_reason(reason)
    dev = get_device(storage, tenant_id, device_id)
    if dev["quarantined"] == quarantined:
        return dev
    action = "device.quarantine" if quarantined else "device.release"
    with storage.transaction():
        storage.update_device(tenant_id, device_id, {"quarantined": quarantined})
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, action, device_id.hex(), "ok", reason)])
    return storage.get_device(device_id, tenant_id)


def change_lifecycle(storage, tenant_id, device_id, doc, now, actor):
    """A lifecycle action: a status move (model.TRANSITIONS) or quarantine/release (the flag only,
    through set_quarantined). Quarantining a quarantined device, or releasing one that is not, is an
    invalid transition (409, audited as an error) here, where an operator asked for it."""
    if not isinstance(doc, dict) or set(doc) - {"action", "reason"}:
        raise ValidationError('body must be {"action": ..., "reason": ...}')
    reason = doc.get("reason")
    _check_reason(reason)
    dev = get_device(storage, tenant_id, device_id)
    action = doc.get("action")
    if isinstance(action, str) and action in FLAG_ACTIONS:
        want = FLAG_ACTIONS[action]
        if dev["quarantined"] == want:
            why = "the device is already quarantined" if want else "the device is not quarantined"
            storage.add_audit([_admin_audit(int(now), tenant_id, actor, f"device.{action}", device_id.hex(),
                                            "error", why)])
            raise InvalidTransition(f"cannot {action}: {why}")
        return set_quarantined(storage, tenant_id, device_id, want, reason, actor, now)
    try:
        status = next_status(dev["status"], action)
    except Conflict as e:
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, f"device.{action}", device_id.hex(),
                                        "error", str(e))])
        raise
    with storage.transaction():
        storage.update_device(tenant_id, device_id, {"status": status, "status_changed_at": int(now)})
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, f"device.{action}", device_id.hex(), "ok",
                                        f"{dev['status']} -> {status}" + (f": {reason}" if reason else ""))])
    return storage.get_device(device_id, tenant_id)


def rotate_psk(storage, sealer, tenant, device_id, doc, now, actor):
    """Move the device's DTLS PSK to the next generation with a new lifetime (body: optional
    {"lifetime_days": N}); return the new identity and PSK (hex), the only time the PSK is shown.
    The previous generation is refused from the next handshake on; open sessions are not cut."""
    lifetime = validate_psk_rotation(doc)
    tenant_id = tenant["id"]
    dev = get_device(storage, tenant_id, device_id)
    old = dev["psk_generation"]
    master = sealer.unseal(dev["sealed_secret"], device_id, tenant_id)
    generation, expires = old + 1, int(now) + lifetime
    psk = keys.dtls_psk(master, generation)
    with storage.transaction():
        if not storage.set_psk(tenant_id, device_id, old, generation, expires):
            raise Conflict("the device's PSK was rotated concurrently; retry")
        storage.add_audit([_admin_audit(int(now), tenant_id, actor, "device.psk.rotate", device_id.hex(), "ok",
                                        f"generation {old} -> {generation}, expires at {expires}")])
    return {"device_id": device_id.hex(), "psk_identity": f"{device_id.hex()}@{tenant['name']}",
            "psk": psk.hex(), "psk_generation": generation, "psk_expires_at": expires}


__all__ = ["provision_bulk", "provision_one", "create_tenant", "issue_token", "authenticate_token",
           "device_view", "get_device", "patch_device", "change_lifecycle", "set_quarantined", "patch_tenant_policy", "rotate_psk",
           "BULK_MAX_ROWS", "DEFAULT_PERMISSIONS"]
