"""The binary-auth lockout (docs/protocol.md section 3.4): only an accepted request resets failures,
failures count per (device, source host), a device-wide failure budget bounds what untrusted hosts can
guess, and hosts the device was recently accepted from are not locked out by others' junk. Each test is
named after what it prevents; the expected answers are written out. Run over the sans-IO core of a real
verifier (SQLite under tmp_path), one over real UDP, with the clock injected."""

import pytest

from verifier.registry import core as registry
from verifier.appkeys import STORAGE
from verifier.registry.limits import MemoryLimitStore

T0 = 1_767_225_600        # the clock fixture starts here
GENUINE = "192.0.2.10"    # where the device itself sends from
NAMES = ("OK", "TIME_SYNC", "SIGNATURE", "UNKNOWN_DEVICE", "NOT_ACTIVE", "REPLAY", "RATE_LIMITED",
         "LOCKED_OUT", "MALFORMED")      # docs/protocol.md 3.3, written out


def send(server, req, host, now):
    reply, _ = server.handle.core.handle(req, (host, 40000), now, "test")
    return NAMES[reply[0]]


def junk(dev, ts):
    bad = bytearray(dev.request(ts))
    bad[12] ^= 0xFF
    return bytes(bad)


def policy(server, tenant, clock, doc):
    registry.patch_tenant_policy(server.app[STORAGE], tenant.id, {"policy": doc}, clock(), "t")
    server.handle.core.forget_tenant(tenant.id)


@pytest.mark.parametrize("attacker", [GENUINE, "198.51.100.7"])
async def test_replayed_genuine_packet_does_not_reset_failures(server, tenant, clock, attacker):
    """16 guesses in 60 s with an old genuine packet replayed after every 4th: at most 5 are evaluated
    (before the fix every REPLAY reset the count and all 16 were)."""
    dev = tenant.device()
    old = dev.request(T0)
    assert send(server, old, GENUINE, T0) == "OK"
    guesses, replays = [], []
    for i in range(16):
        now = T0 + 1 + i * 3.75                     # 16 guesses within 60 s
        guesses.append(send(server, junk(dev, now), attacker, now))
        if i % 4 == 3:
            replays.append(send(server, old, attacker, now))
    assert guesses == ["SIGNATURE"] * 5 + ["LOCKED_OUT"] * 11
    assert replays == ["REPLAY", "LOCKED_OUT", "LOCKED_OUT", "LOCKED_OUT"]


@pytest.mark.parametrize("answer", ["TIME_SYNC", "NOT_ACTIVE"])
async def test_authenticated_refusal_does_not_reset_failures(server, tenant, clock, answer):
    dev = tenant.device()
    assert send(server, dev.request(T0), GENUINE, T0) == "OK"
    out = [send(server, junk(dev, T0 + 1), GENUINE, T0 + 1) for _ in range(4)]
    if answer == "NOT_ACTIVE":
        registry.change_lifecycle(server.app[STORAGE], tenant.id, dev.id, {"action": "suspend"}, clock(), "t")
        server.handle.core.forget(dev.id)
        genuine = dev.request(T0 + 2)
    else:
        genuine = dev.request(T0 + 2 + 3600)        # far outside the drift window
    out.append(send(server, genuine, GENUINE, T0 + 2))
    out += [send(server, junk(dev, T0 + 3), GENUINE, T0 + 3) for _ in range(2)]
    assert out == ["SIGNATURE"] * 4 + [answer, "SIGNATURE", "LOCKED_OUT"]


async def test_fifth_failure_answers_signature_and_the_next_request_locked_out(server, tenant, clock):
    dev = tenant.device()
    out = [send(server, junk(dev, T0), GENUINE, T0) for _ in range(5)]
    out.append(send(server, dev.request(T0), GENUINE, T0))          # even a correct tag
    assert out == ["SIGNATURE", "SIGNATURE", "SIGNATURE", "SIGNATURE", "SIGNATURE", "LOCKED_OUT"]


async def test_lockout_ends_lockout_s_after_the_whole_second_of_the_fifth_failure(server, tenant, clock):
    """"now" is whole seconds, floored: a 5th failure at T0 + 0.9 locks until T0 + 300 exactly."""
    dev = tenant.device()
    for _ in range(5):
        assert send(server, junk(dev, T0), GENUINE, T0 + 0.9) == "SIGNATURE"
    assert send(server, dev.request(T0 + 299), GENUINE, T0 + 299.999) == "LOCKED_OUT"
    assert send(server, dev.request(T0 + 300), GENUINE, T0 + 300.0) == "OK"


async def test_failure_count_restarts_when_lockout_ends(server, tenant, clock):
    """After the lockout a host has lockout_failures fresh tries, not one that re-locks at once."""
    dev = tenant.device()
    assert send(server, dev.request(T0), GENUINE, T0) == "OK"
    for _ in range(5):
        send(server, junk(dev, T0 + 1), GENUINE, T0 + 1)
    assert send(server, junk(dev, T0 + 1), GENUINE, T0 + 1) == "LOCKED_OUT"
    out = [send(server, junk(dev, T0 + 301), GENUINE, T0 + 301) for _ in range(6)]
    assert out == ["SIGNATURE"] * 5 + ["LOCKED_OUT"]


