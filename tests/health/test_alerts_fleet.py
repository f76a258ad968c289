"""fleet.auth_failure_spike (docs/health.md 5): failed binary-auth decisions of many devices of a tenant
within one minute, through the binary-auth core's decision path and over the app's real UDP endpoint;
the no-fire cases (too few devices, not above the tenant's fleet_perf baseline); a repeat in the next
minute bumps the same alert. Literal expectations."""

import asyncio

import pytest

from tests.support import T0, client, config  # noqa: F401 (fixtures)
from tests.verifier.conftest import Tenant
from verifier.appkeys import ALERTS, CORE, HEALTH, STORAGE
from verifier.binauth.core import LOCKED_OUT, OK, SIGNATURE, TIME_SYNC

MINUTE = T0 // 60


@pytest.fixture
def acme(client, clock):
    return Tenant(client.app, "acme", clock)


def forged(tenant, n):
    """n devices whose requests carry a wrong key: each decided SIGNATURE (then LOCKED_OUT)."""
    devs = [tenant.device() for _ in range(n)]
    for d in devs:
        d.key = bytes(32)
    return devs


def fail(app, devs, times=1):
    statuses = []
    for _ in range(times):
        for d in devs:
            reply, _ = app[CORE].handle(d.request(), ("10.0.0.9", 4000), T0 + 5, "udp")
            statuses.append(reply[0])
    return statuses


def fleet_alerts(app, tenant):
    return [a for a in app[STORAGE].list_alerts(tenant.id, "all") if a["rule"] == "fleet.auth_failure_spike"]


async def test_ten_devices_failing_in_a_minute_open_an_alert(client, acme, clock):
    app = client.app
    devs = forged(acme, 10)
    assert set(fail(app, devs)) == {SIGNATURE}
    app[ALERTS].tick(T0 + 30)
    got = fleet_alerts(app, acme)
    assert [(a["device_id"], a["severity"], a["count"], a["opened_at"]) for a in got] == [
        (None, "critical", 1, T0 + 30)]
    assert got[0]["details"] == {"minute_start": T0, "failures": 10, "devices": 10, "baseline_per_min": 0.0,
                                 "min_devices": 10, "factor": 5.0}
    events = app[STORAGE].list_notifications(acme.id)
    assert [(e["event"], e["data"]["rule"], e["data"]["device_id"]) for e in events] == [
        ("alert.opened", "fleet.auth_failure_spike", None)]
    audit = [r for r in app[STORAGE].list_audit(acme.id) if r["kind"] == "alert"]
    assert [(r["action"], r["device_id"], r["reason"]) for r in audit] == [
        ("alert.opened", None, "fleet.auth_failure_spike")]
    assert app[ALERTS].opened == {"fleet.auth_failure_spike": 1}


@pytest.fixture
def fast_tick(monkeypatch):
    from verifier.alerts import routes
    monkeypatch.setattr(routes, "TICK_S", 0.0)


async def test_the_app_task_evaluates_the_fleet_rule(fast_tick, client, acme, clock):
    """The alerts cleanup context's task (every TICK_S, here 0) runs the evaluation by itself."""
    app = client.app
    fail(app, forged(acme, 10))
    for _ in range(5):
        await asyncio.sleep(0)
    assert [a["details"]["devices"] for a in fleet_alerts(app, acme)] == [10]


async def test_nine_devices_failing_often_open_nothing(client, acme, clock):
    app = client.app
    statuses = fail(app, forged(acme, 9), times=6)     # 54 failures, 9 devices
    assert statuses.count(SIGNATURE) == 45 and statuses.count(LOCKED_OUT) == 9
    app[ALERTS].tick(T0 + 30)
    assert fleet_alerts(app, acme) == []


async def test_time_sync_and_ok_are_not_failures(client, acme, clock):
    app = client.app
    devs = [acme.device() for _ in range(10)]
    for d in devs:
        assert app[CORE].handle(d.request(T0 - 3600), ("10.0.0.9", 4000), T0 + 5, "udp")[0][0] == TIME_SYNC
        assert app[CORE].handle(d.request(T0 + 5), ("10.0.0.9", 4000), T0 + 5, "udp")[0][0] == OK
    app[ALERTS].tick(T0 + 30)
    assert fleet_alerts(app, acme) == []


