"""GET /v1/alerts (filters, cursor pagination), GET /v1/alerts/{id}, POST /v1/alerts/{id}/resolve
(idempotent: the second call answers the same resolved_at), tenant scoping (another tenant's alert is
404), the audit row of a resolve and the fleet status's open count. Alerts are opened through the
real ingest (reset spikes) and the real decision path (fleet rule). Literal expectations."""

import pytest

from tests.health.test_alerts import H, history, send
from tests.support import T0, client, config  # noqa: F401 (fixtures)
from tests.verifier.conftest import Tenant
from verifier.appkeys import ALERTS, CORE, STORAGE


@pytest.fixture
def acme(client, clock):
    return Tenant(client.app, "acme", clock)


def reset_spike(app, dev, tenant, clock, hour=4, boot=6):
    """Three reboots within the hour: boot_count boot, boot + 1, boot + 2 (the history's is 5)."""
    for i in range(3):
        send(app, dev, tenant, clock, hour * H + 60 * (i + 1), boot_count=boot + i)


@pytest.fixture
def three(client, acme, clock):
    """Alerts 1 and 2: reset spikes of devices a and b (hour 4); alert 3: the fleet rule (hour 4 + 10 min)."""
    app = client.app
    a, b = acme.device(), acme.device()
    history(app, a, acme, clock)
    history(app, b, acme, clock)
    reset_spike(app, a, acme, clock)
    reset_spike(app, b, acme, clock)
    now = T0 + 4 * H + 600
    clock.now = float(now)
    for d in [acme.device() for _ in range(10)]:
        d.key = bytes(32)
        app[CORE].handle(d.request(now), ("10.0.0.9", 4000), now, "udp")
    app[ALERTS].tick(now)
    return a, b


async def get(client, tenant, path):
    r = await client.get(path, headers=tenant.headers)
    return r.status, await r.json()


async def test_list_filters_and_pages(client, acme, three):
    a, b = three
    status, body = await get(client, acme, "/v1/alerts")
    assert status == 200
    assert [(x["id"], x["rule"], x["device_id"]) for x in body["alerts"]] == [
        (3, "fleet.auth_failure_spike", None), (2, "device.reset_spike", b.hex), (1, "device.reset_spike", a.hex)]
    assert body["next_cursor"] is None
    _, body = await get(client, acme, f"/v1/alerts?device_id={a.hex}")
    assert [x["id"] for x in body["alerts"]] == [1]
    _, body = await get(client, acme, "/v1/alerts?rule=fleet.auth_failure_spike")
    assert [x["id"] for x in body["alerts"]] == [3]
    _, body = await get(client, acme, "/v1/alerts?limit=2")
    assert [x["id"] for x in body["alerts"]] == [3, 2] and body["next_cursor"] == "2"
    _, body = await get(client, acme, "/v1/alerts?limit=2&cursor=2")
    assert [x["id"] for x in body["alerts"]] == [1] and body["next_cursor"] is None


async def test_state_filter_after_resolve(client, acme, clock, three):
    clock.now = float(T0 + 5 * H)
    r = await client.post("/v1/alerts/2/resolve", headers=acme.headers)
    assert r.status == 200
    _, body = await get(client, acme, "/v1/alerts")
    assert [x["id"] for x in body["alerts"]] == [3, 1]
    _, body = await get(client, acme, "/v1/alerts?state=resolved")
    assert [x["id"] for x in body["alerts"]] == [2]
    _, body = await get(client, acme, "/v1/alerts?state=all")
    assert [x["id"] for x in body["alerts"]] == [3, 2, 1]


async def test_one_alert_and_resolve_is_idempotent(client, acme, clock, three):
    a, _ = three
    status, one = await get(client, acme, "/v1/alerts/1")
    assert status == 200
    assert one == {"id": 1, "tenant_id": acme.id, "device_id": a.hex, "rule": "device.reset_spike",
                   "severity": "critical", "state": "open", "opened_at": T0 + 4 * H + 180,
                   "last_seen_at": T0 + 4 * H + 180, "count": 1,
                   "details": {"hour_start": T0 + 4 * H, "value": 3, "baseline": 0.0, "min": 3, "factor": 3.0},
                   "resolved_at": None, "resolved_by": None}
    _, st = await get(client, acme, "/v1/fleet/status")
    assert st["alerts"] == {"open": 3}
    clock.now = float(T0 + 5 * H)
    r = await client.post("/v1/alerts/1/resolve", headers=acme.headers)
    first = await r.json()
    assert r.status == 200
    assert (first["state"], first["resolved_at"], first["resolved_by"]) == ("resolved", T0 + 5 * H, acme.token_id)
    clock.now = float(T0 + 6 * H)
    r = await client.post("/v1/alerts/1/resolve", headers=acme.headers)
    assert r.status == 200 and await r.json() == first
    audit = [x for x in client.app[STORAGE].list_audit(acme.id) if x["action"] == "alert.resolve"]
    assert [(x["kind"], x["actor"], x["device_id"], x["reason"], x["detail"], x["ts"]) for x in audit] == [
        ("admin", acme.token_id, a.hex, "device.reset_spike", "alert 1", T0 + 5 * H)]
    _, st = await get(client, acme, "/v1/fleet/status")
    assert st["alerts"] == {"open": 2}


