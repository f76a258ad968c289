"""Refusals of board evidence (docs/attestation.md 2.4): each with its literal HTTP status and reason,
none changes any state (the challenge stays for the real answer), and anyone's refusals are counted
into summary rows, not one audit row each."""

import asyncio

import pytest

from tests.attest.conftest import attestation, challenge, ota_check, publish_release, submit
from verifier.appkeys import CORE, STORAGE
from verifier.attest import evidence
from verifier.registry import audit


def _results(client, board):
    return len(client.app[STORAGE].list_attest_results(board.id))


async def test_replayed_evidence_is_refused_as_stale(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    data = board.evidence(await challenge(client, tenant, board))
    assert (await submit(client, data))[0] == 200
    status, body = await submit(client, data)
    assert (status, body["error"]) == (409, "stale_nonce")
    assert _results(client, board) == 1


async def test_concurrent_submissions_of_one_evidence_pass_once(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    data = board.evidence(await challenge(client, tenant, board))
    outcomes = await asyncio.gather(*(submit(client, data) for _ in range(4)))
    assert sorted(s for s, _ in outcomes) == [200, 409, 409, 409]
    assert _results(client, board) == 1


async def test_replaced_challenge_makes_the_old_nonce_stale(client, tenant, board):
    old = await challenge(client, tenant, board)
    new = await challenge(client, tenant, board)
    status, body = await submit(client, board.evidence(old))
    assert (status, body["error"]) == (409, "stale_nonce")
    assert (await submit(client, board.evidence(new)))[0] == 200


async def test_expired_nonce_is_refused(client, tenant, board, clock):
    nonce = await challenge(client, tenant, board)
    clock.advance(300)                        # deadline_s defaults to 300: expires_at == now is expired
    status, body = await submit(client, board.evidence(nonce))
    assert (status, body["error"]) == (409, "stale_nonce")
    assert _results(client, board) == 0


async def test_nonce_never_issued_is_refused(client, tenant, board):
    await challenge(client, tenant, board)
    status, body = await submit(client, board.evidence("00" * 16))
    assert (status, body["error"]) == (409, "stale_nonce")


async def test_wrong_key_is_refused_as_tag_and_keeps_the_challenge(client, tenant, board):
    nonce = await challenge(client, tenant, board)
    status, body = await submit(client, board.evidence(nonce, key=board.key))   # the binauth key, not K_attest
    assert (status, body["error"]) == (401, "tag")
    assert _results(client, board) == 0
    assert (await submit(client, board.evidence(nonce)))[0] == 200     # the real answer still passes


async def test_other_devices_key_is_refused_as_tag(client, tenant):
    a, b = tenant.boards(2)
    nonce = await challenge(client, tenant, a)
    status, body = await submit(client, evidence.encode(b.k_attest, a.id, bytes.fromhex(nonce), 0, board="esp32"))
    assert (status, body["error"]) == (401, "tag")


@pytest.mark.parametrize("data, status, reason", [
    (b"", 400, "malformed"),
    (b"\x01" + b"\x00" * 45, 400, "malformed"),          # a header and records length 0, one byte short of the tag
    (b"\x02" + b"\x00" * 46, 400, "version"),
    (b"\x01" * 8193, 413, "too_large"),
], ids=["empty", "short", "version", "too-large"])
async def test_unparsable_evidence_is_refused(client, tenant, data, status, reason):
    got, body = await submit(client, data)
    assert (got, body["error"]) == (status, reason)


async def test_unknown_device_is_refused(client, tenant):
    data = evidence.encode(b"k" * 32, bytes(8), bytes(16), 0)
    status, body = await submit(client, data)
    assert (status, body["error"]) == (404, "unknown_device")


async def test_refusals_are_summarised_not_one_row_each(client, tenant, board, clock):
    """An unauthenticated sender must not grow the audit trail without bound (DESIGN.md 2.20)."""
    nonce = await challenge(client, tenant, board)
    bad = board.evidence(nonce, key=b"x" * 32)
    for _ in range(50):
        assert (await submit(client, bad))[0] == 401
    st = client.app[STORAGE]
    assert [a for a in st.list_audit(tenant.id, board.hex) if a["action"] == "DEVICE_ATTESTATION"] == []
    clock.advance(120)
    await audit.write_due(st, client.app[CORE].summary, clock())
    rows = [a for a in st.list_audit(tenant.id, board.hex) if a["action"] == "DEVICE_ATTESTATION"]
    assert len(rows) == 1 and rows[0]["kind"] == "summary"


async def test_challenge_for_a_binary_auth_request(client, tenant, board):
    r = await client.post("/v1/attest/challenge", json={"auth": board.auth()})
    body = await r.json()
    assert r.status == 200 and len(body["nonce"]) == 32 and body["expires_at"] == int(board.clock()) + 300
    assert (await submit(client, board.evidence(body["nonce"])))[0] == 200
    r = await client.post("/v1/attest/challenge", json={"auth": board.request(ts=1).hex()})     # replayed/stale
    assert r.status == 409
