"""Token buckets (docs/protocol.md 3.4): a bucket refills at its rate and never holds more than its
capacity, however long it idled. With literal numbers, at the store (MemoryLimitStore.take) and
through binary auth over HTTP (the per-device bucket, the tenant's per-source bucket and the
verifier-wide per-source bucket). Refill rates are chosen so that the arithmetic is exact in binary
floating point (0.25/s, 0.5/s), and the default policy's 0.2/s is checked at whole seconds.
The lockout (fail/succeed/locked_until) is not tested here."""

import dataclasses

import pytest

from tests.support import T0, AuthDevice
from verifier.registry import core as registry
from verifier.app import create_app
from verifier.appkeys import STORAGE
from verifier.registry.limits import MemoryLimitStore

DAY = 86400.0


def takes(store, key, capacity, refill, now, n):
    """The results of n takes at the same instant."""
    return [store.take(key, capacity, refill, now) for _ in range(n)]


# the store

def test_new_bucket_holds_exactly_its_capacity():
    s = MemoryLimitStore()
    assert takes(s, "k", 3, 0.25, 100.0, 4) == [True, True, True, False]


def test_bucket_is_still_empty_just_before_one_token_has_refilled():
    s = MemoryLimitStore()
    assert takes(s, "k", 3, 0.25, 100.0, 4) == [True, True, True, False]
    assert s.take("k", 3, 0.25, 103.75) is False       # 0.9375 of a token
    assert s.take("k", 3, 0.25, 104.0) is True          # 1.0: one token, 4 s after emptying
    assert s.take("k", 3, 0.25, 104.0) is False


def test_refill_is_proportional_to_time():
    s = MemoryLimitStore()
    assert takes(s, "k", 10, 0.5, 0.0, 11) == [True] * 10 + [False]
    assert takes(s, "k", 10, 0.5, 6.0, 4) == [True, True, True, False]   # 6 s x 0.5/s = 3 tokens
    assert takes(s, "k", 10, 0.5, 7.5, 2) == [False, False]              # 0.75
    assert takes(s, "k", 10, 0.5, 8.0, 2) == [True, False]               # 1.0


def test_long_idle_bucket_gives_no_more_than_its_capacity():
    s = MemoryLimitStore()
    assert takes(s, "k", 5, 0.25, 0.0, 5) == [True] * 5
    assert takes(s, "k", 5, 0.25, 365 * DAY, 6) == [True] * 5 + [False]
    assert takes(s, "k", 5, 0.25, 365 * DAY + 3.75, 1) == [False]


def test_partly_used_bucket_refills_to_capacity_not_beyond():
    s = MemoryLimitStore()
    assert takes(s, "k", 4, 0.5, 0.0, 1) == [True]      # 3 left
    assert takes(s, "k", 4, 0.5, 10.0, 5) == [True] * 4 + [False]   # 3 + 5 capped at 4


def test_lowered_capacity_caps_a_full_bucket_at_once():
    s = MemoryLimitStore()
    assert takes(s, "k", 10, 0.25, 0.0, 1) == [True]
    assert takes(s, "k", 2, 0.25, DAY, 3) == [True, True, False]   # the policy now says 2


def test_buckets_are_independent():
    s = MemoryLimitStore()
    assert takes(s, "a", 2, 0.25, 0.0, 3) == [True, True, False]
    assert takes(s, "b", 2, 0.25, 0.0, 3) == [True, True, False]
    assert takes(s, ("tenant", "10.0.0.1"), 2, 0.25, 0.0, 3) == [True, True, False]


def test_zero_refill_never_refills():
    s = MemoryLimitStore()
    assert takes(s, "k", 2, 0.0, 0.0, 3) == [True, True, False]
    assert takes(s, "k", 2, 0.0, 10 * 365 * DAY, 1) == [False]


# through binary auth over HTTP

async def auth(client, dev, ts=None):
    r = await client.post("/v1/binauth", data=dev.request(ts))
    data = await r.read()
    return data[0]                                    # 0x00 OK, 0x06 RATE_LIMITED (protocol.md 3.3)


def device(tenant, clock):
    (hex_id, master), = tenant.provision([{}])
    return AuthDevice(hex_id, master, clock)


async def test_device_bucket_default_policy_through_binauth(client, tenant_a, clock):
    """Default device bucket: capacity 10, refill 0.2/s, so one token every 5 s."""
    dev = device(tenant_a, clock)
    assert [await auth(client, dev, T0 + i) for i in range(11)] == [0] * 10 + [6]
    clock.advance(4)
    assert await auth(client, dev, T0 + 11) == 6       # 0.8 of a token
    clock.advance(1)
    assert await auth(client, dev, T0 + 12) == 0       # 1.0
    assert await auth(client, dev, T0 + 13) == 6


async def test_device_bucket_after_a_long_idle_through_binauth(client, tenant_a, clock):
    dev = device(tenant_a, clock)
    assert [await auth(client, dev) for _ in range(10)] == [0] * 10
    clock.advance(30 * DAY)
    assert [await auth(client, dev) for _ in range(11)] == [0] * 10 + [6]


async def test_tenant_source_bucket_through_binauth(client, tenant_a, clock):
    registry.patch_tenant_policy(client.app[STORAGE], tenant_a.id,
                                 {"policy": {"source_rate": {"capacity": 3, "refill_per_s": 0.25}}}, clock(), "t")
    devs = [device(tenant_a, clock) for _ in range(8)]
    assert [await auth(client, d) for d in devs[:4]] == [0, 0, 0, 6]
    clock.advance(3.75)
    assert await auth(client, devs[4]) == 6            # 0.9375 of a token for this source
    clock.advance(0.25)
    assert [await auth(client, d) for d in devs[4:6]] == [0, 6]
    clock.advance(DAY)
    assert [await auth(client, d) for d in devs[:4]] == [0, 0, 0, 6]


@pytest.fixture
def narrow_config(config):
    """The verifier-wide per-source bucket narrowed to capacity 2, refill 0.5/s."""
    return dataclasses.replace(config, source_capacity=2.0, source_refill_per_s=0.5)


async def test_verifier_wide_source_bucket_through_binauth(aiohttp_client, narrow_config, clock):
    client = await aiohttp_client(create_app(narrow_config))
    unknown = bytes(20)

    async def status():
        r = await client.post("/v1/binauth", data=unknown)
        return (await r.read())[0]                    # 0x03 UNKNOWN_DEVICE once past the bucket

    assert [await status() for _ in range(3)] == [3, 3, 6]
    clock.advance(1.5)
    assert await status() == 6                         # 0.75
    clock.advance(0.5)
    assert [await status() for _ in range(2)] == [3, 6]
    clock.advance(DAY)
    assert [await status() for _ in range(3)] == [3, 3, 6]
