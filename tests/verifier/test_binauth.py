"""Binary auth negative tests (docs/protocol.md 3.4), each named after what it prevents, run over the
sans-IO core, real UDP and real HTTP against one verifier on a tmp_path SQLite file."""

import asyncio

import pytest

from tests.support import fail_inserts, stop_failing
from verifier.registry import core as registry
from verifier.appkeys import STORAGE
from verifier.binauth.core import (LOCKED_OUT, MALFORMED, NOT_ACTIVE, OK, RATE_LIMITED, REPLAY,
                              SIGNATURE, TIME_SYNC, UNKNOWN_DEVICE, decode_reply,
                              unauthenticated_reply)
from verifier.errors import StorageError

DRIVERS = ("core", "udp", "http")
T0 = 1_767_225_600   # the clock fixture starts here

pytestmark = pytest.mark.parametrize("driver", DRIVERS)

# docs/protocol.md 3.5, written out: reply status byte (3.3) -> HTTP status of POST /v1/binauth
HTTP_CODE = {0x00: 200, 0x01: 409, 0x02: 401, 0x03: 401, 0x04: 403, 0x05: 409, 0x06: 429, 0x07: 429, 0x08: 400}


async def send(server, driver, request):
    reply = await server.send(driver, request)
    if driver == "http" and reply is not None:
        assert server.last_http_status == HTTP_CODE[reply[0]]
    return reply


def assert_authenticated(dev, request, reply, status, server_time=None):
    out = decode_reply(dev.key, request, reply)
    assert out["status"] == status and out["authenticated"], out
    if server_time is not None:
        assert out["server_time"] == server_time
    return out


def assert_unauthenticated(reply, status):
    assert reply == unauthenticated_reply(status)


async def test_valid_request_accepted(server, tenant, clock, driver):
    dev = tenant.device(permissions=0x5)
    req = dev.request(clock())
    out = assert_authenticated(dev, req, await send(server, driver, req), OK, int(clock()))
    assert out["permissions"] == 0x5 and out["expiry"] == int(clock()) + 3600
    assert server.app[STORAGE].get_device(dev.id)["last_ts"] == int(clock())


async def test_replay_rejected(server, tenant, clock, driver):
    dev = tenant.device()
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), OK)
    assert_authenticated(dev, req, await send(server, driver, req), REPLAY, int(clock()))
    older = dev.request(clock() - 1)
    assert_authenticated(dev, older, await send(server, driver, older), REPLAY)


async def test_replay_rejected_after_verifier_restart(server, tenant, clock, driver):
    dev = tenant.device()
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), OK)
    await server.restart()          # a new app on the same database file
    assert_authenticated(dev, req, await send(server, driver, req), REPLAY)
    nxt = dev.request(clock() + 1)
    assert_authenticated(dev, nxt, await send(server, driver, nxt), OK)


async def test_forged_tag_rejected(server, tenant, clock, driver):
    dev = tenant.device()
    req = bytearray(dev.request(clock()))
    req[19] ^= 1
    assert_unauthenticated(await send(server, driver, bytes(req)), SIGNATURE)
    other = tenant.device()                      # a valid tag, but under another device's key
    forged = dev.id + other.request(clock())[8:]
    assert_unauthenticated(await send(server, driver, forged), SIGNATURE)
    tampered = dev.request(clock())[:8] + (int(clock()) + 1).to_bytes(4, "big") + dev.request(clock())[12:]
    assert_unauthenticated(await send(server, driver, tampered), SIGNATURE)


@pytest.mark.parametrize("offset", [-301, -3600, -T0 + 1])
async def test_stale_timestamp_rejected(server, tenant, clock, driver, offset):
    dev = tenant.device()
    req = dev.request(clock() + offset)
    assert_authenticated(dev, req, await send(server, driver, req), TIME_SYNC, int(clock()))
    ok = dev.request(clock() - 300)              # the edge of the window is inside it
    assert_authenticated(dev, ok, await send(server, driver, ok), OK)


@pytest.mark.parametrize("offset", [301, 86400])
async def test_future_timestamp_rejected(server, tenant, clock, driver, offset):
    dev = tenant.device()
    req = dev.request(clock() + offset)
    assert_authenticated(dev, req, await send(server, driver, req), TIME_SYNC, int(clock()))
    assert server.app[STORAGE].get_device(dev.id)["last_ts"] == 0   # a far-future ts never burns the counter


