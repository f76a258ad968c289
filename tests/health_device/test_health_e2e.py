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


def test_a_heap_that_shrinks_is_told_heap_low(verifier, mp):
    # the application holds all but about 9 KB of the esp32 profile's heap when the board authenticates
    dev = board(verifier, mp, "H-heap", "udp")
    out = mp("""
import gc, json
from janua.app import run
from janua import binauth, udp, hkdf, mac, packet, health, store, clock, failover   # what the run imports, first
import janua_hal, socket
gc.collect()
hog = []
while gc.mem_free() > 9 * 1024:                  # what is left for the run: about 9 KB
    try:
        hog.append(bytearray(48))
    except MemoryError:
        break
print(json.dumps(run()))
""")
    assert out[0].startswith("janua: authenticated"), out
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert doc["resources"]["heap_min"] < 8192
    assert [r["code"] for r in doc["recommendations"]] == ["heap_low"]


def test_a_clock_that_drifts_is_told_clock_drift(verifier, mp):
    # a board whose clock runs 600 s behind: the first run's authenticated TIME_SYNC measures the offset,
    # the report of the next run (an interval later) carries it; the default policy allows 300 s of drift
    dev = board(verifier, mp, "H-drift", "udp")
    out = mp("""
import json, time, janua
from janua.app import run
from janua.clock import Clock
from janua.store import Store
first = run(clock=Clock(time_fn=lambda: time.time() - 600))
st = Store().load_state()
st["health_at"] -= 7200                          # two hours ago (the board's clock is 10 minutes behind)
Store().save_state(st)
second = run(clock=Clock(time_fn=lambda: time.time() - 600))
print(json.dumps([first, second, janua.health_c[4]]))
""")[0]
    assert out[0].startswith("janua: authenticated") and out[1].startswith("janua: authenticated"), out
    assert out[2] is not None and 590 <= out[2] <= 610, out
    doc = verifier.api("GET", f"/v1/devices/{dev}/health")
    assert 590 <= doc["operational"]["clock_offset_s"] <= 610
    assert "clock_drift" in [r["code"] for r in doc["recommendations"]]
