"""`janua provision`: create devices in the verifier and put credentials where they belong (the
command line itself, options and dispatch, is tools/provision_cli.py).

Forms:
  janua provision --serial SN [--port P]   one device; with --port its credentials and configuration
                                           are written onto the board atomically (mpremote);
                                           --credential certificate adds an X.509 key and certificate
                                           (DER files) and the MQTT broker settings (docs/mqtt.md)
  janua provision --rotate-cert ID --port P  a new certificate onto the board, then the old ones revoked
                                           (tools/provision_cert.py)
  janua provision --bulk devices.csv       many devices from CSV or JSON lines, in batches, with a
                                           progress bar, a summary and a deployment manifest

With --port the board is asked for the identity it holds before anything is registered: a wrong port
fails then, and a board that already holds a device is refused unless --force. A device whose
credentials could not be written onto its board is deleted again in the registry (DELETE
/v1/devices/{id}: it never authenticated; any certificate it was issued is revoked), so nothing is left
half-created and its serial stays usable; the error says so, or what became of it instead.
"""

import json
import os
import sys
import urllib.parse

from tools.api import check_url
from tools.errors import CLIError

BOARD_CONFIG = "janua.json"  # on the board's flash; read by firmware/janua/store.py
# Flat columns of a CSV/JSON row that the API nests under "metadata".
META_FIELDS = ("firmware_version", "hardware_version", "capabilities", "location", "group", "tags", "region")


# ---------------------------------------------------------------- one device

# Runs on the board: which identity it holds (janua.json, else the complete janua.json.tmp the firmware's
# store falls back to). Prints one line; never the secret.
BOARD_IDENTITY = """
import json
cfg = None
for name in ('janua.json', 'janua.json.tmp'):
    try:
        with open(name) as f:
            cfg = json.loads(f.read())
        break
    except Exception:
        pass
if not isinstance(cfg, dict):
    cfg = {}
print('JANUA-IDENTITY ' + json.dumps({'device_id': cfg.get('device_id'), 'tenant': cfg.get('tenant')}))
"""


def board_identity(port):
    """{"device_id", "tenant"} of the identity the board at `port` holds (None values if it holds none).
    Talking to the board is also the check that the port is right: a CLIError (no such port, busy, no
    MicroPython) comes from here, before anything is registered."""
    from tools import mpremote_util
    out = mpremote_util.exec_(port, BOARD_IDENTITY)
    for line in reversed(out.splitlines()):
        if line.startswith("JANUA-IDENTITY "):
            try:
                ident = json.loads(line[len("JANUA-IDENTITY "):])
            except ValueError:
                break
            if isinstance(ident, dict):
                return ident
    raise CLIError(f"the board at {port} did not answer the identity check",
                   hint="is the janua firmware's MicroPython running on it? `janua console --port PORT`")


def _held_device(api, ident):
    """(device or None, a description of it, the token's role when it may not read devices else None) of the
    device a board holds: id, serial and status when this tenant knows it."""
    dev = ident["device_id"]
    try:
        d = api.call("GET", f"/v1/devices/{urllib.parse.quote(str(dev), safe='')}")
    except CLIError as e:
        if e.status == 403:     # a factory token: it may provision, not read devices
            role = e.detail.rpartition("this token's role is ")[2] or "unknown"
            return None, f"device {dev} (this token cannot read it: its role is {role})", role
        d = None
    if not isinstance(d, dict) or "serial_number" not in d:
        return d, f"device {dev} (serial unknown: this tenant has no such device, or no longer)", None
    return d, f"device {dev} (serial {d['serial_number']}, {d.get('status')})", None


SERVER_CA = "janua_server_ca.der"   # read by firmware/janua/https.py


def server_ca(args):
    """The DER bytes of --ca-file for a board that talks HTTPS (an https:// --server), else None; CLIError when
    an https:// server has no --ca-file, or the file is not one PEM or DER certificate."""
    if not str(getattr(args, "server", "")).startswith("https://"):
        return None
    path = getattr(args, "ca_file", None)
    if not path:
        raise CLIError("an https:// --server needs --ca-file: the board checks the verifier's certificate "
                       "against that CA", hint="the CA that signed the verifier's certificate, or its self-signed "
                                               "certificate (janua serve --dev --tls-self-signed writes <db>.tls.pem)")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise CLIError(f"cannot read --ca-file {path}: {e.strerror}")
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise CLIError(f"--ca-file {path} is not a PEM or DER certificate")
    return cert.public_bytes(serialization.Encoding.DER)