async def test_a_new_spike_after_resolve_opens_a_new_alert(client, acme, clock, three):
    a, _ = three
    clock.now = float(T0 + 5 * H)
    await client.post("/v1/alerts/1/resolve", headers=acme.headers)
    reset_spike(client.app, a, acme, clock, hour=6, boot=9)
    _, body = await get(client, acme, f"/v1/alerts?device_id={a.hex}&state=all")
    assert [(x["id"], x["state"]) for x in body["alerts"]] == [(4, "open"), (1, "resolved")]


async def test_another_tenants_alert_is_404(client, acme, clock, three):
    other = Tenant(client.app, "other", clock)
    for path in ("/v1/alerts/1", "/v1/alerts/99", "/v1/alerts/x1"):
        status, body = await get(client, other, path)
        assert (status, body["error"]) == (404, "not_found")
    r = await client.post("/v1/alerts/1/resolve", headers=other.headers)
    assert r.status == 404
    status, body = await get(client, other, "/v1/alerts?state=all")
    assert (status, body) == (200, {"alerts": [], "next_cursor": None})
    assert client.app[STORAGE].get_alert(acme.id, 1)["resolved_at"] is None


@pytest.mark.parametrize("query", ["state=closed", "rule=device.nope", "device_id=XYZ", "limit=0", "limit=1001",
                                   "cursor=abc"])
async def test_bad_query_is_400(client, acme, query):
    status, body = await get(client, acme, "/v1/alerts?" + query)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_needs_an_admin_token(client):
    r = await client.get("/v1/alerts")
    assert r.status == 401


async def test_alerts_not_seen_for_a_day_resolve_by_themselves(client, acme, clock, three):
    app = client.app
    app[ALERTS].tick(T0 + 4 * H + 180 + 86400)         # alerts 1 and 2 last seen exactly a day ago: kept
    _, body = await get(client, acme, "/v1/alerts")
    assert [x["id"] for x in body["alerts"]] == [3, 2, 1]
    app[ALERTS].tick(T0 + 4 * H + 181 + 86400)
    _, body = await get(client, acme, "/v1/alerts?state=all")
    assert [(x["id"], x["state"], x["resolved_at"], x["resolved_by"]) for x in body["alerts"]] == [
        (3, "open", None, None), (2, "resolved", T0 + 4 * H + 181 + 86400, "auto"),
        (1, "resolved", T0 + 4 * H + 181 + 86400, "auto")]
    audit = [x for x in app[STORAGE].list_audit(acme.id) if x["action"] == "alert.resolve"]
    assert [(x["kind"], x["actor"], x["reason"], x["detail"]) for x in audit] == [
        ("alert", "alerts", "device.reset_spike", f"alert 2: not seen since {T0 + 4 * H + 180}"),
        ("alert", "alerts", "device.reset_spike", f"alert 1: not seen since {T0 + 4 * H + 180}")]


async def test_an_admin_resolved_alert_is_not_resolved_again(client, acme, clock, three):
    clock.now = float(T0 + 5 * H)
    await client.post("/v1/alerts/1/resolve", headers=acme.headers)
    client.app[ALERTS].tick(T0 + 6 * H + 86400)
    _, one = await get(client, acme, "/v1/alerts/1")
    assert (one["resolved_at"], one["resolved_by"]) == (T0 + 5 * H, acme.token_id)


async def test_auto_resolve_leaves_an_alert_resolved_meanwhile(client, acme, clock, three):
    """Another instance (or an admin) resolved alert 1 between the read of the stale alerts and the update."""
    st = client.app[STORAGE]
    stale = st.stale_alerts(T0 + 4 * H + 181, 500)
    assert [a["id"] for a in stale] == [1, 2]
    st.resolve_alert(acme.id, 1, T0 + 5 * H, "tok_other")
    st.stale_alerts = lambda before, limit: stale
    try:
        done = client.app[ALERTS].resolve_stale(T0 + 4 * H + 181 + 86400)
    finally:
        del st.stale_alerts
    assert [a["id"] for a in done] == [2]
    assert (st.get_alert(acme.id, 1)["resolved_by"], st.get_alert(acme.id, 2)["resolved_by"]) == ("tok_other", "auto")
    assert [x["detail"] for x in st.list_audit(acme.id) if x["action"] == "alert.resolve"] == [
        f"alert 2: not seen since {T0 + 4 * H + 180}"]
