"""MQTT for the device: umqtt.simple over TLS to the tenant's broker (docs/mqtt.md).

`connect(cfg)` opens one session with the device certificate written at provisioning (DER files on
flash: janua_cert.der, janua_key.der, janua_ca.der), verifies the broker against the tenant CA and
keeps the device's topics under its prefix (cfg["mqtt"]["topic_prefix"], "janua/<tenant>/<device>").
The same call can log in with a password instead (an mqtt-sas token from sas.py, or the password
the verifier issued, kept as cfg["mqtt"]["password"]) on mqtt.password_port, still verifying the
broker. Right after the CONNACK it publishes b"online" (QoS 0, not retained) to <prefix>/status:
the verifier records it as the device's last-seen (mqtt.status false turns it off).

Both umqtt.simple constructor shapes work (<= 1.3 `ssl_params`, >= 1.4 SSLContext): mqtt_tls.py
builds the client. The broker is dialled by IP (resolved here) and checked by name (server_hostname).

Failures are JanuaError subclasses: MQTTUnavailable (umqtt.simple missing), MQTTTLSError (the
handshake failed), MQTTRefused (CONNACK code, refused subscription), MQTTError (the broker hung up
or broke the protocol), TransportError (TCP). It does not reconnect, queue, ping on a timer or
parse payloads.
"""

from micropython import const
from janua import StoreError, TransportError, health_c
from janua.mqtt_tls import (MQTTError, MQTTRefused, MQTTTLSError, MQTTUnavailable,  # noqa: F401
                            connect_client, make_client, read_der, resolve, ip_of)

CERT_FILE = "janua_cert.der"
KEY_FILE = "janua_key.der"
CA_FILE = "janua_ca.der"
_MAX_TOPIC = const(256)
_TLS_PORT = const(8883)

# CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3).
_CONNACK = ("accepted", "unacceptable protocol version", "client id rejected",
            "server unavailable", "bad user name or password", "not authorized")


def _umqtt():
    try:
        from umqtt.simple import MQTTClient, MQTTException
    except ImportError:
        raise MQTTUnavailable("umqtt.simple is not installed; install it with "
                              "`mpremote mip install umqtt.simple` (or mip.install('umqtt.simple'))")
    return MQTTClient, MQTTException


def settings(cfg):
    """The checked `mqtt` section of the board config: host, port (mutual TLS), password_port
    (TLS + user name/password; default: port), server_hostname (default: host), topic_prefix."""
    m = cfg.get("mqtt")
    if not isinstance(m, dict) or not isinstance(m.get("host"), str) or not m["host"]:
        raise StoreError("mqtt.host missing from the config (provision with --credential certificate)")
    port = m.get("port", _TLS_PORT)
    pw_port = m.get("password_port", port)
    for p in (port, pw_port):
        if not isinstance(p, int) or not 0 < p < 65536:
            raise StoreError("mqtt.port and mqtt.password_port must be port numbers")
    prefix = m.get("topic_prefix")
    if not isinstance(prefix, str) or not prefix or "#" in prefix or "+" in prefix:
        raise StoreError("mqtt.topic_prefix missing or holds a wildcard")
    ka = m.get("keepalive", 0)   # 0: umqtt.simple does not ping by itself; Session.ping() does
    if not isinstance(ka, int) or not 0 <= ka < 65536:
        raise StoreError("mqtt.keepalive must be 0..65535 seconds")
    sni = m.get("server_hostname") or m["host"]
    return {"host": m["host"], "port": port, "password_port": pw_port, "server_hostname": sni,
            "topic_prefix": prefix, "keepalive": ka, "status": m.get("status", True) is not False}


