"""The sans-IO DTLS core in-process: vectors (PRF, key schedule, CCM-8 record), the replay window, the
cookie, and negative tests named after what they prevent (state exhaustion, replays, tampering)."""

import json
import os
from pathlib import Path

import pytest

from verifier.dtls import wire
from verifier.dtls.crypto import (PSK_WITH_AES_128_CCM_8, CookieJar, HMACKey, RecordCipher, ReplayWindow,
                                  key_block, master_secret, premaster_secret, prf, verify_data)
from verifier.dtls.server import DTLSServer, Established, PSKGrant, Refused, AppData

from tests.dtls_verifier.rawclient import RawClient, client_hello

VECTORS = Path(__file__).parents[2] / "docs" / "vectors"
PSK = b"secretPSK"
ID = b"Client_identity"


def lookup(identity, addr, now):
    return PSKGrant(PSK) if identity == ID else None


def server(**kw):
    return DTLSServer(lookup, 0.0, **kw)


# vectors (docs/vectors)

@pytest.mark.parametrize("key, data, mac", [
    ("0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),        # RFC 4231 §4.2
    ("4a656665", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),                               # RFC 4231 §4.3
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),                               # RFC 4231 §4.7
])
def test_hmac_key_rfc4231_vectors(key, data, mac):
    k = HMACKey(bytes.fromhex(key))
    assert k.digest(data).hex() == mac
    assert k.digest(data).hex() == mac          # the key's hash states are reused, not consumed


def test_prf_vector_ietf_tls_list():
    for v in json.loads((VECTORS / "aes_ccm8_and_prf.json").read_text())["prf"]:
        out = bytes.fromhex(v["out"])
        assert prf(bytes.fromhex(v["secret"]), v["label"].encode(), bytes.fromhex(v["seed"]), len(out)) == out


def test_key_schedule_and_finished_record_vector():
    v = json.loads((VECTORS / "dtls_psk_ccm8_key_schedule.json").read_text())
    psk, cr, sr = (bytes.fromhex(v[k]) for k in ("psk", "client_random", "server_random"))
    assert premaster_secret(psk).hex() == v["premaster"]
    master = master_secret(psk, cr, sr)
    assert master.hex() == v["master_secret"]
    ckey, skey, civ, siv = key_block(master, cr, sr)
    assert (ckey.hex(), skey.hex(), civ.hex(), siv.hex()) == (
        v["client_write_key"], v["server_write_key"], v["client_write_IV"], v["server_write_IV"])
    vd = verify_data(master, b"client finished", bytes(range(256)))
    assert vd.hex() == v["client_verify_data"]
    fin = wire.encode_handshake(wire.FINISHED, 3, vd)
    assert fin.hex() == v["finished_handshake_msg"]
    frag = RecordCipher(PSK_WITH_AES_128_CCM_8, ckey, civ).seal(wire.seq8(1, 0), wire.HANDSHAKE, fin)
    assert wire.encode_record(wire.HANDSHAKE, 1, 0, frag).hex() == v["record"]


def test_ccm8_vectors_through_record_cipher():
    for v in json.loads((VECTORS / "aes_ccm8_and_prf.json").read_text())["ccm"]:
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM
        ct = AESCCM(bytes.fromhex(v["key"]), tag_length=8).encrypt(
            bytes.fromhex(v["nonce"]), bytes.fromhex(v["pt"]), bytes.fromhex(v["aad"]))
        assert ct.hex() == v["ct"]


def test_replay_window_64():
    w = ReplayWindow()
    for n in (0, 1, 5, 3):
        assert w.check(n)
        w.update(n)
    assert not w.check(3) and not w.check(5) and w.check(4)
    w.update(100)
    assert not w.check(36) and w.check(37) and not w.check(100) and w.check(99)
    w.update(10_000)
    assert w.check(9_999) and not w.check(100)


