"""Rollouts of signed releases (docs/ota.md section 7.3): deterministic cohorts, phases that advance
by time and by health, the automatic halt, which release a device should run, its update reports,
and the download capabilities a check hands out. Functions over a `Storage`; `now` is injected;
no HTTP. Releases and keys are verifier/ota/core.py.
"""

import hashlib
import hmac
import json
import secrets

from verifier.errors import Conflict, NotFound, ValidationError
from verifier.ota.core import DEFAULT_PHASES, audit_row as _audit, check_phases, get_release
from verifier.registry.model import as_int

REPORT_STATES = ("downloading", "verified", "installed", "confirmed", "rolled_back", "failed")
FAILED = ("failed", "rolled_back")
DONE = ("confirmed",) + FAILED       # devices "already updated": their outcome is known
HEALTH_THRESHOLD = 0.05              # advance a phase only while the failure rate is below this
HALT_THRESHOLD = 0.20                # halt by itself above this failure rate ...
HALT_MIN_REPORTS = 5                 # ... once this many devices have an outcome
BUCKETS = 10000
DOWNLOAD_TTL_S = 24 * 3600
MAX_REASON = 200


# -- rollouts ---------------------------------------------------------------------------------

def bucket(device_id, release_id):
    """A device's cohort bucket in 0..9999: the first 4 bytes (big endian) of
    SHA-256(device_id (8 raw bytes) || release_id (ASCII)), mod 10000. Deterministic, so a device
    can compute its own; independent per release, so the same devices are not always first."""
    return int.from_bytes(hashlib.sha256(device_id + release_id.encode()).digest()[:4], "big") % BUCKETS


def eligible(device_id, release_id, percent):
    """In the cohort of a phase reaching `percent` % of the fleet: bucket < percent * 100."""
    return bucket(device_id, release_id) < round(percent * BUCKETS / 100)


def create_rollout(storage, tenant_id, release_id, doc, now, actor):
    rel = get_release(storage, tenant_id, release_id)
    allowed = {"phases", "health_threshold", "halt_threshold", "halt_min_reports", "start"}
    if not isinstance(doc, dict) or set(doc) - allowed:          # an empty body is {}; JSON null is not
        raise ValidationError(f"body may hold only {', '.join(sorted(allowed))}")
    if not isinstance(doc.get("start", False), bool):
        raise ValidationError("start must be true or false")
    phases = check_phases(doc["phases"] if "phases" in doc else (json.loads(rel["manifest"]).get("rollout") or {}).get("phases")
                          or DEFAULT_PHASES, Conflict)
    ro = {"id": "ro_" + secrets.token_hex(8), "tenant_id": tenant_id, "release_id": release_id,
          "state": "pending", "phases": phases, "phase": 0, "phase_started_at": None, "created": int(now),
          "started_at": None, "health_threshold": _frac(doc, "health_threshold", HEALTH_THRESHOLD),
          "halt_threshold": _frac(doc, "halt_threshold", HALT_THRESHOLD),
          "halt_min_reports": doc.get("halt_min_reports", HALT_MIN_REPORTS), "halt_reason": None,
          "updated_at": int(now)}
    ro["halt_min_reports"] = as_int(ro["halt_min_reports"])
    if ro["halt_min_reports"] is None or not 1 <= ro["halt_min_reports"] <= 100000:
        raise ValidationError("halt_min_reports must be an integer in 1..100000")
    with storage.transaction():
        if storage.get_rollout_for_release(tenant_id, release_id) is not None:
            raise Conflict(f"release {release_id} already has a rollout")
        storage.add_rollout(ro)
        storage.add_audit([_audit(now, tenant_id, actor, "ota.rollout.create", None, "ok",
                                  f"{ro['id']} for {release_id}: phases {_phases_text(phases)}")])
    if doc.get("start"):
        return resume(storage, tenant_id, ro["id"], now, actor)
    return storage.get_rollout(tenant_id, ro["id"])


def _frac(doc, name, default):
    v = doc.get(name, default)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 1:
        raise ValidationError(f"{name} must be a fraction in (0, 1]")
    return float(v)


def _phases_text(phases):
    return ", ".join(f"{p['percent']}%/{p['hours']}h" for p in phases)


def get_rollout(storage, tenant_id, rollout_id):
    ro = storage.get_rollout(tenant_id, rollout_id)
    if ro is None:
        raise NotFound("no such rollout")
    return ro


