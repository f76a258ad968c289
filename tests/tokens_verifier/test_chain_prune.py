"""Retention of used chain indices at the cloud verifier (docs/tokens.md section 3.3): a chain_used row
stays while its token could still pass verify_chain_token with any drift a policy allows, so the replay is
refused to the last second; after that the row is pruned and the token is refused as expired. Abandoned and
reported indices are kept as long as theirs could be accepted; the pruning task runs with the app; a file
from before the `expires` column still opens."""

import asyncio
import logging
import sqlite3

import pytest

from verifier.tokens import chain
from verifier.tokens import routes as token_http
from verifier.tokens import core as tokens
from verifier.app import create_app
from verifier.appkeys import STORAGE
from verifier.errors import ValidationError
from verifier.registry.model import Policy
from verifier.store import SQLiteStorage

DAY = 86400
KEEP = token_http.CHAIN_USED_KEEP_S          # max drift + margin
MAX_DRIFT = token_http.MAX_DRIFT_S


async def first_chain(client, device):
    body = await device.sync(client, have=-1)
    return [bytes.fromhex(t) for t in body["tokens"]]


async def offline(client, token):
    r = await client.post("/v1/auth/device/offline", json={"token": token.hex()})
    return r.status


def last_reason(app, tenant_id):
    rows = [e for e in app[STORAGE].list_audit(tenant_id, limit=1000) if e["transport"] == "offline"]
    return rows[0]["result"], rows[0]["reason"]


def fields(tok):
    return chain.decode_chain_token_unverified(tok)


def used_rows(app, device_id):
    """{index: (via, expires)} of a device's chain_used rows, read from the database."""
    return {i: (via, exp) for i, via, exp in
            app[STORAGE]._db.execute("SELECT idx, via, expires FROM chain_used WHERE device_id = ?", (device_id,))}


async def prune(app, now):
    return await token_http.prune_chain_used(app[STORAGE], now)


def test_max_drift_is_the_policy_bound():
    # the retention rule is only safe if no tenant can allow more drift than MAX_DRIFT_S
    assert Policy.from_json({"drift_s": MAX_DRIFT}).drift_s == MAX_DRIFT
    with pytest.raises(ValidationError):
        Policy.from_json({"drift_s": MAX_DRIFT + 1})


@pytest.mark.parametrize("drift", [0, 300, MAX_DRIFT])
async def test_used_token_row_outlives_every_second_it_could_be_replayed(client, tenant, device, clock, drift):
    await tenant.policy(client, drift_s=drift)
    toks = await first_chain(client, device)
    st, exp = client.app[STORAGE], fields(toks[0])["exp"]
    assert await offline(client, toks[0]) == 200
    assert used_rows(client.app, device.id) == {0: ("offline", exp)}      # expires = the token's exp, exactly

    # the last second the token passes verify_chain_token under this tenant's drift: still refused as a replay,
    # after a prune at that second and at the last second of the largest drift any policy allows
    for now in (exp + drift, exp + MAX_DRIFT, exp + KEEP):
        assert await prune(client.app, now) == 0
    clock.now = exp + drift
    assert await offline(client, toks[0]) == 401
    assert last_reason(client.app, tenant.id) == ("REFUSED", "replayed")
    assert st.used_chain_indices(device.id, 0, 0) == {0}

    # one second later it is expired, and after the prune the row is gone: still refused, as expired
    assert await prune(client.app, exp + KEEP + 1) == 1
    assert used_rows(client.app, device.id) == {}
    clock.now = exp + KEEP + 1
    assert await offline(client, toks[0]) == 401
    assert last_reason(client.app, tenant.id) == ("REFUSED", "expired")


async def test_reported_and_abandoned_indices_are_kept_while_their_tokens_could_pass(client, tenant, device, clock):
    await tenant.policy(client, drift_s=MAX_DRIFT)
    toks = await first_chain(client, device)
    t0 = int(clock())
    body = await device.sync(client, used=[0, 1, 2], have=9)      # 10..29 never arrived: abandoned
    assert body["used_ack"] == [0, 1, 2]
    rows = used_rows(client.app, device.id)
    assert set(rows) == {0, 1, 2, *range(10, 30)}
    assert all(rows[i] == ("device" if i < 3 else "abandoned", fields(toks[i])["exp"]) for i in rows)

    # day 20: token 18 (exp day 19) still passes with a day of drift, so its row stays; 17 and below go
    clock.now = t0 + 20 * DAY
    assert await prune(client.app, clock.now) == 3 + 8                # 0, 1, 2 and 10..17
    assert set(used_rows(client.app, device.id)) == set(range(18, 30))
    for i, reason in ((18, "replayed"), (17, "expired"), (2, "expired")):
        assert await offline(client, toks[i]) == 401
        assert last_reason(client.app, tenant.id) == ("REFUSED", reason), i
    # day 25: abandoned token 25 has just become valid; pruned meanwhile, its row is still there
    clock.now = fields(toks[25])["nbf"]
    await prune(client.app, clock.now)
    assert min(used_rows(client.app, device.id)) == 23            # exp day 24 = now - 1 day: kept
    assert await offline(client, toks[25]) == 401
    assert last_reason(client.app, tenant.id) == ("REFUSED", "replayed")


