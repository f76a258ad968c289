"""Offline token chains at the cloud verifier (docs/tokens.md sections 3 and 4): the first chain by
sync, offline authentication once per token (also across a restart), the validity window with drift,
refusals of revoked devices and tampered tokens, and sync's reconciliation and top-up."""


import pytest

from verifier.tokens import chain
from verifier.tokens import core as tokens
from verifier.app import create_app
from verifier.appkeys import CORE, STORAGE

DAY = 86400


def keys_of(app, now):
    return app[tokens.TOKEN_KEYS].chain_keys(now)


async def first_chain(client, device):
    body = await device.sync(client, have=-1)
    return [bytes.fromhex(t) for t in body["tokens"]], body


async def offline(client, token, status=200):
    r = await client.post("/v1/auth/device/offline", json={"token": token.hex() if isinstance(token, bytes) else token})
    body = await r.json()
    assert r.status == status, body
    return body


def offline_audit(app, tenant_id):
    """The offline auth rows of a tenant, newest first; tenant_id None: every tenant's and none. The
    summaries of unauthenticated refusals still open are written first (as when their interval ends)."""
    app[STORAGE].add_audit(app[CORE].summary.drain())
    if tenant_id is not None:
        return [e for e in app[STORAGE].list_audit(tenant_id, limit=1000) if e["transport"] == "offline"]
    return [dict(r) for r in app[STORAGE]._db.execute("SELECT * FROM audit WHERE transport = 'offline' "
                                                      "ORDER BY seq DESC")]


async def test_first_sync_gives_a_signed_linked_chain(client, tenant, device, clock):
    toks, body = await first_chain(client, device)
    now = int(clock())
    assert len(toks) == 30 and all(len(t) == chain.TOKEN_LEN == 107 for t in toks)
    keys = keys_of(client.app, now)
    for i, t in enumerate(toks):
        f = chain.verify_chain_token(t, keys, now + i * DAY, 0)
        assert (f["index"], f["device_id"], f["nbf"], f["exp"]) == (i, device.id, now + i * DAY, now + (i + 1) * DAY)
        assert f["tenant_hash"] == chain.tenant_hash(tenant.id)
        assert f["prev"] == (chain.ZERO_PREV if i == 0 else chain.chain_link(toks[i - 1]))
    assert all(chain.verify_chain_link(a, b) for a, b in zip(toks, toks[1:]))
    assert body["chain"] == {"period": DAY, "validity": DAY, "next_index": 30}
    assert body["used_ack"] == [] and body["update_available"] is False
    assert {k["kid"] for k in body["keys"]["keys"]} == {f["kid"].hex()}
    assert body["config"]["drift_s"] == 300 and body["config"]["chain_len"] == 30
    assert body["revocations"] == {"devices": [], "next_update": now + 3600}


async def test_offline_token_is_accepted_once(client, tenant, device, clock):
    toks, _ = await first_chain(client, device)
    body = await offline(client, toks[0])
    assert body == {"ok": True, "device_id": device.hex, "index": 0, "next_index": 1, "next_nbf": int(clock()) + DAY}
    r = await client.post("/v1/auth/device/offline", json={"token": toks[0].hex()})
    assert r.status == 401 and await r.json() == {"error": "unauthenticated", "message": "refused"}
    rows = offline_audit(client.app, tenant.id)
    assert [(e["kind"], e["result"], e["reason"], e["detail"]) for e in rows] == [
        ("auth", "REFUSED", "replayed", "index 0"), ("auth", "OK", None, "index 0")]
    assert all(e["device_id"] == device.hex and e["action"] == "offline" for e in rows)


async def test_replay_is_refused_after_the_verifier_restarts(aiohttp_client, client, config, tenant, device):
    toks, _ = await first_chain(client, device)
    await offline(client, toks[0])
    await client.close()
    again = await aiohttp_client(create_app(config))        # a new app on the same SQLite file
    await offline(again, toks[0], status=401)
    assert offline_audit(again.app, tenant.id)[0]["reason"] == "replayed"
    await offline(again, toks[1], status=401)              # not valid before tomorrow (drift 300 s)
    assert offline_audit(again.app, tenant.id)[0]["reason"] == "not_yet_valid"


@pytest.mark.parametrize("when, ok, reason", [
    ("nbf - 301", False, "not_yet_valid"), ("nbf - 300", True, None), ("nbf", True, None),
    ("exp + 300", True, None), ("exp + 301", False, "expired")])
async def test_validity_window_allows_the_tenant_drift(client, tenant, device, clock, when, ok, reason):
    toks, _ = await first_chain(client, device)
    f = chain.decode_chain_token_unverified(toks[3])
    clock.now = eval(when, {}, {"nbf": f["nbf"], "exp": f["exp"]})
    await offline(client, toks[3], status=200 if ok else 401)
    if not ok:
        assert offline_audit(client.app, tenant.id)[0]["reason"] == reason


