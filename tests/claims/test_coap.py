"""Claims over plain CoAP (docs/claims.md 13, verifier/claims/coap.py): a CON POST /claim answered in the ACK with
2.04 and the binary answer, each refusal's CoAP code and diagnostic payload (literal bytes), retransmissions
answered with the same bytes (no claim_replayed), junk answered with nothing, a RST or a 4.04/4.05/4.15 and no
audit row, the dedup table's bound, and one claim over a real UDP socket. The CoAP messages are written here as
bytes from RFC 7252 section 3, not with the code under test."""

import asyncio
import json

import pytest

from tests.claims.test_refusals import _count
from verifier.appkeys import CONFIG
from verifier.claims import coap as claim_coap
from verifier.claims.routes import CLAIM_COAP

SRC = ("192.0.2.7", 40001)
URI_CLAIM = b"\xb5claim"            # option delta 11 (Uri-Path), length 5
CF_OCTETS = b"\x11\x2a"             # option delta 1 (12: Content-Format), length 1, 42


@pytest.fixture
def config(config):
    config.coap_claim_port = 0
    return config


def con(payload, mid=0x1234, token=b"\xa1\xb2", code=0x02, options=URI_CLAIM + CF_OCTETS, mtype=0):
    """A CoAP message: version 1, type (0 CON), token, code (0.02 POST), options as given, then the payload."""
    head = bytes((0x40 | mtype << 4 | len(token), code, mid >> 8, mid & 0xFF)) + token + options
    return head + (b"\xff" + payload if payload else b"")


def split(reply):
    """(first byte, code byte, mid, token, the bytes between the token and the payload marker, payload)."""
    tkl = reply[0] & 15
    token, rest = reply[4:4 + tkl], reply[4 + tkl:]
    opts, _, payload = rest.partition(b"\xff")
    return reply[0], reply[1], reply[2] << 8 | reply[3], token, opts, payload


@pytest.fixture
def core(client):
    return client.app[CLAIM_COAP].core


async def test_a_con_post_claim_is_answered_in_the_ack_with_2_04_and_the_answer(claims, core, clock):
    batch, secret = await claims.batch()
    board = claims.board(batch, secret, "SN-C1")
    nonce, req = board.request()
    reply = await core.handle(con(req), SRC, clock())
    first, code, mid, token, opts, payload = split(reply)
    # 0x62: version 1, ACK, token length 2; 0x44: 2.04 Changed; Content-Format 42 (delta 12, length 1)
    assert (first, code, mid, token, opts) == (0x62, 0x44, 0x1234, b"\xa1\xb2", b"\xc1\x2a")
    dev, _, cfg = board.open(nonce, payload)
    assert cfg["server"]["host"] == "127.0.0.1" and cfg["tenant"] == "acme"
    status, view = await claims.get(f"/v1/devices/{dev}")
    assert (status, view["serial_number"], view["status"]) == (200, "SN-C1", "provisioning")
    assert _count(claims.client, "action = 'claim.new' AND transport = 'coap' AND source = ?", (SRC[0],)) == 1


async def test_a_claim_without_content_format_is_accepted(claims, core, clock):
    batch, secret = await claims.batch()
    nonce, req = claims.board(batch, secret, "SN-C2").request()
    reply = await core.handle(con(req, options=URI_CLAIM), SRC, clock())
    assert reply[1] == 0x44


def _board(claims, batch, secret, serial="SN-R1"):
    return claims.board(batch, secret, serial)


async def _refusal(claims, core, clock, request):
    reply = await core.handle(con(request), SRC, clock())
    first, code, mid, token, opts, payload = split(reply)
    assert (first, mid, token) == (0x62, 0x1234, b"\xa1\xb2")
    return code, opts, payload


async def test_malformed_is_4_00_malformed_claim(claims, core, clock):
    assert await _refusal(claims, core, clock, b"\x01\x01junk") == (0x80, b"", b"malformed_claim")


async def test_wrong_tag_is_4_01_claim_invalid(claims, core, clock):
    batch, _ = await claims.batch()
    _, req = claims.board(batch, bytes(32), "SN-1").request()
    assert await _refusal(claims, core, clock, req) == (0x81, b"", b"claim_invalid")


async def test_revoked_batch_is_4_03_batch_revoked(claims, core, clock):
    batch, secret = await claims.batch()
    await claims.client.post(f"/v1/claim-batches/{batch['batch_id']}/revoke", headers=claims.tenant.headers)
    _, req = _board(claims, batch, secret).request()
    assert await _refusal(claims, core, clock, req) == (0x83, b"", b"batch_revoked")
    assert _count(claims.client, "action = 'claim.refused' AND result = 'batch_revoked' AND transport = 'coap'") == 1


async def test_exhausted_batch_is_4_03_batch_exhausted(claims, core, clock):
    batch, secret = await claims.batch(max_count=1)
    assert (await claims.claim(_board(claims, batch, secret, "SN-1")))[0] == 200
    _, req = _board(claims, batch, secret, "SN-2").request()
    assert await _refusal(claims, core, clock, req) == (0x83, b"", b"batch_exhausted")


