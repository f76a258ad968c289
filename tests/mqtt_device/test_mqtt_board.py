"""janua.mqtt on the MicroPython unix port (esp32 heap) against a real mosquitto running the config
the verifier generates: mutual TLS with the device certificate, per-device topics, both umqtt.simple
constructor shapes, and the errors a board gets when something is wrong."""

import json

import pytest

from tests.mosquitto import Mosquitto, free_port
from tests.mqtt_device.conftest import NOW, host_publish, put_board
from verifier.mqtt import broker as mb
from verifier.mqtt import x509 as vx

# Runs on the board: `BODY` (indented by 4) inside a try that reports the janua error it raised.
TEMPLATE = """
import json
from janua.store import Store
from janua import mqtt
cfg = Store().load_config()
def report(**kw):
    print(json.dumps(kw))
try:
%s
except Exception as e:
    report(error=type(e).__name__, msg=str(e), code=getattr(e, "code", None))
"""


def board_run(mp, body):
    lines = "\n".join("    " + ln for ln in body.strip("\n").splitlines())
    return mp(TEMPLATE % lines)


PUBLISH = """
s = mqtt.connect(cfg)
s.publish("up", %r)
report(api=s.api, context_api=getattr(s.client, "context_api", False))
s.close()
"""


@pytest.mark.parametrize("shape,api", [("1.3.4", "ssl_params"), ("context", "context")],
                         ids=["umqtt-1.3-ssl_params", "umqtt-1.4-sslcontext"])
def test_board_connects_with_its_certificate_and_publishes_to_its_topic(pki, broker, watcher, board, shape, api):
    mp, flash = board
    dev = pki.device()
    put_board(flash, dev, umqtt=shape)
    payload = b"hello over " + api.encode()
    out = board_run(mp, PUBLISH % payload)
    assert out == [{"api": api, "context_api": shape == "context"}], out
    assert watcher.wait_for(dev["prefix"] + "/up", payload), broker.log[-2000:]


def test_board_publishes_its_health_report_after_the_status(pki, broker, watcher, board):
    """connect(report=...) publishes the report on <prefix>/health (docs/health.md 2.3), right after "online"."""
    mp, flash = board
    dev = pki.device()
    put_board(flash, dev)
    out = board_run(mp, """
from janua import health
s = mqtt.connect(cfg, report=health.encode([None, None, None, 42]))
report(ok=True)
s.close()
""")
    assert out == [{"ok": True}], out
    assert watcher.wait_for(dev["prefix"] + "/health", bytes.fromhex("010008" "2a")), broker.log[-2000:]
    topics = [t for t, _ in watcher.messages if t.startswith(dev["prefix"])]
    assert topics[:2] == [dev["prefix"] + "/status", dev["prefix"] + "/health"]


def test_rsa2048_certificate_connects_too(pki, broker, watcher, board):
    """The optional RSA-2048 key (PKCS#1 DER) loads in MicroPython's tls and passes the broker."""
    mp, flash = board
    dev = pki.device(key_type="rsa2048")
    put_board(flash, dev)
    out = board_run(mp, PUBLISH % b"rsa")
    assert "error" not in out[0], out
    assert watcher.wait_for(dev["prefix"] + "/up", b"rsa")


def test_server_hostname_is_checked_against_the_broker_certificate_by_name(pki, broker, watcher, board):
    """Dial the IP, verify the name the broker certificate carries (localhost) - both umqtt shapes."""
    mp, flash = board
    dev = pki.device()
    for shape in ("1.3.4", "context"):
        put_board(flash, dev, {"server_hostname": "localhost"}, umqtt=shape)
        payload = b"by name " + shape.encode()
        out = board_run(mp, PUBLISH % payload)
        assert "error" not in out[0], out
        assert watcher.wait_for(dev["prefix"] + "/up", payload)


