"""Board attestation (docs/attestation.md sections 3 to 5): challenges, the appraisal of board evidence
against the signed release the device should run and the model references, the EAR, the device's
attestation status and trust level, missed deadlines, quarantine and notifications.

Functions over a `Storage` with time as an argument; no HTTP, no sockets. Refusals (docs/attestation.md
2.4) raise AttestRefused after noting the refusal in the audit trail's RefusalSummary (anyone can send
evidence bytes, so refusals are counted, not written one row each) and change no state. The appraisal
rules are `appraise_measurements`, a pure function of the evidence and the reference values.
"""

import os

from verifier import keys
from verifier.attest import ear, evidence
from verifier.attest.policy import effective_policy
from verifier.attest.store import HISTORY
from verifier.errors import VerifierError
from verifier.notify.core import emit
from verifier.registry.core import set_quarantined

POLICY_ID = "janua/board/v1"
BUILD = "janua-verifier/1"
ACTION = "DEVICE_ATTESTATION"          # the audit action (and event) of every appraisal
ACTOR = "attestation"                  # the actor of quarantines this feature sets and lifts
KEY_LABEL = b"attest"
# Trust level after a result. 70 is a software-only board's ceiling: its evidence is as good as the
# secrecy of M on a chip that cannot protect it (no root of trust), so it never reaches the 71..100
# that a hardware-rooted attester (TPM quote) may.
TRUST = {"affirming": 70, "warning": 40, "contraindicated": 0, "none": 40}
MISSED_TRUST = 40                      # no answer by the deadline: min(current, this)
EAR_TTL_S = 3600                       # the EAR's lifetime when continuous attestation is off
SWEEP_BATCH = 500
REFUSALS = ("malformed", "too_large", "version", "unknown_device", "tag", "stale_nonce")


class AttestRefused(VerifierError):
    """Evidence refused before appraisal; `reason` is one of REFUSALS (docs/attestation.md 2.4)."""

    code = "attest_refused"

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _refuse(summary, now, dev_tenant, dev_hex, transport, source, reason, message):
    if summary is not None:
        summary.note(now, dev_tenant, dev_hex, ACTION, transport, source, "REFUSED", reason)
    raise AttestRefused(reason, message)


def _audit(now, tenant_id, device_hex, transport, source, result, reason, detail):
    return (int(now), tenant_id, "attest", device_hex, ACTOR, ACTION, transport,
            None if source is None else str(source)[:64], result, reason, detail)


# -- challenges --------------------------------------------------------------------------------

def challenge_view(ch):
    return {"nonce": ch["nonce"].hex(), "expires_at": ch["expires_at"], "reason": ch["reason"]}


def issue_challenge(storage, dev, now, reason="manual", rand=os.urandom):
    """A fresh 16-byte nonce for the device, replacing any outstanding one: {nonce, expires_at, reason}."""
    policy = effective_policy(storage, dev["tenant_id"], dev["metadata"].get("group"))
    ch = {"nonce": rand(evidence.NONCE_LEN), "expires_at": int(now) + policy["deadline_s"], "reason": reason}
    storage.put_challenge(dev["tenant_id"], dev["id"], ch["nonce"], int(now), ch["expires_at"], reason)
    return challenge_view(ch)


def due_challenge(storage, dev, now, rand=os.urandom):
    """What a device that checks in (POST /v1/ota/check) is handed: its outstanding challenge, or a new
    periodic one when both its last result and its last missed challenge are older than the policy's
    interval (or there are none; for a device that attestation quarantined, only the missed one
    counts); None when continuous attestation is off or nothing is due. An expired challenge still
    waiting for the sweep is marked missed first."""
    ch = storage.get_challenge(dev["id"])
    if ch is not None and ch["expires_at"] > now:
        return challenge_view(ch)
    policy = effective_policy(storage, dev["tenant_id"], dev["metadata"].get("group"))
    if policy["interval_s"] == 0:
        return None
    with storage.transaction():
        row = storage.take_expired_challenge(dev["id"], now) if ch is not None else None
        if row is not None:
            _missed(storage, row, now)
        # a device that attestation quarantined is due at once: attesting again (after an update) is its
        # way out, so its last result does not count, only a missed challenge
        repairing = dev["quarantined"] and dev.get("attest_quarantine")
        last = [] if repairing else storage.list_attest_results(dev["id"], 1)
        latest = max(last[0]["created"] if last else 0, dev.get("attest_missed_at") or 0,
                     now if row is not None else 0)          # a miss just marked counts as one now
        if latest and now - latest < policy["interval_s"]:
            return None
        return issue_challenge(storage, dev, now, "periodic", rand)