async def test_drift_is_the_tenant_policy(client, tenant, device, clock):
    await tenant.policy(client, drift_s=10)
    toks, _ = await first_chain(client, device)
    clock.now = chain.decode_chain_token_unverified(toks[2])["nbf"] - 11
    await offline(client, toks[2], status=401)
    clock.advance(1)
    await offline(client, toks[2])


@pytest.mark.parametrize("change", ["suspend", "decommission", "compromised", "quarantined"])
async def test_chain_token_of_revoked_device_is_refused(client, tenant, device, change):
    toks, _ = await first_chain(client, device)
    if change in ("suspend", "decommission"):
        await tenant.lifecycle(client, device, change)
    else:
        r = await client.patch(f"/v1/devices/{device.hex}", json={change: True}, headers=tenant.headers)
        assert r.status == 200
    await offline(client, toks[0], status=401)
    assert offline_audit(client.app, tenant.id)[0]["reason"] == "revoked"


def _flip(tok, offset):
    return tok[:offset] + bytes([tok[offset] ^ 0x01]) + tok[offset + 1:]


TAMPERED = {
    "version": (lambda t: b"\x02" + t[1:], "malformed"),
    "kid": (lambda t: _flip(t, 1), "unknown_key"),
    "device_id": (lambda t: _flip(t, 5), "bad_signature"),     # checked before the device lookup
    "index": (lambda t: _flip(t, 14), "bad_signature"),
    "nbf": (lambda t: _flip(t, 18), "bad_signature"),
    "exp": (lambda t: _flip(t, 20), "bad_signature"),
    "tenant_hash": (lambda t: _flip(t, 23), "bad_signature"),
    "prev": (lambda t: _flip(t, 30), "bad_signature"),
    "signature_r": (lambda t: _flip(t, 50), "bad_signature"),
    "signature_s": (lambda t: _flip(t, 106), "bad_signature"),
    "zero_signature": (lambda t: t[:43] + bytes(64), "bad_signature"),
    "truncated": (lambda t: t[:106], "malformed"),
    "extended": (lambda t: t + b"\x00", "malformed"),
    "empty": (lambda t: b"", "malformed"),
}


@pytest.mark.parametrize("field", sorted(TAMPERED))
async def test_tampered_chain_token_is_refused(client, tenant, device, field):
    toks, _ = await first_chain(client, device)
    make, reason = TAMPERED[field]
    await offline(client, make(toks[0]), status=401)
    row = offline_audit(client.app, None)[0]          # before the signature verified: a summary row
    assert row["kind"] == "summary" and row["reason"].startswith("1 refused from 1 source host(s)")
    assert row["reason"].endswith(f"last reason: {reason}")
    await offline(client, toks[0])                 # the genuine token was not spent by the forgery


@pytest.mark.parametrize("body", [{"token": "zz" * 107}, {"token": 5}, {}, [], "x"])
async def test_malformed_offline_request_is_refused_opaquely(client, body):
    r = await client.post("/v1/auth/device/offline", json=body)
    assert r.status == 401 and await r.json() == {"error": "unauthenticated", "message": "refused"}


async def test_chain_token_of_another_tenant_device_cannot_be_rebound(client, tenant, other, device):
    """A token signed for one device names that device; it authenticates nobody else."""
    toks, _ = await first_chain(client, device)
    stranger = other.devices(1)[0]
    moved = toks[0][:5] + stranger.id + toks[0][13:]
    await offline(client, moved, status=401)
    row = offline_audit(client.app, other.id)[0]
    assert row["kind"] == "summary" and row["reason"].endswith("last reason: bad_signature")


async def test_sync_reconciles_used_indices_so_the_cloud_refuses_them(client, device):
    toks, _ = await first_chain(client, device)
    body = await device.sync(client, used=[0, 1, 99], have=29)       # 0 and 1 were spent at an edge
    assert body["used_ack"] == [0, 1] and body["tokens"] == []        # 99 was never issued: not acked
    await offline(client, toks[0], status=401)
    body = await device.sync(client, used=[0], have=29)               # reporting twice is harmless
    assert body["used_ack"] == [0]


async def test_sync_tops_up_when_fewer_than_low_water_remain(client, device, clock):
    toks, _ = await first_chain(client, device)
    clock.advance(20 * DAY + 10)        # tokens 0..19 have expired, 20..29 remain: 10, no top-up yet
    await device.obtain(client)
    body = await device.sync(client, have=29)
    assert body["tokens"] == []
    body = await device.sync(client, used=[20], have=29)              # 9 remain: top up to 30
    new = [bytes.fromhex(t) for t in body["tokens"]]
    assert len(new) == 21 and body["chain"]["next_index"] == 51
    keys = keys_of(client.app, clock())
    fields = [chain.verify_chain_token(t, keys, chain.decode_chain_token_unverified(t)["nbf"], 0) for t in new]
    assert [f["index"] for f in fields] == list(range(30, 51))
    assert fields[0]["prev"] == chain.chain_link(toks[29])            # the chain continues across top-ups
    assert fields[0]["nbf"] == chain.decode_chain_token_unverified(toks[29])["nbf"] + DAY
    await offline(client, toks[20], status=401)                      # reported used


