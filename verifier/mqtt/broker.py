"""The mosquitto side of janua (docs/mqtt.md section 2): topic names, the generated mosquitto 2.0 config
directory, CRL files with their reload (SIGHUP), and the dynamic-security admin client.

Layout written by `write_config(storage, sealer, out_dir, ...)`:

    mosquitto.conf                    per_listener_settings true; pid_file; one mutual-TLS listener per tenant;
                                      one TLS username/password listener with the dynamic-security plugin
    mosquitto.pid                     written by mosquitto; `reload()` sends SIGHUP to it
    dynsec.json                       the plugin's state (created once with the verifier's admin client)
    tenants/<short>/ca.pem            the tenant CA (the listener's cafile)
    tenants/<short>/crl.pem           the tenant CRL (rewritten on every revocation, then SIGHUP)
    tenants/<short>/broker.pem|.key   the broker's certificate issued by the tenant CA (SAN: the hosts)
    tenants/<short>/acl               `pattern readwrite janua/<short>/%u/#`

The certificate listeners load the janua_clientid plugin (verifier/broker_plugin/janua_clientid.c, built by
`make` into .venv/lib/janua_clientid.so): a client whose client id is not its certificate's CN gets CONNACK "not
authorized". Without the plugin they fall back to mosquitto's own settings, which replace the client id with the
CN (use_identity_as_username + use_username_as_clientid): a mismatch is then overridden, not refused.

mosquitto 2.0 keeps the dynamic-security plugin's state in process globals: it can be loaded on one listener
only. That listener speaks TLS with the broker certificate of one tenant (the "password tenant"): boards of
that tenant verify it with their tenant CA. The verifier's admin connection uses the same listener (TLS,
chain checked against that CA). The broker settings (dir, password port and tenant, admin user, sealed
admin password) are stored in the registry so the verifier finds them after a restart. Blocking calls
(files, signals, MQTT) are run off the event loop by the HTTP layer.
"""

import base64
import hashlib
import json
import logging
import os
import secrets
import signal
import threading
from pathlib import Path

from verifier.mqtt import x509 as vx
from verifier.errors import VerifierError

log = logging.getLogger("janua.verifier.mqtt")

DYNSEC_PLUGIN = os.environ.get("JANUA_DYNSEC_PLUGIN", "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
DYNSEC_TOPIC = "$CONTROL/dynamic-security/v1"
CLIENTID_PLUGIN = Path(__file__).resolve().parents[2] / ".venv" / "lib" / "janua_clientid.so"   # `make` builds it
ADMIN_USER = "janua-admin"
ADMIN_SEAL_ID = b"dynsec\0\0"
STATUS_FILTER = "janua/+/+/status"      # what the verifier's status subscriber reads (verifier/mqtt/status.py)
ATTEST_FILTER = "janua/+/+/attest"      # and the board attestation evidence it appraises
HEALTH_FILTER = "janua/+/+/health"      # and the health reports it hands to the health ingest (docs/health.md 2.3)
ADMIN_ACLS = [{"acltype": t, "topic": "$CONTROL/dynamic-security/#", "allow": True}
              for t in ("publishClientSend", "publishClientReceive", "subscribePattern")] + [
             {"acltype": "subscribePattern", "topic": STATUS_FILTER, "allow": True}] + [
             # board attestation (docs/attestation.md 2.3): evidence in, results and challenges out
             {"acltype": "subscribePattern", "topic": ATTEST_FILTER, "allow": True},
             {"acltype": "publishClientSend", "topic": "janua/+/+/attest/result", "allow": True},
             {"acltype": "publishClientSend", "topic": "janua/+/+/cmd", "allow": True},
             # device health reports (docs/health.md 2.3): read only, nothing is answered
             {"acltype": "subscribePattern", "topic": HEALTH_FILTER, "allow": True}]


class BrokerError(VerifierError):
    """The MQTT broker could not be configured or reached."""

    code = "broker_error"


def tenant_short_id(tenant_id):
    """First 8 hex characters of SHA-256(tenant id): the tenant's part of every topic."""
    return hashlib.sha256(tenant_id.encode()).hexdigest()[:8]


def topic_prefix(tenant_id, device_id_hex):
    """`janua/<tenant short>/<device id>` (no trailing slash): a device's topics are prefix + "/" + suffix."""
    return f"janua/{tenant_short_id(tenant_id)}/{device_id_hex}"


def topic_allowed(prefix, topic):
    """True if `topic` (a name or a subscription filter) lies inside prefix/#: the prefix itself has no
    wildcard in its place and the topic is the prefix or below it."""
    return topic == prefix or topic == prefix + "/#" or topic.startswith(prefix + "/")


def _atomic_write(path, data, mode=0o644):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)     # a stale <name>.tmp left 0644 must not carry broker.key or dynsec.json
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _dynsec_state(password):
    """The plugin's initial JSON: one admin client allowed on $CONTROL/dynamic-security/#, default ACLs
    deny publish and subscribe (each device client gets its own role)."""
    salt = os.urandom(12)
    pw = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return {
        "clients": [{"username": ADMIN_USER, "textName": "janua verifier", "password": base64.b64encode(pw).decode(),
                     "salt": base64.b64encode(salt).decode(), "iterations": 101, "roles": [{"rolename": "admin"}]}],
        "roles": [{"rolename": "admin", "acls": ADMIN_ACLS}],
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True, "subscribe": False,
                             "unsubscribe": True},
    }


