"""The device DTLS client (MicroPython unix port, esp32 heap) against `openssl s_server` 3.0:
CCM_8 with and without an identity hint, with and without the extended master secret, data both
ways; through a lossy proxy; the native-tls fall-back (GCM); and the negative cases (wrong key,
replayed and tampered records)."""

import shutil

import pytest

from dtls_peers import (IDENTITY, LossyProxy, PSK_TEXT, client_script, free_udp_port,
                        openssl_server)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

PSK_HEX = PSK_TEXT.hex()
FAST = dict(initial=0.3, max_timeout=2.0, budget=15.0)


def run_pair(mp, server, port, done=False, **kw):
    server.reply_on("ping from device", b"pong from server\n")
    try:
        out = mp(client_script(port, **dict(FAST, **kw)), timeout=60)
        if done:
            # the close_notify is the client's last datagram: let s_server read it before its stdin closes
            # (at EOF on stdin it exits, and a datagram still queued is never printed as DONE)
            server.expect("DONE", timeout=10)
        return out
    finally:
        server.stop()


@pytest.mark.parametrize("hint", [None, "janua-hint"], ids=["no-hint", "hint"])
@pytest.mark.parametrize("ems", [False, True], ids=["no-ems", "ems"])
def test_ccm8_handshake_and_data_both_ways(mp, hint, ems):
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX, hint=hint)
    out = run_pair(mp, srv, port, done=True, ems=ems)
    assert out[0] == {"open": True, "ems": ems, "hint": hint}
    assert out[1] == {"got": "pong from server\n"}
    assert b"CIPHER is PSK-AES128-CCM8" in srv.out
    assert b"Secure Renegotiation IS supported" in srv.out  # the SCSV is sent by default (RFC 5746)
    assert b"ping from device" in srv.out
    # s_server prints this when the client's close_notify arrives.
    assert b"DONE" in srv.out


# Datagram n of each direction: up 0 = ClientHello, 1 = ClientHello+cookie, 2 = CKE/CCS/Finished;
# down 0 = HelloVerifyRequest, 1 = ServerHello..ServerHelloDone, 2 = CCS/Finished.
@pytest.mark.parametrize("drop_up,drop_down", [(0, 1), (1, 2), (2, 0), (2, 2), (None, 1)])
def test_handshake_survives_a_lost_flight_in_each_direction(mp, drop_up, drop_down):
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX, hint="h")

    def edit(way, n, d):
        return [] if n == (drop_up if way == "up" else drop_down) else [d]

    proxy = LossyProxy(port, edit)
    try:
        out = run_pair(mp, srv, proxy.port)
    finally:
        proxy.close()
    assert out[0]["open"] is True
    assert out[1] == {"got": "pong from server\n"}
    dropped = [(w, n) for w, n, k in proxy.log if k == 0]
    assert len(dropped) == (drop_up is not None) + 1


def test_wrong_psk_fails_the_handshake_with_dtls_error(mp):
    # OpenSSL silently drops our Finished (its tag fails under the other key, RFC 6347 4.1.2.7)
    # and never sends its own: the client must give up within its budget, never "connect".
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX)
    try:
        out = mp(client_script(port, psk=b"not the key", initial=0.2, max_timeout=0.5, budget=2.0))
    finally:
        srv.stop()
    assert len(out) == 1 and "error" in out[0], out
    assert b"CIPHER is" not in srv.out


def _is_app_data(d):
    return len(d) > 13 and d[0] == 23


def test_duplicated_application_record_is_delivered_once(mp):
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX)

    def edit(way, n, d):
        return [d, d] if way == "down" and _is_app_data(d) else [d]

    proxy = LossyProxy(port, edit)
    extra = 'print(json.dumps({"again": ch.recv(1.0)}))'
    try:
        out = run_pair(mp, srv, proxy.port, extra=extra)
    finally:
        proxy.close()
    assert out[1] == {"got": "pong from server\n"}
    assert out[2] == {"again": None}  # the replayed copy never surfaces
    assert any(w == "down" and k == 2 for w, n, k in proxy.log)


