"""End to end on the virtual board: a verifier subprocess (`janua serve --dev`), the mosquitto config
it generates (verifier/mqtt/broker.py) on a real broker, and the commands a user types:
`janua flash`, `janua provision --credential certificate --port <pty>`; then the board connects with
its certificate (umqtt.simple, installed as mip would) and publishes on its own topics only; its
suspension puts the certificate on hold (CRL) and disables its MQTT password (dynamic security);
`janua provision --rotate-cert` replaces its certificate and revokes the old one."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto, free_ports
from tests.mqtt_device.conftest import UMQTT_134, Watcher, host_publish
from tools.api import API

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

BOARD = """
import json
from janua.store import Store
from janua import mqtt
cfg = Store().load_config()
try:
%s
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "msg": str(e)}))
"""


def janua(*a):
    r = subprocess.run([sys.executable, "-m", "tools", *a], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def on_board(port, body):
    from tools import mpremote_util
    code = BOARD % "\n".join("    " + ln for ln in body.strip("\n").splitlines())
    out = mpremote_util.exec_(port, code)
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]


def _broker_config(db, out_dir):
    """What `janua mqtt config --db DB --out DIR` does: the verifier's registry writes the broker directory."""
    from verifier import keys
    from verifier.mqtt import broker as mqtt_broker
    from verifier.config import Config, load_kek
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(db))
    try:
        base = free_ports(1)[0]
        return mqtt_broker.write_config(st, keys.Sealer(load_kek(Config(db_path=str(db), dev=True))), out_dir,
                                        int(time.time()), base_port=base)
    finally:
        st.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not UMQTT_134.is_file():
        pytest.fail("umqtt.simple 1.3.4 is missing: run `make mplib`")
    from tools import mpremote_util
    from tools.demo import Verifier
    from tools.boards import vboard_wifi_args
    from tools.vboard import VirtualBoard
    work = tmp_path_factory.mktemp("mqtt-e2e")
    v = Verifier(work)
    mq = vb = None
    st = {"v": v}
    try:
        conf = _broker_config(v.db, work / "broker")
        mq = Mosquitto(work / "mq", conf=work / "broker").start()
        vb = VirtualBoard("esp32", work / "flash")
        vb.start()
        flashed = janua("flash", "--port", vb.port, "--board", "esp32")   # umqtt.simple too (package.json deps)
        auth = ["--server", v.url, "--token-file", str(v.token_file)]
        out = janua("provision", "--serial", "MQTT-1", "--port", vb.port, "--credential", "certificate",
                    "--mqtt-password", "--udp-port", str(v.udp_port), "--transport", "udp", *vboard_wifi_args("esp32"),
                    *auth)
        dev = out.split("provisioned device ")[1].split()[0]
        # Its first binary authentication (UDP) makes the device active in the registry.
        auth_line = mpremote_util.exec_(vb.port, "from janua.app import run\nprint(run())").strip().splitlines()[-1]
        # A second device, provisioned without a board: its package (key included) is printed once.
        other_out = janua("provision", "--serial", "MQTT-2", "--credential", "certificate", *auth)
        other = json.loads(other_out[other_out.index("{"):])
        st.update(mq=mq, vb=vb, work=work, dev=dev, other=other, conf=conf, auth=auth, auth_line=auth_line,
                  flashed=flashed)
        yield st
    finally:
        if vb is not None:
            vb.stop()
        if mq is not None:
            mq.stop()
        v.stop()
        if st["v"] is not v:    # restarted by a test
            st["v"].stop()


def _watcher(stack):
    """A host-side subscriber of the tenant's listener with its own certificate and read access to the tree."""
    import ssl

    from verifier.mqtt import broker as mb
    work, cfg = stack["work"], json.loads((stack["vb"].root / "janua.json").read_text())
    short = cfg["mqtt"]["topic_prefix"].split("/")[1]
    tdir = work / "broker" / "tenants" / short
    acl = tdir / "acl"
    if "user watcher" not in acl.read_text():
        acl.write_text(acl.read_text() + f"user watcher\ntopic read janua/{short}/#\n")
        stack["mq"].reload()
    from verifier.mqtt import x509 as vx
    # The watcher's certificate comes from the tenant CA through the verifier's own code (test only).
    from verifier.config import Config, load_kek
    from verifier.keys import Sealer
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(stack["v"].db))
    try:
        tenant = next(t for t in st.list_tenants_brief() if mb.tenant_short_id(t["id"]) == short)
        ca = vx.TenantCA.load(st, Sealer(load_kek(Config(db_path=str(stack["v"].db), dev=True))), tenant)
    finally:
        st.close()
    cert, key = vx.issue_device(ca.cert, ca.key, "watcher", "watcher", int(time.time()))
    (work / "watcher.pem").write_bytes(vx.cert_pem(cert))
    (work / "watcher.key").write_bytes(vx.key_pem(key))
    ctx = ssl.create_default_context(cafile=str(tdir / "ca.pem"))
    ctx.load_cert_chain(str(work / "watcher.pem"), str(work / "watcher.key"))
    return Watcher(cfg["mqtt"]["port"], ctx, f"janua/{short}/#"), cfg