def provision_one(api, args):
    if args.edge:
        _check_edge(args.edge)      # every argument is checked before anything is registered
    endpoints(args)
    ca = server_ca(args)
    held = None
    if args.port:
        # Before anything is registered: the port must reach a board, and the board must not hold an identity
        # (unless --force).
        ident = board_identity(args.port)
        if ident.get("device_id"):
            held, what, role = _held_device(api, ident)
            if not args.force:
                raise CLIError(f"the board at {args.port} already holds {what}; nothing was registered",
                               hint="pass --force to give it a new identity (the old device is then decommissioned), "
                                    "or --rotate-psk/--rotate-cert to renew the one it has")
            if role is not None:
                raise CLIError(f"the board at {args.port} already holds device {ident['device_id']}: --force must "
                               f"decommission it, which needs an operator token (or admin), and this token's role "
                               f"is {role}; nothing was registered",
                               hint="run the --force provisioning with an admin token: it may both provision "
                                    "and decommission")
            print(f"janua: --force: replacing {what} on the board at {args.port}")
    row = {"serial_number": args.serial}
    for k in ("manufacturer_id", "model_id", "group", "region"):
        if getattr(args, k):
            row[k] = getattr(args, k)
    pkg = api.call("POST", "/v1/devices", to_api_row(row))
    dev = pkg["device_id"]
    print(f"janua: provisioned device {dev} (serial {args.serial}, tenant {pkg.get('tenant')})")
    files = {}
    if args.credential == "certificate" or args.mqtt_password:
        files = certificate_files(api, pkg, args)
    if not args.port:
        # Without a board the package is the only copy of the secret: print it once, to stdout.
        json.dump(pkg, sys.stdout, indent=1)
        print()
        return 0
    config = board_config(pkg, args)
    if files:                           # the certificate's broker settings; the region's broker, if any, wins
        config["mqtt"] = {**pkg["mqtt"], **pkg.get("config", {}).get("mqtt", {})}
    if ca is not None:                  # HTTPS on the board (docs/protocol.md 3.5)
        config["server"]["tls"] = True
        files[SERVER_CA] = ca
    try:
        from tools import mpremote_util
        if files:
            files[BOARD_CONFIG] = json.dumps(config).encode()
            write_files_atomic(args.port, files)
        else:
            mpremote_util.write_file_atomic(args.port, BOARD_CONFIG, json.dumps(config).encode())
    except CLIError as e:
        # Do not leave a registered device whose credentials exist nowhere: delete it (that revokes any
        # certificate it was issued), so that its serial can be provisioned again.
        fate = _withdraw(api, dev, "provisioning onto the board failed")
        _remove_temp_files(args.port, list(files) or [BOARD_CONFIG])
        raise CLIError(f"could not write the credentials onto the board at {args.port}: {e}; "
                       f"device {dev} was {fate}", hint=e.hint)
    extra = f" and {', '.join(n for n in files if n != BOARD_CONFIG)}" if files else ""
    print(f"janua: wrote {BOARD_CONFIG}{extra} onto the board at {args.port}; reset it to authenticate")
    if held and held.get("status") not in (None, "decommissioned"):
        try:
            api.call("POST", f"/v1/devices/{held['device_id']}/lifecycle",
                     {"action": "decommission", "reason": f"its board was provisioned again as device {dev}"})
            print(f"janua: decommissioned device {held['device_id']} (serial {held['serial_number']}): "
                  "its board now holds the new identity")
        except CLIError as e:
            print(f"janua: warning: could not decommission the board's old device {held['device_id']}: {e}",
                  file=sys.stderr)
    return 0


def _remove_temp_files(port, names):
    """Best effort, after a failed write: take our <name>.tmp files off the board (they hold the withdrawn
    identity, and the firmware's store would fall back to a complete janua.json.tmp)."""
    from tools import mpremote_util
    code = "import os\nfor n in %r:\n    try:\n        os.remove(n)\n    except OSError:\n        pass\n" % (
        [n + ".tmp" for n in names],)
    try:
        mpremote_util.exec_(port, code, timeout=15)
    except CLIError:
        pass


def _withdraw(api, dev, reason):
    """Take back a device that never reached its board. First deleted (DELETE /v1/devices/{id}, a factory
    token suffices: it never authenticated, and the delete revokes any certificate and removes any MQTT
    password it was issued); failing that, decommissioned (an operator token); failing both, left registered.
    Returns what really became of it, for the message."""
    try:
        api.call("DELETE", f"/v1/devices/{dev}")
        return "deleted again (its serial is free)"
    except CLIError as e:
        not_deleted = e.detail
    try:
        api.call("POST", f"/v1/devices/{dev}/lifecycle", {"action": "decommission", "reason": reason})
        return (f"decommissioned, not deleted ({not_deleted}): its serial stays taken; "
                f"`janua device delete {dev}` frees it")
    except CLIError as e:
        return (f"left registered: it could not be deleted ({not_deleted}) nor decommissioned ({e.detail}); "
                f"run `janua device delete {dev}` with a factory or admin token")


