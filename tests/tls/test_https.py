"""HTTPS on the verifier's HTTP API (verifier/web/tls.py, docs/api.md "TLS"): a real listener with a
certificate of a test CA, a client that verifies against that CA, TLS 1.1 refused, the key's mode, and
which bind addresses may serve plain HTTP."""

import asyncio
import os
import ssl
import time
import warnings

import aiohttp
import pytest

from tests.support import KEK, AdminTenant, AuthDevice
from verifier.app import start_server
from verifier.binauth.core import OK
from verifier.config import Config
from verifier.errors import ConfigError
from verifier.web import tls

OCTETS = {"Content-Type": "application/octet-stream"}


def _config(tmp_path, **kw):
    return Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=time.time, http_port=0, udp_port=None,
                  dtls_port=None, **kw)


@pytest.fixture
async def https(tmp_path, pki):
    h = await start_server(_config(tmp_path, tls_cert=str(pki.cert_file), tls_key=str(pki.key_file)))
    yield h
    await h.close()


async def test_device_and_admin_over_https_verified_against_the_ca(https, pki):
    assert https.url == f"https://127.0.0.1:{https.http_port}"
    assert https.listen_line().endswith(" dtls=off tls=on")
    tenant = AdminTenant(https.app, "acme", time.time)
    [(hex_id, master)] = tenant.provision([{}])
    dev = AuthDevice(hex_id, master, time.time)
    conn = aiohttp.TCPConnector(ssl=pki.client_context())
    async with aiohttp.ClientSession(connector=conn) as s:
        req = dev.request()
        async with s.post(https.url + "/v1/binauth", data=req, headers=OCTETS) as r:
            assert r.status == 200
            reply = dev.reply(req, await r.read())
            assert reply["status"] == OK and reply["authenticated"]
        async with s.get(https.url + f"/v1/devices/{hex_id}", headers=tenant.headers) as r:
            assert r.status == 200
            assert (await r.json())["last_authenticated_at"] is not None


async def test_a_client_without_the_ca_does_not_connect(https):
    async with aiohttp.ClientSession() as s:           # system trust store: the test CA is not in it
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await s.get(https.url + "/healthz")


async def test_plain_http_to_the_https_port_gets_no_answer(https):
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientError):
            await s.get(f"http://127.0.0.1:{https.http_port}/healthz")


def _client(max_version, pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca_file))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")          # let this client offer TLS 1.0/1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)    # TLSv1/TLSv1_1: deprecated, as they should be
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    return ctx


async def _handshake(port, ctx):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    return version


async def test_tls_1_1_is_refused_and_1_2_accepted(https, pki):
    with pytest.raises((ssl.SSLError, ConnectionResetError)):     # the server's alert, or its reset
        await _handshake(https.http_port, _client(ssl.TLSVersion.TLSv1_1, pki))
    assert await _handshake(https.http_port, _client(ssl.TLSVersion.TLSv1_2, pki)) == "TLSv1.2"


def test_server_context_minimum_tls_1_2_no_compression(pki):
    ctx = tls.server_context(str(pki.cert_file), str(pki.key_file))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION and ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.verify_mode == ssl.CERT_NONE            # no client certificates on the HTTP API


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_key_others_may_read_is_refused(pki, mode):
    os.chmod(pki.key_file, mode)
    with pytest.raises(ConfigError, match=f"is accessible by group or others \\(mode 0{mode:o}\\)"):
        tls.server_context(str(pki.cert_file), str(pki.key_file))


def test_a_key_that_does_not_match_the_certificate_is_refused(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    other = tmp_path / "other.key"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(other, 0o600)
    with pytest.raises(ConfigError, match="cannot use the TLS certificate"):
        tls.server_context(str(pki.cert_file), str(other))


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.1", False),
    ("128.0.0.1", False), ("example.com", False), ("localhost.example.com", False)])
def test_is_loopback(host, loopback):
    assert tls.is_loopback(host) is loopback


async def test_start_server_refuses_plain_http_off_loopback(tmp_path):
    with pytest.raises(ConfigError, match="refusing plain HTTP on 0.0.0.0"):
        await start_server(_config(tmp_path, http_host="0.0.0.0"))
    assert not (tmp_path / "janua.db").exists()        # refused before anything was opened


def _sans(pem):
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(a) for a in san.get_values_for_type(x509.IPAddress)]


@pytest.mark.parametrize("host,dns,ips", [
    ("127.0.0.1", ["localhost"], ["127.0.0.1", "::1"]),
    ("192.0.2.10", ["localhost"], ["127.0.0.1", "192.0.2.10", "::1"]),
    ("2001:db8::7", ["localhost"], ["127.0.0.1", "::1", "2001:db8::7"]),
    ("verifier.example.test", ["localhost", "verifier.example.test"], ["127.0.0.1", "::1"]),
])
def test_self_signed_names(tmp_path, host, dns, ips):
    pem, key, created = tls.ensure_self_signed(tmp_path / "j.db", host)
    assert created and (pem.name, key.name) == ("j.db.tls.pem", "j.db.tls.key")
    assert _sans(pem) == (dns, ips)


def test_self_signed_for_all_addresses_names_this_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(tls.socket, "gethostname", lambda: "bench-host")
    pem, _, _ = tls.ensure_self_signed(tmp_path / "j.db", "0.0.0.0")
    assert _sans(pem) == (["localhost", "bench-host"], ["127.0.0.1", "::1"])


def test_self_signed_half_a_pair_is_refused(tmp_path):
    pem, key, _ = tls.ensure_self_signed(tmp_path / "j.db", "127.0.0.1")
    key.unlink()
    with pytest.raises(ConfigError, match=f"^{pem} exists but {key} does not: remove {pem} to make a new pair$"):
        tls.ensure_self_signed(tmp_path / "j.db", "127.0.0.1")