async def test_drift_window_is_tenant_policy(server, tenant, clock, driver):
    dev = tenant.device()
    registry.patch_tenant_policy(server.app[STORAGE], tenant.id, {"policy": {"drift_s": 10}}, clock(), "t")
    server.handle.core.forget_tenant(tenant.id)
    req = dev.request(clock() + 11)
    assert_authenticated(dev, req, await send(server, driver, req), TIME_SYNC)


@pytest.mark.parametrize("length", [19, 21, 0, 12, 13, 1500])
async def test_wrong_length_rejected(server, tenant, clock, driver, length):
    dev = tenant.device()
    good = dev.request(clock())
    req = (good * 100)[:length]
    reply = await send(server, driver, req)
    if driver == "udp" and length < 13:
        assert reply is None                      # no amplification: no reply larger than the request
    else:
        assert_unauthenticated(reply, MALFORMED)


async def test_unknown_device_rejected(server, tenant, clock, driver):
    dev = tenant.device()
    req = bytes(8) + dev.request(clock())[8:]
    assert_unauthenticated(await send(server, driver, req), UNKNOWN_DEVICE)


@pytest.mark.parametrize("status", ["suspended", "decommissioned"])
async def test_inactive_device_rejected(server, tenant, clock, driver, status):
    dev = tenant.device(status=status)
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), NOT_ACTIVE, int(clock()))


async def test_suspended_device_rejected_on_next_packet(server, tenant, clock, driver):
    dev = tenant.device()
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), OK)   # now cached
    registry.change_lifecycle(server.app[STORAGE], tenant.id, dev.id, {"action": "suspend"}, clock(), "t")
    server.handle.core.forget(dev.id)            # what the HTTP handler does after every admin change
    req = dev.request(clock() + 1)
    assert_authenticated(dev, req, await send(server, driver, req), NOT_ACTIVE)


async def test_decommissioned_device_rejected(server, tenant, clock, driver):
    dev = tenant.device()
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), OK)
    registry.change_lifecycle(server.app[STORAGE], tenant.id, dev.id, {"action": "decommission"}, clock(), "t")
    server.handle.core.forget(dev.id)
    req = dev.request(clock() + 1)
    assert_authenticated(dev, req, await send(server, driver, req), NOT_ACTIVE)


@pytest.mark.parametrize("flag", ["quarantined", "compromised"])
async def test_quarantined_or_compromised_device_rejected(server, tenant, clock, driver, flag):
    dev = tenant.device()
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), OK)
    registry.patch_device(server.app[STORAGE], tenant.id, dev.id, {flag: True}, clock(), "t")
    server.handle.core.forget(dev.id)
    req = dev.request(clock() + 1)
    assert_authenticated(dev, req, await send(server, driver, req), NOT_ACTIVE)


async def test_rate_limit_per_device(server, tenant, clock, driver):
    dev = tenant.device()
    for i in range(10):                          # default capacity 10
        req = dev.request(clock() + i)
        assert_authenticated(dev, req, await send(server, driver, req), OK)
    req = dev.request(clock() + 10)
    assert_unauthenticated(await send(server, driver, req), RATE_LIMITED)
    other = tenant.device()                      # other devices are not affected
    oreq = other.request(clock())
    assert_authenticated(other, oreq, await send(server, driver, oreq), OK)
    clock.advance(5)                             # refill 0.2/s: one token after 5 s
    req = dev.request(clock() + 10)
    assert_authenticated(dev, req, await send(server, driver, req), OK)


async def test_rate_limit_per_source(server, tenant, clock, driver):
    registry.patch_tenant_policy(server.app[STORAGE], tenant.id,
                                 {"policy": {"source_rate": {"capacity": 3, "refill_per_s": 1}}}, clock(), "t")
    server.handle.core.forget_tenant(tenant.id)
    devs = [tenant.device() for _ in range(4)]
    for d in devs[:3]:
        req = d.request(clock())
        assert_authenticated(d, req, await send(server, driver, req), OK)
    req = devs[3].request(clock())
    assert_unauthenticated(await send(server, driver, req), RATE_LIMITED)
    clock.advance(1)
    assert_authenticated(devs[3], req, await send(server, driver, req), OK)


