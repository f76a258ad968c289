"""Real DTLS peers against the verifier on real sockets: OpenSSL s_client (CCM-8), python-mbedtls
(CCM-8, with CoAP), MicroPython's native tls (GCM, with CoAP); GnuTLS and libcoap when installed."""

import asyncio
import json
import re

import cbor2
import pytest
from aiocoap import Code, Message
from aiocoap.numbers import ContentFormat

from tests.dtls_verifier.conftest import MICROPYTHON, need, run
from tests.dtls_verifier.peers import MbedTLSClient, coap_request

CCM8 = "PSK-AES128-CCM8"


def s_client(port, identity, psk_hex, *extra):
    return ["openssl", "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}", "-psk_identity", identity,
            "-psk", psk_hex, "-cipher", CCM8, *extra]


def auth_rows(verifier, action="dtls"):
    return [(r["result"], r["device_id"]) for r in verifier.all_audit() if r["kind"] in ("auth", "summary") and r["action"] == action]


async def test_openssl_s_client_ccm8_handshake(verifier, device):
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc == 0, err
    assert "Cipher is PSK-AES128-CCM8" in out and "Protocol  : DTLSv1.2" in out
    assert "Extended master secret: yes" in out and "Secure Renegotiation IS supported" in out
    assert auth_rows(verifier) == [("OK", device.hex)]
    row = [r for r in verifier.all_audit() if r["action"] == "dtls"][0]
    assert row["transport"] == "dtls" and row["tenant_id"] == verifier.tenant["id"]


async def test_openssl_s_client_carries_a_coap_request(verifier, device):
    # s_client sends what it reads from stdin as one application record: here a CoAP POST /auth
    # (first byte 0x42 'B', not one of s_client's line commands), then closes at EOF
    request = coap_request(Code.POST, "auth", payload=b"\n")
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()), stdin=request)
    assert rc == 0 and "Cipher is PSK-AES128-CCM8" in out, err
    assert auth_rows(verifier, "coap.auth") == [("OK", device.hex)]


async def test_provisioning_device_activated_by_first_handshake(verifier):
    dev = verifier.device(status="provisioning")
    rc, out, err = await run(s_client(verifier.port, dev.identity, dev.psk.hex()))
    assert rc == 0, err
    assert verifier.storage.get_device(dev.id)["status"] == "active"


def _mbedtls_coap(port, dev, requests, suite="TLS-PSK-WITH-AES-128-CCM-8"):
    client = MbedTLSClient(port, dev.identity, dev.psk, suite).handshake()
    try:
        return [client.request(code, path, **kw) for code, path, kw in requests]
    finally:
        client.close()


async def test_mbedtls_client_coap_auth_json_and_cbor(verifier, clock):
    dev = verifier.device(permissions=0b0101)
    r_json, r_cbor = await asyncio.to_thread(_mbedtls_coap, verifier.port, dev, [
        (Code.POST, "auth", {}), (Code.POST, "auth", {"mid": 2, "accept": ContentFormat.CBOR})])
    assert r_json.code == Code.CHANGED and r_json.opt.content_format == ContentFormat.JSON
    body = json.loads(r_json.payload)
    assert body["device_id"] == dev.hex and body["permissions"] == 5
    assert body["expires"] == int(clock()) + 3600 and 0 <= body["session"] < 2 ** 32
    assert r_cbor.opt.content_format == ContentFormat.CBOR
    assert cbor2.loads(r_cbor.payload)["device_id"] == dev.hex
    assert auth_rows(verifier, "coap.auth") == [("OK", dev.hex)] * 2


async def test_mbedtls_client_well_known_core_and_permissions(verifier):
    dev = verifier.device(permissions=0b0001)          # telemetry only
    core, tele, cfg, ota, cmds, missing, wrong_method = await asyncio.to_thread(_mbedtls_coap, verifier.port, dev, [
        (Code.GET, ".well-known/core", {}), (Code.POST, "telemetry", {"payload": b"21.5"}),
        (Code.GET, "config", {}), (Code.GET, "ota", {}), (Code.GET, "commands", {}),
        (Code.GET, "nothing/here", {}), (Code.GET, "auth", {})])
    assert core.code == Code.CONTENT and core.opt.content_format == ContentFormat.LINKFORMAT
    assert re.findall(rb"<(/[a-z.-]+)>", core.payload) == [b"/auth", b"/telemetry", b"/config", b"/ota", b"/commands",
                                                                b"/attest"]
    assert tele.code == Code.CHANGED
    assert (cfg.code, ota.code, cmds.code) == (Code.FORBIDDEN,) * 3
    assert missing.code == Code.NOT_FOUND and wrong_method.code == Code.METHOD_NOT_ALLOWED


