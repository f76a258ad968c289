"""Lockouts shared by two verifier instances on one PostgreSQL database (verifier/registry/limits_pg.py;
docs/protocol.md 3.4 "Where the counters live"): failed tags from one host count on both, the failure budget of a
device is spent on both, a host trusted on one is trusted by the other, and the direct calls (DTLS, MQTT) share the
same rows. Each instance is a real verifier (real UDP, from real source addresses 127.0.0.x); the clock is fake."""

import asyncio
import time

import pytest

from tests.pg.test_two_instances import devices, pair  # noqa: F401 (fixture)
from tests.pgcluster import fresh_database
from tests.support import clock  # noqa: F401 (fixture)
from verifier.appkeys import CACHE_BUS, STORAGE
from verifier.registry.lockout import CHARGED, EXHAUSTED, TRUSTED, Lockout
from verifier.registry.model import Policy
from verifier.store_pg import PGStorage

T0 = 1_767_225_600
OK, SIGNATURE, RATE_LIMITED, LOCKED_OUT = 0, 2, 6, 7     # docs/protocol.md 3.3


class _Replies(asyncio.DatagramProtocol):
    def __init__(self):
        self.q = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.q.put_nowait(data)


async def send_from(host, server, packet):
    """One datagram from source address `host` to `server`'s UDP port; its reply's status."""
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(_Replies, local_addr=(host, 0),
                                                    remote_addr=("127.0.0.1", server.handle.udp_port))
    try:
        tr.sendto(packet)
        return (await asyncio.wait_for(proto.q.get(), 5))[0]
    finally:
        tr.close()


def forged(d, ts):
    p = bytearray(d.request(ts))
    p[19] ^= 1
    return bytes(p)


async def test_failed_tags_from_one_host_count_on_both_instances(pair, clock):
    (a, b), _ = pair
    d, = devices(a, clock)
    assert await send_from("127.0.0.1", a, d.request(T0)) == OK             # 127.0.0.1 is trusted for d
    got = [await send_from("127.0.0.1", srv, forged(d, T0 + 1 + i)) for i, srv in enumerate((a, b, a, b, b))]
    assert got == [SIGNATURE] * 5            # 3 on a, 2 on b: the 5th (tenant default lockout_failures) locks
    assert await send_from("127.0.0.1", a, d.request(T0 + 10)) == LOCKED_OUT
    assert await send_from("127.0.0.1", b, d.request(T0 + 11)) == LOCKED_OUT
    assert await send_from("127.0.0.2", b, d.request(T0 + 12)) == OK      # another host is not locked out
    clock.advance(300)                       # the lockout (300 s) is over on both
    assert await send_from("127.0.0.1", a, d.request(T0 + 400)) == OK


async def test_the_failure_budget_is_spent_on_both_instances(pair, clock):
    (a, b), _ = pair
    d, = devices(a, clock)                   # never authenticated: no host is trusted for it
    hosts = iter(f"127.0.0.{i}" for i in range(2, 40))
    got = [await send_from(next(hosts), srv, forged(d, T0 + i)) for i, srv in enumerate((a, b, a, b))]
    assert got == [SIGNATURE] * 4            # 4 of the budget's 5 tokens spent, 2 on each
    good_host = next(hosts)
    assert await send_from(good_host, b, d.request(T0 + 5)) == OK           # a tag that verifies costs nothing
    assert await send_from(next(hosts), a, forged(d, T0 + 6)) == SIGNATURE  # the 5th token
    assert await send_from(next(hosts), a, d.request(T0 + 7)) == LOCKED_OUT  # budget empty, on a
    assert await send_from(next(hosts), b, d.request(T0 + 8)) == LOCKED_OUT  # and on b
    # the host accepted on b is trusted on a too (a reads it before it would charge it to the empty budget)
    assert await send_from(good_host, a, d.request(T0 + 9)) == OK
    clock.advance(60)                        # one token back (5 per 300 s)
    assert await send_from(next(hosts), b, d.request(T0 + 70)) == OK