async def test_rate_limit_per_source_before_lookup(server, tenant, clock, driver):
    """The verifier-wide source limit (step 2) protects the registry from floods of unknown ids."""
    core = server.handle.core
    core._source_capacity, core._source_refill = 2.0, 0.0
    unknown = bytes(20)
    assert_unauthenticated(await send(server, driver, unknown), UNKNOWN_DEVICE)
    assert_unauthenticated(await send(server, driver, unknown), UNKNOWN_DEVICE)
    assert_unauthenticated(await send(server, driver, unknown), RATE_LIMITED)


async def test_lockout_after_failed_tags(server, tenant, clock, driver):
    dev = tenant.device()
    bad = bytearray(dev.request(clock()))
    bad[12] ^= 0xFF
    for _ in range(5):                           # lockout_failures = 5
        assert_unauthenticated(await send(server, driver, bytes(bad)), SIGNATURE)
    good = dev.request(clock())
    assert_unauthenticated(await send(server, driver, good), LOCKED_OUT)   # a correct tag is refused too
    clock.advance(299)
    assert_unauthenticated(await send(server, driver, good), LOCKED_OUT)
    clock.advance(1)                             # lockout_s = 300
    good = dev.request(clock())
    assert_authenticated(dev, good, await send(server, driver, good), OK)


async def test_success_resets_failure_count(server, tenant, clock, driver):
    dev = tenant.device()
    bad = bytearray(dev.request(clock()))
    bad[12] ^= 0xFF
    for _ in range(4):
        assert_unauthenticated(await send(server, driver, bytes(bad)), SIGNATURE)
    good = dev.request(clock())
    assert_authenticated(dev, good, await send(server, driver, good), OK)
    assert_unauthenticated(await send(server, driver, bytes(bad)), SIGNATURE)
    good = dev.request(clock() + 1)
    assert_authenticated(dev, good, await send(server, driver, good), OK)


async def test_concurrent_same_timestamp_only_one_accepted(server, tenant, clock, driver):
    dev = tenant.device()
    req = dev.request(clock())
    if driver == "udp":
        replies = await server.send_many_udp([req] * 4)
    elif driver == "http":
        replies = await asyncio.gather(*(server.send("http", req) for _ in range(4)))
    else:
        core = server.handle.core
        replies = [core.decide(req, ("127.0.0.1", 1), clock(), "test") for _ in range(4)]
        core.flush()
    statuses = sorted(r[0] for r in replies)
    assert statuses == [OK, REPLAY, REPLAY, REPLAY]


async def test_first_auth_activates_provisioning_device(server, tenant, clock, driver):
    dev = tenant.device(status="provisioning")
    req = dev.request(clock())
    assert_authenticated(dev, req, await send(server, driver, req), OK)
    st = server.app[STORAGE]
    d = st.get_device(dev.id)
    assert d["status"] == "active" and d["status_changed_at"] == int(clock())
    assert d["last_authenticated_at"] == int(clock())
    actions = [e["action"] for e in st.list_audit(tenant.id, dev.hex)]
    assert "device.activate" in actions


async def test_ok_not_sent_when_state_not_durable(server, tenant, clock, driver):
    """If the accepted timestamp cannot be written, no OK goes out, and the request is not burnt."""
    dev = tenant.device()
    st = server.app[STORAGE]
    fail_inserts(st._db, "auth_state", "disk")
    req = dev.request(clock())
    if driver == "core":
        with pytest.raises(StorageError):
            await send(server, driver, req)
    elif driver == "http":
        reply = await server.send("http", req)
        assert server.last_http_status == 500 and reply[0] != OK
    else:
        server._udp.sendto(req)
        server._udp.sendto(bytes(20))            # a probe in the same or the next batch
        first = await asyncio.wait_for(server._proto.replies.get(), 5)
        assert first == unauthenticated_reply(UNKNOWN_DEVICE)   # the OK was withheld
    stop_failing(st._db, "auth_state", "disk")
    assert_authenticated(dev, req, await send(server, driver, req), OK)