async def test_permission_change_applies_to_the_open_session(verifier):
    dev = verifier.device(permissions=0b0010)

    def session():
        client = MbedTLSClient(verifier.port, dev.identity, dev.psk).handshake()
        try:
            first = client.request(Code.GET, "config")
            verifier.storage.update_device(verifier.tenant["id"], dev.id, {"permissions": 0})
            second = client.request(Code.GET, "config", mid=2)
            return first, second
        finally:
            client.close()
    first, second = await asyncio.to_thread(session)
    assert first.code == Code.CONTENT and second.code == Code.FORBIDDEN


async def test_micropython_native_tls_gcm_client(verifier, device):
    if not MICROPYTHON.exists():
        pytest.skip("the MicroPython unix port is not installed in the venv")
    req = coap_request(Code.POST, "auth")
    rc, out, err = await run([str(MICROPYTHON), "tests/dtls_verifier/mp_native_client.py", str(verifier.port),
                              device.identity, device.psk.hex(), req.hex()], timeout=30)
    assert rc == 0, (out, err)
    reply = Message.decode(bytes.fromhex(re.search(r"REPLY ([0-9a-f]+)", out).group(1)))
    assert reply.code == Code.CHANGED and json.loads(reply.payload)["device_id"] == device.hex
    assert [r["reason"] for r in verifier.all_audit() if r["action"] == "dtls"] == ["handshake, suite 00A8"]


async def test_metrics_count_dtls_decisions(verifier, device):
    await run(s_client(verifier.port, device.identity, device.psk.hex()))
    await run(s_client(verifier.port, device.identity, "00" * 32))
    import aiohttp
    async with aiohttp.ClientSession() as s, s.get(verifier.handle.url + "/metrics") as r:
        text = await r.text()
    assert 'janua_auth_decisions_total{result="OK",transport="dtls"} 1.0' in text
    assert 'janua_auth_decisions_total{result="SIGNATURE",transport="dtls"} 1.0' in text


# optional peers (Debian: gnutls-bin, libcoap3-bin)

GNUTLS_PRIORITY = "NORMAL:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8:-VERS-ALL:+VERS-DTLS1.2"


async def test_gnutls_cli_ccm8(verifier, device):
    tool = need("gnutls-cli")
    rc, out, err = await run([tool, "--udp", "--pskusername", device.identity, "--pskkey", device.psk.hex(),
                              "--priority", GNUTLS_PRIORITY, "-p", str(verifier.port), "127.0.0.1"], timeout=20)
    assert "Handshake was completed" in out + err, (out, err)
    assert auth_rows(verifier) == [("OK", device.hex)]


@pytest.mark.parametrize("backend", ["openssl", "gnutls"])
async def test_libcoap_client_post_auth(verifier, backend):
    tool = need(f"coap-client-{backend}")
    # libcoap 4.3.1's -k takes the key as a C string: pass the binary PSK as raw argv bytes, so pick a
    # device whose key has no zero byte (about 9 in 10 do)
    dev = next(d for d in (verifier.device() for _ in range(50)) if 0 not in d.psk)
    rc, out, err = await run([tool, "-u", dev.identity, "-k", dev.psk, "-m", "post",
                              f"coaps://127.0.0.1:{verifier.port}/auth"], timeout=20)
    assert json.loads(out)["device_id"] == dev.hex, (out, err)
    assert auth_rows(verifier, "coap.auth") == [("OK", dev.hex)]


@pytest.mark.parametrize("backend", ["openssl", "gnutls"])
async def test_libcoap_client_well_known_core(verifier, backend):
    tool = need(f"coap-client-{backend}")
    dev = next(d for d in (verifier.device() for _ in range(50)) if 0 not in d.psk)
    rc, out, err = await run([tool, "-u", dev.identity, "-k", dev.psk, "-m", "get",
                              f"coaps://127.0.0.1:{verifier.port}/.well-known/core"], timeout=20)
    assert out.startswith("</auth>;"), (out, err)