async def test_chain_length_and_low_water_are_tenant_policy(client, tenant, device, clock):
    await tenant.policy(client, chain_len=5, chain_low_water=2, chain_period_s=3600, chain_validity_s=7200)
    toks, body = await first_chain(client, device)
    assert len(toks) == 5 and body["chain"] == {"period": 3600, "validity": 7200, "next_index": 5}
    f = chain.decode_chain_token_unverified(toks[4])
    assert (f["nbf"], f["exp"]) == (int(clock()) + 4 * 3600, int(clock()) + 4 * 3600 + 7200)
    body = await device.sync(client, used=[0, 1, 2], have=4)         # 2 remain: not below low water
    assert body["tokens"] == []
    body = await device.sync(client, used=[3], have=4)               # 1 remains
    assert len(body["tokens"]) == 4


async def test_used_indices_are_never_reissued(client, device, clock):
    seen = set()
    toks, _ = await first_chain(client, device)
    seen.update(chain.decode_chain_token_unverified(t)["index"] for t in toks)
    have = 29
    for _ in range(5):
        clock.advance(25 * DAY)
        await device.obtain(client)
        body = await device.sync(client, used=sorted(seen)[-3:], have=have)
        idx = [chain.decode_chain_token_unverified(bytes.fromhex(t))["index"] for t in body["tokens"]]
        assert idx and not seen & set(idx) and idx == sorted(idx)
        seen.update(idx)
        have = idx[-1]


async def test_tokens_the_device_never_received_are_voided(client, device, clock):
    """A lost sync response: the device asks again with its old `have`; the tokens it never got can
    never be used, and the new ones carry new indices valid from now."""
    lost, _ = await first_chain(client, device)
    toks, body = await first_chain(client, device)
    idx = [chain.decode_chain_token_unverified(t) for t in toks]
    assert [f["index"] for f in idx] == list(range(30, 60)) and idx[0]["nbf"] == int(clock())
    await offline(client, lost[0], status=401)
    await offline(client, toks[0])


async def test_a_device_back_after_its_chain_expired_gets_a_chain_valid_now(client, device, clock):
    await first_chain(client, device)
    clock.advance(90 * DAY)
    await device.obtain(client)
    body = await device.sync(client, have=29)
    toks = [bytes.fromhex(t) for t in body["tokens"]]
    assert len(toks) == 30
    await offline(client, toks[0])


@pytest.mark.parametrize("body", [{"used": [], "have": 0}, {"used": "0", "have": -1}, {"used": [-1], "have": -1},
                                  {"used": [70000], "have": -1}, {"used": [], "have": -2}, {"used": [], "have": "1"},
                                  {"used": [True], "have": -1}, {"used": list(range(1001)), "have": -1},
                                  {"used": [], "have": -1, "ota": {"kind": "bios"}}])
async def test_sync_rejects_bad_input(client, device, body):
    r = await client.post("/v1/auth/device/sync", json=body, headers=device.bearer)
    assert r.status == 400


async def test_sync_lists_the_tenants_revoked_devices(client, tenant, other, device):
    a, b = tenant.devices(2)
    await tenant.lifecycle(client, a, "suspend")
    other_dev = other.devices(1)[0]
    await other.lifecycle(client, other_dev, "suspend")
    body = await device.sync(client, have=-1)
    assert body["revocations"]["devices"] == [a.hex]


async def test_offline_flood_from_one_address_is_rate_limited(tmp_path, aiohttp_client):
    """Each offline request costs a signature check: one source gets its budget, then 429."""
    from verifier.app import create_app
    from verifier.config import Config
    cfg = Config(db_path=str(tmp_path / "j.db"), kek=bytes(range(32)), http_port=0, udp_port=None, dtls_port=None,
                 source_capacity=3, source_refill_per_s=0.001, clock=lambda: 1_767_225_600.0)
    client = await aiohttp_client(create_app(cfg))
    codes = [(await client.post("/v1/auth/device/offline", json={"token": "00" * 107})).status for _ in range(3)]
    r = await client.post("/v1/auth/device/offline", json={"token": "00" * 107})
    assert codes == [401, 401, 401]
    assert r.status == 429 and r.headers["Retry-After"] == "1" and (await r.json())["error"] == "rate_limited"
