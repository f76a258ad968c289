"""Claim batches (docs/claims.md "Batches"): the checks of a new batch (the same rules as the NewClaimBatch
schema, verifier/claims/openapi.py), its secrets, its views, revoke, and the device row a claim creates from the
batch's device template. Functions over a Storage and a Sealer; no HTTP."""

import json
import os
import re

from verifier.claims import core
from verifier.config import is_http_url
from verifier.errors import Conflict, NotFound, ValidationError
from verifier.notify.core import URL_MAX, URL_PATTERN, secret_text
from verifier.registry.model import PSK_LIFETIME_S, TEXT_PATTERN, as_int, validate_new_device

SERIALS_MAX = 10_000
TIME_MAX = 2**40
MAX_COUNT_MAX = 10_000_000
DEFAULT_VALIDITY_S = 365 * 86400
TRANSPORTS = ("auto", "udp", "http", "dtls")
# The template's "board" object, copied into the answer's config (at most 1024 bytes in all): a flat object of at
# most BOARD_MAX_KEYS entries, names BOARD_KEY, values an integer, a boolean, null or text BOARD_TEXT (no quote or
# backslash, so its JSON is as long as itself): at most ~370 bytes. "policy" is stored as given (policies are
# another feature's).
BOARD_MAX_KEYS = 8
BOARD_KEY = "^[A-Za-z0-9_]{1,16}$"
BOARD_TEXT = "^[ !#-\\[\\]-~]{0,24}$"
BOARD_INT = 2**31 - 1
TEMPLATE_FIELDS = ("model_id", "manufacturer_id", "metadata", "permissions", "trust_level", "region", "transport",
                   "board", "policy")
BATCH_FIELDS = ("name", "serials", "serial_pattern", "not_before", "not_after", "max_count", "device", "hook")
_TEXT = re.compile(TEXT_PATTERN[:-1] + r"\Z")
_URL = re.compile(URL_PATTERN[:-1] + r"\Z")
_BOARD_KEY = re.compile(BOARD_KEY[:-1] + r"\Z")
_BOARD_TEXT = re.compile(BOARD_TEXT[:-1] + r"\Z")
_REGION = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\Z")


def _int(v, name, lo, hi):
    n = as_int(v)
    if n is None or not lo <= n <= hi:
        raise ValidationError(f"{name} must be an integer in [{lo}, {hi}]")
    return n


def _compact(doc):
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def check_board(doc):
    if not isinstance(doc, dict) or len(doc) > BOARD_MAX_KEYS:
        raise ValidationError(f"device.board must be an object of at most {BOARD_MAX_KEYS} entries")
    for k, v in doc.items():
        ok = (as_int(v) is not None and -BOARD_INT - 1 <= v <= BOARD_INT) or v is None or type(v) is bool or (
            type(v) is str and _BOARD_TEXT.match(v))
        if not _BOARD_KEY.match(k) or not ok:
            raise ValidationError("device.board entries are names of 1-16 of A-Z a-z 0-9 _, with an integer, "
                                  "true/false, null or up to 24 printable ASCII characters without quote or backslash")
    return {k: as_int(v) if type(v) is float else v for k, v in doc.items()}


def check_template(doc):
    """The batch's device template, normalised; ValidationError otherwise."""
    if not isinstance(doc, dict):
        raise ValidationError("device must be an object")
    unknown = set(doc) - set(TEMPLATE_FIELDS)
    if unknown:
        raise ValidationError(f"unknown device field(s): {', '.join(sorted(unknown))}")
    row = {k: doc[k] for k in ("model_id", "manufacturer_id", "metadata", "permissions", "trust_level") if k in doc}
    f = validate_new_device(dict(row, serial_number="x"))
    out = {"model_id": f["model_id"], "manufacturer_id": f["manufacturer_id"], "metadata": f["metadata"],
           "permissions": f["permissions"], "trust_level": f["trust_level"], "transport": doc.get("transport", "auto"),
           "region": doc.get("region")}
    if out["transport"] not in TRANSPORTS:
        raise ValidationError(f"device.transport must be one of {', '.join(TRANSPORTS)}")
    if out["region"] is not None and (type(out["region"]) is not str or not _REGION.match(out["region"])):
        raise ValidationError("device.region must be a region name: 1-32 of a-z 0-9 _ - (starting with a letter or digit)")
    if "board" in doc:
        out["board"] = check_board(doc["board"])
    if "policy" in doc:
        if not isinstance(doc["policy"], dict):
            raise ValidationError("device.policy must be an object")
        out["policy"] = doc["policy"]
    return out


