"""Anomaly rules and alerts (docs/health.md 5): each device rule triggered through the real health ingest
(reports handed to app[HEALTH] as the CoAP path does), with its no-fire case beside it (below the
threshold, not enough history); dedupe of a repeat; the audit row, the metric, the queued webhook event;
the baselines persisted in health_state. Literal expectations; T0 (2026-01-01 00:00 UTC) starts an hour."""

import json

import pytest

from tests.support import T0, client, config  # noqa: F401 (fixtures)
from tests.verifier.conftest import Tenant
from verifier.alerts.watch import AlertWatch
from verifier.appkeys import ALERTS, HEALTH, STORAGE
from verifier.health.core import encode

H = 3600


@pytest.fixture
def tenant(client, clock):
    return Tenant(client.app, "acme", clock)


def send(app, dev, tenant, clock, at, **fields):
    """One report at T0 + at through the ingest, written at once (one batch)."""
    clock.now = float(T0 + at)
    assert app[HEALTH].ingest(dev.id, tenant.id, "coap", encode(fields), int(clock.now)) == "ok"
    app[HEALTH].flush()


def history(app, dev, tenant, clock, hours=4, **fields):
    """One report at the start of each of the first `hours` hours: the baseline's minimum history."""
    for h in range(hours):
        send(app, dev, tenant, clock, h * H, **dict({"boot_count": 5, "auth_failures": 0}, **fields))


def alerts(app, tenant):
    return app[STORAGE].list_alerts(tenant.id, "all")


# device.reset_spike

async def test_reset_spike_opens_an_alert(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)
    for i, boot in enumerate((6, 7, 8)):               # three reboots within hour 4
        send(app, dev, tenant, clock, 4 * H + 60 * (i + 1), boot_count=boot, auth_failures=0)
    got = alerts(app, tenant)
    assert [(a["rule"], a["severity"], a["device_id"], a["count"], a["opened_at"], a["state"]) for a in got] == [
        ("device.reset_spike", "critical", dev.hex, 1, T0 + 4 * H + 180, "open")]
    assert got[0]["details"] == {"hour_start": T0 + 4 * H, "value": 3, "baseline": 0.0, "min": 3, "factor": 3.0}


async def test_two_resets_in_an_hour_open_nothing(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)
    send(app, dev, tenant, clock, 4 * H + 60, boot_count=6)
    send(app, dev, tenant, clock, 4 * H + 120, boot_count=7)
    assert alerts(app, tenant) == []


async def test_reset_spike_needs_three_hours_of_history(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock, hours=3)         # hours 0..2: at hour 2 only 2 hours are complete
    for i, boot in enumerate((6, 7, 8, 9)):
        send(app, dev, tenant, clock, 2 * H + 60 * (i + 1), boot_count=boot)
    assert alerts(app, tenant) == []


async def test_three_finished_hours_needed_even_with_many_reports(client, tenant, clock):
    app, dev = client.app, tenant.device()
    for at in (0, 600, 1200, H, H + 600):            # 5 reports in hours 0 and 1: only 2 finished hours at hour 2
        send(app, dev, tenant, clock, at, boot_count=5)
    for i, boot in enumerate((6, 7, 8, 9)):
        send(app, dev, tenant, clock, 2 * H + 60 * (i + 1), boot_count=boot)
    assert alerts(app, tenant) == []


async def test_three_earlier_reports_needed_even_after_many_hours(client, tenant, clock):
    app, dev = client.app, tenant.device()
    send(app, dev, tenant, clock, 0, boot_count=5)
    send(app, dev, tenant, clock, H, boot_count=5)    # 2 reports before hour 5, 5 finished hours
    for i, boot in enumerate((6, 7, 8, 9)):
        send(app, dev, tenant, clock, 5 * H + 60 * (i + 1), boot_count=boot)
    assert alerts(app, tenant) == []
    send(app, dev, tenant, clock, 6 * H, boot_count=9)
    for i, boot in enumerate((10, 11, 12)):           # hour 6: 6 reports before it: fires
        send(app, dev, tenant, clock, 6 * H + 60 * (i + 1), boot_count=boot)
    assert [a["details"]["value"] for a in alerts(app, tenant)] == [3]