def test_direct_calls_share_the_counts_and_the_budget(pg_url):
    # the DTLS and MQTT paths call the lockout directly (one statement each), two instances' stores on one database
    url = fresh_database(pg_url)
    one, two = PGStorage(url), PGStorage(url)
    try:
        did, pol = bytes.fromhex("0102030405060708"), Policy()
        la, lb = Lockout(one.limits, "mqtt"), Lockout(two.limits, "mqtt")
        started = [lx.failed(did, "192.0.2.1", pol, T0 + i) for i, lx in enumerate((la, lb, la, lb, la))]
        assert started == [False, False, False, False, True]
        assert lb.locked(did, "192.0.2.1", T0 + 10) and la.locked(did, "192.0.2.1", T0 + 10)
        assert not lb.locked(did, "192.0.2.1", T0 + 4 + 300)          # the lockout ran from the 5th failure
        assert not lb.locked(did, "192.0.2.9", T0 + 10)
        # the budget: 5 tokens for every untrusted host, on both
        charges = [lx.charge(did, f"198.51.100.{i}", pol, T0) for i, lx in enumerate((la, lb, la, lb, la, lb))]
        assert charges == [CHARGED] * 5 + [EXHAUSTED]
        lb.verified(did, CHARGED, pol, T0)                              # a token given back on b ...
        assert la.charge(did, "198.51.100.7", pol, T0) == CHARGED      # ... is taken on a
        la.accepted(did, "198.51.100.8", T0)
        assert lb.charge(did, "198.51.100.8", pol, T0 + 1) == TRUSTED  # trusted on a: trusted on b
        # scopes are apart: the MQTT lockout says nothing of binary auth
        assert not Lockout(two.limits, "binauth").locked(did, "192.0.2.1", T0 + 10)
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("count,expect", [(4, False), (5, True)])
def test_the_lockout_starts_at_the_fifth_failure(pg_url, count, expect):
    url = fresh_database(pg_url)
    one = PGStorage(url)
    try:
        did, pol = bytes.fromhex("1112131415161718"), Policy()
        lx = Lockout(one.limits, "dtls")
        for i in range(count):
            lx.failed(did, "192.0.2.5", pol, T0)
        assert lx.locked(did, "192.0.2.5", T0 + 1) is expect
    finally:
        one.close()


async def test_a_batch_whose_lockout_state_cannot_be_written_sends_no_answer(pair, clock, monkeypatch):
    (a, _), _ = pair
    d, = devices(a, clock)
    assert (await a.send("http", d.request(T0)))[0] == OK
    import verifier.registry.limits_pg as limits_pg

    def refuse(*args):
        raise limits_pg.StorageError("lockout state: the database is gone")
    monkeypatch.setattr(limits_pg, "_commit", refuse)
    await a.send("http", forged(d, T0 + 1))
    assert a.last_http_status == 500          # a SIGNATURE that went uncounted is not sent
    # an OK from a host trusted long enough changes no lockout state: nothing to write, it goes out
    assert (await a.send("http", d.request(T0 + 2)))[0] == OK
    monkeypatch.undo()
    assert (await a.send("http", d.request(T0 + 3)))[0] == OK
    assert (await a.send("http", forged(d, T0 + 4)))[0] == SIGNATURE


def test_failure_rows_that_count_nothing_are_pruned(pg_url):
    url = fresh_database(pg_url)
    one = PGStorage(url)
    try:
        did, pol = bytes.fromhex("2122232425262728"), Policy()
        lx = Lockout(one.limits, "mqtt")
        lx.failed(did, "192.0.2.1", pol, T0)
        for i in range(5):
            lx.failed(did, "192.0.2.2", pol, T0 + 10)          # locked until T0 + 310
        lx.failed(did, "192.0.2.3", pol, T0 + 100)
        rows = lambda: sorted(r[0] for r in one._db.execute("SELECT host FROM limit_failures").fetchall())  # noqa: E731
        assert rows() == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        lx.failed(did, "192.0.2.4", pol, T0 + 320)              # .1: no failure for 300 s; .2: its lockout is over
        assert rows() == ["192.0.2.3", "192.0.2.4"]
    finally:
        one.close()


async def test_each_instance_enforces_its_share_of_the_device_rate(pair, clock):
    # two instances alive: each allows half the tenant's device bucket (capacity 10, refill 0.2/s), so a device
    # that spreads its requests over both gets about the tenant's rate from the fleet
    (a, b), _ = pair
    for srv in (a, b):                        # both have said they are alive: each now counts two
        await srv.app[STORAGE].limits.heartbeat_async(srv.app[CACHE_BUS].instance, time.time())
    assert a.app[STORAGE].limits.share == 0.5
    d, = devices(a, clock)
    got = [(await a.send("udp", d.request(T0 + i)))[0] for i in range(6)]
    assert got == [OK] * 5 + [RATE_LIMITED]   # 5 of the 10 on a ...
    got = [(await b.send("udp", d.request(T0 + 10 + i)))[0] for i in range(6)]
    assert got == [OK] * 5 + [RATE_LIMITED]   # ... and 5 on b
    await b.app[STORAGE].limits.heartbeat_async(b.app[CACHE_BUS].instance, 0, gone=True)
    await a.app[STORAGE].limits.heartbeat_async(a.app[CACHE_BUS].instance, time.time())
    assert a.app[STORAGE].limits.share == 1.0  # b gone: a takes the whole rate again