def _ports_doc(text):
    """The registry's tenant_ports JSON: {"tls": {tenant id: port}, "password_tenant": id}; rows written before
    the password listener spoke TLS hold only {tenant id: port}."""
    doc = json.loads(text) if text else {}
    if isinstance(doc.get("tls"), dict):
        return doc["tls"], doc.get("password_tenant")
    return doc, None


def clientid_plugin_path(path=None):
    """The janua_clientid plugin for the certificate listeners, as an absolute path, or None to fall back to the
    client-id override. `path`: a file (it must exist), False for none, None for $JANUA_CLIENTID_PLUGIN or else
    the one `make` builds, if it exists."""
    if path is False:
        return None
    if path is not None:
        p = Path(path).resolve()
        if not p.is_file():
            raise BrokerError(f"no mosquitto plugin at {path}")
        return p
    env = os.environ.get("JANUA_CLIENTID_PLUGIN")
    if env:
        return clientid_plugin_path(env)
    return CLIENTID_PLUGIN if CLIENTID_PLUGIN.is_file() else None


def _identity_lines(plugin):
    """How a certificate listener binds the MQTT identity to the certificate (docs/mqtt.md section 2)."""
    if plugin is not None:
        return ["# janua_clientid: client id (and user name, if sent) must be the certificate CN, else CONNACK",
                "# 'not authorized'; the user name becomes the CN (%u in the ACL)", f"plugin {plugin}"]
    return ["# no janua_clientid plugin: a client id other than the certificate CN is overridden, not refused",
            "use_identity_as_username true",
            "# the client id is replaced by the identity: no device can take over another's session",
            "use_username_as_clientid true"]