# device.auth_failures_spike

async def test_auth_failures_spike(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)
    send(app, dev, tenant, clock, 4 * H + 60, boot_count=5, auth_failures=2)
    send(app, dev, tenant, clock, 4 * H + 120, boot_count=5, auth_failures=4)
    assert alerts(app, tenant) == []                  # 4 failures this hour: below 5
    send(app, dev, tenant, clock, 4 * H + 180, boot_count=5, auth_failures=5)
    got = alerts(app, tenant)
    assert [(a["rule"], a["severity"]) for a in got] == [("device.auth_failures_spike", "warning")]
    assert got[0]["details"] == {"hour_start": T0 + 4 * H, "value": 5, "baseline": 0.0, "min": 5, "factor": 3.0}


async def test_auth_failures_counted_from_zero_after_a_reboot(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock, auth_failures=40)     # a board that had 40 failures before, none since
    send(app, dev, tenant, clock, 4 * H + 60, boot_count=6, auth_failures=4)   # rebooted: 4 new failures
    assert alerts(app, tenant) == []
    send(app, dev, tenant, clock, 4 * H + 120, boot_count=6, auth_failures=5)
    assert [a["details"]["value"] for a in alerts(app, tenant)] == [5]


# device.report_flood

async def test_report_flood_above_four_times_the_baseline(client, tenant, clock):
    app, dev = client.app, tenant.device()
    for h in range(4):                                # 12 reports an hour: the baseline is 12
        for k in range(12):
            send(app, dev, tenant, clock, h * H + k * 300)
    for k in range(48):                               # 48 = 4 x 12: not above
        send(app, dev, tenant, clock, 4 * H + k * 70)
    assert alerts(app, tenant) == []
    send(app, dev, tenant, clock, 4 * H + 48 * 70)
    got = alerts(app, tenant)
    assert [(a["rule"], a["details"]["value"], a["details"]["baseline"]) for a in got] == [
        ("device.report_flood", 49, 12.0)]


async def test_report_flood_needs_twelve_reports(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)                  # one report an hour: baseline 1
    for k in range(11):                               # 11 > 4 x 1, but fewer than 12
        send(app, dev, tenant, clock, 4 * H + 60 * (k + 1))
    assert alerts(app, tenant) == []
    send(app, dev, tenant, clock, 4 * H + 720)
    assert [a["rule"] for a in alerts(app, tenant)] == ["device.report_flood"]


# one open alert per (tenant, device, rule); what opening writes

async def test_repeat_bumps_the_open_alert(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)
    for i, boot in enumerate((6, 7, 8, 9)):           # hour 4: fires at the third, the fourth is the same hour
        send(app, dev, tenant, clock, 4 * H + 60 * (i + 1), boot_count=boot)
    for i, boot in enumerate((10, 11, 12)):           # hour 5: fires again
        send(app, dev, tenant, clock, 5 * H + 60 * (i + 1), boot_count=boot)
    got = alerts(app, tenant)
    assert [(a["count"], a["opened_at"], a["last_seen_at"]) for a in got] == [(2, T0 + 4 * H + 180, T0 + 5 * H + 180)]
    assert got[0]["details"]["value"] == 3 and got[0]["details"]["hour_start"] == T0 + 5 * H
    audit = [r for r in app[STORAGE].list_audit(tenant.id) if r["kind"] == "alert"]
    assert [(r["action"], r["device_id"], r["actor"], r["result"], r["reason"], r["detail"]) for r in audit] == [
        ("alert.opened", dev.hex, "alerts", "open", "device.reset_spike", f"alert {got[0]['id']}")]
    events = app[STORAGE].list_notifications(tenant.id)
    assert [(e["event"], e["data"]) for e in events] == [("alert.opened", {
        "alert_id": got[0]["id"], "rule": "device.reset_spike", "severity": "critical", "device_id": dev.hex,
        "details": {"hour_start": T0 + 4 * H, "value": 3, "baseline": 0.0, "min": 3, "factor": 3.0}})]


