"""A board's health report reaching the real verifier (`janua serve --dev` subprocess) on each path the
board already talks on: main.py on the unix port (esp32 heap) authenticating over UDP, HTTP and DTLS
(the report piggy-backed on binary auth, or POST /telemetry in the DTLS session), and the OTA check
(OTAClient.check with a report). GET /v1/devices/{id}/health shows what the board sent."""

import json

import pytest

from tools.boards import FIRMWARE_DIR
from tools.demo import Verifier

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("health"))
    yield v
    v.stop()


def board(verifier, mp, serial, transport, **extra):
    pkg = verifier.api("POST", "/v1/devices", {"serial_number": serial})
    cfg = {"device_id": pkg["device_id"], "tenant": pkg["tenant"], "master_secret": pkg["master_secret"],
           "server": {"host": "127.0.0.1", "udp_port": verifier.udp_port, "http_port": verifier.http_port,
                      "dtls_port": verifier.dtls_port},
           "transport": transport, **extra}
    (mp.flash / "janua.json").write_text(json.dumps(cfg))
    return pkg["device_id"]


def boot(mp):
    p = mp.raw("exec(open(%r).read())\n" % str(FIRMWARE_DIR / "main.py"))
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip().splitlines()[0]


@pytest.mark.parametrize("transport,via", [("udp", "binauth"), ("http", "binauth"), ("dtls", "coap")])
def test_first_boot_reports_on_the_auth_path(verifier, mp, transport, via):
    dev = board(verifier, mp, "H-" + transport, transport)
    line = boot(mp)
    assert line.startswith("janua: authenticated device=" + dev), line
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert doc["via"] == via
    assert doc["operational"]["boot_count"] == 1
    assert doc["operational"]["uptime_s"] is not None and doc["resources"]["heap_free"] > 0
    assert doc["security"]["auth_failures"] == 0 and doc["operational"]["errors"] == 0
    assert doc["bucket"] == "healthy" and doc["score"] == 100
    state = json.loads((mp.flash / "janua_state.json").read_text())
    assert state["health_at"] == state["at"]         # the report was answered: not due for an hour


def test_every_boot_reports_once_then_every_interval(verifier, mp):
    dev = board(verifier, mp, "H-again", "udp")
    out = mp("""
import json
from janua.app import run
print(json.dumps([run(), run()]))
""")[0]
    assert all(line.startswith("janua: authenticated") for line in out), out
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    first = doc["received_at"]
    assert doc["operational"]["boot_count"] == 1        # the second run of the boot sent 20 bytes
    st = json.loads((mp.flash / "janua_state.json").read_text())
    assert boot(mp).startswith("janua: authenticated")  # boot 2: its first run reports again
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert doc["operational"]["boot_count"] == 2 and doc["received_at"] >= first
    st = json.loads((mp.flash / "janua_state.json").read_text())
    st["health_at"] -= 3600                             # an hour after the last report, in one boot
    (mp.flash / "janua_state.json").write_text(json.dumps(st))
    out = mp("""
import json, janua
janua.health_sent = True               # as if this boot had reported already
from janua.app import run
print(json.dumps(run()))
""")
    assert verifier.api("GET", f"/v1/devices/{dev}/health")["operational"]["boot_count"] == 3


def test_every_boot_false_waits_for_the_interval(verifier, mp):
    dev = board(verifier, mp, "H-sleepy", "udp", health={"every_boot": False})
    boot(mp)
    boot(mp)
    assert verifier.api("GET", f"/v1/devices/{dev}/health")["operational"]["boot_count"] == 1


def test_a_board_in_a_reset_loop_is_told_so(verifier, mp):
    # four boots within a minute: boot_count rises by 3 across the reports of the hour (docs/health.md 4)
    dev = board(verifier, mp, "H-loop", "udp")
    for _ in range(4):
        assert boot(mp).startswith("janua: authenticated")
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert doc["operational"]["boot_count"] == 4
    assert [r["code"] for r in doc["recommendations"]] == ["reset_loop"]
    assert doc["score"] == 60 and doc["bucket"] == "degraded"


def test_reports_off_with_interval_zero(verifier, mp):
    dev = board(verifier, mp, "H-off", "udp", health={"interval_s": 0})
    assert boot(mp).startswith("janua: authenticated")
    assert verifier.api("GET", f"/v1/devices/{dev}/health")["via"] is None
    assert "health_at" not in json.loads((mp.flash / "janua_state.json").read_text())


def test_failed_auth_counts_and_the_next_report_carries_it(verifier, mp):
    dev = board(verifier, mp, "H-fail", "udp", udp_timeout=0.3)
    cfg = json.loads((mp.flash / "janua.json").read_text())
    good = cfg["server"]["udp_port"]
    cfg["server"]["udp_port"] = 9            # discard: nobody answers
    (mp.flash / "janua.json").write_text(json.dumps(cfg))
    out = mp("""
import json, janua
from janua.app import run
print(json.dumps(run()))
cfg = json.load(open("janua.json"))
cfg["server"]["udp_port"] = %d
open("janua.json", "w").write(json.dumps(cfg))
print(json.dumps(run()))
""" % good)
    assert out[0].startswith("janua: auth failed") and out[1].startswith("janua: authenticated"), out
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert doc["security"]["auth_failures"] == 1
    assert doc["operational"]["errors"] == 0          # no reply is a failed auth, not a caught exception


def test_ota_check_carries_a_report(verifier, mp):
    dev = board(verifier, mp, "H-ota", "udp")
    out = mp("""
import json
from janua.store import Store
from janua.clock import Clock
from janua.otaclient import OTAClient
from janua import health
cfg = Store().load_config()
c = OTAClient(cfg, Clock())
up = c.check(health.report(None, 4))
print(json.dumps([up, c.health]))
""")[0]
    assert out == [None, "ok"]
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert doc["via"] == "ota" and doc["operational"]["boot_count"] == 4
