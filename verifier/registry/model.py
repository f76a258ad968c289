"""Registry model: tenant policy, device fields and their validation, the lifecycle table.

Pure data and validation; no storage and no HTTP. Raises ValidationError / InvalidTransition.
"""

import dataclasses
import re

from verifier.errors import Conflict, InvalidTransition, ValidationError

STATUSES = ("provisioning", "active", "suspended", "decommissioned")
AUTHENTICATABLE = frozenset(("provisioning", "active"))
CREDENTIAL_TYPES = ("symmetric",)
DEFAULT_PERMISSIONS = 0x0F
MAX_TEXT = 128
PSK_LIFETIME_S = 365 * 86400       # seed: a DTLS PSK lives 365 days from provisioning or its last rotation
PSK_MAX_LIFETIME_DAYS = 3650
MAX_LIST = 32
# A text field (serial number, ids, metadata): 1 to MAX_TEXT characters, none of them a control
# character, a surrogate or U+FFFE/U+FFFF. The OpenAPI document states the same pattern (TEXT_PATTERN).
TEXT_CHARS = "[ -~\u00a0-\ud7ff\ue000-\ufffd]"
TEXT_PATTERN = f"^{TEXT_CHARS}{{1,{MAX_TEXT}}}$"
_TEXT = re.compile(f"{TEXT_CHARS}{{1,{MAX_TEXT}}}\\Z")
# tenant policy fields of device tokens and offline chains (docs/tokens.md): name -> (min, max)
# Admin-token roles (docs/api.md "Roles"): viewer < operator < admin; factory (provisioning) and edge (what an
# edge verifier calls upstream) are separate scopes, which admin also covers.
ROLES = ("viewer", "operator", "admin", "factory", "edge")
_GRANTS = {"viewer": frozenset(("viewer",)), "operator": frozenset(("viewer", "operator")),
           "admin": frozenset(ROLES), "factory": frozenset(("factory",)), "edge": frozenset(("edge",))}


def role_allows(held, needed):
    """True when a token of role `held` may call a route that needs role `needed`."""
    return needed in _GRANTS.get(held, ())


TOKEN_POLICY_FIELDS = {"token_ttl_s": (60, 30 * 86400), "token_refresh_s": (0, 30 * 86400),
                       "chain_period_s": (60, 30 * 86400), "chain_validity_s": (60, 60 * 86400),
                       "chain_len": (1, 1000), "chain_low_water": (0, 1000)}
# tenant policy fields of audit retention (docs/api.md "Audit trail"): name -> (min, max)
AUDIT_POLICY_FIELDS = {"audit_max_age_days": (1, 3650), "audit_max_rows": (1000, 100_000_000)}

# (status, action) -> next status. A missing key is an illegal transition.
TRANSITIONS = {
    ("provisioning", "activate"): "active",
    ("provisioning", "decommission"): "decommissioned",
    ("active", "suspend"): "suspended",
    ("suspended", "resume"): "active",
    ("active", "decommission"): "decommissioned",
    ("suspended", "decommission"): "decommissioned",
}
ACTIONS = ("activate", "suspend", "resume", "decommission")
# Lifecycle actions on the quarantine flag, not on the status (a quarantined device keeps its status):
# action -> the flag's new value. Quarantine admits the device only where it can be repaired (OTA,
# attestation: docs/protocol.md 3.4); release lifts it.
FLAG_ACTIONS = {"quarantine": True, "release": False}
LIFECYCLE_ACTIONS = ACTIONS + tuple(FLAG_ACTIONS)


def next_status(status, action):
    """Return the status after `action`, or raise InvalidTransition."""
    if action not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == status)
        raise InvalidTransition(
            f"cannot {action} a device that is {status}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (no further transitions)")) from None