async def test_a_reused_nonce_in_a_new_message_is_4_09_claim_replayed(claims, core, clock):
    batch, secret = await claims.batch()
    board = _board(claims, batch, secret)
    nonce, req = board.request()
    assert (await core.handle(con(req, mid=1), SRC, clock()))[1] == 0x44
    reply = await core.handle(con(req, mid=2), SRC, clock())       # a new message id: not a retransmission
    assert split(reply)[1:] == (0x89, 2, b"\xa1\xb2", b"", b"claim_replayed")


async def test_source_rate_limit_is_4_29_with_max_age_1(claims, core, client, clock):
    client.app[CONFIG].source_capacity, client.app[CONFIG].source_refill_per_s = 2, 0.001
    codes = [(await core.handle(con(b"junk", mid=i), SRC, clock()))[1] for i in range(3)]
    assert codes == [0x80, 0x80, 0x9d]                              # 4.00, 4.00, 4.29
    reply = await core.handle(con(b"junk", mid=9), SRC, clock())
    # Max-Age (14): delta 14 -> nibble 13 + extension 1, length 1, value 1
    assert split(reply)[4:] == (b"\xd1\x01\x01", b"rate_limited")
    other = await core.handle(con(b"junk", mid=9), ("192.0.2.8", 40001), clock())   # another host's bucket
    assert other[1] == 0x80


async def test_hook_unavailable_is_5_03(claims, core, clock):
    batch, secret = await claims.batch(hook={"url": "http://127.0.0.1:9/hook"})
    _, req = _board(claims, batch, secret).request()
    assert await _refusal(claims, core, clock, req) == (0xa3, b"", b"hook_unavailable")


async def test_hook_deny_is_4_03_claim_denied(claims, core, clock, hook):
    batch, secret = await claims.batch(hook={"url": hook.url})
    hook.default = (200, '{"allow": false, "reason": "no"}')
    _, req = _board(claims, batch, secret).request()
    assert await _refusal(claims, core, clock, req) == (0x83, b"", b"claim_denied")


async def test_already_claimed_is_4_09(claims, core, clock, client):
    batch, secret = await claims.batch()
    board = _board(claims, batch, secret)
    status, answer, nonce = await claims.claim(board)
    dev = board.open(nonce, answer)[0]
    r = await client.post(f"/v1/devices/{dev}/lifecycle", json={"action": "activate"}, headers=claims.tenant.headers)
    assert r.status == 200, await r.text()
    _, req = board.request()
    assert await _refusal(claims, core, clock, req) == (0x89, b"", b"already_claimed")


async def test_a_retransmission_gets_the_same_bytes_and_no_second_claim(claims, core, clock):
    batch, secret = await claims.batch()
    board = _board(claims, batch, secret)
    nonce, req = board.request()
    first = await core.handle(con(req, mid=77), SRC, clock())
    clock.advance(2)
    again = await core.handle(con(req, mid=77), SRC, clock())
    assert again == first and first[1] == 0x44
    assert _count(claims.client, "kind = 'claim'") == 1          # one claim.new, no claim.refused
    # the same message id from another port of the host is another endpoint's message: decided again
    other = await core.handle(con(req, mid=77), (SRC[0], SRC[1] + 1), clock())
    assert split(other)[4:] == (b"", b"claim_replayed")


async def test_after_the_exchange_lifetime_a_message_id_is_decided_again(claims, core, clock):
    batch, secret = await claims.batch()
    _, req = _board(claims, batch, secret).request()
    assert (await core.handle(con(req, mid=5), SRC, clock()))[1] == 0x44
    clock.advance(248)                                              # EXCHANGE_LIFETIME 247 s (RFC 7252 4.8.2)
    assert split(await core.handle(con(req, mid=5), SRC, clock()))[5] == b"claim_replayed"


async def test_a_retransmission_while_the_claim_is_decided_gets_nothing(claims, core, clock, hook):
    batch, secret = await claims.batch(hook={"url": hook.url})
    hook.hold = asyncio.Event()
    _, req = _board(claims, batch, secret).request()
    task = asyncio.ensure_future(core.handle(con(req, mid=8), SRC, clock()))
    await hook.arrived.wait()
    assert await core.handle(con(req, mid=8), SRC, clock()) is None
    hook.hold.set()
    assert (await task)[1] == 0x44
    assert len(hook.requests) == 1


