"""Binary auth under device policies (docs/policies.md "Binary auth"): over UDP and POST /v1/binauth a protocol the
policy does not allow, or a trust level below its minimum, is answered NOT_ACTIVE (0x04, authenticated: the device
can trust it; HTTP 403); the policy's drift and permissions replace the tenant's and the device's. A change applies
to the very next request, without a restart, and costs no registry read per request."""

import aiohttp
import pytest

from verifier.appkeys import STORAGE

OK, TIME_SYNC, NOT_ACTIVE = 0x00, 0x01, 0x04


async def _put(server, tenant, scope, key, doc):
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{server.handle.url}/v1/policies/{scope}/{key}", json=doc, headers=tenant.headers) as r:
            assert r.status in (200, 201), await r.text()


async def _delete(server, tenant, scope, key):
    async with aiohttp.ClientSession() as s:
        async with s.delete(f"{server.handle.url}/v1/policies/{scope}/{key}", headers=tenant.headers) as r:
            assert r.status == 204


def _last_reason(server, tenant, hex_id):
    rows = server.app[STORAGE].list_audit(tenant.id, device_id=hex_id, kind="auth", limit=1)
    return rows[0]["result"], rows[0]["reason"]


@pytest.mark.parametrize("driver, forbidden, other", [("udp", "binauth_udp", "http"), ("http", "binauth_http", "udp")])
async def test_a_forbidden_protocol_is_not_active_and_the_other_still_works(server, live_tenant, driver, forbidden,
                                                                              other):
    dev = live_tenant.device()
    assert (await server.send(driver, dev.request()))[0] == OK
    allowed = [p for p in ("binauth_udp", "binauth_http", "dtls", "token") if p != forbidden]
    await _put(server, live_tenant, "device", dev.hex, {"auth": {"protocols": allowed}})
    req = dev.request()
    reply = dev.reply(req, await server.send(driver, req))
    assert (reply["status"], reply["authenticated"]) == (NOT_ACTIVE, True)
    if driver == "http":
        assert server.last_http_status == 403
    assert _last_reason(server, live_tenant, dev.hex) == ("NOT_ACTIVE", f"policy: protocol {forbidden} not allowed")
    assert (await server.send(other, dev.request()))[0] == OK
    # removed: the next request is accepted again
    await _delete(server, live_tenant, "device", dev.hex)
    assert (await server.send(driver, dev.request()))[0] == OK


async def test_a_tenant_default_applies_to_devices_already_cached(server, live_tenant):
    a, b = live_tenant.device(), live_tenant.device(model_id="gateway-1")
    assert (await server.send("udp", a.request()))[0] == OK
    assert (await server.send("udp", b.request()))[0] == OK        # both in binary auth's cache now
    await _put(server, live_tenant, "tenant", "default", {"auth": {"protocols": ["binauth_http"]}})
    await _put(server, live_tenant, "model", "gateway-1", {"auth": {"protocols": ["binauth_udp"]}})
    assert (await server.send("udp", a.request()))[0] == NOT_ACTIVE
    assert (await server.send("udp", b.request()))[0] == OK         # its model's document wins
    assert (await server.send("http", a.request()))[0] == OK


async def test_credential_types_without_symmetric_refuse_binary_auth(server, live_tenant):
    dev = live_tenant.device()
    await _put(server, live_tenant, "device", dev.hex, {"auth": {"credential_types": ["x509"]}})
    assert (await server.send("udp", dev.request()))[0] == NOT_ACTIVE
    assert _last_reason(server, live_tenant, dev.hex) == ("NOT_ACTIVE", "policy: protocol binauth_udp not allowed")


async def test_trust_below_the_minimum_is_refused_until_it_is_raised(server, live_tenant):
    dev = live_tenant.device(trust_level=40)
    await _put(server, live_tenant, "group", "line-3", {"auth": {"min_trust_level": 60}})
    assert (await server.send("udp", dev.request()))[0] == OK        # not in the group
    async with aiohttp.ClientSession() as s:
        async with s.patch(f"{server.handle.url}/v1/devices/{dev.hex}", json={"metadata": {"group": "line-3"}},
                           headers=live_tenant.headers) as r:
            assert r.status == 200
        assert (await server.send("udp", dev.request()))[0] == NOT_ACTIVE
        assert _last_reason(server, live_tenant, dev.hex) == ("NOT_ACTIVE", "policy: trust level 40 below 60")
        async with s.patch(f"{server.handle.url}/v1/devices/{dev.hex}", json={"trust_level": 60},
                           headers=live_tenant.headers) as r:
            assert r.status == 200
    assert (await server.send("udp", dev.request()))[0] == OK


async def test_the_policy_drift_and_permissions_replace_the_tenants_and_the_devices(server, live_tenant, clock):
    dev = live_tenant.device()
    await _put(server, live_tenant, "device", dev.hex, {"auth": {"drift_s": 10}, "access": {"permissions": 0x21}})
    req = dev.request(int(clock()) - 11)          # within the tenant's 300 s, outside the policy's 10 s
    assert (await server.send("udp", req))[0] == TIME_SYNC
    req = dev.request(int(clock()) - 10)
    reply = dev.reply(req, await server.send("udp", req))
    assert (reply["status"], reply["permissions"]) == (OK, 0x21)


async def test_no_registry_read_per_request_once_resolved(server, live_tenant):
    dev = live_tenant.device()
    await _put(server, live_tenant, "device", dev.hex, {"auth": {"protocols": ["binauth_udp"]}})
    storage = server.app[STORAGE]
    calls = []
    for name in ("get_device", "tenant_policies", "get_tenant"):
        orig = getattr(storage, name)
        setattr(storage, name, lambda *a, _o=orig, _n=name, **k: calls.append(_n) or _o(*a, **k))
    try:
        assert (await server.send("udp", dev.request()))[0] == OK
        first = list(calls)
        for _ in range(5):
            assert (await server.send("udp", dev.request()))[0] == OK
    finally:
        for name in ("get_device", "tenant_policies", "get_tenant"):
            delattr(storage, name)
    assert "tenant_policies" in first  # the first request resolved the device's policy ...
    assert calls == first            # ... and the five later requests read nothing