def test_board_receives_messages_on_its_own_subscription(pki, broker, board):
    mp, flash = board
    dev = pki.device()
    put_board(flash, dev)
    out = board_run(mp, """
got = []
s = mqtt.connect(cfg)
s.on_message = lambda t, m: got.append((t.decode(), m.decode()))
s.subscribe("down")
s.check()                      # nothing pending yet: returns at once
before = len(got)
s.publish("down", b"echo", qos=1)
while not got:
    s.wait()
try:
    s.publish("down", b"x", qos=2)
    q2 = "sent"
except mqtt.MQTTError as e:
    q2 = str(e)
report(got=got, before=before, q2=q2)
s.close()
""")
    assert out == [{"got": [[dev["prefix"] + "/down", "echo"]], "before": 0, "q2": "qos must be 0 or 1"}], out


@pytest.mark.parametrize("target", ["another_devices_topic", "the_tenants_whole_tree", "another_tenants_tree"])
def test_subscribing_outside_its_prefix_delivers_nothing(pki, broker, board, target):
    """A retained message sits on another device's topic; the board subscribes there (mosquitto's ACL
    file grants the SUBACK but filters delivery; a refusal, code 0x80, is accepted too), then on its
    own marker topic, and publishes the marker: only the marker reaches it."""
    mp, flash = board
    dev = pki.device()
    other = pki.device("other" if target == "another_tenants_tree" else "acme")
    host_publish(pki.work, other, "state", b"secret of " + other["id"].encode())
    topic = {"another_devices_topic": other["prefix"] + "/state",
             "the_tenants_whole_tree": "janua/%s/#" % mb.tenant_short_id(pki.tenants["acme"]["id"]),
             "another_tenants_tree": "janua/%s/#" % mb.tenant_short_id(pki.tenants["other"]["id"])}[target]
    put_board(flash, dev)
    out = board_run(mp, """
got = []
s = mqtt.connect(cfg)
s.on_message = lambda t, m: got.append([t.decode(), m.decode()])
try:
    s.subscribe_to(%r)
    sub = "granted"
except mqtt.MQTTRefused as e:
    sub = "refused %%d" %% e.code
s.subscribe("marker")
s.publish("marker", b"m")
n = 0
while n < 20 and not any(t.endswith("/marker") for t, m in got):
    s.wait()
    n += 1
report(sub=sub, got=got)
s.close()
""" % topic)
    assert out[0].get("sub") in ("granted", "refused 128"), out
    assert out[0]["got"] == [[dev["prefix"] + "/marker", "m"]], out


def test_a_device_of_the_tenant_sees_retained_messages_of_its_own_topic(pki, broker, board):
    """The positive control of the test above: the same retained message reaches its own device."""
    mp, flash = board
    dev = pki.device()
    host_publish(pki.work, dev, "state", b"mine")
    put_board(flash, dev)
    out = board_run(mp, """
got = []
s = mqtt.connect(cfg)
s.on_message = lambda t, m: got.append([t.decode(), m.decode()])
s.subscribe("state")
s.wait()
report(got=got)
s.close()
""")
    assert out == [{"got": [[dev["prefix"] + "/state", "mine"]]}], out


def test_publishing_to_another_devices_topic_is_dropped_by_the_broker(pki, broker, watcher, board):
    """MQTT 3.1.1 has no negative PUBACK: the broker drops the message. The marker published after it
    on the same connection arrives, so the forged one would have arrived before it."""
    mp, flash = board
    dev, other = pki.device(), pki.device()
    put_board(flash, dev)
    forged = other["prefix"] + "/up"
    out = board_run(mp, """
s = mqtt.connect(cfg)
s.publish_to(%r, b"forged")
s.publish("up", b"marker")
report(ok=True)
s.close()
""" % forged)
    assert out == [{"ok": True}]
    assert watcher.wait_for(dev["prefix"] + "/up", b"marker")
    assert (forged, b"forged") not in watcher.messages
    assert "denied PUBLISH" in broker.log or "Denied PUBLISH" in broker.log