def _close(client):
    sock = getattr(client, "sock", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _errno(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else 0


# errno values (MicroPython uses the Linux numbers on every port) meaning "no TCP connection".
_UNREACHABLE = (101, 110, 111, 113)   # ENETUNREACH, ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH


def open_client(client, api, MQTTException, where):
    """Connect `client` (made in the `api` shape), its failures turned into janua errors (the socket
    closed on failure)."""
    try:
        connect_client(client, api)
    except MQTTException as e:
        _close(client)
        code = _errno(e)
        why = _CONNACK[code] if 0 < code < len(_CONNACK) else "code %d" % code
        raise MQTTRefused("broker %s refused the connection: %s" % (where, why), code)
    except ValueError as e:
        # MicroPython's tls raises ValueError with mbedTLS's verify message (the broker's
        # certificate does not chain to the tenant CA, is expired, or names another host).
        _close(client)
        raise MQTTTLSError("broker %s not trusted: %s (check janua_ca.der and mqtt.server_hostname)"
                           % (where, str(e).strip()))
    except OSError as e:
        _close(client)
        n = _errno(e)
        if n in _UNREACHABLE:
            raise TransportError("cannot reach the broker %s (%s)" % (where, e))
        # A negative number is an mbedTLS error; EPIPE/ECONNRESET here mean the broker hung up
        # during or right after the handshake, i.e. it did not accept the device certificate.
        raise MQTTTLSError("TLS session with %s failed (%s): the broker refused the handshake or "
                           "the device certificate (expired, revoked, another tenant's CA?)" % (where, e))
    except (AssertionError, IndexError):
        # umqtt asserts on the CONNACK; an empty read (the broker hung up) indexes past the end.
        _close(client)
        raise MQTTError("broker %s closed the connection before a valid CONNACK" % where)


def connect(cfg, password=None, fs=None, client_id=None, report=None):
    """A Session to the broker of cfg["mqtt"]. Without `password`: mutual TLS with the device
    certificate. With it: TLS (broker verified) on password_port and user name = device id, e.g.
    cfg["mqtt"]["password"] or an mqtt-sas token. A health `report` (janua/health.py) is published on
    <prefix>/health right after the status (docs/health.md 2.3)."""
    MQTTClient, MQTTException = _umqtt()
    s = settings(cfg)
    ca = read_der(CA_FILE, fs)
    cert = key = user = None
    if password is None:
        cert = read_der(CERT_FILE, fs)
        key = read_der(KEY_FILE, fs)
    else:
        user = cfg["device_id"]
        s["port"] = s["password_port"]
    where = "%s:%d" % (s["host"], s["port"])
    ip = ip_of(resolve(s["host"], s["port"]))
    if ip is not None:
        s["host"] = ip
    client, shape = make_client(MQTTClient, client_id or cfg["device_id"], s, user, password,
                                ca, cert, key)
    del cert, key
    open_client(client, shape, MQTTException, where)
    session = Session(client, MQTTException, s["topic_prefix"], shape)
    if s["status"]:
        try:
            session.publish("status", b"online")
        except (MQTTError, TransportError):
            session.close()
            raise
    if report:
        try:
            session.publish("health", report)
        except (MQTTError, TransportError):
            session.close()
            raise
    return session


def _check_topic(topic):
    if not topic or len(topic) > _MAX_TOPIC:
        raise MQTTError("topic is empty or over %d bytes" % _MAX_TOPIC)


class Session:
    """One connected MQTT session. `publish(suffix, msg)` and `subscribe(suffix)` stay under the
    device's prefix; `publish_to`/`subscribe_to` take a whole topic (the broker's ACL decides)."""

    def __init__(self, client, MQTTException, prefix, api):
        self.client = client
        self.prefix = prefix
        self.api = api          # which umqtt.simple constructor shape was used
        self.on_message = None  # f(topic bytes, message bytes), called from check()/wait()
        self._exc = MQTTException
        client.set_callback(self._deliver)

    def _deliver(self, topic, msg):
        if self.on_message is not None:
            self.on_message(topic, msg)

    def topic(self, suffix):
        if not suffix or "#" in suffix or "+" in suffix or suffix[0] == "/":
            raise MQTTError("topic suffix must be non-empty, relative and without wildcards")
        return self.prefix + "/" + suffix

    def publish(self, suffix, msg, qos=0, retain=False):
        self.publish_to(self.topic(suffix), msg, qos, retain)

    def publish_to(self, topic, msg, qos=0, retain=False):
        _check_topic(topic)
        if qos not in (0, 1):   # umqtt.simple has no QoS 2 (it asserts)
            raise MQTTError("qos must be 0 or 1")
        self._io(self.client.publish, topic.encode(), msg, retain, qos)
        health_c[5] += len(topic) + len(msg)   # topic and payload; MQTT's framing is not counted

    def subscribe(self, suffix, qos=0):
        self.subscribe_to(self.topic(suffix), qos)

    def subscribe_to(self, topic, qos=0):
        _check_topic(topic)
        try:
            self._io(self.client.subscribe, topic.encode(), qos)
        except self._exc:
            raise MQTTRefused("subscription to %s refused" % topic, 0x80)

    def check(self):
        """Deliver one pending message, if any, without blocking (umqtt.simple puts the socket back
        into blocking mode afterwards)."""
        self._io(self.client.check_msg)

    def wait(self):
        """Block until one packet arrives; deliver it if it is a message."""
        self._io(self.client.wait_msg)

    def ping(self):
        self._io(self.client.ping)

    def _io(self, f, *args):
        try:
            return f(*args)
        except OSError as e:
            raise TransportError("MQTT connection lost (%s)" % (e,))
        except (AssertionError, IndexError):
            raise MQTTError("broker sent an unexpected packet")

    def close(self):
        try:
            self.client.disconnect()
        except OSError:
            _close(self.client)
