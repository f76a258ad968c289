"""The board over HTTPS against the real verifier (`janua serve --tls-cert/--tls-key` subprocess, a certificate
from a test CA): main.py authenticates over HTTPS, then an OTA check (devcall) and a device token go over
HTTPS too; the board trusts only the CA written to janua_server_ca.der."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.tls.conftest import PKI
from tools.boards import FIRMWARE_DIR
from tools.demo import Verifier

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tls_verifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("https")
    pki = PKI(d)
    mp = pytest.MonkeyPatch()
    mp.setenv("SSL_CERT_FILE", str(pki.ca_file))        # the host side (tools.api) trusts the test CA
    v = Verifier(d, extra=("--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)))
    yield v, pki
    v.stop()
    mp.undo()


def board(mp, v, pki, serial, tls=True):
    pkg = v.api("POST", "/v1/devices", {"serial_number": serial})
    cfg = {"device_id": pkg["device_id"], "tenant": pkg["tenant"], "master_secret": pkg["master_secret"],
           "server": {"host": "localhost", "http_port": v.http_port, "tls": tls}, "transport": "http"}
    (mp.flash / "janua.json").write_text(json.dumps(cfg))
    der = x509.load_pem_x509_certificate(pki.ca_file.read_bytes()).public_bytes(serialization.Encoding.DER)
    (mp.flash / "janua_server_ca.der").write_bytes(der)
    return pkg["device_id"]


def test_board_authenticates_over_https_and_reports_its_health(tls_verifier, mp):
    v, pki = tls_verifier
    assert v.url.startswith("https://")
    dev = board(mp, v, pki, "TLS-1")
    p = mp.raw("exec(open(%r).read())\n" % str(FIRMWARE_DIR / "main.py"))
    line = p.stdout.strip().splitlines()[0]
    assert line.startswith(f"janua: authenticated device={dev} via http"), p.stdout + p.stderr
    assert v.api("GET", f"/v1/devices/{dev}")["status"] == "active"
    assert v.api("GET", f"/v1/devices/{dev}/health")["via"] == "binauth"


def test_ota_check_over_https(tls_verifier, mp):
    v, pki = tls_verifier
    board(mp, v, pki, "TLS-2")
    out = mp("""
import json
from janua.store import Store
from janua.clock import Clock
from janua.otaclient import OTAClient
cfg = Store().load_config()
c = OTAClient(cfg, Clock())
print(json.dumps([c.check(), c.tls is not None]))
""")[0]
    assert out == [None, True]           # answered (authenticated) over HTTPS: no update offered


def test_device_token_over_https(tls_verifier, mp):
    v, pki = tls_verifier
    board(mp, v, pki, "TLS-4")
    out = mp("""
import json
from janua.store import Store
from janua.clock import Clock
from janua.token import TokenStore
cfg = Store().load_config()
t = TokenStore(cfg, Clock())
t.obtain()
print(json.dumps([t.tls is not None, t.bearer().startswith("Bearer ey")]))
""")[0]
    assert out == [True, True]


def test_plain_http_board_gets_nothing_from_the_https_port(tls_verifier, mp):
    v, pki = tls_verifier
    board(mp, v, pki, "TLS-3", tls=False)
    p = mp.raw("exec(open(%r).read())\n" % str(FIRMWARE_DIR / "main.py"))
    assert p.stdout.strip().splitlines()[0].startswith("janua: auth failed: http"), p.stdout + p.stderr


def test_provisioned_over_https_the_virtual_board_authenticates_over_https(tls_verifier, tmp_path):
    # what a user types: janua flash, janua provision --server https://... --ca-file, then a reset
    from tools.demo import _janua, reset_and_read
    from tools.boards import vboard_wifi_args
    from tools.vboard import VirtualBoard
    v, pki = tls_verifier
    vb = VirtualBoard(board="esp32", flash_dir=tmp_path / "flash")
    port = vb.start()
    try:
        _janua("flash", "--port", port, "--board", "esp32")
        server = f"https://localhost:{v.http_port}"
        env = {k: val for k, val in os.environ.items() if k != "SSL_CERT_FILE"}   # --ca-file alone is trusted
        r = subprocess.run([sys.executable, "-m", "tools", "provision", "--serial", "TLS-VB", "--port", port,
                            "--board", "esp32", "--server", server, "--ca-file", str(pki.ca_file),
                            "--token-file", str(v.token_file), "--transport", "http", *vboard_wifi_args("esp32")],
                           capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        assert r.returncode == 0 and "provisioned device" in r.stdout, r.stdout + r.stderr
        cfg = json.loads((vb.root / "janua.json").read_text())
        assert cfg["server"]["tls"] is True and cfg["server"]["host"] == "localhost"
        der = (vb.root / "janua_server_ca.der").read_bytes()
        assert x509.load_der_x509_certificate(der).subject.rfc4514_string() == "CN=janua test CA"
        line = reset_and_read(port)
        assert line.startswith("janua: authenticated device=" + cfg["device_id"]) and "via http" in line, line
    finally:
        vb.stop()


def test_an_https_server_without_ca_file_registers_nothing(tls_verifier):
    from tools.demo import _janua
    v, _ = tls_verifier
    r = _janua("provision", "--serial", "TLS-NOCA", "--server", f"https://localhost:{v.http_port}",
               "--token-file", str(v.token_file), check=False)
    assert r.returncode == 1
    assert "an https:// --server needs --ca-file" in r.stderr