# ---------------------------------------------------------------- X.509 certificate (docs/mqtt.md)

CERT_FILES = ("janua_cert.der", "janua_key.der", "janua_ca.der")   # read by firmware/janua/mqtt.py


def certificate_files(api, pkg, args):
    """The MQTT credentials: with --credential certificate, issue the device's certificate (POST
    /v1/devices/{id}/certificate); with --mqtt-password, get its MQTT password. Add the MQTT settings (and
    the certificate's fields) to `pkg` and return {board path: DER bytes} for the key, certificate and tenant
    CA (only the CA for a password-only board: it still verifies the broker)."""
    import base64
    import ssl
    dev = pkg["device_id"]
    with_cert = args.credential == "certificate"
    if with_cert and not 1 <= args.cert_days <= 3650:
        raise CLIError("--cert-days must be between 1 and 3650")
    cert = pw = None
    try:
        if with_cert:
            cert = api.call("POST", f"/v1/devices/{dev}/certificate", {"key_type": args.key_type,
                                                                        "days": args.cert_days})
        ca = api.call("GET", "/v1/ca")
        if args.mqtt_password:
            pw = api.call("POST", f"/v1/devices/{dev}/mqtt-password", {})
    except CLIError as e:
        fate = _withdraw(api, dev, "issuing its MQTT credentials failed")
        raise CLIError(f"could not issue MQTT credentials to device {dev}: {e}; the device was {fate}",
                       hint=e.hint)
    broker = ca.get("broker") or {}
    host = (args.mqtt_host or (broker.get("host") if broker.get("host") not in (None, "0.0.0.0") else None)
            or args.device_server_host or urllib.parse.urlparse(args.server).hostname or "127.0.0.1")
    prefix = (cert or pw)["topic_prefix"]
    mqtt = {"host": host, "port": args.mqtt_port or broker.get("tls_port") or 8883, "topic_prefix": prefix}
    if broker.get("password_port"):
        mqtt["password_port"] = broker["password_port"]
    if args.mqtt_server_hostname:
        mqtt["server_hostname"] = args.mqtt_server_hostname
    if pw is not None:
        mqtt["password"] = pw["password"]
        if not broker.get("password_port"):
            print("janua: warning: the broker's password listener does not serve this tenant (or no broker is "
                  "configured): the password works only through the HTTP authentication endpoints", file=sys.stderr)
    pkg["mqtt"] = mqtt
    files = {CERT_FILES[2]: ssl.PEM_cert_to_DER_cert(ca["ca_pem"])}
    if cert is not None:
        pkg["certificate"] = {k: cert[k] for k in ("serial", "fingerprint", "not_before", "not_after",
                                                   "next_key_rotation", "key_type") if k in cert}
        print(f"janua: device {dev}: certificate {cert['serial']} ({cert.get('key_type', args.key_type)}, "
              f"until {cert['not_after']}), MQTT {host}:{mqtt['port']} topics {prefix}/#")
        files = {n: base64.b64decode(cert[k]) for n, k in zip(CERT_FILES, ("certificate_der", "key_der", "ca_der"))}
        if not args.port:   # the package is then the only copy of the key: it is printed once, like the secret
            pkg.update({k: cert[k] for k in ("certificate_der", "key_der", "ca_der")})
    if pw is not None:
        print(f"janua: device {dev}: MQTT password issued (user name {pw['username']}), password listener "
              f"{host}:{mqtt.get('password_port')}")
    return files


def write_files_atomic(port, files):
    """Write {board path: bytes} in one mpremote run: every file to <path>.tmp, then one exec renames
    them all, the config (janua.json) last, so a board whose config names the MQTT broker has its key
    and certificate. A cut before the renames leaves the old files; the firmware's store falls back to
    a complete janua.json.tmp."""
    import tempfile
    from tools import mpremote_util
    names = sorted(files, key=lambda n: n == BOARD_CONFIG)
    with tempfile.TemporaryDirectory(prefix="janua-") as d:
        args = []
        for i, name in enumerate(names):
            local = os.path.join(d, str(i))
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(files[name])
            args += ["fs", "cp", "-f", local, ":" + name + ".tmp", "+"]
        code = "import os\n" + "".join("os.rename(%r, %r)\n" % (n + ".tmp", n) for n in names)
        mpremote_util.run(port, *args, "exec", code)


