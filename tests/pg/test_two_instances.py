"""Two verifier instances sharing one PostgreSQL database (verifier/store_pg.py record_auth): a device may
authenticate to either, alternately; one packet is accepted at most once, however it reaches the two (one after
the other, or both flushing at the same instant from two threads); the loser answers REPLAY and its audit row
says so. Each instance is a real verifier (start_server, real UDP) with its own connection; the clock is the
tests' fake one."""

import asyncio
import threading

import pytest

from tests.pgcluster import fresh_database
from tests.support import KEK, AdminTenant, AuthDevice, clock  # noqa: F401 (fixture)
from tests.verifier.conftest import Server
from verifier.appkeys import STORAGE
from verifier.config import Config
from verifier.store_pg import PGStorage

T0 = 1_767_225_600        # the clock fixture starts here
OK, REPLAY = 0, 5         # docs/protocol.md 3.3


@pytest.fixture
async def pair(pg_url, tmp_path, clock, monkeypatch):
    url = fresh_database(pg_url)
    servers = []
    for name in ("a", "b"):
        cfg = Config(db_path=url, state_dir=str(tmp_path / name), kek=KEK, clock=clock, http_port=0, udp_port=0,
                     dtls_port=None)
        servers.append(await Server(cfg).start())
    yield servers, url
    for s in servers:
        await s.stop()


def devices(server, clock, n=1):
    tenant = AdminTenant(server.app, "acme", clock)
    return [AuthDevice(hex_id, master, clock) for hex_id, master in tenant.provision([{}] * n, "active")]


async def test_a_device_authenticates_to_both_alternately(pair, clock):
    (a, b), _ = pair
    d, = devices(a, clock)
    got = [(await srv.send("udp", d.request(T0 + i)))[0] for i, srv in enumerate((a, b, a, b, a))]
    assert got == [OK, OK, OK, OK, OK]


async def test_a_packet_accepted_by_one_is_a_replay_at_the_other(pair, clock):
    (a, b), _ = pair
    d, = devices(a, clock)
    assert (await a.send("udp", d.request(T0)))[0] == OK        # a caches the device at T0
    p = d.request(T0 + 1)
    assert (await b.send("udp", p))[0] == OK
    # a still holds T0 as the floor, so it decides OK in memory; the shared floor (T0 + 1) makes it lose
    assert (await a.send("udp", p))[0] == REPLAY
    assert (await a.send("http", p))[0] == REPLAY              # and now a knows it (entry reloaded)
    assert (await a.send("udp", d.request(T0 + 2)))[0] == OK
    rows = a.app[STORAGE].list_audit(a.app[STORAGE].list_tenants()[0]["id"], device_id=d.hex, limit=10)
    results = [(r["result"], r["reason"]) for r in reversed(rows) if r["kind"] == "auth"]
    assert ("REPLAY", "timestamp accepted first by another verifier instance") in results


async def test_the_same_packet_sent_to_both_at_once_is_accepted_once(pair, clock):
    (a, b), _ = pair
    devs = devices(a, clock, 10)
    for d in devs:                                    # both instances cache every device at T0
        assert (await a.send("udp", d.request(T0)))[0] == OK
        assert (await b.send("udp", d.request(T0 + 1)))[0] == OK
    for i, d in enumerate(devs):
        p = d.request(T0 + 10 + i)
        ra, rb = await asyncio.gather(a.send("udp", p), b.send("udp", p))
        assert sorted([ra[0], rb[0]]) == [OK, REPLAY], i