def test_flash_installs_umqtt_from_the_firmwares_deps(stack):
    assert "not found locally" not in stack["flashed"], stack["flashed"]
    lib = stack["vb"].root / "lib" / "umqtt"       # on the board's LittleFS
    assert (lib / "simple.mpy").is_file() and not (lib / "simple.py").exists()
    assert on_board(stack["vb"].port, "from umqtt.simple import MQTTClient\nprint(json.dumps({'ok': 1}))") == [{"ok": 1}]


def test_provision_writes_the_certificate_files_and_mqtt_settings_onto_the_board(stack):
    flash = stack["vb"].root                        # the board's LittleFS
    cfg = json.loads((flash / "janua.json").read_text())
    assert cfg["device_id"] == stack["dev"]
    assert cfg["mqtt"]["topic_prefix"].endswith("/" + stack["dev"])
    assert cfg["mqtt"]["port"] in stack["conf"]["tenants"].values()
    assert cfg["mqtt"]["password_port"] == stack["conf"]["dynsec_port"] and len(cfg["mqtt"]["password"]) == 43
    from cryptography import x509
    cert = x509.load_der_x509_certificate((flash / "janua_cert.der").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == stack["dev"]
    ca = x509.load_der_x509_certificate((flash / "janua_ca.der").read_bytes())
    assert cert.issuer == ca.subject
    assert not [n for n in flash.listdir() if n.endswith(".tmp")]


def test_board_connects_with_its_certificate_and_publishes(stack):
    w, cfg = _watcher(stack)
    try:
        out = on_board(stack["vb"].port, """
s = mqtt.connect(cfg)
s.publish("telemetry", b"hello from the virtual board")
print(json.dumps({"ok": s.prefix}))
s.close()
""")
        assert out == [{"ok": cfg["mqtt"]["topic_prefix"]}], out
        assert w.wait_for(cfg["mqtt"]["topic_prefix"] + "/telemetry", b"hello from the virtual board")
    finally:
        w.close()


def test_another_devices_topic_is_refused_to_the_board(stack):
    other = stack["other"]
    flash = stack["vb"].root                        # the board's LittleFS
    cfg = json.loads((flash / "janua.json").read_text())
    import base64
    o = {"id": other["device_id"], "cert_der": base64.b64decode(other["certificate_der"]),
         "key_der": base64.b64decode(other["key_der"]), "ca_der": base64.b64decode(other["ca_der"]),
         "prefix": other["mqtt"]["topic_prefix"], "port": other["mqtt"]["port"]}
    host_publish(stack["work"], o, "state", b"not for you")      # retained on the other device's topic
    w, _ = _watcher(stack)
    try:
        out = on_board(stack["vb"].port, """
got = []
s = mqtt.connect(cfg)
s.on_message = lambda t, m: got.append([t.decode(), m.decode()])
try:
    s.subscribe_to(%r)
except mqtt.MQTTRefused:
    pass
s.publish_to(%r, b"forged")
s.subscribe("marker")
s.publish("marker", b"m")
n = 0
while n < 20 and not got:
    s.wait()
    n += 1
print(json.dumps({"got": got}))
s.close()
""" % (o["prefix"] + "/state", o["prefix"] + "/cmd"))
        assert out == [{"got": [[cfg["mqtt"]["topic_prefix"] + "/marker", "m"]]}], out
        assert w.wait_for(cfg["mqtt"]["topic_prefix"] + "/marker", b"m")
        assert (o["prefix"] + "/cmd", b"forged") not in w.messages
    finally:
        w.close()


def test_board_reconnects_while_the_verifier_is_down_and_after_it_restarts(stack):
    """Certificate logins need only the broker: the board connects with the verifier stopped, and again
    once a new verifier process runs on the same registry."""
    from tools.demo import Verifier
    login = "s = mqtt.connect(cfg)\ns.publish('up', b'r')\nprint(json.dumps({'ok': True}))\ns.close()"
    stack["v"].stop()
    assert on_board(stack["vb"].port, login) == [{"ok": True}]
    stack["v"] = Verifier(stack["work"])
    assert stack["v"].api("GET", f"/v1/devices/{stack['dev']}")["device_id"] == stack["dev"]
    assert on_board(stack["vb"].port, login) == [{"ok": True}]


def test_suspension_stops_the_password_and_puts_the_certificate_on_hold(stack):
    """The board (active since its first binary auth) logs in with the MQTT password `janua provision
    --mqtt-password` wrote into its config, over TLS. Suspended, the board's password login is refused by the
    broker (dynamic security, CONNACK 5) and its certificate by the CRL; a host-side client with the same
    password too. Resumed, all work again."""
    import paho.mqtt.client as mqtt
    v, dev, port = stack["v"], stack["dev"], stack["vb"].port
    assert "authenticated" in stack["auth_line"], stack["auth_line"]
    api = API(v.url, token_file=str(v.token_file))
    cfg = json.loads((stack["vb"].root / "janua.json").read_text())["mqtt"]

    def host_password_login():
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=dev, protocol=mqtt.MQTTv311)
        c.username_pw_set(dev, cfg["password"])
        c.tls_set(ca_certs=str(stack["work"] / "broker" / "tenants" / cfg["topic_prefix"].split("/")[1] / "ca.pem"))
        try:
            c.connect(cfg["host"], cfg["password_port"], keepalive=10)
        except OSError:
            return "unreachable"
        box = {}
        c.on_connect = lambda cl, u, f, rc, p=None: box.setdefault("rc", rc)
        deadline = time.monotonic() + 10
        while "rc" not in box and time.monotonic() < deadline:
            c.loop(0.1)
        c.disconnect()
        return "ok" if box.get("rc") is not None and not box["rc"].is_failure else str(box.get("rc"))

    cert_login = "s = mqtt.connect(cfg)\nprint(json.dumps({'ok': True}))\ns.close()"
    pw_login = ("s = mqtt.connect(cfg, password=cfg['mqtt']['password'])\ns.publish('up', b'pw')\n"
                "print(json.dumps({'ok': True}))\ns.close()")
    assert on_board(port, pw_login) == [{"ok": True}]
    assert host_password_login() == "ok"
    api.call("POST", f"/v1/devices/{dev}/lifecycle", {"action": "suspend", "reason": "test"})
    refused = on_board(port, pw_login)
    assert refused[0].get("error") == "MQTTRefused" and "not authorized" in refused[0]["msg"], refused
    assert host_password_login() != "ok"
    held = on_board(port, cert_login)
    assert held[0].get("error") == "MQTTTLSError", held
    api.call("POST", f"/v1/devices/{dev}/lifecycle", {"action": "resume"})
    assert on_board(port, pw_login) == [{"ok": True}]
    assert host_password_login() == "ok"
    assert on_board(port, cert_login) == [{"ok": True}]


