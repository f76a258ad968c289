"""Every refusal of POST /v1/claim (docs/claims.md "Refusals") with its literal HTTP status and error code, in
the table's order; revoke and expiry; the serial list and pattern; the pre-claim hook (allow, deny, timeout,
garbage, its signed request); and the bounded audit under junk. Rate limits: test_rate_limits.py."""

import hashlib
import hmac
import json
import os

import pytest

from tests.support import T0
from verifier.appkeys import CORE, STORAGE
from verifier.notify.core import verify_signature
from verifier.registry import audit


def _count(client, where="1 = 1", args=()):
    return client.app[STORAGE]._db.execute(f"SELECT count(*) FROM audit WHERE {where}", args).fetchone()[0]


def _framed(batch_id, serial, tail=b"", version=1, kind=1, n=None):
    body = bytes((version, kind)) + batch_id + bytes(16) + bytes((len(serial) if n is None else n,)) + serial
    return body + bytes(16) + tail


BID = bytes.fromhex("0011223344556677")


@pytest.mark.parametrize("data", [
    b"", b"\x01\x01", _framed(BID, b"A")[:-1], _framed(BID, b"x" * 65), _framed(BID, b"A", version=2),
    _framed(BID, b"A", kind=2), _framed(BID, b"AB", n=1), _framed(BID, b"A B"), _framed(BID, b"A\x7f"),
    _framed(BID, b"\xc3\xa9"), b"\x01\x01" + bytes(200)], ids=[
    "empty", "two-bytes", "43-bytes", "serial-65", "version-2", "type-answer", "length-mismatch", "space-in-serial",
    "del-in-serial", "utf8-serial", "too-long"])
async def test_malformed_framing_is_400_malformed_claim(claims, data):
    status, body = await claims.post(data)
    assert (status, json.loads(body)["error"]) == (400, "malformed_claim")


async def test_unknown_batch_and_wrong_tag_are_the_same_401_claim_invalid(claims):
    batch, secret = await claims.batch()
    forged = claims.board(batch, bytes(32), "SN-1")              # right batch id, wrong batch secret
    unknown = claims.board({"batch_id": "ffeeddccbbaa9988"}, secret, "SN-1")   # right secret, no such batch
    s1, b1, _ = await claims.claim(forged)
    s2, b2, _ = await claims.claim(unknown)
    assert (s1, b1) == (s2, b2) == (401, {"error": "claim_invalid", "message": "the claim is not valid"})


async def test_a_flipped_bit_of_a_valid_request_is_claim_invalid(claims):
    batch, secret = await claims.batch()
    _, req = claims.board(batch, secret, "SN-1").request()
    for i in (10, 27, len(req) - 1):                  # nonce, serial, tag
        bad = bytearray(req)
        bad[i] ^= 1
        status, body = await claims.post(bytes(bad))
        assert (status, json.loads(body)["error"]) == (401, "claim_invalid")


async def test_revoked_batch_is_403_batch_revoked(claims):
    batch, secret = await claims.batch()
    r = await claims.client.post(f"/v1/claim-batches/{batch['batch_id']}/revoke", headers=claims.tenant.headers)
    view = await r.json()
    assert (r.status, view["status"], view["revoked_at"]) == (200, "revoked", T0)
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-1"))
    assert (status, body["error"]) == (403, "batch_revoked")
    r = await claims.client.post(f"/v1/claim-batches/{batch['batch_id']}/revoke", headers=claims.tenant.headers)
    assert r.status == 409


async def test_before_not_before_and_after_not_after_are_403_batch_not_valid(claims, clock):
    batch, secret = await claims.batch(not_before=T0 + 100, not_after=T0 + 200)
    board = claims.board(batch, secret, "SN-1")
    status, body, _ = await claims.claim(board)
    assert (status, body["error"]) == (403, "batch_not_valid") and "not valid yet" in body["message"]
    assert (await claims.get(f"/v1/claim-batches/{batch['batch_id']}"))[1]["status"] == "pending"
    clock.advance(150)
    assert (await claims.claim(board))[0] == 200
    clock.advance(51)                                  # T0 + 201: after not_after
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-2"))
    assert (status, body["error"]) == (403, "batch_not_valid") and "expired" in body["message"]
    assert (await claims.get(f"/v1/claim-batches/{batch['batch_id']}"))[1]["status"] == "expired"