def _missed(storage, ch, now):
    dev = storage.get_device(ch["device_id"], ch["tenant_id"])
    if dev is None:
        return
    trust = min(dev["trust_level"], MISSED_TRUST)
    storage.set_attestation_state(dev["tenant_id"], dev["id"], "warning", trust, missed_at=now)
    storage.add_audit([_audit(now, dev["tenant_id"], dev["id"].hex(), None, None, "warning", "missed",
                              f"trust level {trust}; no evidence for the {ch['reason']} challenge issued at "
                              f"{ch['issued_at']} by its deadline {ch['expires_at']}")])
    emit(storage, dev["tenant_id"], "attestation.missed",
         {"device_id": dev["id"].hex(), "reason": ch["reason"], "expires_at": ch["expires_at"],
          "trust_level": trust}, now)


def sweep(storage, now, limit=SWEEP_BATCH):
    """Mark the challenges past their deadline missed: status warning, trust lowered to at most
    MISSED_TRUST, an audit row, `attestation.missed`. One transaction; returns how many."""
    with storage.transaction():
        rows = storage.take_expired_challenges(now, limit)
        for row in rows:
            _missed(storage, row, now)
    return len(rows)


# -- appraisal ---------------------------------------------------------------------------------

def _rank(value):
    return ("none", "affirming", "warning", "contraindicated").index(ear.tier(value))


def _worst(a, b):
    return a if (_rank(a), a) >= (_rank(b), b) else b


def _diff(measured, reference):
    """(changed, missing, extra) names of {name: (size, sha256)} against the reference's."""
    changed = sorted(n for n in measured.keys() & reference.keys() if tuple(measured[n]) != tuple(reference[n]))
    return changed, sorted(reference.keys() - measured.keys()), sorted(measured.keys() - reference.keys())


def _table(entries, key):
    return {e[key]: (e["size"], e["sha256"]) for e in entries}


def choose_reference(refs, micropython):
    """The model's reference for this MicroPython version, else its version-less one, else any (which
    then differs in version), else None."""
    exact = [r for r in refs if r["micropython"] == micropython and micropython is not None]
    loose = [r for r in refs if r["micropython"] is None]
    return (exact or loose or refs or [None])[0]