@dataclasses.dataclass(frozen=True)
class Policy:
    """A tenant's authentication policy; every number here is editable through PATCH /v1/tenant."""

    drift_s: int = 300
    session_ttl_s: int = 3600
    device_capacity: float = 10.0
    device_refill_per_s: float = 0.2
    source_capacity: float = 200.0
    source_refill_per_s: float = 100.0
    lockout_failures: int = 5
    lockout_s: int = 300
    token_ttl_s: int = 3600          # device JWT lifetime (docs/tokens.md)
    token_refresh_s: int = 300       # refresh this long before exp
    chain_period_s: int = 86400      # offline chain: one token per period
    chain_validity_s: int = 86400    # each valid this long from its nbf
    chain_len: int = 30              # a top-up fills the device's chain up to this many
    chain_low_water: int = 10        # sync tops up when fewer unused tokens remain
    audit_max_age_days: int = 90     # audit rows older than this are deleted
    audit_max_rows: int = 1_000_000  # past this many rows the tenant's oldest are deleted

    def to_json(self):
        return {
            "drift_s": self.drift_s,
            "session_ttl_s": self.session_ttl_s,
            "device_rate": {"capacity": self.device_capacity, "refill_per_s": self.device_refill_per_s},
            "source_rate": {"capacity": self.source_capacity, "refill_per_s": self.source_refill_per_s},
            "lockout_failures": self.lockout_failures,
            "lockout_s": self.lockout_s,
            **{name: getattr(self, name) for name in TOKEN_POLICY_FIELDS},
            **{name: getattr(self, name) for name in AUDIT_POLICY_FIELDS},
        }

    @classmethod
    def from_json(cls, doc, base=None):
        """Validate `doc` (possibly partial) and merge it over `base` (default: the defaults)."""
        if not isinstance(doc, dict):
            raise ValidationError("policy must be an object")
        base = base or cls()
        known = {"drift_s", "session_ttl_s", "device_rate", "source_rate", "lockout_failures", "lockout_s",
                 *TOKEN_POLICY_FIELDS, *AUDIT_POLICY_FIELDS}
        unknown = set(doc) - known
        if unknown:
            raise ValidationError(f"unknown policy fields: {', '.join(sorted(unknown))}")
        kw = {}
        for name, lo, hi in (("drift_s", 0, 86400), ("session_ttl_s", 1, 30 * 86400),
                             ("lockout_failures", 1, 1000), ("lockout_s", 0, 30 * 86400),
                             *((n, lo, hi) for n, (lo, hi) in TOKEN_POLICY_FIELDS.items()),
                             *((n, lo, hi) for n, (lo, hi) in AUDIT_POLICY_FIELDS.items())):
            if name in doc:
                kw[name] = _int(doc[name], f"policy.{name}", lo, hi)
        for name in ("device", "source"):
            if f"{name}_rate" not in doc:
                continue
            rate = doc[f"{name}_rate"]
            if not isinstance(rate, dict) or set(rate) - {"capacity", "refill_per_s"}:
                raise ValidationError(f"policy.{name}_rate must be {{capacity, refill_per_s}}")
            if "capacity" in rate:
                kw[f"{name}_capacity"] = _num(rate["capacity"], f"policy.{name}_rate.capacity", 1, 1e9)
            if "refill_per_s" in rate:
                kw[f"{name}_refill_per_s"] = _num(rate["refill_per_s"], f"policy.{name}_rate.refill_per_s", 0, 1e9)
        out = dataclasses.replace(base, **kw)
        # across fields, one of which may be the stored value: a conflict with the current policy (409)
        if out.token_refresh_s >= out.token_ttl_s:
            raise Conflict("policy.token_refresh_s must be below policy.token_ttl_s")
        if out.chain_low_water > out.chain_len:
            raise Conflict("policy.chain_low_water must not exceed policy.chain_len")
        return out


def as_int(v):
    """A JSON integer as an int, else None. As in JSON Schema, 5.0 is the integer 5; true is not one."""
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer():
        return int(v)
    return None


def _int(v, name, lo, hi):
    n = as_int(v)
    if n is None or not lo <= n <= hi:
        raise ValidationError(f"{name} must be an integer in [{lo}, {hi}]")
    return n