def health(counts):
    """(failure rate, failed, devices with an outcome) from report counts by state."""
    failed = sum(counts.get(s, 0) for s in FAILED)
    done = failed + counts.get("confirmed", 0)
    return (failed / done if done else 0.0), failed, done


def tick(storage, ro, now, actor="rollout"):
    """Advance an active rollout by one phase when the phase's time is up and it is healthy."""
    if ro["state"] != "active" or ro["phase"] >= len(ro["phases"]) - 1:
        return ro
    if now < ro["phase_started_at"] + ro["phases"][ro["phase"]]["hours"] * 3600:
        return ro
    rate, failed, done = health(storage.ota_report_counts(ro["release_id"]))
    if rate >= ro["health_threshold"]:
        return ro                                # held: status() says why
    nxt = ro["phase"] + 1
    with storage.transaction():
        storage.update_rollout(ro["id"], {"phase": nxt, "phase_started_at": int(now), "updated_at": int(now)})
        storage.add_audit([_audit(now, ro["tenant_id"], actor, "ota.rollout.advance", None, "ok",
                                  f"{ro['id']}: phase {nxt + 1}/{len(ro['phases'])} "
                                  f"({ro['phases'][nxt]['percent']}%), failures {failed}/{done}")])
    return storage.get_rollout(ro["tenant_id"], ro["id"])


def check_halt(storage, ro, now):
    """Halt an active rollout by itself once enough outcomes are in and too many failed."""
    if ro["state"] != "active":
        return ro
    rate, failed, done = health(storage.ota_report_counts(ro["release_id"]))
    if done >= ro["halt_min_reports"] and rate > ro["halt_threshold"]:
        why = f"automatic: {failed} of {done} devices failed ({rate:.0%} > {ro['halt_threshold']:.0%})"
        with storage.transaction():
            storage.update_rollout(ro["id"], {"state": "halted", "halt_reason": why, "updated_at": int(now)})
            storage.add_audit([_audit(now, ro["tenant_id"], "rollout", "ota.rollout.halt", None, "ok",
                                      f"{ro['id']}: {why}")])
        return storage.get_rollout(ro["tenant_id"], ro["id"])
    return ro


def halt(storage, tenant_id, rollout_id, now, actor, reason=None):
    ro = get_rollout(storage, tenant_id, rollout_id)
    if ro["state"] != "active":
        raise Conflict(f"the rollout is {ro['state']}, not active")
    why = f"by {actor}" + (f": {reason}" if reason else "")
    with storage.transaction():
        storage.update_rollout(ro["id"], {"state": "halted", "halt_reason": why, "updated_at": int(now)})
        storage.add_audit([_audit(now, tenant_id, actor, "ota.rollout.halt", None, "ok", f"{ro['id']}: {why}")])
    return storage.get_rollout(tenant_id, rollout_id)


def resume(storage, tenant_id, rollout_id, now, actor):
    """Start a pending rollout, or resume a halted one (its current phase starts over)."""
    ro = get_rollout(storage, tenant_id, rollout_id)
    if ro["state"] not in ("pending", "halted"):
        raise Conflict(f"the rollout is {ro['state']}")
    fields = {"state": "active", "halt_reason": None, "phase_started_at": int(now), "updated_at": int(now)}
    if ro["started_at"] is None:
        fields["started_at"] = int(now)
    with storage.transaction():
        storage.update_rollout(ro["id"], fields)
        storage.add_audit([_audit(now, tenant_id, actor, "ota.rollout." + ("start" if ro["state"] == "pending"
                                                                          else "resume"), None, "ok", ro["id"])])
    return storage.get_rollout(tenant_id, rollout_id)