def write_config(storage, sealer, out_dir, now, host="127.0.0.1", base_port=8883, hosts=("localhost", "127.0.0.1"),
                 ports=None, password_tenant=None, clientid_plugin=None):
    """Write the config directory for every tenant (creating tenant CAs that do not exist yet) and record the
    broker in the registry. Ports: the password listener on base_port, each tenant on `ports[tenant id]` if given,
    else the port it had before, else the next free one above base_port (tenants by name). The password listener
    presents the broker certificate of `password_tenant` (a tenant name; default: the one it had, else the first
    tenant by name). `clientid_plugin`: see clientid_plugin_path. Returns {"dynsec_port", "password_tenant": name,
    "tenants": {name: port}, "clientid_plugin": path or None}."""
    out = Path(out_dir).resolve()
    plugin = clientid_plugin_path(clientid_plugin)
    if plugin is None:
        log.warning("mosquitto config without the janua_clientid plugin: on the certificate listeners a client id "
                    "other than the certificate CN is overridden with the CN, not refused")
    (out / "tenants").mkdir(parents=True, exist_ok=True)
    old = storage.get_mqtt_broker()
    if old is not None and Path(old["config_dir"]) == out and (out / "dynsec.json").exists():
        admin_pw = sealer.unseal(old["sealed_admin_password"], ADMIN_SEAL_ID, "broker").decode()
    else:
        admin_pw = secrets.token_urlsafe(24)
        _atomic_write(out / "dynsec.json", json.dumps(_dynsec_state(admin_pw), indent=1).encode(), 0o600)
    kept, kept_pw = _ports_doc(old["tenant_ports"]) if old is not None else ({}, None)
    tenants = storage.list_tenants_brief()
    if password_tenant is not None:
        pw_tenant = next((t for t in tenants if t["name"] == password_tenant), None)
        if pw_tenant is None:
            raise BrokerError(f"no tenant named {password_tenant!r}")
    else:
        pw_tenant = next((t for t in tenants if t["id"] == kept_pw), tenants[0] if tenants else None)
    if pw_tenant is None:
        raise BrokerError("no tenants: create one first")
    used = {int(p) for p in kept.values()} | {base_port}
    lines = ["# generated by `janua mqtt config`; edits are overwritten", "per_listener_settings true",
             f"pid_file {out / 'mosquitto.pid'}", "persistence false", ""]
    chosen = {}
    for tenant in tenants:
        ca = vx.TenantCA.load(storage, sealer, tenant, now)
        short = tenant_short_id(tenant["id"])
        tdir = out / "tenants" / short
        tdir.mkdir(exist_ok=True)
        _atomic_write(tdir / "ca.pem", vx.cert_pem(ca.cert))
        _atomic_write(tdir / "crl.pem", vx.crl_pem(ca.crl(storage, now)))
        if not (tdir / "broker.pem").exists():
            cert, key = vx.issue_broker(ca.cert, ca.key, now, hosts)
            _atomic_write(tdir / "broker.key", vx.key_pem(key), 0o600)
            _atomic_write(tdir / "broker.pem", vx.cert_pem(cert))
        _atomic_write(tdir / "acl", f"# tenant {tenant['id']}: a device reaches only its own topics\n"
                                    f"pattern readwrite janua/{short}/%u/#\n".encode())
        port = int((ports or {}).get(tenant["id"]) or kept.get(tenant["id"], 0))
        if not port:
            port = base_port + 1
            while port in used:
                port += 1
        used.add(port)
        chosen[tenant["id"]] = port
        lines += [f"# tenant {tenant['name']!r} ({tenant['id']}): mutual TLS, identity = certificate CN = device id",
                  f"listener {port} {host}",
                  f"cafile {tdir / 'ca.pem'}", f"certfile {tdir / 'broker.pem'}", f"keyfile {tdir / 'broker.key'}",
                  f"crlfile {tdir / 'crl.pem'}", "tls_version tlsv1.2", "require_certificate true",
                  *_identity_lines(plugin), "allow_anonymous false", f"acl_file {tdir / 'acl'}", ""]
    pdir = out / "tenants" / tenant_short_id(pw_tenant["id"])
    lines += [f"# username/password devices of tenant {pw_tenant['name']!r} over TLS (no client certificate); dynamic",
              "# security, loaded once per broker; the verifier is its admin client and reads janua/+/+/status here",
              f"listener {base_port} {host}", f"certfile {pdir / 'broker.pem'}", f"keyfile {pdir / 'broker.key'}",
              "tls_version tlsv1.2", f"plugin {DYNSEC_PLUGIN}",
              f"plugin_opt_config_file {out / 'dynsec.json'}", "allow_anonymous false", ""]
    _atomic_write(out / "mosquitto.conf", "\n".join(lines).encode())
    storage.set_mqtt_broker({"config_dir": str(out), "host": host, "dynsec_port": base_port, "admin_user": ADMIN_USER,
                             "sealed_admin_password": sealer.seal(admin_pw.encode(), ADMIN_SEAL_ID, "broker"),
                             "tenant_ports": json.dumps({"tls": chosen, "password_tenant": pw_tenant["id"]}),
                             "updated": int(now)})
    return {"dynsec_port": base_port, "password_tenant": pw_tenant["name"],
            "tenants": {t["name"]: chosen[t["id"]] for t in tenants}, "clientid_plugin": plugin}