def test_certificate_login_is_seen_by_the_verifier(stack):
    """The board's status message after a certificate login reaches the verifier's subscriber: last-seen
    moves and the audit log has an mqtt.online entry."""
    v, dev, port = stack["v"], stack["dev"], stack["vb"].port
    api = API(v.url, token_file=str(v.token_file))
    before = api.call("GET", f"/v1/devices/{dev}")["last_seen_at"]
    time.sleep(1.1)                               # last-seen has a one-second resolution
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert on_board(port, "s = mqtt.connect(cfg)\nprint(json.dumps({'ok': True}))\ns.close()") == [{"ok": True}]
        seen = api.call("GET", f"/v1/devices/{dev}")["last_seen_at"]
        if seen is not None and (before is None or seen > before):
            break
        time.sleep(1)      # the subscriber may still be connecting (a restarted verifier polls every 2 s)
    else:
        raise AssertionError("the verifier never saw the board's certificate login")


def test_board_health_report_over_mqtt_reaches_the_verifier(stack):
    """connect(report=...) publishes the board's report on <prefix>/health; the verifier's subscriber
    ingests it (docs/health.md 2.3): the device's health document shows it, via mqtt."""
    v, dev, port = stack["v"], stack["dev"], stack["vb"].port
    api = API(v.url, token_file=str(v.token_file))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = on_board(port, """
from janua import health
import janua_hal
s = mqtt.connect(cfg, report=health.report(janua_hal, 7))
print(json.dumps({"ok": True}))
s.close()
""")
        assert out == [{"ok": True}], out
        doc = api.call("GET", f"/v1/devices/{dev}/health")
        if doc["via"] == "mqtt":
            break
        time.sleep(1)      # the subscriber may still be connecting
    else:
        raise AssertionError("the verifier never ingested the board's MQTT health report")
    assert doc["operational"]["boot_count"] == 7 and doc["resources"]["heap_free"] > 0


