"""Offline-token refusals that come before the signature is checked: a malformed token naming a known
device is audited under that device's tenant (its row had no tenant, so the tenant never saw it), and
junk, which anyone can send naming any device, cannot grow the audit log without bound: it is counted in
one summary per named known device (or per "no known device") and interval (docs/api.md "Audit trail"),
never written row by row."""


import pytest

from verifier.tokens import chain
from verifier.appkeys import CORE, STORAGE
from verifier.tokens.routes import authenticate_offline

DAY = 86400


def _offline_rows(app, tenant_id, device_hex=None):
    return [(e["result"], e["reason"], e["detail"]) for e in app[STORAGE].list_audit(tenant_id, device_hex, 1000)
            if e["action"] == "offline"]


def _untenanted_offline_rows(app):
    return app[STORAGE]._db.execute("SELECT count(*) FROM audit WHERE tenant_id IS NULL AND action = 'offline'"
                                    ).fetchone()[0]


def _summaries(app):
    """(tenant, device, result, reason) of the open offline summaries (closing them)."""
    return [(r[1], r[3], r[8], r[9]) for r in app[CORE].summary.drain() if r[5] == "offline"]


async def _token(client, device):
    return bytes.fromhex((await device.sync(client, have=-1))["tokens"][0])


@pytest.mark.parametrize("mangle, detail", [
    (lambda t: t[:0] + b"\x02" + t[1:], "version 2"),
    (lambda t: t[:19] + bytes(4) + t[23:], "exp before nbf"),     # exp = 0 < nbf
])
async def test_malformed_token_naming_a_known_device_is_audited_under_its_tenant(client, tenant, device, mangle,
                                                                                 detail):
    bad = mangle(await _token(client, device))
    r = await client.post("/v1/auth/device/offline", json={"token": bad.hex()})
    assert r.status == 401 and await r.json() == {"error": "unauthenticated", "message": "refused"}
    (t, d, result, reason), = _summaries(client.app)
    assert (t, d, result) == (tenant.id, device.hex, "REFUSED") and reason.endswith("last reason: malformed")


async def test_malformed_token_naming_another_tenants_device_stays_out_of_the_callers_tenant(client, tenant, other,
                                                                                          device):
    bad = b"\x02" + (await _token(client, device))[1:]
    await client.post("/v1/auth/device/offline", json={"token": bad.hex()})
    assert _offline_rows(client.app, other.id) == []


async def test_offline_junk_naming_a_device_cannot_grow_the_audit_without_bound(client, tenant, device, clock):
    bad = b"\x02" + (await _token(client, device))[1:]
    now = int(clock())
    for _ in range(200):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, bad, now, "10.0.0.9")
    assert _offline_rows(client.app, tenant.id, device.hex) == []
    assert _summaries(client.app) == [(tenant.id, device.hex, "REFUSED",
                                       f"200 refused from 1 source host(s) in [{now}, {now}]; last reason: malformed")]


async def test_forged_signatures_for_a_device_are_bounded_like_malformed_ones(client, tenant, device, clock):
    tok = bytearray(await _token(client, device))
    tok[-1] ^= 1
    now = int(clock())
    for _ in range(30):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, bytes(tok), now, "10.0.0.9")
    assert _offline_rows(client.app, tenant.id, device.hex) == []
    assert _summaries(client.app) == [(tenant.id, device.hex, "REFUSED",
                                       f"30 refused from 1 source host(s) in [{now}, {now}]; last reason: bad_signature")]


async def test_junk_naming_no_known_device_is_bounded_too(client, tenant, clock):
    for i in range(50):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, bytes([i]) * (i % 120), int(clock()), "10.0.0.9")
    assert _untenanted_offline_rows(client.app) == 0
    (t, d, result, reason), = _summaries(client.app)
    assert (t, d, result) == (None, None, "REFUSED") and reason.startswith("50 refused from 1 source host(s)")


async def test_genuine_offline_refusals_are_not_sampled(client, tenant, device, clock):
    tok = await _token(client, device)
    clock.advance(3 * DAY)                               # index 0 has expired: a signed token, authentic refusal
    for _ in range(15):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, tok, int(clock()), "10.0.0.9")
    assert _offline_rows(client.app, tenant.id, device.hex) == [("REFUSED", "expired", "index 0")] * 15