async def test_spoofed_junk_from_other_sources_cannot_lock_out_device(server, tenant, clock):
    """One hour of junk, 5 per host every 60 s from 100 hosts: the device, on the host it was accepted
    from, authenticates every 5 minutes throughout (before the fix: LOCKED_OUT for good)."""
    dev = tenant.device()
    assert send(server, dev.request(T0), GENUINE, T0) == "OK"
    answers = []
    for minute in range(60):
        now = T0 + 1 + minute * 60
        for h in range(100):
            for _ in range(5):
                send(server, junk(dev, now), f"10.0.0.{h}", now)
        if minute % 5 == 4:
            answers.append(send(server, dev.request(now), GENUINE, now))
    assert answers == ["OK"] * 12


async def test_total_guesses_per_device_bounded_across_many_sources(server, tenant, clock):
    """10,000 hosts, one guess each, one per second: evaluated guesses = the budget's 5 + one per 60 s
    (5 per 300 s) = 5 + 166 for 9,999 s. The limit store does not grow with the number of hosts."""
    dev = tenant.device()
    counts = {}
    for i in range(10_000):
        a = send(server, junk(dev, T0 + i), f"10.{i // 256 // 256}.{i // 256 % 256}.{i % 256}", T0 + i)
        counts[a] = counts.get(a, 0) + 1
    assert counts == {"SIGNATURE": 171, "LOCKED_OUT": 9829}
    _, failures, trusted = server.app[STORAGE].limits.sizes()
    assert failures <= 171 and trusted == 0


async def test_untrusted_host_locked_out_without_tag_check_while_budget_exhausted(server, tenant, clock):
    """With the budget spent, a host the device was never accepted from waits for one token (60 s);
    the host it was accepted from is not affected."""
    dev = tenant.device()
    assert send(server, dev.request(T0), GENUINE, T0) == "OK"
    for h in range(5):
        assert send(server, junk(dev, T0 + 1), f"10.0.0.{h}", T0 + 1) == "SIGNATURE"
    assert send(server, dev.request(T0 + 2), "203.0.113.5", T0 + 2) == "LOCKED_OUT"
    assert send(server, dev.request(T0 + 3), GENUINE, T0 + 3) == "OK"
    assert send(server, dev.request(T0 + 60), "203.0.113.5", T0 + 60.9) == "LOCKED_OUT"   # 59.9 s
    assert send(server, dev.request(T0 + 61), "203.0.113.5", T0 + 61) == "OK"


async def test_genuine_requests_from_new_hosts_do_not_use_up_failure_budget(server, tenant, clock):
    dev = tenant.device()
    out = [send(server, dev.request(T0 + i), f"10.1.0.{i}", T0 + i) for i in range(10)]
    out += [send(server, junk(dev, T0 + 10), f"10.2.0.{i}", T0 + 10) for i in range(6)]
    assert out == ["OK"] * 10 + ["SIGNATURE"] * 5 + ["LOCKED_OUT"]


async def test_device_trusts_only_its_four_most_recent_hosts(server, tenant, clock):
    """A bounded trusted set keeps the guessing bound: a fifth host pushes out the oldest."""
    dev = tenant.device()
    hosts = [f"10.3.0.{i}" for i in range(5)]
    for i, h in enumerate(hosts):
        assert send(server, dev.request(T0 + i), h, T0 + i) == "OK"
    for h in range(5):
        send(server, junk(dev, T0 + 10), f"10.4.0.{h}", T0 + 10)     # the budget is spent
    out = [send(server, dev.request(T0 + 11 + i), h, T0 + 11) for i, h in enumerate(hosts)]
    assert out == ["LOCKED_OUT", "OK", "OK", "OK", "OK"]


async def test_trusted_host_forgotten_after_30_days(server, tenant, clock):
    dev = tenant.device()
    assert send(server, dev.request(T0), GENUINE, T0) == "OK"
    later = T0 + 30 * 86400
    for h in range(5):
        send(server, junk(dev, later - 1), f"10.0.0.{h}", later - 1)
    assert send(server, dev.request(later - 1), GENUINE, later - 1) == "OK"    # trusted at T0 + 30 d - 1
    for h in range(5):
        send(server, junk(dev, later + 30 * 86400), f"10.0.0.{h}", later + 30 * 86400)
    assert send(server, dev.request(later + 30 * 86400), GENUINE, later + 30 * 86400) == "LOCKED_OUT"


async def test_spoofed_junk_does_not_drain_device_rate_limit(server, tenant, clock):
    """The device bucket (capacity 10) is taken only by accepted requests, not before the tag check."""
    policy(server, tenant, clock, {"lockout_failures": 1000})
    dev = tenant.device()
    out = [send(server, junk(dev, T0), f"10.0.0.{h}", T0) for h in range(20)]
    out.append(send(server, dev.request(T0), GENUINE, T0))
    assert out == ["SIGNATURE"] * 20 + ["OK"]