def test_two_connections_flushing_at_the_same_instant_accept_once(pg_url):
    # the row-level race itself: two stores write the same device's first timestamp in the same instant (no
    # row yet: one inserts, the other waits on the key, then finds the floor already there and loses)
    url = fresh_database(pg_url)
    stores = [PGStorage(url), PGStorage(url)]
    try:
        s = stores[0]
        s.create_tenant("t1", "acme", 1, {})
        rows = []
        ids = [bytes([i]) * 8 for i in range(1, 21)]
        for did in ids:
            rows.append((did, "t1", did.hex(), None, None, "psk", b"x", "{}", "active", 1, 1, 0, 0, 0, 0, 0, None))
        s.insert_devices(rows)
        for did in ids:
            barrier = threading.Barrier(2)
            lost = [None, None]

            def flush(k):
                barrier.wait()
                lost[k] = stores[k].record_auth([(T0, T0, did)], [], [])

            threads = [threading.Thread(target=flush, args=(k,)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert sorted(len(x) for x in lost) == [0, 1], did.hex()
        assert stores[1].get_device(ids[0])["last_ts"] == T0
    finally:
        for s in stores:
            s.close()


def test_a_batch_with_two_timestamps_of_one_device_moves_the_floor_to_the_higher(pg_url):
    url = fresh_database(pg_url)
    s = PGStorage(url)
    try:
        s.create_tenant("t1", "acme", 1, {})
        did = b"\x07" * 8
        s.insert_devices([(did, "t1", "S7", None, None, "psk", b"x", "{}", "active", 1, 1, 0, 0, 0, 0, 0, None)])
        assert s.record_auth([(T0 + 5, T0, did), (T0 + 3, T0, did)], [], []) == set()
        assert s.get_device(did)["last_ts"] == T0 + 5
        # a later batch whose lowest timestamp is not above the floor loses whole, even with a higher one in it
        assert s.record_auth([(T0 + 5, T0, did), (T0 + 9, T0, did)], [], []) == {did}
        assert s.get_device(did)["last_ts"] == T0 + 5
    finally:
        s.close()


async def test_the_event_loop_goes_on_while_a_batch_is_written(pair, clock, monkeypatch):
    # the batch's write takes 300 ms (slowed here); meanwhile the loop keeps running: a ticker ticks, and a second
    # request arriving is answered with the next transaction, once the first is done
    (a, _), _ = pair
    d1, d2 = devices(a, clock, 2)
    storage = a.app[STORAGE]
    real = storage.record_auth_async
    writes = []

    async def slow(*args, **kw):
        writes.append(len(args[0]))
        await asyncio.sleep(0.3)
        return await real(*args, **kw)

    monkeypatch.setattr(storage, "record_auth_async", slow)
    ticks = 0
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.get_running_loop().create_task(ticker())
    first = asyncio.ensure_future(a.send("udp", d1.request(T0)))
    await asyncio.sleep(0.05)                         # the first batch is being written
    second = await a.send("http", d2.request(T0))
    assert (await first)[0] == OK and second[0] == OK
    done.set()
    await t
    assert ticks >= 20                                # the loop ran through ~600 ms of writes
    assert writes == [1, 1]                           # two transactions, one after the other


async def test_batches_handed_over_are_answered_before_shutdown(pg_url, tmp_path, clock, monkeypatch):
    url = fresh_database(pg_url)
    cfg = Config(db_path=url, state_dir=str(tmp_path), kek=KEK, clock=clock, http_port=0, udp_port=0, dtls_port=None)
    srv = await Server(cfg).start()
    d, = devices(srv, clock)
    storage = srv.app[STORAGE]
    real = storage.record_auth_async

    async def slow(*args, **kw):
        await asyncio.sleep(0.3)
        return await real(*args, **kw)

    monkeypatch.setattr(storage, "record_auth_async", slow)
    srv._udp.sendto(d.request(T0))
    await asyncio.sleep(0.05)                         # its write has begun and is not done
    await srv.stop()                                  # drains: the accepted timestamp is written
    s = PGStorage(url)
    try:
        assert s.get_device(bytes.fromhex(d.hex))["last_ts"] == T0
    finally:
        s.close()


async def test_a_suspension_on_one_instance_is_refused_by_the_other(pair, clock):
    # b has the device cached as active; the suspension is made through a's API; b must refuse it soon after
    (a, b), _ = pair
    tenant = AdminTenant(a.app, "acme", clock)
    (hex_id, master), = tenant.provision([{}], "active")
    d = AuthDevice(hex_id, master, clock)
    assert (await b.send("udp", d.request(T0)))[0] == OK
    assert b.app[STORAGE] is not a.app[STORAGE]
    async with a._session.post(f"{a.handle.url}/v1/devices/{hex_id}/lifecycle", headers=tenant.headers,
                               json={"action": "suspend", "reason": "test"}) as r:
        assert r.status == 200, await r.text()
    t0 = asyncio.get_running_loop().time()
    got = None
    for i in range(1, 200):
        got = (await b.send("udp", d.request(T0 + i)))[0]
        if got != OK:
            break
        await asyncio.sleep(0.01)
    assert got == 4                                   # NOT_ACTIVE
    assert asyncio.get_running_loop().time() - t0 < 5