def test_cookie_rotates_with_a_grace_period():
    rand = iter(bytes([i]) * 32 for i in range(1, 100)).__next__
    jar = CookieJar(0.0, period_s=60, rand=lambda n: rand())
    addr, hello = ("10.0.0.1", 4000), b"hello"
    c = jar.make(addr, hello, 0.0)
    assert jar.verify(addr, hello, c, 30.0)
    assert jar.verify(addr, hello, c, 90.0)             # previous secret still accepted
    assert not jar.verify(addr, hello, c, 200.0)        # two rotations later: gone
    assert not jar.verify(("10.0.0.2", 4000), hello, jar.make(addr, hello, 200.0), 200.0)
    assert not jar.verify(addr, b"other", jar.make(addr, hello, 200.0), 200.0)


# the handshake in-process

def test_handshake_then_application_data_both_ways():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK)
    c.hello()
    assert srv.half_open_count == 1
    (f6,) = c.finish()
    assert [type(e) for e in c.events] == [Established]
    assert srv.half_open_count == 0 and srv.session_count == 1
    assert [r.type for r in wire.decode_records(f6)] == [wire.CHANGE_CIPHER_SPEC, wire.HANDSHAKE]
    assert c.send(c.app_record(b"ping")) == [] and c.events[-1] == AppData(c.addr, b"ping")
    assert c.open(srv.seal(c.addr, b"pong")) == [b"pong"]


def test_gcm_suite_for_native_tls_clients():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK, suite=0x00A8)
    c.hello()
    c.finish()
    assert c.events[-1].suite == 0x00A8
    assert c.open(srv.seal(c.addr, b"x" * 100)) == [b"x" * 100]


def test_replayed_application_record_is_dropped():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK)
    c.hello()
    c.finish()
    rec = c.app_record(b"once")
    c.send(rec)
    c.send(rec)
    assert [e.data for e in c.events if isinstance(e, AppData)] == [b"once"]


def test_tampered_application_record_is_dropped_silently():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK)
    c.hello()
    c.finish()
    rec = bytearray(c.app_record(b"data"))
    rec[-1] ^= 1
    assert c.send(bytes(rec)) == []
    assert not any(isinstance(e, AppData) for e in c.events) and srv.session_count == 1
    assert c.send(c.app_record(b"next")) == [] and c.events[-1].data == b"next"


def test_wrong_key_gets_decrypt_error_and_no_session():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK)
    c.hello()
    (alert,) = c.finish(psk=b"not the key")
    assert wire.decode_records(alert)[0].fragment == bytes((wire.FATAL, wire.DECRYPT_ERROR))
    assert isinstance(c.events[0], Refused) and srv.session_count == 0 and srv.half_open_count == 0


def test_unknown_identity_gets_unknown_psk_identity_alert():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), b"nobody@nowhere", PSK)
    c.hello()
    (alert,) = c.finish()
    assert wire.decode_records(alert)[0].fragment == bytes((wire.FATAL, wire.UNKNOWN_PSK_IDENTITY))
    assert c.events[0].grant is None and srv.half_open_count == 0


def test_refusal_only_after_the_key_is_proved():
    srv = DTLSServer(lambda i, a, n: PSKGrant(PSK, "status suspended"), 0.0)
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK)
    c.hello()
    (alert,) = c.finish()
    assert wire.decode_records(alert)[0].fragment == bytes((wire.FATAL, wire.ACCESS_DENIED))
    c2 = RawClient(srv, ("10.0.0.1", 4001), ID, PSK)
    c2.hello()
    (alert,) = c2.finish(psk=b"guess")
    assert wire.decode_records(alert)[0].fragment == bytes((wire.FATAL, wire.DECRYPT_ERROR))
    assert srv.session_count == 0