def _refusal_case(pki, case):
    """(device dict, extra mqtt config) for one refused-connection case."""
    if case == "broker_not_signed_by_the_tenant_ca":
        dev = pki.device()
        dev["ca_der"] = pki.device("other")["ca_der"]
        return dev, None
    if case == "certificate_from_another_tenants_ca":
        dev = pki.device()
        foreign = pki.ca("other")
        cert, key = vx.issue_device(foreign.cert, foreign.key, dev["id"], "acme", NOW)
        dev["cert_der"], dev["key_der"] = vx.cert_der(cert), vx.key_der(key)
        return dev, None
    if case == "expired_certificate":
        return pki.device(not_after=NOW - 3600), None
    if case == "key_of_another_certificate":
        dev, twin = pki.device(), pki.device()
        dev["key_der"] = twin["key_der"]
        return dev, None
    if case == "broker_name_not_in_its_certificate":
        return pki.device(), {"server_hostname": "broker.invalid"}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["broker_not_signed_by_the_tenant_ca", "certificate_from_another_tenants_ca",
                                  "expired_certificate", "key_of_another_certificate",
                                  "broker_name_not_in_its_certificate"])
@pytest.mark.parametrize("shape", ["1.3.4", "context"])
def test_tls_refusals_are_reported_as_tls_errors(pki, broker, board, case, shape):
    mp, flash = board
    dev, extra = _refusal_case(pki, case)
    put_board(flash, dev, extra, umqtt=shape)
    out = board_run(mp, "s = mqtt.connect(cfg)\nreport(connected=True)\ns.close()")
    assert out[0].get("error") == "MQTTTLSError", out


def test_connack_refusal_is_reported_with_its_code(pki, board, tmp_path):
    """A TLS listener that takes no passwords: CONNACK 5, raised as MQTTRefused(code=5)."""
    mp, flash = board
    dev = pki.device()
    tdir = pki.work / "broker" / "tenants" / mb.tenant_short_id(pki.tenants["acme"]["id"])
    port = free_port()
    conf = (f"listener {port} 127.0.0.1\ncafile {tdir / 'ca.pem'}\ncertfile {tdir / 'broker.pem'}\n"
            f"keyfile {tdir / 'broker.key'}\nallow_anonymous false\n")
    with Mosquitto(tmp_path / "mq", conf_text=conf):
        put_board(flash, dev, {"password_port": port})
        out = board_run(mp, 's = mqtt.connect(cfg, password="not-a-valid-password")\nreport(connected=True)')
    assert out[0].get("error") == "MQTTRefused" and out[0]["code"] == 5, out
    assert "not authorized" in out[0]["msg"]


def test_missing_umqtt_is_reported_with_the_install_hint(pki, board):
    mp, flash = board
    put_board(flash, pki.device(), umqtt=None)
    out = board_run(mp, "mqtt.connect(cfg)")
    assert out[0]["error"] == "MQTTUnavailable" and "mip install umqtt.simple" in out[0]["msg"], out


def test_unreachable_broker_is_a_transport_error(pki, board):
    mp, flash = board
    put_board(flash, pki.device(), {"port": free_port()})
    out = board_run(mp, "mqtt.connect(cfg)")
    assert out[0]["error"] == "TransportError", out


@pytest.mark.parametrize("missing", ["janua_cert.der", "janua_key.der", "janua_ca.der"])
def test_missing_credential_file_is_a_store_error(pki, board, missing):
    mp, flash = board
    put_board(flash, pki.device())
    (flash / missing).unlink()
    out = board_run(mp, "mqtt.connect(cfg)")
    assert out[0]["error"] == "StoreError" and missing in out[0]["msg"], out


@pytest.mark.parametrize("mqtt_cfg,why", [
    ({}, "mqtt.host"),
    ({"host": "127.0.0.1", "topic_prefix": "janua/x/#"}, "wildcard"),
    ({"host": "127.0.0.1", "topic_prefix": "janua/x/y", "port": 0}, "port"),
])
def test_bad_mqtt_config_is_a_store_error(pki, board, mqtt_cfg, why):
    mp, flash = board
    cfg = put_board(flash, pki.device())
    cfg["mqtt"] = mqtt_cfg
    (flash / "janua.json").write_text(json.dumps(cfg))
    out = board_run(mp, "mqtt.connect(cfg)")
    assert out[0]["error"] == "StoreError" and why in out[0]["msg"], out