def appraise_measurements(ev, compromised, release, release_files, ref):
    """(AR4SI vector, details) of authenticated evidence. `release`: the tenant's signed app release of
    the evidence's app version, or None; `release_files`: its [{path, size, sha256}]; `ref`: the model
    reference (choose_reference) or None. Pure: the rules of docs/attestation.md section 3."""
    board = ev.board or "?"
    version = (ev.app or {}).get("version")
    recs, compared, mismatch = [], False, False
    files = {"changed": [], "missing": [], "extra": []}
    vec = dict.fromkeys(ear.CLAIMS, ear.NO_CLAIM)
    vec["instance-identity"] = ear.UNTRUSTWORTHY_INSTANCE if compromised else ear.TRUSTWORTHY_INSTANCE
    if compromised:
        recs.append("the device is marked compromised: decommission it and provision a new identity")
    # executables and file system: the signed release is the reference, else the reference's factory files
    reference = (_table(release_files, "path") if release is not None
                 else _table(ref["app_files"], "path") if ref is not None and ref["app_files"] is not None else None)
    if reference is not None:
        compared = True
        changed, missing, extra = _diff(ev.files, reference)
        files = {"changed": changed, "missing": missing, "extra": extra}
        if changed or missing or extra:
            mismatch = True
            vec["executables"] = ear.CONTRAINDICATED_RUNTIME
            vec["file-system"] = ear.CONTRAINDICATED_FILES if (missing or extra) else ear.APPROVED_FILES
        else:
            vec["executables"], vec["file-system"] = ear.APPROVED_RUNTIME, ear.APPROVED_FILES
        if release is not None:
            for p in changed:
                recs.append(f"file {p} differs from release {version}: update the device with a signed release "
                            f"(`janua ota rollout …`) or re-install {version}")
            for p in missing:
                recs.append(f"file {p} of release {version} is missing on the device: re-install {version}")
            for p in extra:
                recs.append(f"file {p} is not in release {version}: re-install {version} (an OTA install "
                            "replaces the slot)")
        elif changed or missing or extra:
            recs.append(f"the application files differ from the factory files of the reference for model {board} "
                        f"({len(changed)} changed, {len(missing)} missing, {len(extra)} extra)")
    else:
        vec["executables"] = ear.UNRECOGNIZED_RUNTIME
        what = f"application version {version}" if version else "an application without a version"
        recs.append(f"no signed app release matches {what}: publish it (`janua ota publish …`) or register the "
                    f"factory files (`janua attest ref add --model {board} --app-from DIR`)")
    # janua modules: the model reference, when one lists them
    mods = None
    if ref is not None and ref["modules"] is not None and ev.package is not None and not ev.modules:
        # the board sent the 0x09 digest of its package (the default): compare it with the digest of the
        # reference's module list; a mismatch cannot say which module differs
        compared = True
        want = evidence.package_digest([(m["name"], m["size"], m["sha256"]) for m in ref["modules"]])
        mods = {"package": ev.package, "reference_package": want, "match": want == ev.package}
        if want != ev.package:
            mismatch = True
            vec["executables"] = _worst(vec["executables"], ear.CONTRAINDICATED_RUNTIME)
            recs.append(f"the janua package ({ev.package['count']} modules, {ev.package['size']} bytes) differs "
                        f"from the reference for model {board} ({want['count']} modules, {want['size']} bytes): "
                        "update the firmware package; `Attester(cfg, modules=\"list\")` on the board names the "
                        "module")
    elif ref is not None and ref["modules"] is not None:
        compared = True
        changed, missing, extra = _diff(ev.modules, _table(ref["modules"], "name"))
        mods = {"changed": changed, "missing": missing, "extra": extra}
        if changed or missing or extra:
            mismatch = True
            vec["executables"] = _worst(vec["executables"], ear.CONTRAINDICATED_RUNTIME)
            recs.append(f"janua modules differ from the reference for model {board}: "
                        + ", ".join(changed + missing + extra) + " (update the firmware package)")
    else:
        recs.append(f"janua modules not appraised: register a reference for model {board}: "
                    f"janua attest ref add --model {board} --micropython {ev.micropython or 'V'} --modules-from DIR")
    # configuration: MicroPython version, build and board against the model reference
    want = [(f, ref[f], getattr(ev, f)) for f in ("micropython", "build") if ref is not None and ref[f] is not None]
    if want:
        compared = True
        bad = [(f, w, g) for f, w, g in want if w != g]
        if bad:
            mismatch = True
            vec["configuration"] = ear.UNSAFE_CONFIG
            recs.append(f"model {board} should run " + ", ".join(f"{f} {w}" for f, w, _ in bad) + "; it reports "
                        + ", ".join(f"{f} {g}" for f, _, g in bad))
        else:
            vec["configuration"] = ear.APPROVED_CONFIG
    details = {"signatureValid": True, "certificateValid": None,
               "pcrMatch": (not mismatch) if compared else None, "recommendations": recs,
               "release": None if release is None else {"id": release["id"], "version": release["version"]},
               "reference": None if ref is None else ref["id"], "files": files, "modules": mods,
               "measured": {"micropython": ev.micropython, "build": ev.build, "board": ev.board, "app": ev.app,
                            "boot": ev.boot, "files": len(ev.files), "modules": len(ev.modules),
                            "package": ev.package},
               "hw_claimed": ev.hw}
    return {k: v for k, v in vec.items() if v != ear.NO_CLAIM}, details