def test_duplicate_client_flight_gets_last_flight_again_with_fresh_record_numbers():
    srv = server()
    c = RawClient(srv, ("10.0.0.1", 4000), ID, PSK)
    f4 = c.hello()
    (again,) = c.send(c.ch2)                         # our ServerHello flight "was lost"
    seqs = lambda d: [r.seq for r in wire.decode_records(d)]
    assert len(seqs(again)) == 2 and set(seqs(again)).isdisjoint(seqs(f4))
    (f6,) = c.finish()
    (f6_again,) = c.send(c.flight5())                # our Finished flight "was lost": one resend
    assert [r.epoch for r in wire.decode_records(f6_again)] == [0, 1]
    assert wire.decode_records(f6_again)[1].seq == wire.decode_records(f6)[1].seq + 1
    assert sum(isinstance(e, Established) for e in c.events) == 1


def test_hello_flood_without_cookies_creates_no_state():
    srv = server()
    for i in range(2000):
        hello = client_hello(os.urandom(32))
        (hvr,) = srv.receive(hello, (f"10.{i // 250}.{i % 250}.1", 1000 + i), 0.0)[0]
        assert len(hvr) <= len(hello)                 # no amplification
    assert srv.half_open_count == 0 and srv.session_count == 0


def test_half_open_flood_from_one_source_stays_bounded():
    srv = server(max_half_open_per_host=8, max_half_open=100)
    for port in range(1000, 1200):
        RawClient(srv, ("10.0.0.1", port), ID, PSK).hello()
    assert srv.half_open_count == 8
    for i in range(300):
        RawClient(srv, (f"10.1.{i}.1", 5000), ID, PSK).hello()
    assert srv.half_open_count == 100
    # the newest handshake from the flooding host survived and completes
    c = RawClient(srv, ("10.0.0.1", 9999), ID, PSK)
    c.hello()
    c.finish()
    assert srv.session_count == 1


def test_client_that_never_finishes_expires():
    srv = server(handshake_timeout_s=60)
    RawClient(srv, ("10.0.0.1", 4000), ID, PSK).hello()
    srv.expire(59.0)
    assert srv.half_open_count == 1
    srv.expire(61.0)
    assert srv.half_open_count == 0


@pytest.mark.parametrize("garbage", [b"", b"\x16", os.urandom(13), b"\x16\xfe\xfd" + bytes(10) + b"\xff\xff",
                                     b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\x00\x02ab", os.urandom(300)])
def test_garbage_datagrams_get_no_reply_and_no_state(garbage):
    srv = server()
    assert srv.receive(garbage, ("10.0.0.1", 4000), 0.0) == ([], [])
    assert srv.half_open_count == 0


def test_fragmented_hello_rejected_with_alert():
    srv = server()
    body = b"\xfe\xfd" + bytes(32) + b"\x00\x00\x00\x04\xc0\xa8\x00\xff\x01\x00"
    frag = bytes((wire.CLIENT_HELLO,)) + (len(body) + 10).to_bytes(3, "big") + b"\x00\x00" + bytes(3) \
        + len(body).to_bytes(3, "big") + body
    (alert,), _ = srv.receive(wire.encode_record(wire.HANDSHAKE, 0, 0, frag), ("10.0.0.1", 4000), 0.0)
    assert wire.decode_records(alert)[0].fragment == bytes((wire.FATAL, wire.HANDSHAKE_FAILURE))


def test_hello_without_a_shared_suite_fails():
    srv = server()
    addr = ("10.0.0.1", 4000)
    rnd = os.urandom(32)
    (hvr,), _ = srv.receive(client_hello(rnd, suites=(0x008C,)), addr, 0.0)
    cookie = wire.decode_handshakes(wire.decode_records(hvr)[0].fragment)[0].body[3:]
    (alert,), _ = srv.receive(client_hello(rnd, cookie, msg_seq=1, suites=(0x008C,)), addr, 0.0)
    assert wire.decode_records(alert)[0].fragment == bytes((wire.FATAL, wire.HANDSHAKE_FAILURE))
    assert srv.half_open_count == 0
