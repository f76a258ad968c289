"""Offline-token refusals that come before the signature is checked: a malformed token naming a known
device is audited under that device's tenant (its row had no tenant, so the tenant never saw it), and
junk, which anyone can send naming any device, cannot grow the audit log without bound: at most 10 rows
per named device (or per "no known device") at once, then 10 per hour, the rest counted in the next row."""

import sqlite3

import pytest

from verifier import chain
from verifier.appkeys import CONFIG, STORAGE
from verifier.token_http import authenticate_offline

DAY = 86400


def _offline_rows(app, tenant_id, device_hex=None):
    return [(e["result"], e["reason"], e["detail"]) for e in app[STORAGE].list_audit(tenant_id, device_hex, 1000)
            if e["action"] == "offline"]


def _untenanted_offline_rows(app):
    with sqlite3.connect(app[CONFIG].db_path) as db:
        return db.execute("SELECT count(*) FROM audit WHERE tenant_id IS NULL AND action = 'offline'").fetchone()[0]


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
    assert _offline_rows(client.app, tenant.id, device.hex) == [("REFUSED", "malformed", detail)]


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
    assert _offline_rows(client.app, tenant.id, device.hex) == [("REFUSED", "malformed", "version 2")] * 10
    for _ in range(5):                                   # 359 s later the bucket has not refilled one row yet
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, bad, now + 359, "10.0.0.9")
    assert len(_offline_rows(client.app, tenant.id, device.hex)) == 10
    with pytest.raises(chain.ChainTokenRefused):         # at 360 s (10 rows per hour) one more row, with the count
        authenticate_offline(client.app, bad, now + 360, "10.0.0.9")
    assert _offline_rows(client.app, tenant.id, device.hex)[0] == (
        "REFUSED", "malformed", "version 2; 195 similar refusals not audited since the previous row")


async def test_forged_signatures_for_a_device_are_bounded_like_malformed_ones(client, tenant, device, clock):
    tok = bytearray(await _token(client, device))
    tok[-1] ^= 1
    for _ in range(30):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, bytes(tok), int(clock()), "10.0.0.9")
    assert _offline_rows(client.app, tenant.id, device.hex) == [("REFUSED", "bad_signature", "index 0")] * 10


async def test_junk_naming_no_known_device_is_bounded_too(client, tenant, clock):
    for i in range(50):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, bytes([i]) * (i % 120), int(clock()), "10.0.0.9")
    assert _untenanted_offline_rows(client.app) == 10


async def test_genuine_offline_refusals_are_not_sampled(client, tenant, device, clock):
    tok = await _token(client, device)
    clock.advance(3 * DAY)                               # index 0 has expired: a signed token, authentic refusal
    for _ in range(15):
        with pytest.raises(chain.ChainTokenRefused):
            authenticate_offline(client.app, tok, int(clock()), "10.0.0.9")
    assert _offline_rows(client.app, tenant.id, device.hex) == [("REFUSED", "expired", "index 0")] * 15
