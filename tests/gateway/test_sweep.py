"""The stale-attestation sweep (verifier.gateway.policy.sweep, run by the app every 60 s): a gateway whose
latest passing quote is older than its tenant's interval plus grace is cut off at once, with its audit
row and notification, instead of at its next sync; a fresh one, one already failed and another
tenant's under a longer policy are left alone."""

from tests.support import AdminTenant, T0, client, clock, config  # noqa: F401 (fixtures)
from verifier.appkeys import STORAGE
from verifier.gateway import policy


def gateway(st, tenant, gid, name, attested_at, status="active", passed=True):
    st.add_gateway({"id": gid, "tenant_id": tenant.id, "name": name, "model": "gw-1", "ek_public": b"ek",
                    "ak_public": b"ak", "ek_cert": b"cert", "ek_chain": [], "token_id": f"tok-{gid}",
                    "status": status, "created": T0, "updated": T0, "attested_at": attested_at,
                    "passed": passed}, b"h" * 32, T0 + 600)


async def test_stale_gateway_is_cut_off_by_the_sweep_not_only_at_its_next_sync(client, clock):
    st = client.app[STORAGE]
    acme, other = AdminTenant(client.app, "acme", clock), AdminTenant(client.app, "other", clock)
    st.set_gateway_policy(other.id, {"interval_s": 86400, "grace_s": 600, "require_attested": False})
    now = T0 + 10_000
    # acme's policy is the default: interval 3600 + grace 600 = 4200 s
    gateway(st, acme, "gw-stale", "stale", now - 4201)
    gateway(st, acme, "gw-edge", "edge", now - 4200)          # exactly at the bound: still fresh
    gateway(st, acme, "gw-failed", "failed", now - 9000, status="failed", passed=False)
    gateway(st, other, "gw-other", "other", now - 9000)       # its tenant allows a day

    assert policy.sweep(st, now) == 1
    assert st.get_gateway(acme.id, "gw-stale")["status"] == "failed"
    assert st.get_gateway(acme.id, "gw-edge")["status"] == "active"
    assert st.get_gateway(other.id, "gw-other")["status"] == "active"
    assert [(n["event"], n["data"]) for n in st.list_notifications(acme.id)] == [
        ("gateway.cut_off", {"gateway_id": "gw-stale", "name": "stale", "reason": "stale"})]
    assert st.list_notifications(other.id) == []
    rows = [(a["action"], a["result"], a["actor"]) for a in st.list_audit(acme.id)]
    assert ("gateway.cut_off", "refused", "gateway:gw-stale") in rows
    # a minute later the one at the bound is stale too; the one already cut off is not cut off again
    assert policy.sweep(st, now + 60) == 1
    assert [n["data"]["gateway_id"] for n in st.list_notifications(acme.id)] == ["gw-stale", "gw-edge"]


async def test_sweep_pages_through_more_gateways_than_one_batch(client, clock, monkeypatch):
    st = client.app[STORAGE]
    acme = AdminTenant(client.app, "acme", clock)
    monkeypatch.setattr(policy, "SWEEP_BATCH", 2)
    for i in range(5):
        gateway(st, acme, f"gw-{i}", f"g{i}", T0)
    assert policy.sweep(st, T0 + 5000) == 5