@pytest.mark.parametrize("data, reply", [
    (con(b"x", mtype=1), None),                                     # NON POST /claim
    (con(b"x", mtype=2, code=0x44), None),                          # an ACK
    (con(b"", mtype=3, code=0, token=b"", options=b""), None),      # a RST
    (con(b"x", code=0x45), None),                                   # a response (2.05) in a CON
    (b"\x40", None), (b"\x80\x02\x00\x01", None), (b"\x48\x02\x00\x01", None),  # short, version 2, TKL 8 missing
    (con(b"x" * 1200), None),                                       # over-long
    (con(b"", code=0, token=b"", options=b""), b"\x70\x00\x12\x34"),           # CoAP ping: RST
    (con(b"x", options=b"\xb4auth"), b"\x62\x84\x12\x34\xa1\xb2"),             # POST /auth: 4.04
    (con(b"x", options=b"\xb5claim\x01x"), b"\x62\x84\x12\x34\xa1\xb2"),       # POST /claim/x: 4.04
    (con(b"", code=0x01), b"\x62\x85\x12\x34\xa1\xb2"),                        # GET /claim: 4.05
    (con(b"x", options=URI_CLAIM + b"\x11\x32"), b"\x62\x8f\x12\x34\xa1\xb2"),  # Content-Format 50 (JSON): 4.15
], ids=["non", "ack", "rst", "response", "short", "version-2", "token-missing", "over-long", "ping", "other-path",
        "sub-path", "get", "json"])
async def test_junk_gets_nothing_or_an_empty_answer_and_no_audit_row(claims, core, clock, data, reply):
    before = _count(claims.client)
    assert await core.handle(data, SRC, clock()) == reply
    assert _count(claims.client) == before


async def test_the_dedup_table_is_bounded(claims, core, clock):
    for mid in range(4096 + 10):
        await core.handle(con(b"\x01", mid=mid), SRC, clock())
    assert len(core._seen) == 4096
    assert (SRC[0], SRC[1], 0) not in core._seen and (SRC[0], SRC[1], 4105) in core._seen


async def test_a_claim_over_a_real_udp_socket(claims, client, clock):
    batch, secret = await claims.batch()
    board = _board(claims, batch, secret, "SN-UDP")
    nonce, req = board.request()
    port = client.app[CLAIM_COAP].port
    loop = asyncio.get_running_loop()
    got = loop.create_future()

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(con(req, mid=0x0a0b))
        reply = await asyncio.wait_for(got, 10)
    finally:
        transport.close()
    assert split(reply)[:3] == (0x62, 0x44, 0x0a0b)
    assert json.loads(json.dumps(board.open(nonce, split(reply)[5])[2]))["tenant"] == "acme"


def test_refusal_codes_are_rfc_7252_numbers():
    # 4.00=128, 4.01=129, 4.03=131, 4.09=137, 4.29=157, 5.03=163 (code = class << 5 | detail)
    assert {s: int(c) for s, c in claim_coap.REFUSAL_CODES.items()} == {400: 128, 401: 129, 403: 131, 409: 137,
                                                                          429: 157, 503: 163}


async def test_start_server_names_the_port_and_answers_carry_the_bound_http_port(tmp_path, clock):
    from tests.support import KEK
    from verifier.app import start_server
    from verifier.config import Config
    cfg = Config(db_path=str(tmp_path / "s.db"), kek=KEK, clock=clock, http_port=0, udp_port=None, dtls_port=None,
                 notify_tick_s=None, coap_claim_port=0)
    handle = await start_server(cfg)
    try:
        assert handle.coap_claim_port > 0
        assert handle.listen_line() == (f"janua serve: http=127.0.0.1:{handle.http_port} udp=off dtls=off "
                                        f"coap-claim=127.0.0.1:{handle.coap_claim_port}")
        server = handle.app[CLAIM_COAP].core.server()
        assert server == {"host": "127.0.0.1", "udp_port": None, "http_port": handle.http_port, "dtls_port": None}
    finally:
        await handle.close()


async def test_off_by_default(tmp_path, clock):
    from tests.support import KEK
    from verifier.app import start_server
    from verifier.config import Config
    handle = await start_server(Config(db_path=str(tmp_path / "s.db"), kek=KEK, clock=clock, http_port=0,
                                       udp_port=None, dtls_port=None, notify_tick_s=None))
    try:
        assert handle.app[CLAIM_COAP] is None and "coap-claim" not in handle.listen_line()
    finally:
        await handle.close()


async def test_answers_over_coap_say_tls_when_the_http_api_is_https(tmp_path, clock):
    from tests.support import KEK
    from tests.tls.conftest import PKI
    from verifier.app import start_server
    from verifier.config import Config
    pki = PKI(tmp_path)
    handle = await start_server(Config(db_path=str(tmp_path / "s.db"), kek=KEK, clock=clock, http_port=0,
                                       udp_port=None, dtls_port=None, notify_tick_s=None, coap_claim_port=0,
                                       tls_cert=str(pki.cert_file), tls_key=str(pki.key_file)))
    try:
        assert handle.app[CLAIM_COAP].core.server() == {"host": "127.0.0.1", "udp_port": None,
                                                        "http_port": handle.http_port, "dtls_port": None, "tls": True}
    finally:
        await handle.close()
