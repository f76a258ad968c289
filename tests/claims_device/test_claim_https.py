"""The claim over HTTPS on the board (janua.claim with janua.https) on MicroPython (esp32 heap) against the real
verifier over HTTPS (`janua serve --tls-cert/--tls-key`, a certificate from a test CA for localhost, as
tests/https_device/test_https_verifier.py): the image written by `janua claim image --server https://...
--ca-file` (server.tls and janua_server_ca.der), the claim, then binary auth over HTTPS with the claimed identity;
a board holding another CA refuses the verifier and keeps its claim image."""

import json
import shutil

import pytest

from tests.claims_device.test_claim_coap import batch, bulk_image
from tests.tls.conftest import PKI
from tools.demo import Verifier

pytestmark = pytest.mark.e2e
BOOT = "import json\nfrom janua.app import run\nprint(json.dumps(run()))\n"


@pytest.fixture(scope="module")
def tls_verifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("claim-https")
    pki = PKI(d)
    mp = pytest.MonkeyPatch()
    mp.setenv("SSL_CERT_FILE", str(pki.ca_file))        # the host side (tools.api) trusts the test CA
    v = Verifier(d, extra=("--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)))
    yield v, pki
    v.stop()
    mp.undo()


def test_claim_over_https_then_binary_auth_over_https(tls_verifier, mp, tmp_path):
    v, pki = tls_verifier
    assert v.url.startswith("https://")
    bid, sec = batch(v, tmp_path, "https line", device={"transport": "http"})
    img = bulk_image(tmp_path, bid, sec, "CO-TLS-1", "--server", f"https://localhost:{v.http_port}",
                     "--ca-file", str(pki.ca_file))
    assert img["server"] == {"host": "localhost", "http_port": v.http_port, "tls": True}
    (mp.flash / "janua.json").write_text(json.dumps(img))
    shutil.copy(tmp_path / "images" / "janua_server_ca.der", mp.flash / "janua_server_ca.der")
    line = mp(BOOT)[0]
    assert line.startswith("janua: authenticated device=") and " via http " in line and line.endswith("(claimed)")
    cfg = json.loads((mp.flash / "janua.json").read_text())
    # the answer's server is the one the claim came to, over HTTPS: later calls stay on HTTPS
    assert cfg["server"]["host"] == "localhost" and cfg["server"]["tls"] is True
    assert cfg["server"]["http_port"] == v.http_port
    assert v.api("GET", f"/v1/devices/{cfg['device_id']}")["status"] == "active"


def test_a_board_with_another_ca_refuses_the_verifier_and_keeps_its_image(tls_verifier, mp, tmp_path):
    v, _ = tls_verifier
    other = PKI(tmp_path)
    bid, sec = batch(v, tmp_path, "https wrong ca", device={"transport": "http"})
    img = bulk_image(tmp_path, bid, sec, "CO-TLS-2", "--server", f"https://localhost:{v.http_port}",
                     "--ca-file", str(other.ca_file))
    (mp.flash / "janua.json").write_text(json.dumps(img))
    shutil.copy(tmp_path / "images" / "janua_server_ca.der", mp.flash / "janua_server_ca.der")
    line = mp(BOOT)[0]
    assert line.startswith("janua: claim failed: TLS with localhost failed")
    assert json.loads((mp.flash / "janua.json").read_text()) == img
