"""The board's HTTP calls over TLS: binary auth over HTTPS from app.run(), a JSON call through httpreq, the
server checked against the provisioned CA and the host name, and clear one-line failures otherwise."""

import json

from tests.https_device.conftest import config

RUN = """
import json
from janua.app import run
print(json.dumps(run()))
"""

CALL = """
import json
from janua.https import context
from janua.httpreq import call
from janua.store import Store
cfg = Store().load_config()
print(json.dumps(call(cfg["server"]["host"], cfg["server"]["http_port"], "GET", "/v1/auth/device/whoami",
                      tls=context(cfg))))
"""


def board(mp, pki, port, **kw):
    (mp.flash / "janua.json").write_text(json.dumps(config(port, **kw)))
    (mp.flash / "janua_server_ca.der").write_bytes(pki.ca_der())


def test_binary_auth_over_https(mp, pki, https_server):
    port, seen = https_server()
    board(mp, pki, port)
    line = mp(RUN)[0]
    assert line == "janua: authenticated device=3f9a0c1b7d2e4a65 via http session=77 expires=1800003600"
    assert seen == [("POST", "/v1/binauth", "TLSv1.2")]   # the unix port's mbedTLS speaks TLS 1.2


def test_json_call_over_https(mp, pki, https_server):
    port, seen = https_server()
    board(mp, pki, port)
    assert mp(CALL)[0] == [200, {"hello": "over tls"}]
    assert seen == [("GET", "/v1/auth/device/whoami", "TLSv1.2")]   # the unix port's mbedTLS speaks TLS 1.2


def test_a_server_of_another_ca_is_refused(mp, pki, https_server, tmp_path):
    from tests.https_device.conftest import PKI
    port, seen = https_server()
    board(mp, pki, port)
    other = PKI(tmp_path, "another CA")
    (mp.flash / "janua_server_ca.der").write_bytes(other.ca_der())
    line = mp(RUN)[0]
    assert line.startswith("janua: auth failed: http: TLS with localhost failed:"), line
    assert seen == []


def test_a_certificate_for_another_host_is_refused(mp, pki, https_server):
    port, seen = https_server(host="verifier.example")
    board(mp, pki, port)
    line = mp(RUN)[0]
    assert line.startswith("janua: auth failed: http: TLS with localhost failed:"), line
    assert seen == []


def test_plain_http_to_an_https_server_gets_no_session(mp, pki, https_server):
    port, seen = https_server()
    board(mp, pki, port, tls=False)
    line = mp(RUN)[0]
    assert line.startswith("janua: auth failed: http"), line
    assert seen == []


def test_missing_ca_file_is_a_clear_error(mp, pki, https_server):
    port, _ = https_server()
    board(mp, pki, port)
    (mp.flash / "janua_server_ca.der").unlink()
    line = mp(RUN)[0]
    assert line == "janua: auth failed: janua_server_ca.der not found (provision with --server-ca)"


HAL = """
import json
def board():
    return "unix"
def connect_network(cfg):
    return None
def set_time(unix):
    with open("set_time.log", "a") as f:
        f.write("%d\\n" % unix)
    return True
"""


def test_after_authenticating_the_board_sets_its_clock_to_the_servers(mp, pki, https_server):
    port, _ = https_server(answer_time=1800000000)
    board(mp, pki, port)
    (mp.lib / "janua_hal.py").write_text(HAL)
    assert mp(RUN)[0].startswith("janua: authenticated")
    assert [int(x) for x in (mp.flash / "set_time.log").read_text().split()] == [1800000000]


def test_set_clock_uses_the_hal_when_it_can(mp):
    out = mp("""
import json
from janua.https import set_clock, _last_time
class Hal:
    got = []
    def set_time(self, t):
        self.got.append(t)
        return True
h = Hal()
open("st.json", "w").write(json.dumps({"at": 1767225600, "clock_source": "server"}))
open("st2.json", "w").write(json.dumps({"at": 5, "clock_source": "none"}))
print(json.dumps([set_clock(1767225600, h), h.got, set_clock(1, object()), _last_time("st.json"),
                  _last_time("st2.json"), _last_time("absent.json")]))
""")[0]
    assert out == [True, [1767225600], False, 1767225600, None, None]