async def test_reported_index_of_an_older_segment_is_bounded_by_signed_until(client, tenant, device, clock):
    toks = await first_chain(client, device)
    t0 = int(clock())
    # a policy change starts a new segment at 30: the schedule of 0..29 is no longer in chain_state
    await tenant.policy(client, chain_period_s=DAY // 2, chain_validity_s=DAY // 2, drift_s=MAX_DRIFT)
    await device.sync(client, used=list(range(23)), have=29)
    state = client.app[STORAGE].get_chain_state(device.id)
    assert state["seg_first"] == 30
    body = await device.sync(client, used=[25], have=state["next_index"] - 1)
    assert body["used_ack"] == [25]
    bound = client.app[tokens.TOKEN_KEYS].max_signed_until()
    assert used_rows(client.app, device.id)[25] == ("device", bound)
    assert bound >= fields(toks[29])["exp"] >= fields(toks[25])["exp"] == t0 + 26 * DAY

    # the last second token 25 could pass with the largest drift: the row is still there
    clock.now = fields(toks[25])["exp"] + MAX_DRIFT
    await prune(client.app, clock.now)
    assert 25 in used_rows(client.app, device.id)
    assert await offline(client, toks[25]) == 401
    assert last_reason(client.app, tenant.id) == ("REFUSED", "replayed")
    await prune(client.app, bound + KEEP + 1)
    assert 25 not in used_rows(client.app, device.id)


async def test_a_device_back_after_its_chain_ran_out_voids_only_what_could_still_pass(client, tenant, device, clock):
    await tenant.policy(client, drift_s=MAX_DRIFT)
    toks = await first_chain(client, device)
    clock.now = fields(toks[29])["exp"] + 1                      # every token expired; 29 still passes with drift
    await device.obtain(client)
    await device.sync(client, have=29)
    rows = used_rows(client.app, device.id)
    # 29 may still be accepted; 28 (exp a day and a second ago) no more, but is within the margin; 0..27 are not
    # marked at all: a prune would delete their rows at once
    assert set(rows) == {28, 29} and {v for v, _ in rows.values()} == {"abandoned"}
    for i, reason in ((29, "replayed"), (28, "expired"), (27, "expired"), (0, "expired")):
        assert await offline(client, toks[i]) == 401
        assert last_reason(client.app, tenant.id) == ("REFUSED", reason), i


async def test_edge_reports_get_the_issued_exp_or_are_kept_for_good(client, tenant, device, clock):
    toks = await first_chain(client, device)
    now = int(clock())
    r = await client.post("/v1/edge/reports", headers=tenant.headers, json={"used": [
        {"device_id": device.hex, "index": 3, "ts": now}, {"device_id": device.hex, "index": 100, "ts": now}]})
    assert r.status == 200 and (await r.json())["used"] == 2
    rows = used_rows(client.app, device.id)
    assert rows[3] == ("edge", fields(toks[3])["exp"])
    assert rows[100] == ("edge", chain.MAX_U32)                # not issued yet: no bound, never pruned
    await prune(client.app, fields(toks[3])["exp"] + KEEP + 1)
    assert set(used_rows(client.app, device.id)) == {100}


async def test_prune_deletes_in_batches_and_only_what_expired(tmp_path):
    st = SQLiteStorage(str(tmp_path / "p.db"))
    try:
        did = bytes(range(8))
        st.mark_chain_used(did, [(i, 1000 + i) for i in range(25)], 1, "device")
        assert st.prune_chain_used(1010, 4) == 4                       # one batch per call
        assert await token_http.prune_chain_used(st, 1010 + KEEP, batch=4) == 6      # expires 1004..1009
        assert st.used_chain_indices(did, 0, 100) == set(range(10, 25))
        assert await token_http.prune_chain_used(st, 10**9, batch=4) == 15
        assert await token_http.prune_chain_used(st, 10**9, batch=4) == 0
    finally:
        st.close()


async def test_prune_task_runs_with_the_app_and_stops_cleanly(aiohttp_client, config, clock, monkeypatch, caplog):
    monkeypatch.setattr(token_http, "PRUNE_FIRST_S", 0)
    monkeypatch.setattr(token_http, "PRUNE_INTERVAL_S", 0.01)
    caplog.set_level(logging.INFO, logger="janua.verifier.tokens")
    client = await aiohttp_client(create_app(config))
    st, did = client.app[STORAGE], bytes(8)
    st.mark_chain_used(did, [(0, int(clock()) - KEEP - 1), (1, int(clock()) - KEEP)], int(clock()), "device")
    for _ in range(500):                                       # bounded wait for the task's next run
        if st.used_chain_indices(did, 0, 1) == {1}:
            break
        await asyncio.sleep(0.01)
    assert st.used_chain_indices(did, 0, 1) == {1}
    await client.close()
    assert not [t for t in asyncio.all_tasks() if "_prune_loop" in repr(t.get_coro())]
    assert any("pruned 1 used chain indices" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.name.startswith("janua") and r.levelno >= logging.WARNING]


def test_a_file_from_before_the_expires_column_opens_and_keeps_its_rows(tmp_path):
    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as db:           # chain_used as the first build of this release made it
        db.execute("CREATE TABLE chain_used (device_id BLOB NOT NULL, idx INTEGER NOT NULL, used_at INTEGER NOT NULL, "
                   "via TEXT NOT NULL, PRIMARY KEY (device_id, idx)) WITHOUT ROWID")
        db.execute("INSERT INTO chain_used VALUES (?, 7, 100, 'offline')", (bytes(8),))
    db.close()
    st = SQLiteStorage(path)
    try:
        assert st.prune_chain_used(chain.MAX_U32, 100) == 0       # its bound is unknown: kept for good
        assert st.use_chain_token(bytes(8), 8, 200, "offline", 5000) is True
        assert st.use_chain_token(bytes(8), 7, 200, "offline", 5000) is False   # still refuses the old replay
        assert st.prune_chain_used(6000, 100) == 1
        assert st.used_chain_indices(bytes(8), 0, 10) == {7}
    finally:
        st.close()
    with sqlite3.connect(path) as db:
        assert "chain_used_expires" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