class Broker:
    """The broker the verifier manages, as recorded by write_config: CRL files, reload, dynsec admin."""

    def __init__(self, row, sealer, timeout=5.0):
        self.dir = Path(row["config_dir"])
        self.host, self.dynsec_port = row["host"], row["dynsec_port"]
        self.admin_user = row["admin_user"]
        self._admin_pw = sealer.unseal(row["sealed_admin_password"], ADMIN_SEAL_ID, "broker").decode()
        self.tenant_ports, self.password_tenant = _ports_doc(row["tenant_ports"])
        # None: a config written before the password listener spoke TLS (plain TCP, rerun `janua mqtt config`)
        self.ca_file = (None if self.password_tenant is None else
                        self.dir / "tenants" / tenant_short_id(self.password_tenant) / "ca.pem")
        self.updated = row["updated"]
        self.timeout = timeout

    @property
    def local_host(self):
        """Where the verifier dials the password listener (a wildcard bind is reached on loopback)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    def password_port(self, tenant_id):
        """The TLS password listener's port for a device of `tenant_id`, or None: it presents another tenant's
        certificate, which the device could not verify."""
        return self.dynsec_port if tenant_id == self.password_tenant else None

    @classmethod
    def from_storage(cls, storage, sealer):
        row = storage.get_mqtt_broker()
        return None if row is None else cls(row, sealer)

    def write_crl(self, tenant_id, crl_pem):
        """Replace the tenant's CRL file and tell the broker (SIGHUP). False if the tenant has no listener."""
        tdir = self.dir / "tenants" / tenant_short_id(tenant_id)
        if not tdir.is_dir():
            return False
        _atomic_write(tdir / "crl.pem", crl_pem)
        self.reload()
        return True

    def reload(self):
        """SIGHUP the broker named by its pid file; a broker that is not running reads the files when it starts."""
        try:
            pid = int((self.dir / "mosquitto.pid").read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as e:
            log.warning("broker reload skipped (%s): it reads the new files when it starts", e.__class__.__name__)
            return False
        return True

    def dynsec(self, commands):
        """Send dynamic-security commands; return their responses (each may hold "error")."""
        return dynsec_send(self.local_host, self.dynsec_port, self.admin_user, self._admin_pw, commands,
                           self.timeout, self.ca_file)

    def admin_client(self, client_id):
        """A paho client logged in as the dynsec admin on the password listener (TLS when configured so)."""
        return _admin_client(client_id, self.admin_user, self._admin_pw, self.ca_file)

    # device clients ------------------------------------------------------------------------------
    def set_device_password(self, tenant_id, device_id_hex, password):
        """(Re)create the device's client (username = client id = device id) and its role (own topics only)."""
        role = f"janua-{device_id_hex}"
        topic = topic_prefix(tenant_id, device_id_hex) + "/#"
        acls = [{"acltype": t, "topic": topic, "priority": 0, "allow": True}
                for t in ("publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern")]
        self.dynsec([{"command": "deleteClient", "username": device_id_hex},
                     {"command": "deleteRole", "rolename": role}])
        out = self.dynsec([{"command": "createRole", "rolename": role, "acls": acls},
                           {"command": "createClient", "username": device_id_hex, "clientid": device_id_hex,
                            "password": password, "roles": [{"rolename": role}]}])
        _check(out)

    def ensure_admin_acls(self):
        """Grant the admin role what this version needs (a dynsec.json from an older version lacks the
        status subscription); ACLs it already has are left alone."""
        out = self.dynsec([{"command": "addRoleACL", "rolename": "admin", "priority": 0, **a} for a in ADMIN_ACLS])
        for r in out:
            if r.get("error") and "already exists" not in r["error"]:
                raise BrokerError(f"dynamic-security addRoleACL: {r['error']}")

    def disable_device(self, device_id_hex):
        _check(self.dynsec([{"command": "disableClient", "username": device_id_hex}]), ok_missing=True)

    def enable_device(self, device_id_hex):
        _check(self.dynsec([{"command": "enableClient", "username": device_id_hex}]), ok_missing=True)

    def delete_device(self, device_id_hex):
        _check(self.dynsec([{"command": "deleteClient", "username": device_id_hex},
                            {"command": "deleteRole", "rolename": f"janua-{device_id_hex}"}]), ok_missing=True)


def _check(responses, ok_missing=False):
    for r in responses:
        err = r.get("error")
        if err and not (ok_missing and "not found" in err.lower()):
            raise BrokerError(f"dynamic-security {r.get('command')}: {err}")


def _admin_client(client_id, user, password, ca_file=None):
    import ssl

    import paho.mqtt.client as mqtt     # only the broker integration needs it
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    if ca_file is not None:
        # The chain must lead to the password tenant's CA; the name is not checked: the verifier dials the
        # broker by loopback address, which `--san` may have left out of the broker certificate.
        ctx = ssl.create_default_context(cafile=str(ca_file))
        ctx.check_hostname = False
        c.tls_set_context(ctx)
    return c


def dynsec_send(host, port, user, password, commands, timeout=5.0, ca_file=None):
    """One admin connection: subscribe to the response topic, publish {"commands": [...]}, wait for the reply."""
    done, box = threading.Event(), {}
    c = _admin_client("janua-admin-" + secrets.token_hex(4), user, password, ca_file)
    subscribed = threading.Event()

    def on_connect(client, userdata, flags, rc, props=None):
        if rc.is_failure:
            box["error"] = f"admin connect refused: {rc}"
            done.set()
            subscribed.set()
            return
        client.subscribe(DYNSEC_TOPIC + "/response", qos=1)

    def on_subscribe(client, userdata, mid, rcs, props=None):
        subscribed.set()

    def on_message(client, userdata, msg):
        box["reply"] = msg.payload
        done.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    try:
        c.connect(host, port, keepalive=30)
    except (OSError, ValueError) as e:
        raise BrokerError(f"cannot reach the broker's dynamic-security listener {host}:{port}: {e}") from e
    c.loop_start()
    try:
        if not subscribed.wait(timeout) or "error" in box:
            raise BrokerError(box.get("error", "no SUBACK from the broker"))
        c.publish(DYNSEC_TOPIC, json.dumps({"commands": commands}), qos=1)
        if not done.wait(timeout) or "reply" not in box:
            raise BrokerError(box.get("error", "no dynamic-security response"))
    finally:
        c.disconnect()
        c.loop_stop()
    try:
        return json.loads(box["reply"])["responses"]
    except (ValueError, KeyError, TypeError) as e:
        raise BrokerError("malformed dynamic-security response") from e
