"""The gateway attestation policy the cloud applies to edge sync (docs/attestation.md 6.5): an admin
token bound to a gateway may fetch device keys (and deliver reports) only while that gateway's latest
quote passed and is fresher than the tenant's interval plus grace; a tenant may require every edge
token to be bound to one. A gateway whose attestation went stale is cut off once: audit row and a
`gateway.cut_off` notification. The decision is pure (`edge_refusal`); `require_attested_edge` applies
it with the store."""

from verifier.errors import Forbidden
from verifier.notify import core as notify

DEFAULT_POLICY = {"interval_s": 3600, "grace_s": 600, "require_attested": False}


def policy_of(storage, tenant_id):
    return storage.get_gateway_policy(tenant_id) or dict(DEFAULT_POLICY)


def edge_refusal(gateway, policy, now):
    """None when an edge token may sync, else (reason, message). `gateway` is the token's gateway or None."""
    if gateway is None:
        if policy["require_attested"]:
            return "unbound", "this tenant requires edge tokens bound to an attested gateway (POST /v1/gateways)"
        return None
    if gateway["status"] != "active" or not gateway["passed"] or gateway["attested_at"] is None:
        return "not_attested", f"gateway {gateway['id']}: its latest attestation did not pass"
    if now - gateway["attested_at"] > policy["interval_s"] + policy["grace_s"]:
        return "stale", (f"gateway {gateway['id']}: its latest attestation is older than "
                         f"{policy['interval_s'] + policy['grace_s']} s")
    return None


def cut_off(storage, gateway, reason, now, detail):
    """Mark a gateway failed (it gets no keys until a quote passes), with its audit row and notifications."""
    with storage.transaction():
        storage.update_gateway(gateway["id"], {"status": "failed", "passed": False, "updated": now})
        storage.add_audit([(now, gateway["tenant_id"], "admin", None, f"gateway:{gateway['id']}", "gateway.cut_off",
                            None, None, "refused", reason, detail)])
        notify.emit(storage, gateway["tenant_id"], "gateway.cut_off",
                    {"gateway_id": gateway["id"], "name": gateway["name"], "reason": reason}, now)


SWEEP_BATCH = 100


def sweep(storage, now):
    """Cut off every active gateway whose latest passing attestation is older than its tenant's interval
    plus grace, at once rather than at its next sync (so the tenant hears of a gateway that went quiet);
    return how many were cut off."""
    n, after = 0, None
    policies = {}
    while True:
        batch = storage.list_active_gateways(after, SWEEP_BATCH)
        for g in batch:
            policy = policies.get(g["tenant_id"]) or policies.setdefault(g["tenant_id"], policy_of(storage, g["tenant_id"]))
            refusal = edge_refusal(g, policy, now)
            if refusal is not None and refusal[0] == "stale":
                cut_off(storage, g, "stale", now, refusal[1])
                n += 1
        if len(batch) < SWEEP_BATCH:
            return n
        after = batch[-1]["id"]


def require_attested_edge(storage, token_id, tenant_id, now):
    """Raise Forbidden (403) unless the admin token `token_id` may sync device keys as an edge."""
    gateway = storage.gateway_of_token(token_id)
    refusal = edge_refusal(gateway, policy_of(storage, tenant_id), now)
    if refusal is None:
        return
    reason, message = refusal
    if reason == "stale" and gateway["status"] == "active":
        cut_off(storage, gateway, "stale", now, message)
    raise Forbidden(message)
