"""POST /v1/claim end to end through the app: a new serial gets a device (the registry's, 'provisioning', the
batch's template) and an answer only its board can open; a retry resumes; every refusal of docs/claims.md's table
with its literal status and code."""

import asyncio
import json

import pytest

from tests.support import AuthDevice, T0
from verifier.appkeys import STORAGE
from verifier.binauth.core import OK
from verifier.claims.routes import CLAIMS

TEMPLATE = {"model_id": "pico-w", "manufacturer_id": "acme-fab", "permissions": 7, "trust_level": 60,
            "metadata": {"group": "lobby", "tags": ["floor-2", "sensor"]}, "region": "eu-west", "transport": "udp",
            "board": {"led": 25, "name": "lobby"}, "policy": {"auth": {"protocols": ["udp"]}}}


async def _audit(client, kind="claim"):
    rows = client.app[STORAGE]._db.execute("SELECT action, result, device_id, reason FROM audit WHERE kind = ? "
                                          "ORDER BY seq", (kind,)).fetchall()
    return [tuple(r) for r in rows]


async def test_a_new_serial_gets_a_provisioning_device_and_an_answer_only_its_board_opens(claims, client, tenant):
    batch, secret = await claims.batch(serial_pattern="SN-2026-*", device=TEMPLATE)
    board = claims.board(batch, secret, "SN-2026-0001")
    status, answer, nonce = await claims.claim(board)
    assert status == 200
    device_id, master, config = board.open(nonce, answer)
    host = client.server.host
    assert config == {"tenant": "acme", "region": "eu-west",
                      "server": {"host": host, "udp_port": None, "http_port": client.server.port, "dtls_port": None},
                      "transport": "udp", "board": {"led": 25, "name": "lobby"}}
    status, dev = await claims.get(f"/v1/devices/{device_id}")
    assert status == 200
    assert (dev["serial_number"], dev["status"], dev["model_id"], dev["manufacturer_id"], dev["permissions"],
            dev["security"]["trust_level"]) == ("SN-2026-0001", "provisioning", "pico-w", "acme-fab", 7, 60)
    assert dev["metadata"]["group"] == "lobby" and dev["metadata"]["tags"] == ["floor-2", "sensor"]
    # the master secret in the answer is the one the verifier sealed for this device
    st = client.app[STORAGE]
    row = st.get_device(bytes.fromhex(device_id))
    from verifier.appkeys import SEALER
    assert client.app[SEALER].unseal(row["sealed_secret"], row["id"], tenant.id).hex() == master
    status, view = await claims.get(f"/v1/claim-batches/{batch['batch_id']}")
    assert (view["claimed_count"], view["remaining"], view["status"]) == (1, 9, "active")
    assert view["device"]["policy"] == {"auth": {"protocols": ["udp"]}}
    status, listed = await claims.get(f"/v1/claim-batches/{batch['batch_id']}/claims")
    assert [(c["serial"], c["device_id"], c["claimed_at"]) for c in listed["claims"]] == [("SN-2026-0001", device_id, T0)]
    assert await _audit(client) == [("claim.new", "ok", device_id, None)]


async def test_the_answer_binds_the_request_nonce_so_an_old_answer_fails_on_the_board(claims):
    batch, secret = await claims.batch()
    board = claims.board(batch, secret, "SN-1")
    status, answer, nonce = await claims.claim(board)
    assert status == 200
    with pytest.raises(AssertionError):
        board.open(bytes(16) if nonce != bytes(16) else b"\x01" * 16, answer)


async def test_a_retry_after_a_lost_answer_resumes_the_same_device_and_is_not_counted(claims, client):
    batch, secret = await claims.batch(max_count=1)
    board = claims.board(batch, secret, "SN-7")
    status, first, n1 = await claims.claim(board)
    status2, second, n2 = await claims.claim(board)
    assert (status, status2) == (200, 200)
    d1, d2 = board.open(n1, first), board.open(n2, second)
    assert d1[:2] == d2[:2]                       # same device id and master secret
    assert first[10:26] != second[10:26]          # a new server nonce: a new keystream
    assert first[26:58] != second[26:58]
    _, view = await claims.get(f"/v1/claim-batches/{batch['batch_id']}")
    assert (view["claimed_count"], view["remaining"]) == (1, 0)
    assert [a[:2] for a in await _audit(client)] == [("claim.new", "ok"), ("claim.resume", "ok")]
    _, listed = await claims.get(f"/v1/claim-batches/{batch['batch_id']}/claims")
    assert listed["claims"][0]["resumed"] == 1


