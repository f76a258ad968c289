"""The device DTLS client against GnuTLS (`gnutls-serv`, forced to PSK + AES-128-CCM-8, DTLS 1.2;
it echoes what it receives), against a python-mbedtls 2.10 (Mbed TLS 2.28) PSK server
(mbedtls_echo_server.py, CCM_8 only, cookies on), and the device CoAP client over DTLS against
libcoap's `coap-server-openssl` and `coap-server-gnutls` (Debian packages gnutls-bin,
libcoap3-bin; PyPI python-mbedtls). Each test is skipped when its peer is not installed."""

import shutil
import sys
from pathlib import Path

import pytest

from dtls_peers import IDENTITY, PSK_TEXT, Peer, client_script, free_udp_port

PRIORITY = "NORMAL:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8:-VERS-ALL:+VERS-DTLS1.2"
FAST = dict(initial=0.3, max_timeout=2.0, budget=15.0)


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed (Debian: %s)" % (
            tool, "gnutls-bin" if tool.startswith("gnutls") else "libcoap3-bin"))


@pytest.fixture
def gnutls_server(tmp_path):
    need("gnutls-serv")
    pw = tmp_path / "psk.txt"
    pw.write_text("%s:%s\n" % (IDENTITY.decode(), PSK_TEXT.hex()))
    port = free_udp_port()
    srv = Peer(["gnutls-serv", "--udp", "-p", str(port), "--pskpasswd", str(pw),
                "--priority", PRIORITY], ready="listening on IPv4")
    yield port, srv
    srv.p.terminate()
    srv.stop()


@pytest.mark.parametrize("ems", [False, True], ids=["no-ems", "ems"])
def test_gnutls_serv_ccm8_echo(mp, gnutls_server, ems):
    port, srv = gnutls_server
    out = mp(client_script(port, ems=ems, **FAST))
    assert out[0] == {"open": True, "ems": ems, "hint": None}
    assert out[1] == {"got": "ping from device\n"}  # gnutls-serv echoes


def test_gnutls_serv_wrong_key_fails(mp, gnutls_server):
    port, srv = gnutls_server
    out = mp(client_script(port, psk=b"wrong key", initial=0.2, max_timeout=0.5, budget=2.0))
    assert len(out) == 1 and "error" in out[0]
    srv.expect("invalid decryption")  # it saw our Finished under the other key and dropped it


COAP_GET = """
import json
from janua import dtls_udp, coap
ch = dtls_udp.connect("127.0.0.1", %d, %r, %r, initial=0.3, max_timeout=2.0, budget=15.0)
m = coap.request(ch, coap.GET, "", mid=0x1234, token=b"\\x5a\\x01", ack_timeout=1.0)
n = coap.request(ch, coap.GET, "no/such", mid=0x1235, token=b"\\x5a\\x02", ack_timeout=1.0)
print(json.dumps({"hint": ch.client.hint.decode(), "type": m[0], "code": m[1], "mid": m[2],
                  "token": m[3].hex(), "payload": m[5].decode(), "code2": n[1]}))
ch.close()
"""


@pytest.mark.parametrize("backend", ["openssl", "gnutls"])
def test_coap_get_over_dtls_to_libcoap_server(mp, backend):
    tool = "coap-server-" + backend
    need(tool)
    port = free_udp_port()
    srv = Peer([tool, "-A", "127.0.0.1", "-p", str(port), "-k", PSK_TEXT.decode(), "-h", "hint"])
    try:
        out = mp(COAP_GET % (port + 1, IDENTITY, PSK_TEXT))  # DTLS listens on port + 1
    finally:
        srv.p.terminate()
        srv.stop()
    r = out[0]
    assert r["hint"] == "hint"
    assert (r["type"], r["code"], r["mid"], r["token"]) == (2, 0x45, 0x1234, "5a01")  # ACK 2.05
    assert "libcoap" in r["payload"]
    assert r["code2"] == 0x84  # 4.04 Not Found


# -- python-mbedtls (Mbed TLS 2.28) as the server ---------------------------------------------------

def _mbedtls_server(port):
    pytest.importorskip("mbedtls")
    return Peer([sys.executable, str(Path(__file__).resolve().parent / "mbedtls_echo_server.py"),
                 str(port), IDENTITY.decode(), PSK_TEXT.hex()], ready="ready")


@pytest.mark.parametrize("ems", [False, True], ids=["no-ems", "ems"])
def test_python_mbedtls_server_ccm8_data_both_ways(mp, ems):
    port = free_udp_port()
    srv = _mbedtls_server(port)
    try:
        out = mp(client_script(port, ems=ems, initial=0.5, max_timeout=2.0, budget=15.0), timeout=60)
        srv.expect("closed")
    finally:
        srv.p.terminate()
        srv.stop()
    assert out[0]["open"] is True
    assert out[0]["ems"] is ems  # Mbed TLS 2.28 echoes extended_master_secret
    assert out[1] == {"got": "pong: ping from device\n"}
    assert b"TLS-PSK-WITH-AES-128-CCM-8" in srv.out
    assert b"got b'ping from device\\n'" in srv.out


def test_python_mbedtls_server_wrong_key_fails(mp):
    port = free_udp_port()
    srv = _mbedtls_server(port)
    try:
        out = mp(client_script(port, psk=b"not the key", initial=0.2, max_timeout=0.5, budget=3.0))
    finally:
        srv.p.terminate()
        srv.stop()
    assert len(out) == 1 and "error" in out[0], out
    assert b"handshake over" not in srv.out