def appraise(storage, sealer, token_keys, data, now, transport="http", source=None, summary=None):
    """Decode, authenticate and appraise board evidence; consume its challenge, store the result, set
    the device's status and trust level, audit, notify and (by policy) quarantine or release, all in
    one transaction. Returns {status, trust_level, quarantined, ear, device_id, changed_quarantine}."""
    now = int(now)
    try:
        ev = evidence.decode(data)
    except evidence.EvidenceError as e:
        _refuse(summary, now, None, None, transport, source, e.reason, str(e))
    dev = storage.get_device(ev.device_id)
    if dev is None:
        _refuse(summary, now, None, ev.device_id.hex(), transport, source, "unknown_device", "no such device")
    tenant_id, did = dev["tenant_id"], dev["id"]
    key = keys.derive_key(sealer.unseal(dev["sealed_secret"], did, tenant_id), KEY_LABEL)
    if not evidence.check_tag(ev, key):
        _refuse(summary, now, tenant_id, did.hex(), transport, source, "tag", "the evidence tag does not verify")
    policy = effective_policy(storage, tenant_id, dev["metadata"].get("group"))
    version = (ev.app or {}).get("version")
    with storage.transaction():
        if not storage.consume_challenge(did, ev.nonce, now):
            _refuse(summary, now, tenant_id, did.hex(), transport, source, "stale_nonce",
                    "not the device's outstanding challenge, expired or already used")
        release = storage.find_release(tenant_id, "app", version) if version else None
        files = storage.list_release_files(release["id"]) if release is not None else []
        ref = choose_reference(storage.list_attest_refs(tenant_id, ev.board), ev.micropython) if ev.board else None
        vector, details = appraise_measurements(ev, dev["compromised"], release, files, ref)
        status = ear.status_of(vector)
        trust = TRUST[status]
        signer = token_keys.active(now)
        exp = now + (policy["interval_s"] or EAR_TTL_S)
        token = ear.encode_ear(signer, submod=did.hex(), status=status, vector=vector, policy_id=POLICY_ID,
                               nonce=ev.nonce, iat=now, exp=exp, build=BUILD, extra={"janua.trust-level": trust})
        token_keys.note_signed(signer, exp)
        quarantined, attest_q, changed = dev["quarantined"], bool(dev.get("attest_quarantine")), False
        if not quarantined:
            attest_q = False                       # an operator lifted attestation's quarantine meanwhile
        if status == "contraindicated":
            emit(storage, tenant_id, "attestation.failed",
                 {"device_id": did.hex(), "status": status, "trust_level": trust, "vector": vector,
                  "recommendations": details["recommendations"][:5]}, now)
            if policy["quarantine"] and not quarantined:
                set_quarantined(storage, tenant_id, did, True, "attestation contraindicated", ACTOR, now)
                emit(storage, tenant_id, "device.quarantined", {"device_id": did.hex(), "by": ACTOR}, now)
                quarantined, attest_q, changed = True, True, True
        elif status == "affirming" and quarantined and attest_q:
            set_quarantined(storage, tenant_id, did, False, "attestation affirming", ACTOR, now)
            emit(storage, tenant_id, "device.released", {"device_id": did.hex(), "by": ACTOR}, now)
            quarantined, attest_q, changed = False, False, True
        details["quarantined"] = quarantined
        storage.add_attest_result(tenant_id, did, now, status, trust, vector, details, token)
        storage.set_attestation_state(tenant_id, did, status, trust, attest_q)
        storage.add_audit([_audit(now, tenant_id, did.hex(), transport, source, status, None,
                                  f"trust level {trust}; " + ", ".join(f"{k} {v}" for k, v in sorted(vector.items())))])
    return {"device_id": did.hex(), "status": status, "trust_level": trust, "quarantined": quarantined,
            "ear": token, "changed_quarantine": changed}


def answer(result):
    """The JSON answer to the device (docs/attestation.md 2.3)."""
    return {k: result[k] for k in ("status", "trust_level", "quarantined", "ear")}


# -- views -------------------------------------------------------------------------------------

def result_view(r, with_ear=False):
    out = {"id": r["id"], "created": r["created"], "status": r["status"], "trust_level": r["trust_level"],
           "vector": r["vector"], "details": r["details"]}
    if with_ear:
        out["ear"] = r["ear"]
    return out


def attestation_view(storage, dev, limit=HISTORY):
    results = storage.list_attest_results(dev["id"], limit)
    ch = storage.get_challenge(dev["id"])
    return {"device_id": dev["id"].hex(), "attestation_status": dev.get("attestation_status") or "unknown",
            "trust_level": dev["trust_level"], "quarantined": dev["quarantined"],
            "quarantined_by_attestation": bool(dev["quarantined"] and dev.get("attest_quarantine")),
            "challenge": None if ch is None else challenge_view(ch),
            "latest": result_view(results[0], with_ear=True) if results else None,
            "history": [result_view(r) for r in results]}