async def test_metric_and_gauge(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)
    for i, boot in enumerate((6, 7, 8)):
        send(app, dev, tenant, clock, 4 * H + 60 * (i + 1), boot_count=boot)
    text = await (await client.get("/metrics")).text()
    assert 'janua_alerts_total{rule="device.reset_spike"} 1.0' in text
    assert 'janua_alerts_total{rule="device.report_flood"} 0.0' in text
    assert f'janua_fleet_alerts_open{{tenant="{tenant.id}"}} 1' in text.splitlines()
    r = await client.get("/v1/fleet/status", headers=tenant.headers)
    assert (await r.json())["alerts"] == {"open": 1}


async def test_baselines_persisted_in_health_state(client, tenant, clock):
    app, dev = client.app, tenant.device()
    history(app, dev, tenant, clock)
    row = app[STORAGE].get_health_state(dev.id)
    assert row == {"hour": (T0 + 3 * H) // H, "reports_h": 1, "resets_h": 0, "failures_h": 0,
                   "ewma_reports": 1.0, "ewma_resets": 0.0, "ewma_failures": 0.0, "hours": 3, "reports": 4,
                   "boot_count": 5, "auth_failures": 0, "fired": {}}
    # another instance (or a restart) reads the row once and continues from it: the spike still fires
    watch = AlertWatch(app[STORAGE])
    app[HEALTH].watch = watch
    for i, boot in enumerate((6, 7, 8)):
        send(app, dev, tenant, clock, 4 * H + 60 * (i + 1), boot_count=boot)
    assert watch.opened == {"device.reset_spike": 1}
    assert app[STORAGE].get_health_state(dev.id)["fired"] == {"device.reset_spike": (T0 + 4 * H) // H}


async def test_no_select_per_report(client, tenant, clock):
    """The baselines are read from health_state once per device, then kept in memory."""
    app, dev = client.app, tenant.device()
    reads = []
    storage = app[STORAGE]
    real = storage.get_health_state
    storage.get_health_state = lambda did: reads.append(did) or real(did)
    try:
        history(app, dev, tenant, clock)
    finally:
        del storage.get_health_state
    assert reads == [dev.id]
    assert app[ALERTS] is app[HEALTH].watch


def test_alert_details_column_is_json(tmp_path):
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(tmp_path / "x.db"))
    with st.transaction():
        assert st.raise_alert("t1", b"\x01" * 8, "device.reset_spike", "critical", {"value": 3}, T0) == (1, True)
        assert st.raise_alert("t1", b"\x01" * 8, "device.reset_spike", "critical", {"value": 4}, T0 + 5) == (1, False)
        assert st.raise_alert("t1", None, "fleet.auth_failure_spike", "critical", {}, T0) == (2, True)
        assert st.raise_alert("t1", None, "fleet.auth_failure_spike", "critical", {}, T0 + 60) == (2, False)
    assert json.loads(st._db.execute("SELECT details FROM alerts WHERE id = 1").fetchone()[0]) == {"value": 4}
    assert st.count_open_alerts("t1") == 2 and st.count_open_alerts("t2") == 0
    st.close()


async def test_baselines_are_written_at_most_once_a_minute_and_at_stop(client, tenant, clock):
    # a report costs no baseline write of its own: changed baselines wait for STATE_WRITE_S (60 s)
    app, dev = client.app, tenant.device()
    send(app, dev, tenant, clock, 0, boot_count=5)
    assert app[STORAGE].get_health_state(dev.id) is None          # 0 s after the watch started
    send(app, dev, tenant, clock, 61, boot_count=5)
    assert app[STORAGE].get_health_state(dev.id)["reports_h"] == 2
    send(app, dev, tenant, clock, 90, boot_count=5)               # 29 s after that write: waits
    assert app[STORAGE].get_health_state(dev.id)["reports_h"] == 2
    app[ALERTS].final = True                                       # what the app does at stop
    app[HEALTH].flush()
    assert app[STORAGE].get_health_state(dev.id)["reports_h"] == 3
