"""Fixtures for the device side of MQTT: a verifier registry on a tmp SQLite file with two tenants,
device certificates from the tenant CAs (verifier/mqtt/x509.py), a real mosquitto running the config the
verifier writes (verifier/mqtt/broker.py, started by tests/mosquitto.py), a host-side watcher
(paho-mqtt, with its own certificate) and boards: the MicroPython unix port with the esp32 heap,
umqtt.simple installed in the board's lib/ as mip would put it.

umqtt.simple is the 1.3.4 release from PyPI (`make mplib` unpacks it into .venv/mplib). The current
micropython-lib shape (MQTTClient(..., ssl=SSLContext), >= 1.4) is not on PyPI; `umqtt_ctx.py`
here is a thin subclass of 1.3.4 with that constructor, so both shapes run against the broker.
"""

import json
import shutil
import ssl
import threading
import time
from pathlib import Path

import pytest

from tests.mosquitto import Mosquitto, free_port
from tools.boards import MPRun
from verifier import keys
from verifier.registry import core as registry
from verifier.mqtt import broker as mb
from verifier.mqtt import x509 as vx
from verifier.store import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]
UMQTT_134 = ROOT / ".venv" / "mplib" / "umqtt" / "simple.py"
HERE = Path(__file__).resolve().parent
KEK = bytes(range(32))
NOW = int(time.time())   # the broker checks certificate validity against the real clock


def _require_umqtt():
    if not UMQTT_134.is_file():
        pytest.fail("umqtt.simple 1.3.4 is missing: run `make mplib` (it unpacks it from PyPI into .venv/mplib)")


class PKI:
    """Two tenants in a real registry, their CAs, and the broker config the verifier generates."""

    def __init__(self, work):
        self.work = work
        self.storage = SQLiteStorage(str(work / "janua.db"))
        self.sealer = keys.Sealer(KEK)
        self.tenants = {}
        for name in ("acme", "other"):
            t = registry.create_tenant(self.storage, name, NOW)
            self.tenants[name] = t
        self.devices = {}
        port = free_port()
        self.conf = mb.write_config(self.storage, self.sealer, work / "broker", NOW, base_port=port)
        self.ports = {self.tenants[n]["id"]: p for n, p in
                      ((n, self.conf["tenants"][n]) for n in self.tenants)}

    def ca(self, tenant="acme"):
        return vx.TenantCA.load(self.storage, self.sealer, self.tenants[tenant])

    def device(self, tenant="acme", **issue):
        """A registered device with a certificate: dict(id, master, cert_der, key_der, ca_der, prefix, port)."""
        t = self.tenants[tenant]
        res = registry.provision_bulk(self.storage, self.sealer, t["id"],
                                      [{"serial_number": "SN-%d-%s" % (len(self.devices), tenant)}], NOW)
        r = res["results"][0]
        ca = self.ca(tenant)
        cert, key = vx.issue_device(ca.cert, ca.key, r["device_id"], tenant, NOW, **issue)
        d = {"id": r["device_id"], "master": r["master_secret"], "tenant": tenant,
             "cert_der": vx.cert_der(cert), "key_der": vx.key_der(key), "ca_der": vx.cert_der(ca.cert),
             "prefix": mb.topic_prefix(t["id"], r["device_id"]), "port": self.ports[t["id"]]}
        self.devices[d["id"]] = d
        return d

    def watcher_tls(self, tenant="acme"):
        """An ssl context for a host-side client of `tenant`'s listener (its own certificate, CN=watcher)."""
        ca = self.ca(tenant)
        cert, key = vx.issue_device(ca.cert, ca.key, "watcher", tenant, NOW)
        d = self.work / ("watcher-" + tenant)
        d.mkdir(exist_ok=True)
        (d / "cert.pem").write_bytes(vx.cert_pem(cert))
        (d / "key.pem").write_bytes(vx.key_pem(key))
        (d / "ca.pem").write_bytes(vx.cert_pem(ca.cert))
        ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
        ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(pki, tmp_path_factory):
    mq = Mosquitto(tmp_path_factory.mktemp("mq"), conf=pki.work / "broker")
    mq.start()
    yield mq
    mq.stop()