async def test_above_the_tenant_baseline_only(client, acme, clock):
    app = client.app
    # the previous hour: 600 failures in fleet_perf (10 a minute), as the fleet task would have written them
    app[STORAGE].add_fleet_perf(MINUTE - 30, {acme.id: (600, 600, 0.0, 0, 0, 0)})
    devs = forged(acme, 10)
    fail(app, devs, times=5)                           # 50 failures: 5 x 10, not above
    app[ALERTS].tick(T0 + 30)
    assert fleet_alerts(app, acme) == []
    fail(app, devs[:1])                                # 51
    app[ALERTS].tick(T0 + 40)
    got = fleet_alerts(app, acme)
    assert [(a["details"]["failures"], a["details"]["baseline_per_min"]) for a in got] == [(51, 10.0)]


async def test_another_tenant_baseline_and_alerts_are_its_own(client, acme, clock):
    app = client.app
    other = Tenant(app, "other", clock)
    app[STORAGE].add_fleet_perf(MINUTE - 30, {other.id: (6000, 6000, 0.0, 0, 0, 0)})
    fail(app, forged(acme, 10))
    app[ALERTS].tick(T0 + 30)
    assert len(fleet_alerts(app, acme)) == 1 and fleet_alerts(app, other) == []


async def test_repeat_next_minute_bumps_and_same_minute_does_not(client, acme, clock):
    app = client.app
    devs = forged(acme, 10)
    fail(app, devs)
    app[ALERTS].tick(T0 + 30)
    app[ALERTS].tick(T0 + 40)                          # the same minute: fired already
    for d in devs:                                     # the next minute
        app[CORE].handle(d.request(T0 + 65), ("10.0.0.9", 4000), T0 + 65, "udp")
    app[ALERTS].tick(T0 + 70)
    got = fleet_alerts(app, acme)
    assert [(a["count"], a["opened_at"], a["last_seen_at"], a["details"]["minute_start"]) for a in got] == [
        (2, T0 + 30, T0 + 70, T0 + 60)]
    assert len(app[STORAGE].list_notifications(acme.id)) == 1


async def test_over_real_udp(server, tenant, clock):
    """Ten boards with a bad key rollout authenticate over the app's UDP endpoint."""
    devs = [tenant.device() for _ in range(10)]
    for d in devs:
        d.key = bytes(32)
    replies = await server.send_many_udp([d.request() for d in devs])
    assert [r[0] for r in replies] == [SIGNATURE] * 10
    server.app[ALERTS].tick(clock())
    got = [a for a in server.handle.storage.list_alerts(tenant.id, "all")]
    assert [(a["rule"], a["details"]["devices"], a["details"]["failures"]) for a in got] == [
        ("fleet.auth_failure_spike", 10, 10)]


async def test_reset_spike_over_udp_piggyback(server, tenant, clock):
    """A board in a reset loop, reporting on its binary auth over UDP (docs/health.md 2.1): one report at
    the start of hours 0-3, then boot_count 6, 7, 8 within hour 4."""
    from tests.health.test_piggyback_udp import datagram
    from verifier.health.core import encode
    dev = tenant.device()
    for at, boot in [(0, 5), (3600, 5), (7200, 5), (10800, 5), (14460, 6), (14520, 7), (14580, 8)]:
        clock.now = float(T0 + at)
        _, dg = datagram(dev, encode({"boot_count": boot}))
        assert (await server.send("udp", dg))[0] == OK
        server.app[HEALTH].flush()
    got = server.handle.storage.list_alerts(tenant.id, "all")
    assert [(a["rule"], a["device_id"], a["opened_at"], a["details"]["value"]) for a in got] == [
        ("device.reset_spike", dev.hex, T0 + 14580, 3)]