async def _binauth(client, device_hex, master_hex, clock):
    d = AuthDevice(device_hex, master_hex, clock)
    req = d.request()
    r = await client.post("/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
    reply = d.reply(req, await r.read())
    assert r.status == 200 and reply["status"] == OK and reply["authenticated"]


async def test_once_the_device_authenticated_a_claim_is_already_claimed_until_an_operator_reset(claims, client,
                                                                                                 clock):
    batch, secret = await claims.batch(max_count=1)
    board = claims.board(batch, secret, "SN-9")
    _, answer, nonce = await claims.claim(board)
    device_id, master, _ = board.open(nonce, answer)
    await _binauth(client, device_id, master, clock)
    status, body, _ = await claims.claim(board)
    assert (status, body["error"]) == (409, "already_claimed")
    r = await client.post(f"/v1/claim-batches/{batch['batch_id']}/claims/SN-9/reset", headers=claims.tenant.headers)
    out = await r.json()
    assert r.status == 200 and out == {"batch_id": batch["batch_id"], "serial": "SN-9", "device_id": device_id,
                                        "device_status": "decommissioned"}
    _, old = await claims.get(f"/v1/devices/{device_id}")
    assert (old["status"], old["serial_number"]) == ("decommissioned", f"SN-9~{device_id}")
    status, answer, nonce = await claims.claim(board)      # the slot came back with the reset
    assert status == 200
    new_id, new_master, _ = board.open(nonce, answer)
    assert new_id != device_id and new_master != master
    _, view = await claims.get(f"/v1/claim-batches/{batch['batch_id']}")
    assert view["claimed_count"] == 1
    actions = [a[0] for a in client.app[STORAGE]._db.execute(
        "SELECT action FROM audit WHERE kind = 'admin' AND action LIKE 'claim.%' OR action = 'device.decommission' "
        "ORDER BY seq").fetchall()]
    assert actions == ["claim.batch.create", "device.decommission", "claim.reset"]


async def test_a_device_that_left_provisioning_is_already_claimed(claims, client, tenant):
    batch, secret = await claims.batch()
    board = claims.board(batch, secret, "SN-3")
    _, answer, nonce = await claims.claim(board)
    device_id = board.open(nonce, answer)[0]
    r = await client.post(f"/v1/devices/{device_id}/lifecycle", json={"action": "activate"}, headers=tenant.headers)
    assert r.status == 200
    status, body, _ = await claims.claim(board)
    assert (status, body["error"]) == (409, "already_claimed")


async def test_reset_of_an_unknown_claim_is_404(claims):
    batch, _ = await claims.batch()
    r = await claims.client.post(f"/v1/claim-batches/{batch['batch_id']}/claims/SN-404/reset",
                                 headers=claims.tenant.headers)
    assert (r.status, (await r.json())["error"]) == (404, "not_found")


async def test_the_same_request_twice_is_claim_replayed(claims, client):
    batch, secret = await claims.batch()
    board = claims.board(batch, secret, "SN-5")
    nonce, req = board.request()
    assert (await claims.post(req))[0] == 200
    status, body = await claims.post(req)
    assert (status, json.loads(body)["error"]) == (409, "claim_replayed")
    assert [a[:2] for a in await _audit(client)] == [("claim.new", "ok"), ("claim.refused", "claim_replayed")]


async def test_two_concurrent_claims_of_the_last_slot_one_wins_and_one_is_batch_exhausted(claims, client, hook):
    batch, secret = await claims.batch(max_count=1, hook={"url": hook.url})
    hook.hold = asyncio.Event()
    a, b = claims.board(batch, secret, "SN-A"), claims.board(batch, secret, "SN-B")
    ta = asyncio.ensure_future(claims.claim(a))
    tb = asyncio.ensure_future(claims.claim(b))
    while len(hook.requests) < 2:              # both decided "new" and wait for the hook
        await asyncio.sleep(0.01)
    hook.hold.set()
    results = sorted([(s, body["error"] if s != 200 else "ok") for s, body, _ in await asyncio.gather(ta, tb)])
    assert results == [(200, "ok"), (403, "batch_exhausted")]
    _, view = await claims.get(f"/v1/claim-batches/{batch['batch_id']}")
    assert view["claimed_count"] == 1
    assert client.app[STORAGE]._db.execute("SELECT count(*) FROM claims").fetchone()[0] == 1
    assert client.app[STORAGE]._db.execute("SELECT count(*) FROM devices").fetchone()[0] == 1


async def test_exhausted_batch_refuses_a_new_serial_but_resumes_a_claimed_one(claims):
    batch, secret = await claims.batch(max_count=1)
    first = claims.board(batch, secret, "SN-1")
    assert (await claims.claim(first))[0] == 200
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-2"))
    assert (status, body["error"]) == (403, "batch_exhausted")
    assert (await claims.claim(first))[0] == 200


async def test_claims_committed_together_fail_alone(claims, client, tenant):
    """Claims arriving together share one transaction (verifier/claims/writer.py): a refused one is rolled back
    alone, and the last slot still goes to exactly one of them."""
    tenant.provision([{"serial_number": "SN-TAKEN"}])
    batch, secret = await claims.batch(max_count=3)
    serials = ["SN-A", "SN-TAKEN", "SN-B", "SN-C", "SN-D"]
    results = await asyncio.gather(*(claims.claim(claims.board(batch, secret, s)) for s in serials))
    codes = [(s, body["error"] if s != 200 else "ok") for s, body, _ in results]
    assert codes[1] == (409, "already_claimed")
    assert sorted(codes[:1] + codes[2:]) == [(200, "ok")] * 3 + [(403, "batch_exhausted")]
    st = client.app[STORAGE]
    assert st.get_claim_batch(bytes.fromhex(batch["batch_id"]))["claimed_count"] == 3
    assert st._db.execute("SELECT count(*) FROM claims").fetchone()[0] == 3
    assert st._db.execute("SELECT count(*) FROM devices").fetchone()[0] == 4      # 3 claimed + the provisioned one
    assert st._db.execute("SELECT count(*) FROM audit WHERE action = 'claim.new'").fetchone()[0] == 3
    assert client.app[CLAIMS].writer.batches < len(serials)                       # some shared a transaction


@pytest.mark.parametrize("host, expected", [("claims.example:8443", ("claims.example", 8443)),
                                            ("[::1]:9000", ("::1", 9000)), ("x" * 300, ("127.0.0.1", None)),
                                            ("bad host", ("127.0.0.1", None))])
async def test_the_config_names_the_host_the_claim_came_to(claims, client, host, expected):
    batch, secret = await claims.batch()
    board = claims.board(batch, secret, "SN-H")
    nonce, req = board.request()
    r = await client.post("/v1/claim", data=req, headers={"Content-Type": "application/octet-stream", "Host": host})
    assert r.status == 200
    server = board.open(nonce, await r.read())[2]["server"]
    assert (server["host"], server["http_port"]) == (expected[0], expected[1] or client.server.port)


async def test_a_device_insert_the_precheck_missed_rolls_back_and_each_claim_is_decided_alone(claims, client):
    """A device row that makes the shared insert fail (here a trigger; in production another instance's device of
    the same serial, committed after the pre-check) rolls the group back; each claim is then written under its own
    savepoint, so only the failing one is refused."""
    from tests.support import fail_inserts, stop_failing
    batch, secret = await claims.batch()
    db = client.app[STORAGE]._db
    fail_inserts(db, "devices", "claims_fail_x", when="NEW.serial_number = 'SN-X'")
    try:
        results = await asyncio.gather(*(claims.claim(claims.board(batch, secret, s)) for s in ("SN-1", "SN-X", "SN-2")))
    finally:
        stop_failing(db, "devices", "claims_fail_x")
    assert [(s, body["error"] if s != 200 else "ok") for s, body, _ in results] == [
        (200, "ok"), (409, "already_claimed"), (200, "ok")]
    assert client.app[STORAGE].get_claim_batch(bytes.fromhex(batch["batch_id"]))["claimed_count"] == 2
    assert db.execute("SELECT count(*) FROM claims").fetchone()[0] == 2


async def test_a_device_that_authenticated_is_already_claimed_even_if_its_status_is_provisioning(claims, client,
                                                                                                  clock, tenant):
    batch, secret = await claims.batch()
    board = claims.board(batch, secret, "SN-P")
    _, answer, nonce = await claims.claim(board)
    device_id, master, _ = board.open(nonce, answer)
    await _binauth(client, device_id, master, clock)
    client.app[STORAGE].update_device(tenant.id, bytes.fromhex(device_id), {"status": "provisioning"})
    status, body, _ = await claims.claim(board)
    assert (status, body["error"]) == (409, "already_claimed")