def _num(v, name, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ValidationError(f"{name} must be a number in [{lo}, {hi}]")
    return float(v)


def _text(v, name, required=False):
    if v is None and not required:
        return None
    if type(v) is not str or not _TEXT.match(v):
        raise ValidationError(f"{name} must be a non-empty printable string of at most {MAX_TEXT} characters")
    return v


def _text_list(v, name):
    if not isinstance(v, list) or len(v) > MAX_LIST:
        raise ValidationError(f"{name} must be a list of at most {MAX_LIST} strings")
    return [_text(x, f"{name}[]", required=True) for x in v]


METADATA_FIELDS = ("firmware_version", "hardware_version", "capabilities", "location", "group", "tags", "region")
# A region's name (verifier/regions, docs/regions.md): also a path segment (/v1/regions/{name}), so URL-safe ASCII.
REGION_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_REGION_NAME = re.compile(REGION_NAME_PATTERN[:-1] + "\\Z")


def is_region_name(v):
    return type(v) is str and bool(_REGION_NAME.match(v))


def validate_metadata(doc, base=None):
    """Validate (possibly partial) device metadata and merge it over `base`. null clears a field."""
    if not isinstance(doc, dict):
        raise ValidationError("metadata must be an object")
    unknown = set(doc) - set(METADATA_FIELDS)
    if unknown:
        raise ValidationError(f"unknown metadata fields: {', '.join(map(repr, sorted(unknown)))}")
    out = dict(base) if base else {"capabilities": [], "tags": []}
    for k, v in doc.items():
        if k in ("capabilities", "tags"):
            out[k] = [] if v is None else _text_list(v, f"metadata.{k}")
        elif v is None:
            out.pop(k, None)
        elif k == "region":
            if not is_region_name(v):
                raise ValidationError("metadata.region must be a region name: 1 to 64 of A-Z a-z 0-9 . _ -, "
                                      "starting with a letter or digit")
            out[k] = v
        else:
            out[k] = _text(v, f"metadata.{k}")
    return out


_NEW_DEVICE_FIELDS = frozenset(("serial_number", "manufacturer_id", "model_id", "credential_type", "metadata",
                                "permissions", "trust_level"))


def validate_new_device(row):
    """Validate one provisioning row; return the normalised fields (without id or secret)."""
    if not isinstance(row, dict):
        raise ValidationError("each device must be an object")
    unknown = row.keys() - _NEW_DEVICE_FIELDS
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(map(repr, sorted(unknown)))}")
    get = row.get
    ctype = get("credential_type", "symmetric")
    if ctype not in CREDENTIAL_TYPES:
        raise ValidationError(f"credential_type must be one of {', '.join(CREDENTIAL_TYPES)}")
    meta = get("metadata")
    perms = get("permissions", DEFAULT_PERMISSIONS)
    trust = get("trust_level", 50)
    return {
        "serial_number": _text(get("serial_number"), "serial_number", required=True),
        "manufacturer_id": _text(get("manufacturer_id"), "manufacturer_id"),
        "model_id": _text(get("model_id"), "model_id"),
        "credential_type": ctype,
        "metadata": validate_metadata(meta) if "metadata" in row else {"capabilities": [], "tags": []},
        "permissions": _int(perms, "permissions", 0, 0xFFFFFFFF),
        "trust_level": _int(trust, "trust_level", 0, 100),
    }


def validate_device_patch(doc, current):
    """Validate a PATCH body against the current device; return the columns to update."""
    if not isinstance(doc, dict) or not doc:
        raise ValidationError("the body must be a non-empty object")
    allowed = {"metadata", "trust_level", "compromised", "quarantined", "permissions"}
    unknown = set(doc) - allowed
    if unknown:
        raise ValidationError(f"fields not patchable: {', '.join(sorted(unknown))}"
                              + (" (use POST .../lifecycle for status)" if "status" in unknown else ""))
    out = {}
    if "metadata" in doc:
        out["metadata"] = validate_metadata(doc["metadata"], current["metadata"])
    if "trust_level" in doc:
        out["trust_level"] = _int(doc["trust_level"], "trust_level", 0, 100)
    if "permissions" in doc:
        out["permissions"] = _int(doc["permissions"], "permissions", 0, 0xFFFFFFFF)
    for flag in ("compromised", "quarantined"):
        if flag in doc:
            if not isinstance(doc[flag], bool):
                raise ValidationError(f"{flag} must be true or false")
            out[flag] = doc[flag]
    return out


def parse_device_id(text):
    """Text form (16 lowercase hex) -> 8 bytes, or None if it is not a device id."""
    if not isinstance(text, str) or len(text) != 16:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw if raw.hex() == text else None


def validate_psk_rotation(doc):
    """The optional body of a PSK rotation ({} when there is none) -> lifetime in seconds (default
    PSK_LIFETIME_S). JSON null is not an empty body."""
    if not isinstance(doc, dict) or set(doc) - {"lifetime_days"}:
        raise ValidationError('body must be empty or {"lifetime_days": N}')
    days = as_int(doc.get("lifetime_days", PSK_LIFETIME_S // 86400))
    if days is None or not 1 <= days <= PSK_MAX_LIFETIME_DAYS:
        raise ValidationError(f"lifetime_days must be an integer in [1, {PSK_MAX_LIFETIME_DAYS}]")
    return days * 86400