def test_tampered_application_record_is_dropped_silently(mp):
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX)
    seen = []

    def edit(way, n, d):
        if way == "down" and _is_app_data(d) and not seen:
            seen.append(n)
            t = bytearray(d)
            t[-1] ^= 0x40  # in the tag
            return [bytes(t)]
        return [d]

    proxy = LossyProxy(port, edit)
    # The first reply is tampered; the client stays up and receives the second one.
    srv.reply_on("ping from device", b"first\n")
    script = client_script(proxy.port, recv_timeout=1.0, **FAST).replace(
        "ch.close()", 'print(json.dumps({"state": ch.client.state}))\n'
        '        ch.send(b"again\\n")\n'
        '        print(json.dumps({"got2": ch.recv(5.0).decode()}))\n'
        "        ch.close()")
    srv.reply_on("again", b"second\n")
    try:
        out = mp(script, timeout=60)
    finally:
        srv.stop()
        proxy.close()
    assert out[1] == {"got": None}
    assert out[2] == {"state": 5}  # still OPEN: no alert, no teardown
    assert out[3] == {"got2": "second\n"}
    assert seen


def test_native_tls_fallback_against_gcm_server(mp):
    probe = mp("""
        import json
        from janua.dtls_native import available as native_available
        print(json.dumps(native_available()))
    """)
    if probe != [True]:
        pytest.skip("this MicroPython build's tls has no DTLS client PSK attributes")
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX, cipher="PSK-AES128-GCM-SHA256")
    out = run_pair(mp, srv, port, prefer_native=True)
    assert out[0]["open"] is True and out[0]["ems"] is None  # no pure client: native channel
    assert out[1] == {"got": "pong from server\n"}
    assert b"CIPHER is PSK-AES128-GCM-SHA256" in srv.out



def test_fatal_alert_from_server_raises_dtls_error_with_its_description(mp):
    # A server that offers no CCM_8 suite answers our ClientHello with handshake_failure (40).
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX, cipher="PSK-AES128-GCM-SHA256")
    try:
        out = mp(client_script(port, **FAST))
    finally:
        srv.stop()
    assert out == [{"error": "fatal alert 40"}]


def test_renegotiation_scsv_on_request_and_its_server_extension(mp):
    # The client offers C0A8 plus the SCSV 00FF (ri=True, the default, RFC 5746 3.4), and the
    # server's empty renegotiation_info (ff01, RFC 5746 3.6) must then be accepted.
    port = free_udp_port()
    srv = openssl_server(port, PSK_HEX)
    srv.reply_on("ping from device", b"pong from server\n")
    try:
        out = mp("""
            import json, socket
            from janua import dtls, dtls_udp
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(socket.getaddrinfo("127.0.0.1", %d, 0, socket.SOCK_DGRAM)[0][-1])
            c = dtls.DTLSClient(%r, %r, ri=True)
            hello = c.start()
            ch = dtls_udp.DTLSChannel(s, dtls.DTLSClient(%r, %r, ri=True), 1280)
            ch.handshake(0.3, 2.0, 15.0)
            ch.send(b"ping from device\\n")
            got = ch.recv(5.0)
            ch.close()
            print(json.dumps({"suites": bytes(hello[61:67]).hex(), "ems": ch.client.ems,
                              "got": bytes(got).decode()}))
        """ % (port, IDENTITY, PSK_TEXT, IDENTITY, PSK_TEXT))
    finally:
        srv.stop()
    assert out == [{"suites": "0004c0a800ff", "ems": True, "got": "pong from server\n"}]
    assert b"CIPHER is PSK-AES128-CCM8" in srv.out
    assert b"Secure Renegotiation IS supported" in srv.out