def test_tls_handshake_fits_the_esp32_heap(pki, broker, board):
    """The whole connect (umqtt.simple, janua.mqtt, the DER files, the mutual-TLS handshake) runs in
    the esp32 profile's 110 KiB GC heap. The growth is measured with the collector off (an upper
    bound of the peak: nothing is freed in between)."""
    mp, flash = board
    put_board(flash, pki.device())
    out = board_run(mp, """
import gc
from umqtt import simple
gc.collect()
free = gc.mem_free()
base = gc.mem_alloc()
gc.disable()
s = mqtt.connect(cfg)
grown = gc.mem_alloc() - base
gc.enable()
s.publish("up", b"fits")
s.close()
report(free_before=free, grown=grown)
""")
    assert "error" not in out[0], out
    assert 0 < out[0]["grown"] < out[0]["free_before"]


def test_nagle_is_turned_off_before_the_handshake(board):
    """umqtt.simple sends each packet in several small writes: with Nagle on, each waits for the
    broker's delayed ACK (connect went from ~100 ms to ~20 ms on loopback). Both shapes set
    TCP_NODELAY (IPPROTO_TCP 6, option 1) on the socket before wrapping it; during a <= 1.3 connect
    `ussl` is the wrapper, and it is gone afterwards."""
    mp, _ = board
    out = mp("""
import json, sys
from janua import mqtt_tls

class Sock:
    def __init__(self):
        self.opts = []
    def setsockopt(self, *a):
        self.opts.append(list(a))

class TLS:   # stands for a port's ssl module and for an SSLContext
    def wrap_socket(self, sock, **kw):
        return sorted(kw.items())

class Client:
    def connect(self):
        import ussl
        return type(ussl).__name__

s1, s2 = Sock(), Sock()
legacy = mqtt_tls._LegacyTLS(TLS()).wrap_socket(s1, server_hostname="b.example", cadata="x")
named = mqtt_tls._NamedContext(TLS(), "b.example").wrap_socket(s2, server_hostname="1.2.3.4")
during = mqtt_tls.connect_client(Client(), "ssl_params")
print(json.dumps({"opts": [s1.opts, s2.opts], "legacy": legacy, "named": named, "during": during,
                  "ussl_after": "ussl" in sys.modules}))
""")
    r = out[0]
    assert r["opts"] == [[[6, 1, 1]], [[6, 1, 1]]], r
    assert r["legacy"] == [["cadata", "x"], ["server_hostname", "b.example"]]
    assert r["named"] == [["server_hostname", "b.example"]]
    assert r["during"] == "_LegacyTLS" and r["ussl_after"] is False


@pytest.mark.parametrize("claimed", ["another_devices_id", "unregistered_id"])
def test_board_claiming_another_client_id_is_refused_with_connack_5(pki, broker, board, claimed):
    """The janua_clientid plugin on the certificate listener: the board's own valid certificate with a client
    id other than its CN gets CONNACK 5 (MQTTRefused), not a TLS error; with its own id it connects."""
    assert "janua_clientid.so" in (pki.work / "broker" / "mosquitto.conf").read_text(), \
        "the janua_clientid plugin is missing: make .venv/lib/janua_clientid.so"
    mp, flash = board
    dev, other = pki.device(), pki.device()
    put_board(flash, dev)
    claim = other["id"] if claimed == "another_devices_id" else "f" * 16
    out = board_run(mp, "s = mqtt.connect(cfg, client_id=%r)\nreport(connected=True)\ns.close()" % claim)
    assert out[0].get("error") == "MQTTRefused" and out[0]["code"] == 5, out
    out = board_run(mp, "s = mqtt.connect(cfg, client_id=%r)\nreport(connected=True)\ns.close()" % dev["id"])
    assert out == [{"connected": True}], out