async def test_replayed_genuine_packets_do_not_drain_device_rate_limit(server, tenant, clock):
    dev = tenant.device()
    old = dev.request(T0)
    assert send(server, old, GENUINE, T0) == "OK"
    out = [send(server, old, "198.51.100.7", T0 + 1) for _ in range(20)]
    out.append(send(server, dev.request(T0 + 1), GENUINE, T0 + 1))
    assert out == ["REPLAY"] * 20 + ["OK"]


async def test_lockout_counts_per_host_not_per_port(server, tenant, clock):
    """"Source host" is the IP address: a guesser cannot get fresh tries by changing its UDP port."""
    dev = tenant.device()
    core = server.handle.core
    out = [core.handle(dev.request(T0), ("198.51.100.7", 999), T0, "test")[0][0]]
    out += [core.handle(junk(dev, T0), ("198.51.100.7", 1000 + i), T0, "test")[0][0] for i in range(5)]
    out.append(core.handle(dev.request(T0 + 1), ("198.51.100.7", 999), T0 + 1, "test")[0][0])
    assert out == [0, 2, 2, 2, 2, 2, 7]             # OK, SIGNATURE x 5, LOCKED_OUT on the first port too


async def test_lockout_s_zero_disables_the_lockout(server, tenant, clock):
    policy(server, tenant, clock, {"lockout_s": 0})
    dev = tenant.device()
    out = [send(server, junk(dev, T0), f"10.0.0.{h % 3}", T0) for h in range(30)]
    out.append(send(server, dev.request(T0), "10.0.0.1", T0))
    assert out == ["SIGNATURE"] * 30 + ["OK"]


async def test_replay_bypass_closed_over_udp(server, tenant, clock):
    """The measured attack, over real UDP from one socket: 16 guesses with the old packet after every
    4th, 60 s: 5 evaluated."""
    dev = tenant.device()
    old = dev.request(T0)
    (first,) = await server.send_many_udp([old])
    assert first[0] == 0
    statuses = []
    for i in range(16):
        clock.now = T0 + 1 + i * 3.75
        batch = [junk(dev, clock())] + ([old] if i % 4 == 3 else [])
        statuses += [NAMES[r[0]] for r in await server.send_many_udp(batch)]
    assert statuses.count("SIGNATURE") == 5
    assert statuses.count("LOCKED_OUT") == 14 and statuses.count("REPLAY") == 1


async def test_device_that_lost_its_state_finds_the_replay_floor_within_drift(server, tenant, clock):
    """docs/protocol.md 3.3: the floor is at most drift_s ahead of the server time; REPLAY answers on the
    way cost no lockout failure."""
    dev = tenant.device()
    assert send(server, dev.request(T0 + 300), GENUINE, T0) == "OK"           # the floor: T0 + 300
    out = [send(server, dev.request(T0), GENUINE, T0) for _ in range(6)]        # forgot it: REPLAY
    out.append(send(server, dev.request(T0 + 300), GENUINE, T0))               # server time + drift_s
    out.append(send(server, dev.request(T0 + 301), GENUINE, T0 + 1))           # one second later
    assert out == ["REPLAY"] * 7 + ["OK"]


def test_budget_token_given_back_is_exactly_one():
    st = MemoryLimitStore()
    assert [st.take("b", 5, 0.0, T0) for _ in range(3)] == [True, True, True]   # 2 left
    st.give("b", 5, 0.0, T0)
    assert [st.take("b", 5, 0.0, T0) for _ in range(4)] == [True, True, True, False]


def test_failure_count_forgotten_after_lockout_s_without_a_failure():
    st = MemoryLimitStore()
    for _ in range(4):
        assert st.fail("k", 5, 300, T0) is False
    assert st.fail("k", 5, 300, T0 + 300) is False   # 300 s without a failure: the count restarted
    for _ in range(3):
        st.fail("k", 5, 300, T0 + 300)
    assert st.fail("k", 5, 300, T0 + 599) is True     # the 5th within 300 s of the 4th
    assert st.locked_until("k", T0 + 600) == T0 + 899


def test_limit_store_prunes_idle_failure_counts_and_trusted_hosts_at_its_cap():
    """Unauthenticated traffic must not grow the store without bound: at the cap, entries whose
    lockout is over or that are idle for lockout_s (failures), or older than their ttl (trust), go;
    a lockout in force stays."""
    st = MemoryLimitStore()
    st.MAX_FAILURES = st.MAX_TRUSTED = 100
    for _ in range(5):
        st.fail(("locked",), 5, 1000, T0)         # locked until T0 + 1000
    for i in range(99):
        st.fail(("f", i), 5, 300, T0)
    for i in range(100):
        st.trust(("t", i), "h", T0, 4, 600)
    st.fail(("new",), 5, 300, T0 + 300)          # the cap is reached: the idle counts go
    st.trust(("new",), "h", T0 + 600, 4, 600)    # the cap is reached: the expired hosts go
    assert st.sizes()[1:] == (2, 1)
    assert st.locked_until(("locked",), T0 + 999) == T0 + 1000
