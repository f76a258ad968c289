"""Fixtures for the verifier side of X.509 and MQTT: the app from create_app on a tmp_path SQLite file with an
injected clock that starts at the real time (the broker checks certificates against the real clock), tenants
with admin tokens and active devices, a real mosquitto running the config directory the verifier writes
(verifier/mqtt/broker.py, started by tests/mosquitto.py on free ports) and a small paho-mqtt client."""

import base64
import queue
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from tests.mosquitto import Mosquitto, free_port, free_ports
from tests.support import KEK, AdminTenant, FakeClock
from verifier.mqtt import broker as mb
from verifier.app import create_app
from verifier.appkeys import SEALER, STORAGE
from verifier.config import Config


class Device:
    def __init__(self, tenant, hex_id, master_hex):
        self.tenant, self.hex, self.id = tenant, hex_id, bytes.fromhex(hex_id)
        self.master = bytes.fromhex(master_hex)
        self.prefix = mb.topic_prefix(tenant.id, hex_id)


class Tenant(AdminTenant):
    def __init__(self, app, name, clock):
        super().__init__(app, name, clock)
        self.name = name

    def device(self, clock):
        (hex_id, master), = self.provision([{}])
        return Device(self, hex_id, master)


@pytest.fixture
def clock():
    return FakeClock(int(time.time()))


@pytest.fixture
def config(tmp_path, clock):
    return Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                  dtls_port=None)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


@pytest.fixture
def app(client):
    return client.server.app


@pytest.fixture
def acme(app, clock):
    return Tenant(app, "acme", clock)


@pytest.fixture
def other(app, clock):
    return Tenant(app, "other", clock)


class Broker:
    """The verifier-generated config running in a real mosquitto; .tls_port(tenant), .password_port."""

    def __init__(self, app, tmp_path, clock, tenants, clientid_plugin=None):
        ports = free_ports(len(tenants) + 1)
        self.password_port = ports[0]
        self.dir = tmp_path / "broker"
        self.conf = mb.write_config(app[STORAGE], app[SEALER], self.dir, int(clock()), base_port=ports[0],
                                    ports={t.id: p for t, p in zip(tenants, ports[1:])},
                                    clientid_plugin=clientid_plugin)
        self.ports = {t.id: p for t, p in zip(tenants, ports[1:])}
        self.mq = Mosquitto(tmp_path / "mq", conf=self.dir).start()

    def tls_port(self, tenant):
        return self.ports[tenant.id]

    def ca_file(self, tenant):
        return self.dir / "tenants" / mb.tenant_short_id(tenant.id) / "ca.pem"

    def reloads(self):
        return self.mq.log.count("Reloading config")

    def wait_reload(self, before, timeout=5.0):
        """Wait until the broker logged a reload after `before` (the verifier SIGHUPs it itself)."""
        deadline = time.monotonic() + timeout
        while self.reloads() <= before:
            if time.monotonic() > deadline:
                raise AssertionError("the broker was not reloaded:\n" + self.mq.log[-3000:])
            time.sleep(0.02)
        time.sleep(0.2)   # the log line comes before the files are re-read


def require_clientid_plugin():
    """The janua_clientid plugin `make` builds (`make test` depends on it); its absence is a failure here."""
    if not mb.CLIENTID_PLUGIN.is_file():
        pytest.fail(f"the janua_clientid mosquitto plugin is missing: make {mb.CLIENTID_PLUGIN}")
    return mb.CLIENTID_PLUGIN


@pytest.fixture
def broker(app, acme, other, tmp_path, clock):
    """The broker as `make test` configures it: the certificate listeners load the janua_clientid plugin."""
    b = Broker(app, tmp_path, clock, [acme, other], clientid_plugin=require_clientid_plugin())
    yield b
    b.mq.stop()


@pytest.fixture
def override_broker(app, acme, other, tmp_path, clock):
    """The fallback without the plugin: mosquitto replaces the client id with the certificate CN."""
    b = Broker(app, tmp_path, clock, [acme, other], clientid_plugin=False)
    yield b
    b.mq.stop()


def write_identity(dirpath, issued):
    """Write an issue-certificate response as PEM files for paho; return (cert, key)."""
    dirpath.mkdir(parents=True, exist_ok=True)
    cert, key = dirpath / "cert.pem", dirpath / "key.pem"
    der_cert = base64.b64decode(issued["certificate_der"])
    cert.write_text(ssl.DER_cert_to_PEM_cert(der_cert))
    from cryptography.hazmat.primitives import serialization
    k = serialization.load_der_private_key(base64.b64decode(issued["key_der"]), None)
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return cert, key


class Client:
    """A paho-mqtt client (MQTT 3.1.1) with blocking helpers; connect() returns the CONNACK code or the
    exception text of a refused TLS handshake."""

    def __init__(self, client_id, port, ca=None, cert=None, key=None, username=None, password=None):
        self.port, self.messages, self.disconnected = port, queue.Queue(), threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if ca is not None:
            ctx = ssl.create_default_context(cafile=str(ca))
            if cert is not None:
                ctx.load_cert_chain(str(cert), str(key))
            self.c.tls_set_context(ctx)
        if username is not None:
            self.c.username_pw_set(username, password)
        self._connack, self._acks = queue.Queue(), {}
        self.c.on_connect = lambda cl, u, f, rc, p=None: self._connack.put(rc)
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda cl, u, msg: self.messages.put((msg.topic, msg.payload))
        self.c.on_subscribe = lambda cl, u, mid, rcs, p=None: self._acks.setdefault(mid, queue.Queue()).put(rcs)

    def _on_disconnect(self, cl, u, flags, rc, props=None):
        self.disconnected.set()
        self._connack.put(f"disconnected ({rc})")

    def connect(self, timeout=5.0):
        try:
            self.c.connect("127.0.0.1", self.port, keepalive=30)
        except (ssl.SSLError, OSError) as e:
            return f"refused: {e}"
        self.c.loop_start()
        try:
            rc = self._connack.get(timeout=timeout)
        except queue.Empty:
            return "refused: no CONNACK (connection dropped)"
        if isinstance(rc, str):
            self.c.loop_stop()
            return "refused: " + rc
        return "ok" if not rc.is_failure else f"refused: {rc}"

    def subscribe(self, topic, timeout=5.0):
        """The SUBACK codes (ints): 0..2 granted QoS, 128 refused."""
        _, mid = self.c.subscribe(topic, qos=1)
        q = self._acks.setdefault(mid, queue.Queue())
        return [int(r.value) for r in q.get(timeout=timeout)]

    def publish(self, topic, payload, timeout=5.0):
        self.c.publish(topic, payload, qos=1).wait_for_publish(timeout)

    def receive(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


__all__ = ["Broker", "Client", "Device", "FakeClock", "Tenant", "free_port", "write_identity", "Mosquitto"]