def check_new_batch(doc, now):
    """The fields of a POST /v1/claim-batches body (docs/claims.md "Batches"); ValidationError otherwise."""
    if not isinstance(doc, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = set(doc) - set(BATCH_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    name = doc.get("name")
    if type(name) is not str or not _TEXT.match(name):
        raise ValidationError("name must be 1 to 128 characters without control characters")
    if ("serials" in doc) == ("serial_pattern" in doc):
        raise ValidationError("give exactly one of serials (a list) and serial_pattern")
    serials = pattern = None
    if "serials" in doc:
        serials = doc["serials"]
        if not isinstance(serials, list) or not 1 <= len(serials) <= SERIALS_MAX:
            raise ValidationError(f"serials must be a list of 1 to {SERIALS_MAX} serials")
        for s in serials:
            if type(s) is not str:
                raise ValidationError("each serial must be a string")
            try:
                core.check_serial(s)
            except core.MalformedClaim:
                raise ValidationError(f"serial {s[:70]!r} is not 1 to 64 printable ASCII characters without space") from None
        if len(set(serials)) != len(serials):
            raise ValidationError("serials must be distinct")
    else:
        pattern = core.check_pattern(doc["serial_pattern"])
    not_before = _int(doc.get("not_before", int(now)), "not_before", 0, TIME_MAX)
    not_after = _int(doc.get("not_after", min(not_before + DEFAULT_VALIDITY_S, TIME_MAX)), "not_after", 0, TIME_MAX)
    if not_after <= not_before:               # both valid alone: a conflict, as the schema cannot state it (409)
        raise Conflict("not_after must be after not_before")
    max_count = _int(doc.get("max_count"), "max_count", 1, MAX_COUNT_MAX)
    hook_url = None
    if "hook" in doc:
        hook = doc["hook"]
        if not isinstance(hook, dict) or set(hook) != {"url"}:
            raise ValidationError('hook must be {"url": "https://..."}')
        hook_url = hook["url"]
        if type(hook_url) is not str or len(hook_url) > URL_MAX or not _URL.match(hook_url) or not is_http_url(hook_url):
            raise ValidationError(f"hook.url must be an http:// or https:// URL of at most {URL_MAX} printable ASCII "
                                  "characters, with a host name or IPv4 address and no user:password@")
    return {"name": name, "serials": serials, "serial_pattern": pattern, "not_before": not_before,
            "not_after": not_after, "max_count": max_count, "device": check_template(doc.get("device", {})),
            "hook_url": hook_url}


def seal_id(batch_id, what=b"claim/"):
    """The 16-byte `device_id` argument of the KEK sealer for a batch's secrets: "claim/" (batch secret) or
    "hook/" padded, and the batch id: never a device's 8 bytes, never another batch's or the other secret's."""
    return what.ljust(8, b"\0") + batch_id


HOOK_SEAL = b"hook/"


def create_batch(storage, sealer, tenant_id, doc, now, actor, rand=os.urandom):
    """Create a batch; return (batch dict, batch_secret bytes, hook secret text or None): both shown only once."""
    f = check_new_batch(doc, now)
    batch_id, secret = rand(8), rand(32)
    hook_secret = rand(32) if f["hook_url"] else None
    row = dict(f, id=batch_id, tenant_id=tenant_id, sealed_secret=sealer.seal(secret, seal_id(batch_id), tenant_id),
               sealed_hook_secret=None if hook_secret is None else sealer.seal(hook_secret, seal_id(batch_id, HOOK_SEAL),
                                                                               tenant_id),
               claimed_count=0, status="active", created=int(now), revoked_at=None)
    storage.add_claim_batch(row, (int(now), tenant_id, "admin", None, actor, "claim.batch.create", None, None, "ok",
                                  None, f"batch {batch_id.hex()} {f['name']!r}, max_count {f['max_count']}"))
    return storage.get_claim_batch(batch_id, tenant_id), secret, (None if hook_secret is None else secret_text(hook_secret))


def batch_view(batch, tenant_name, now):
    out = {"batch_id": batch["id"].hex(), "tenant": tenant_name, "name": batch["name"], "not_before": batch["not_before"],
           "not_after": batch["not_after"], "max_count": batch["max_count"], "claimed_count": batch["claimed_count"],
           "remaining": max(0, batch["max_count"] - batch["claimed_count"]), "status": core.batch_status(batch, now),
           "device": batch["device"], "hook": {"url": batch["hook_url"]} if batch["hook_url"] else None,
           "created": batch["created"], "revoked_at": batch["revoked_at"]}
    if batch["serials"] is not None:
        out["serials"] = batch["serials"]
    else:
        out["serial_pattern"] = batch["serial_pattern"]
    return out


def parse_batch_id(text):
    if type(text) is not str or not re.fullmatch(r"[0-9a-f]{16}", text):
        return None
    return bytes.fromhex(text)


def get_batch(storage, tenant_id, text):
    """The tenant's batch named by its hex id, else NotFound (another tenant's is as absent as a missing one)."""
    bid = parse_batch_id(text)
    batch = storage.get_claim_batch(bid, tenant_id) if bid is not None else None
    if batch is None:
        raise NotFound("no such claim batch")
    return batch


def revoke_batch(storage, tenant_id, batch, now, actor):
    if batch["status"] == "revoked":
        raise Conflict("the claim batch is revoked already")
    row = (int(now), tenant_id, "admin", None, actor, "claim.batch.revoke", None, None, "ok", None,
           f"batch {batch['id'].hex()}")
    if not storage.revoke_claim_batch(tenant_id, batch["id"], int(now), row):
        raise Conflict("the claim batch is revoked already")
    return storage.get_claim_batch(batch["id"], tenant_id)


def claim_view(claim):
    return {"serial": claim["serial"], "device_id": claim["device_id"].hex(), "claimed_at": claim["claimed_at"],
            "resumed": claim["resumed"]}


def device_row(batch, serial, device_id, master_secret, sealer, now):
    """The registry row (DEVICE_COLUMNS order) of the device a new claim of `serial` creates: status
    'provisioning', the template's model, manufacturer, metadata, permissions and trust level, the fresh master
    secret sealed as every device's (keys.Sealer over the device id and tenant)."""
    t = batch["device"]
    sealed = sealer.seal(master_secret, device_id, batch["tenant_id"])
    return (device_id, batch["tenant_id"], serial, t["manufacturer_id"], t["model_id"], "symmetric", sealed,
            batch.get("metadata_json") or json.dumps(t["metadata"]), "provisioning", now, now, t["trust_level"], 0, 0, t["permissions"], 0,
            now + PSK_LIFETIME_S)