def rollout_status(storage, ro, now):
    ro = tick(storage, ro, now)
    counts = storage.ota_report_counts(ro["release_id"])
    rate, failed, done = health(counts)
    phase = ro["phases"][ro["phase"]]
    held = None
    if ro["state"] == "active" and ro["phase"] < len(ro["phases"]) - 1:
        due = ro["phase_started_at"] + phase["hours"] * 3600
        if now >= due and rate >= ro["health_threshold"]:
            held = f"failure rate {rate:.1%} >= {ro['health_threshold']:.0%}: phase not advanced"
    return {"id": ro["id"], "release_id": ro["release_id"], "state": ro["state"],
            "phase": ro["phase"] + 1, "phases": ro["phases"],
            "eligible_percent": phase["percent"] if ro["state"] in ("active", "halted") else 0,
            "phase_started_at": ro["phase_started_at"],
            "next_phase_at": (ro["phase_started_at"] + phase["hours"] * 3600
                              if ro["state"] == "active" and ro["phase"] < len(ro["phases"]) - 1 else None),
            "created": ro["created"], "started_at": ro["started_at"],
            "counts": {s: counts.get(s, 0) for s in REPORT_STATES},
            "failure_rate": round(rate, 4), "failed": failed, "outcomes": done,
            "health_threshold": ro["health_threshold"], "halt_threshold": ro["halt_threshold"],
            "halt_min_reports": ro["halt_min_reports"],
            "halted": ro["state"] == "halted", "halt_reason": ro["halt_reason"], "held": held}


# -- devices ----------------------------------------------------------------------------------

def choose_update(storage, dev, kind, version, counter, now):
    """The release a device should move to (release, rollout) or None. Offered: active rollouts of
    the device's tenant whose phase includes the device's bucket, of the same kind, not the version
    it runs, with a counter not below its own, and that it has not already confirmed, failed or
    rolled back. Several: the highest counter, then the newest."""
    best = None
    for ro in storage.list_rollouts(dev["tenant_id"], state="active"):
        ro = tick(storage, ro, now)
        if ro["state"] != "active":
            continue
        rel = storage.get_release(dev["tenant_id"], ro["release_id"])
        if rel["kind"] != kind or rel["version"] == version or rel["counter"] < counter:
            continue
        if not eligible(dev["id"], rel["id"], ro["phases"][ro["phase"]]["percent"]):
            continue
        prior = storage.get_ota_report(rel["id"], dev["id"])
        if prior is not None and prior["state"] in DONE:
            continue
        if best is None or (rel["counter"], rel["created"]) > (best[0]["counter"], best[0]["created"]):
            best = (rel, ro)
    return best


def record_report(storage, dev, doc, now, source=None):
    """A device's update report {release_id | version, state, reason?}; feeds the rollout health."""
    if not isinstance(doc, dict):
        raise ValidationError("body must be a JSON object")
    state = doc.get("state")
    if state not in REPORT_STATES:
        raise ValidationError(f"state must be one of {', '.join(REPORT_STATES)}")
    reason = doc.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError("reason must be a string")
    reason = reason[:MAX_REASON] if reason else None
    tenant_id = dev["tenant_id"]
    rid = doc.get("release_id")
    if rid is not None:
        rel = storage.get_release(tenant_id, rid) if isinstance(rid, str) else None
    else:
        v = doc.get("version")
        rel = storage.find_release(tenant_id, doc.get("kind", "app"), v) if isinstance(v, str) else None
    if rel is None:
        raise NotFound("no such release")
    with storage.transaction():
        storage.record_ota_report(rel["id"], dev["id"], state, reason, int(now))
        storage.add_audit([_audit(now, tenant_id, "device", "ota.report", dev["id"].hex(), state,
                                  f"{rel['id']} ({rel['version']})" + (f": {reason}" if reason else ""),
                                  kind="ota", transport="http")])
    ro = storage.get_rollout_for_release(tenant_id, rel["id"])
    if ro is not None:
        check_halt(storage, ro, now)
    return rel


def download_key(kek):
    """The key of download capabilities, derived from the KEK (never stored)."""
    from verifier.keys import SALT, hkdf_sha256
    return hkdf_sha256(kek, SALT, b"ota-download", 32)


def download_token(key, release_id, device_id, expires):
    """"<device hex>.<expiry unix s>.<32 hex>": HMAC-SHA256 over release, device and expiry."""
    msg = f"{release_id}|{device_id.hex()}|{expires}".encode()
    return f"{device_id.hex()}.{expires}.{hmac.digest(key, msg, 'sha256')[:16].hex()}"


def check_download_token(key, release_id, token, now):
    """The device id (8 bytes) a valid, unexpired token was issued to; NotFound otherwise (opaque)."""
    try:
        dev_hex, exp, tag = token.split(".")
        did, expires = bytes.fromhex(dev_hex), int(exp)
    except (AttributeError, ValueError):
        raise NotFound("no such file") from None
    good = download_token(key, release_id, did, expires)
    if len(did) != 8 or not hmac.compare_digest(good.encode(), token.encode()) or now > expires:
        raise NotFound("no such file")
    return did