@pytest.mark.parametrize("doc, allowed, refused", [
    ({"serials": ["SN-1", "SN-2", "[x]"]}, ["SN-1", "[x]"], ["SN-3", "SN-1_", "sn-1", "x"]),
    ({"serial_pattern": "SN-2026-*"}, ["SN-2026-", "SN-2026-0042"], ["SN-2025-1", "XSN-2026-1", "sn-2026-1"]),
    ({"serial_pattern": "A?C"}, ["ABC", "A?C"], ["AC", "ABBC"]),
    ({"serial_pattern": "[ab]*"}, ["[ab]", "[ab]x"], ["a", "b"]),          # [ is a plain character
])
async def test_serial_outside_the_list_or_pattern_is_403_serial_not_allowed(claims, doc, allowed, refused):
    batch, secret = await claims.batch(**doc)
    for s in allowed:
        assert (await claims.claim(claims.board(batch, secret, s)))[0] == 200, s
    for s in refused:
        status, body, _ = await claims.claim(claims.board(batch, secret, s))
        assert (status, body["error"]) == (403, "serial_not_allowed"), s


async def test_hook_allow_is_asked_with_a_signed_request(claims, hook, clock):
    batch, secret = await claims.batch(hook={"url": hook.url}, device={"model_id": "m1", "metadata": {"group": "g"}})
    hook_secret = batch["hook_secret"]
    assert (await claims.claim(claims.board(batch, secret, "SN-1")))[0] == 200
    (req,) = hook.requests
    assert verify_signature(hook_secret, req["headers"]["X-Janua-Signature"], req["body"], T0) == T0
    expected = hmac.new(hook_secret.encode(), f"{T0}.".encode() + req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Janua-Signature"] == f"t={T0},v1={expected}"
    doc = json.loads(req["body"])
    assert (doc["tenant"], doc["batch_id"], doc["serial"], doc["source"]) == ("acme", batch["batch_id"], "SN-1",
                                                                               "127.0.0.1")
    assert doc["device_template"]["model_id"] == "m1" and doc["device_template"]["metadata"]["group"] == "g"


async def test_hook_deny_is_403_claim_denied_with_its_reason(claims, client, hook):
    batch, secret = await claims.batch(hook={"url": hook.url})
    hook.default = (200, '{"allow": false, "reason": "not on the shipping list"}')
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-1"))
    assert (status, body["error"]) == (403, "claim_denied") and "not on the shipping list" in body["message"]
    assert _count(client, "kind = 'claim' AND result = 'claim_denied' AND detail LIKE '%shipping list%'") == 1
    assert (await claims.get(f"/v1/claim-batches/{batch['batch_id']}"))[1]["claimed_count"] == 0


@pytest.mark.parametrize("answer", ["hang", (500, '{"allow": true}'), (200, "yes"), (200, '{"allow": "true"}'),
                                    (200, '[true]'), (302, "")], ids=["timeout", "500", "not-json", "string-allow",
                                                                      "array", "redirect"])
async def test_hook_that_gives_no_valid_answer_is_503_hook_unavailable(claims, hook, answer):
    batch, secret = await claims.batch(hook={"url": hook.url})
    hook.default = answer
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-1"))
    assert (status, body["error"]) == (503, "hook_unavailable")
    assert (await claims.get(f"/v1/claim-batches/{batch['batch_id']}"))[1]["claimed_count"] == 0


async def test_hook_that_is_not_listening_is_503_hook_unavailable(claims):
    batch, secret = await claims.batch(hook={"url": "http://127.0.0.1:9/hook"})
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-1"))
    assert (status, body["error"]) == (503, "hook_unavailable")


async def test_a_resume_does_not_ask_the_hook_again(claims, hook):
    batch, secret = await claims.batch(hook={"url": hook.url})
    board = claims.board(batch, secret, "SN-1")
    assert (await claims.claim(board))[0] == 200
    hook.default = (200, '{"allow": false}')
    assert (await claims.claim(board))[0] == 200
    assert len(hook.requests) == 1


async def test_junk_writes_a_bounded_number_of_audit_rows(aiohttp_client, tmp_path, clock):
    from tests.support import KEK
    from verifier.app import create_app
    from verifier.config import Config
    cfg = Config(db_path=str(tmp_path / "junk.db"), kek=KEK, clock=clock, http_port=0, udp_port=None, dtls_port=None,
                 notify_tick_s=None, source_capacity=10_000, source_refill_per_s=1)
    client = await aiohttp_client(create_app(cfg))
    from tests.claims.conftest import Claims
    from tests.support import AdminTenant
    claims = Claims(client, AdminTenant(client.app, "acme", clock))
    batch, _ = await claims.batch()
    before = _count(client)
    for i in range(2000):
        forged = claims.board(batch if i % 2 else {"batch_id": os.urandom(8).hex()}, os.urandom(32), f"SN-{i}")
        data = forged.request()[1] if i % 3 else b"\x01\x01" + os.urandom(i % 120)
        status, _ = await claims.post(data)
        assert status in (400, 401)
    await audit.write_due(client.app[STORAGE], client.app[CORE].summary, clock(), final=True)
    assert _count(client, "kind = 'claim'") == 0
    summaries = _count(client, "kind = 'summary'")
    assert 1 <= summaries <= 3                 # malformed, claim_invalid (no tenant), claim_invalid (the tenant)
    assert _count(client) - before == summaries
