"""The verifier's DTLS server against a client whose Finished decrypts but does not verify (a man in the
middle altered the hellos, so the two sides hashed different transcripts), and a forged record that
carries a fresh sequence number (it must not move the replay window). In-process, sans-IO."""

from verifier.dtls import wire
from verifier.dtls.server import AppData, Closed, DTLSServer, Established, PSKGrant, Refused

from tests.dtls_verifier.rawclient import RawClient, client_hello_body

PSK = b"secretPSK"
ID = b"Client_identity"
ADDR = ("10.0.0.1", 4000)


def lookup(identity, addr, now):
    return PSKGrant(PSK) if identity == ID else None


def alert_of(datagram):
    (rec,) = wire.decode_records(datagram)
    return rec.type, rec.epoch, rec.fragment


def client_saw_other_hello(c, suites):
    """Rewrite the client's transcript as if it had sent a ClientHello offering `suites` (a MITM
    forwarded the real hello with a suite stripped): same randoms, so the same keys, another hash."""
    (rec,) = wire.decode_records(c.ch2)
    (sent,) = wire.decode_handshakes(rec.fragment)
    assert c.transcript.startswith(sent.raw)
    body = sent.body
    cookie = body[35 + 1:35 + 1 + body[35]]
    own = wire.encode_handshake(wire.CLIENT_HELLO, 1, client_hello_body(c.random, cookie, suites=suites))
    assert own != sent.raw
    c.transcript = own + c.transcript[len(sent.raw):]


def test_client_finished_over_an_altered_hello_is_refused_with_decrypt_error():
    srv = DTLSServer(lookup, 0.0)
    c = RawClient(srv, ADDR, ID, PSK)
    c.hello()                                          # the server got (C0A8, 00FF)
    client_saw_other_hello(c, (0xC0A8, 0x00A8, 0x00FF))    # the client believes it offered GCM too
    (reply,) = c.finish()
    # the Finished record decrypted (same keys); only its verify_data is wrong: a fatal decrypt_error
    # (51) in epoch 0, no session, nothing half-open left
    assert alert_of(reply) == (21, 0, b"\x02\x33")
    assert [type(e) for e in c.events] == [Refused, Closed]
    assert c.events[0].reason == "bad Finished (wrong key)"
    assert srv.session_count == 0 and srv.half_open_count == 0


def test_client_finished_with_wrong_verify_data_under_the_right_keys_is_refused():
    srv = DTLSServer(lookup, 0.0)
    c = RawClient(srv, ADDR, ID, PSK)
    c.hello()
    c.transcript += b"\x00"                            # any other transcript: 12 wrong bytes of verify_data
    (reply,) = c.finish()
    assert alert_of(reply) == (21, 0, b"\x02\x33")
    assert not any(isinstance(e, Established) for e in c.events)
    assert srv.session(ADDR) is None


def test_the_same_handshake_without_the_alteration_is_established():
    """Control for the two tests above: the unaltered client completes (so they fail for the reason
    they name)."""
    srv = DTLSServer(lookup, 0.0)
    c = RawClient(srv, ADDR, ID, PSK)
    c.hello()
    (f6,) = c.finish()
    assert [type(e) for e in c.events] == [Established]
    assert [(r.type, r.epoch) for r in wire.decode_records(f6)] == [(20, 0), (22, 1)]


def test_forged_record_with_a_fresh_sequence_number_does_not_move_the_replay_window():
    srv = DTLSServer(lookup, 0.0)
    c = RawClient(srv, ADDR, ID, PSK)
    c.hello()
    c.finish()
    assert c.send(c.app_record(b"first")) == []
    seq = c.rec_seq[1]                                 # the next genuine record's number
    # a forgery with that number, and one far ahead (it would slide the window past `seq`)
    for n in (seq, seq + 1000):
        forged = wire.encode_record(wire.APPLICATION_DATA, 1, n, bytes(29))
        assert c.send(forged) == []
    assert c.send(c.app_record(b"genuine")) == []      # carries number `seq`
    assert [e.data for e in c.events if isinstance(e, AppData)] == [b"first", b"genuine"]
    assert srv.session_count == 1
