"""A device's health document (docs/api.md "Device health"): what GET /v1/devices/{id}/health returns and the
console's device page shows, from the stored latest report, its history and the tenant's policy."""

from verifier.health import core as health
from verifier.registry.model import Policy

HISTORY_S = 86400


def _latest_release(storage, tenant_id):
    best = None
    for rel in storage.list_releases(tenant_id, limit=None):
        v = rel.get("version")
        if v and (best is None or health._version_key(v) > health._version_key(best)):
            best = v
    return best


def health_document(storage, dev, now, briefs=None):
    """`briefs`: core.brief() of the device's recent reports this process remembers (the ingest's), which
    see every report; without them (another instance, or after a restart) the stored history, one report
    per 15-minute slot, stands in for them."""
    got = storage.get_health(dev["id"])
    fields = got["fields"] if got else {}
    doc = {
        "resources": {k: fields.get(k) for k in ("heap_free", "heap_min", "flash_free")},
        "network": {"rssi": fields.get("rssi"), "bytes_tx": fields.get("bytes_tx"), "bytes_rx": fields.get("bytes_rx"),
                    "last_seen_at": dev.get("last_seen_at")},
        "security": {"auth_failures": fields.get("auth_failures"), "psk_expires_at": dev.get("psk_expires_at"),
                     "attestation_status": dev.get("attestation_status"), "trust_level": dev.get("trust_level")},
        "operational": {"uptime_s": fields.get("uptime_s"), "boot_count": fields.get("boot_count"),
                        "reset_cause": (health.RESET_CAUSES[fields["reset_cause"]]
                                        if fields.get("reset_cause") is not None else None),
                        "errors": fields.get("errors"), "last_error": fields.get("last_error"),
                        "clock_offset_s": fields.get("clock_offset_s")},
        "app_version": fields.get("app_version"),
        "slot": health.SLOTS[fields["slot"]] if fields.get("slot") in (0, 1) else None,
        "received_at": got["received_at"] if got else None, "via": got["via"] if got else None,
    }
    if got is None:
        doc.update(score=None, bucket=health.bucket(None, dev.get("status"), dev.get("attestation_status")),
                   recommendations=[])
        return doc
    t = got["received_at"]
    if briefs:
        older = list(briefs)
        if older[-1][0] == t:           # the latest report itself (reports of one second share their time)
            older.pop()
        older = [b for b in older if b[0] is not None and b[0] <= t]
    else:
        older = [health.brief(h["fields"], h["received_at"])
                 for h in storage.health_history(dev["id"], now - HISTORY_S) if h["received_at"] < t]
    tenant = storage.get_tenant(dev["tenant_id"])
    ctx = {"now": now, "drift_s": Policy.from_json(tenant["policy"]).drift_s,
           "latest_release": _latest_release(storage, dev["tenant_id"])}
    recs = health.sentences(health.findings(dict(fields, received_at=t), older, dev, ctx))
    score = health.score(recs, dev.get("attestation_status") == "warning")
    doc.update(score=score, bucket=health.bucket(score, dev.get("status"), dev.get("attestation_status")),
               recommendations=recs)
    return doc