def janua_fails(*a):
    r = subprocess.run([sys.executable, "-m", "tools", *a], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert r.returncode == 1, r.stdout + r.stderr
    return r.stderr


def _auth(stack):
    """--server/--token-file of the verifier running now (a test above restarts it on another port)."""
    return ["--server", stack["v"].url, "--token-file", str(stack["v"].token_file)]


def _unrevoked(api, dev):
    return [c["serial"] for c in api.call("GET", f"/v1/devices/{dev}/certificate")["certificates"]
            if c["revoked_at"] is None]


def _host_login(stack, name, cert_der, key_der):
    """A host-side client logging in with this certificate and key as the board's device (client id = CN)."""
    import base64

    from tests.mqtt_verifier.conftest import Client, write_identity
    cfg = json.loads((stack["vb"].root / "janua.json").read_text())["mqtt"]
    cert, key = write_identity(stack["work"] / name, {"certificate_der": base64.b64encode(cert_der).decode(),
                                                      "key_der": base64.b64encode(key_der).decode()})
    ca = stack["work"] / "broker" / "tenants" / cfg["topic_prefix"].split("/")[1] / "ca.pem"
    c = Client(stack["dev"], cfg["port"], ca=ca, cert=cert, key=key)
    try:
        return c.connect()
    finally:
        c.close()


@pytest.mark.parametrize("wrong", ["without_port", "board_of_another_device"])
def test_rotate_cert_refuses_before_issuing(stack, wrong):
    """Without --port there is nowhere to put the new key; a board that is another device must not get this
    device's certificate. Either way nothing is issued and nothing revoked."""
    v, dev, other = stack["v"], stack["dev"], stack["other"]["device_id"]
    api = API(v.url, token_file=str(v.token_file))
    target = dev if wrong == "without_port" else other       # the board at the port is `dev`
    before = api.call("GET", f"/v1/devices/{target}/certificate")["certificates"]
    args = ["provision", "--rotate-cert", target, *_auth(stack)]
    err = janua_fails(*(args if wrong == "without_port" else args + ["--port", stack["vb"].port]))
    assert err.startswith("janua: ")
    assert ("--rotate-cert needs --port" in err) if wrong == "without_port" else (f"is device {dev}, not" in err)
    assert api.call("GET", f"/v1/devices/{target}/certificate")["certificates"] == before


def test_rotate_cert_puts_a_new_certificate_on_the_board_and_revokes_the_old_one(stack):
    """`janua provision --rotate-cert ID --port P`: the board's files hold the new certificate and its key, the
    board connects with them to the real broker (checked by the command, then again here), the old serial is in
    the CRL as superseded, and the broker refuses the old certificate while it takes the new one."""
    from cryptography import x509
    v, dev, port, flash = stack["v"], stack["dev"], stack["vb"].port, stack["vb"].root
    api = API(v.url, token_file=str(v.token_file))
    old_cert, old_key = (flash / "janua_cert.der").read_bytes(), (flash / "janua_key.der").read_bytes()
    old = _unrevoked(api, dev)
    assert int(old[-1], 16) == x509.load_der_x509_certificate(old_cert).serial_number
    assert _host_login(stack, "old-before", old_cert, old_key) == "ok"          # control: valid until rotated
    reloads = stack["mq"].log.count("Reloading config")
    out = janua("provision", "--rotate-cert", dev, "--port", port, *_auth(stack))
    assert "connected to" in out and f"revoked {len(old)} previous certificate(s) as superseded" in out, out
    new_cert, new_key = (flash / "janua_cert.der").read_bytes(), (flash / "janua_key.der").read_bytes()
    assert new_cert != old_cert and new_key != old_key and not [n for n in flash.listdir() if n.endswith(".tmp")]
    (new,) = _unrevoked(api, dev)
    parsed = x509.load_der_x509_certificate(new_cert)
    assert parsed.serial_number == int(new, 16) and new not in old
    assert parsed.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == dev
    crl = x509.load_pem_x509_crl(api.call("GET", "/v1/ca")["crl_pem"].encode())
    for serial in old:
        entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
        assert entry is not None, serial
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    assert crl.get_revoked_certificate_by_serial_number(int(new, 16)) is None
    assert on_board(port, "s = mqtt.connect(cfg)\nprint(json.dumps({'ok': True}))\ns.close()") == [{"ok": True}]
    deadline = time.monotonic() + 10                    # the verifier SIGHUPs the broker after each revocation
    while stack["mq"].log.count("Reloading config") < reloads + len(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)                                     # the log line comes before the CRL is re-read
    assert _host_login(stack, "old-after", old_cert, old_key).startswith("refused")
    assert _host_login(stack, "new", new_cert, new_key) == "ok"