def _acl_for_watcher(pki, tenant="acme"):
    # The generated ACL lets each identity reach janua/<short>/<identity>/#; the watcher (CN=watcher)
    # gets read access to the tenant's whole tree here, a test-only line in the test's copy.
    short = mb.tenant_short_id(pki.tenants[tenant]["id"])
    acl = pki.work / "broker" / "tenants" / short / "acl"
    text = acl.read_text()
    line = "user watcher\ntopic read janua/%s/#\n" % short
    if line not in text:
        acl.write_text(text + line)


class Watcher:
    """A host-side MQTT subscriber (paho) on a tenant's TLS listener; `messages` collects (topic, payload)."""

    def __init__(self, port, ctx, topic):
        import paho.mqtt.client as mqtt
        self.messages = []
        self._got = threading.Condition()
        ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher", protocol=mqtt.MQTTv311)
        c.tls_set_context(ctx)
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe(topic, qos=0)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self.client = c
        if not ready.wait(10):
            self.close()
            raise RuntimeError("the watcher could not subscribe to %s" % topic)

    def _on_message(self, client, userdata, msg):
        with self._got:
            self.messages.append((msg.topic, msg.payload))
            self._got.notify_all()

    def wait_for(self, topic, payload, timeout=10.0):
        """True once (topic, payload) has arrived; False after `timeout` s without it."""
        end = time.monotonic() + timeout
        with self._got:
            while True:
                if (topic, payload) in self.messages:
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._got.wait(left)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def host_publish(work, dev, suffix, payload, retain=True):
    """Publish (QoS 1, retained by default) from the host as device `dev` (id, cert_der, key_der,
    ca_der, prefix, port) with its own certificate; returns once the broker acknowledged it."""
    import paho.mqtt.client as mqtt
    d = Path(work) / ("host-" + dev["id"])
    d.mkdir(exist_ok=True)
    for name, der, kind in (("cert", dev["cert_der"], "CERTIFICATE"), ("ca", dev["ca_der"], "CERTIFICATE")):
        (d / (name + ".pem")).write_text(ssl.DER_cert_to_PEM_cert(der))
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_der_private_key(dev["key_der"], None)
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                                  serialization.NoEncryption()))
    ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=dev["id"], protocol=mqtt.MQTTv311)
    c.tls_set_context(ctx)
    c.connect("127.0.0.1", dev["port"], keepalive=30)
    c.loop_start()
    try:
        info = c.publish(dev["prefix"] + "/" + suffix, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        if not info.is_published():
            raise RuntimeError("the host publish as %s was not acknowledged" % dev["id"])
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture(scope="module")
def watcher(pki, broker):
    _acl_for_watcher(pki)
    broker.reload()
    port = pki.conf["tenants"]["acme"]
    w = Watcher(port, pki.watcher_tls("acme"), "janua/#")
    yield w
    w.close()


def put_board(flash, dev, cfg_extra=None, umqtt="1.3.4", files=True):
    """Write a provisioned board's flash: janua.json (with the mqtt section), the DER files and
    lib/umqtt/simple.py in the chosen shape ("1.3.4", "context" or None for a board without it)."""
    flash = Path(flash)
    flash.mkdir(parents=True, exist_ok=True)
    cfg = {"device_id": dev["id"], "master_secret": dev["master"], "tenant": dev["tenant"],
           "server": {"host": "127.0.0.1"},
           "mqtt": {"host": "127.0.0.1", "port": dev["port"], "topic_prefix": dev["prefix"]}}
    if cfg_extra:
        cfg["mqtt"].update(cfg_extra)
    (flash / "janua.json").write_text(json.dumps(cfg))
    if files:
        (flash / "janua_cert.der").write_bytes(dev["cert_der"])
        (flash / "janua_key.der").write_bytes(dev["key_der"])
        (flash / "janua_ca.der").write_bytes(dev["ca_der"])
    lib = flash / "lib"
    shutil.rmtree(lib / "umqtt", ignore_errors=True)
    if umqtt is None:
        return cfg
    _require_umqtt()
    (lib / "umqtt").mkdir(parents=True, exist_ok=True)
    if umqtt == "1.3.4":
        shutil.copy(UMQTT_134, lib / "umqtt" / "simple.py")
    else:
        shutil.copy(UMQTT_134, lib / "umqtt_134.py")
        shutil.copy(HERE / "umqtt_ctx.py", lib / "umqtt" / "simple.py")
    return cfg


@pytest.fixture
def board(tmp_path):
    """(MPRun on the esp32 profile, flash dir)."""
    mp = MPRun(tmp_path)
    return mp, mp.flash
