"""The bounded device cache of binary auth (verifier/binauth/cache.py): with room for 3 devices and 5
devices authenticating, entries are evicted, every device still authenticates, the replay state of an
evicted device comes back from the registry (its last packet replayed is refused), an entry whose
accepted timestamp is not yet flushed is never evicted, and forget() frees a slot. Over the sans-IO core
of a real verifier (SQLite under tmp_path), clock injected; the expected counts are worked out by hand
from the CLOCK sweep."""

import pytest

from tests.support import KEK
from tests.verifier.conftest import Server, Tenant
from verifier.appkeys import METRICS
from verifier.config import Config

T0 = 1_767_225_600        # the clock fixture starts here
SRC = ("192.0.2.10", 40000)
NAMES = ("OK", "TIME_SYNC", "SIGNATURE", "UNKNOWN_DEVICE", "NOT_ACTIVE", "REPLAY", "RATE_LIMITED",
         "LOCKED_OUT", "MALFORMED")      # docs/protocol.md 3.3, written out


@pytest.fixture
async def small(tmp_path, clock):
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=0,
                 dtls_port=None, auth_cache_devices=3)
    srv = await Server(cfg).start()
    yield srv
    await srv.stop()


@pytest.fixture
def devices(small, clock):
    tenant = Tenant(small.app, "acme", clock)
    return [tenant.device() for _ in range(5)]


def handle(core, req, now):
    """Decided and flushed (one request per batch)."""
    return NAMES[core.handle(req, SRC, now, "test")[0][0]]


def decide(core, req, now):
    """Decided only: its accepted timestamp waits for flush()."""
    return NAMES[core.decide(req, SRC, now, "test")[0]]


async def test_five_devices_through_three_slots_all_authenticate(small, devices):
    core = small.handle.core
    assert [handle(core, d.request(T0), T0) for d in devices] == ["OK"] * 5
    assert (len(core._cache), core.devices.evictions) == (3, 2)
    assert [d.id in core._cache for d in devices] == [False, False, True, True, True]
    # a cyclic pass over more devices than slots misses every time (CLOCK's, and LRU's, worst case)
    assert [handle(core, d.request(T0 + 1), T0 + 1) for d in devices] == ["OK"] * 5
    assert (len(core._cache), core.devices.evictions) == (3, 7)
    text = small.app[METRICS].render().decode()
    assert "janua_auth_cache_devices 3.0\n" in text and "janua_auth_cache_evictions_total 7.0\n" in text


async def test_replay_of_an_evicted_devices_last_packet_is_refused(small, devices):
    core = small.handle.core
    last = [d.request(T0) for d in devices]
    assert [handle(core, req, T0) for req in last] == ["OK"] * 5
    assert devices[0].id not in core._cache and devices[1].id not in core._cache
    assert [handle(core, last[0], T0 + 1), handle(core, last[1], T0 + 1)] == ["REPLAY", "REPLAY"]
    assert handle(core, devices[0].request(T0 + 2), T0 + 2) == "OK"


async def test_unflushed_entry_is_not_evicted(small, devices):
    core = small.handle.core
    first = [d.request(T0) for d in devices[:4]]
    assert [decide(core, req, T0) for req in first] == ["OK"] * 4
    # all four dirty: none may go, the cache holds one more than its bound until the flush
    assert (len(core._cache), core.devices.evictions) == (4, 0)
    assert decide(core, first[0], T0) == "REPLAY"    # would be OK if it had been dropped and read again
    core.flush()
    assert handle(core, devices[4].request(T0), T0) == "OK"
    assert (len(core._cache), core.devices.evictions) == (3, 2)
    # the replay's hit gave the first device a second chance: the two after it went
    assert [d.id in core._cache for d in devices] == [True, False, False, True, True]
    assert [handle(core, req, T0 + 1) for req in first] == ["REPLAY"] * 4


async def test_forget_frees_a_slot_without_an_eviction(small, devices):
    core = small.handle.core
    assert [handle(core, d.request(T0), T0) for d in devices[:3]] == ["OK"] * 3
    core.forget(devices[0].id)
    assert handle(core, devices[3].request(T0), T0) == "OK"
    assert (len(core._cache), core.devices.evictions) == (3, 0)
    assert handle(core, devices[0].request(T0), T0) == "REPLAY"