def rotate_psk(api, args):
    """New PSK generation in the verifier, then (with --port) on the board. The board derives the
    key itself from its master secret (docs/protocol.md section 4.1): only the generation travels."""
    from tools import mpremote_util
    dev = args.rotate_psk
    cfg = None
    if args.port:   # read the board first: refuse before rotating if it is not this device
        raw = mpremote_util.exec_(args.port, "print(open('%s').read())" % BOARD_CONFIG)
        try:
            cfg = json.loads(raw.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise CLIError(f"the board at {args.port} has no readable {BOARD_CONFIG}",
                           hint="provision it first: janua provision --serial SN --port PORT")
        if cfg.get("device_id") != dev:
            raise CLIError(f"the board at {args.port} is device {cfg.get('device_id')}, not {dev}")
    r = api.call("POST", f"/v1/devices/{dev}/psk/rotate", {})
    gen = r["psk_generation"]
    print(f"janua: device {dev}: DTLS PSK generation {gen}, expires {r['psk_expires_at']}")
    if cfg is None:
        print("janua: the board must be told: psk_generation=%d in its %s" % (gen, BOARD_CONFIG))
        return 0
    cfg["psk_generation"] = gen
    mpremote_util.write_file_atomic(args.port, BOARD_CONFIG, json.dumps(cfg).encode())
    print(f"janua: the board at {args.port} now uses PSK generation {gen}")
    return 0


def _check_edge(url):
    if not url.startswith("http://"):   # the board's HTTP client speaks plain HTTP only
        raise CLIError(f"--edge must be an http:// URL the board can reach, not {url!r}")
    check_url(url, "--edge")


def board_config(pkg, args):
    """The board's janua.json: with the answer's "config" (docs/regions.md) the region's server, mqtt, coap, update;
    else the --server's host (or --device-server-host) and --udp-port/--dtls-port."""
    host = args.device_server_host or urllib.parse.urlparse(args.server).hostname or "127.0.0.1"
    url = urllib.parse.urlparse(args.server)
    http_port = url.port or (443 if url.scheme == "https" else 80)
    cfg = {
        "device_id": pkg["device_id"],
        "tenant": pkg.get("tenant"),
        "master_secret": pkg["master_secret"],
        "server": {"host": host, "udp_port": args.udp_port, "http_port": http_port,
                   "dtls_port": args.dtls_port},
        "transport": args.transport,
    }
    region = pkg.get("config")
    if region:
        cfg["server"] = dict(region["server"])
        cfg.update({k: region[k] for k in ("region", "mqtt", "coap", "update") if k in region})
    eps = endpoints(args, cfg["server"])
    if eps:
        cfg["endpoints"] = eps
        if getattr(args, "retry_preferred", None) is not None:
            cfg["failover"] = {"retry_preferred_s": args.retry_preferred}
    if args.board:
        cfg["board"] = args.board
    if args.wifi_ssid:
        cfg["wifi"] = {"ssid": args.wifi_ssid, "password": args.wifi_password or ""}
    if args.tokens or args.edge:
        cfg["tokens"] = {"chain": True}
        if args.edge:
            _check_edge(args.edge)
            cfg["tokens"]["edge"] = args.edge
    return cfg


def parse_endpoint(text):
    """One --endpoint HOST[:UDP_PORT[:HTTP_PORT]] as the board's server-like object; CLIError if malformed."""
    parts = text.split(":")
    if not parts[0] or len(parts) > 3 or "/" in text:
        raise CLIError(f"--endpoint {text!r} is not HOST[:UDP_PORT[:HTTP_PORT]]",
                       hint="e.g. --endpoint edge1.local:5685:8081 (a host name or IPv4 address, no scheme)")
    ports = []
    for p in parts[1:]:
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise CLIError(f"--endpoint {text!r}: {p!r} is not a port number")
        ports.append(int(p))
    ports += [5685, 8080][len(ports):]
    return {"host": parts[0], "udp_port": ports[0], "http_port": ports[1]}


def endpoints(args, server=None):
    """The board's "endpoints" (docs/protocol.md 3.7): each --endpoint in order, then the --server unless it is
    listed; None without --endpoint (the board then uses "server" alone, as before)."""
    given = getattr(args, "endpoint", None)
    if not given:
        if getattr(args, "retry_preferred", None) is not None:
            raise CLIError("--retry-preferred needs --endpoint")
        return None
    if args.transport == "dtls":
        raise CLIError("--endpoint is for binary auth (--transport auto, udp or http): edges serve no DTLS")
    eps = [parse_endpoint(t) for t in given]
    if server is None:                  # checked only, before anything is registered
        return eps
    # the server itself (the same object: its "tls", set later for an https:// --server, goes with it)
    key = (server["host"], server["udp_port"], server["http_port"])
    eps = [server if (e["host"], e["udp_port"], e["http_port"]) == key else e for e in eps]
    if server not in eps:
        eps.append(server)
    return eps


def to_api_row(row):
    """A flat row (CSV columns or a flat JSON object) in the API's shape: metadata nested."""
    out = {k: v for k, v in row.items() if k not in META_FIELDS}
    meta = dict(row.get("metadata") or {})
    meta.update({k: row[k] for k in META_FIELDS if k in row})
    if meta:
        out["metadata"] = meta
    return out
