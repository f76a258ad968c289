"""`janua provision --rotate-cert DEVICE_ID --port P`: a new key pair and certificate for a board that
authenticates to MQTT with a client certificate (docs/mqtt.md section 1, Rotation).

    1. read the board's janua.json: refuse if it is another device (nothing is issued then);
    2. note the device's unrevoked certificates (GET /v1/devices/{id}/certificate);
    3. issue a new one (POST /v1/devices/{id}/certificate, --key-type, --cert-days);
    4. write janua_cert.der, janua_key.der and janua_ca.der onto the board (provision.write_files_atomic: each
       file to <name>.tmp, then all renamed in one exec);
    5. when the board's config names a broker (an `mqtt` section), have the board connect with the new files
       (janua.mqtt.connect) - skipped with --no-connect-check;
    6. revoke every certificate noted in 2 with reason "superseded" (POST .../certificate/revoke, one per serial).

A failure before 6 revokes nothing the board may still use: the old certificates stay valid, and running the
rotation again revokes every older one once the board is on its new certificate.
"""

import base64
import json

from tools.errors import CLIError
from tools.provision import BOARD_CONFIG, CERT_FILES, write_files_atomic

# Runs on the board: bring the network up as the boot flow does, connect with the certificate, report.
CONNECT_CHECK = """
import json
r = {"ok": True}
try:
    from janua.store import Store
    from janua import mqtt
    cfg = Store().load_config()
    try:
        import janua_hal
    except ImportError:
        janua_hal = None
    if janua_hal is not None:
        janua_hal.connect_network(cfg)
    mqtt.connect(cfg).close()
except Exception as e:
    r = {"error": type(e).__name__, "msg": str(e)}
print(json.dumps(r))
"""


def read_board_config(port, device_id):
    """The board's janua.json; CLIError if it has none or it belongs to another device."""
    from tools import mpremote_util
    raw = mpremote_util.exec_(port, "print(open('%s').read())" % BOARD_CONFIG)
    try:
        cfg = json.loads(raw.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CLIError(f"the board at {port} has no readable {BOARD_CONFIG}",
                       hint="provision it first: janua provision --serial SN --port PORT --credential certificate")
    if cfg.get("device_id") != device_id:
        raise CLIError(f"the board at {port} is device {cfg.get('device_id')}, not {device_id}")
    return cfg


def board_connects(port):
    """None if the board connected to its broker with the files it holds, else the error it reported."""
    from tools import mpremote_util
    lines = [ln for ln in mpremote_util.exec_(port, CONNECT_CHECK).splitlines() if ln.startswith("{")]
    try:
        r = json.loads(lines[-1])
    except (ValueError, IndexError):
        return "no answer from the check"
    return None if r.get("ok") else f"{r.get('error')}: {r.get('msg')}"


def rotate_cert(api, args):
    dev = args.rotate_cert.lower()
    if not args.port:
        raise CLIError("--rotate-cert needs --port: the new key and certificate are written onto the board",
                       hint=f"janua provision --rotate-cert {dev} --port /dev/ttyUSB0 (a virtual board: the port "
                            "`janua vboard` printed)")
    if not 1 <= args.cert_days <= 3650:
        raise CLIError("--cert-days must be between 1 and 3650")
    cfg = read_board_config(args.port, dev)
    old = [c["serial"] for c in api.call("GET", f"/v1/devices/{dev}/certificate")["certificates"]
           if c["revoked_at"] is None]
    cert = api.call("POST", f"/v1/devices/{dev}/certificate", {"key_type": args.key_type, "days": args.cert_days})
    new = cert["serial"]
    print(f"janua: device {dev}: new certificate {new} ({cert.get('key_type', args.key_type)}, until "
          f"{cert['not_after']}, next rotation after {cert['next_key_rotation']})")
    files = {n: base64.b64decode(cert[k]) for n, k in zip(CERT_FILES, ("certificate_der", "key_der", "ca_der"))}
    try:
        write_files_atomic(args.port, files)
    except CLIError as e:
        # Its key existed only in this process: the new certificate is useless, the old ones stay.
        try:
            api.call("POST", f"/v1/devices/{dev}/certificate/revoke", {"serial": new, "reason": "unspecified"})
        except CLIError:
            pass
        raise CLIError(f"could not write the new certificate onto the board at {args.port}: {e}; certificate {new} "
                       f"was revoked, the previous one(s) stay valid", hint=e.hint)
    print(f"janua: wrote {', '.join(CERT_FILES)} onto the board at {args.port}")
    if args.no_connect_check or not cfg.get("mqtt"):
        print("janua: connection not checked (%s)" % ("--no-connect-check" if cfg.get("mqtt") else
                                                      f"no mqtt section in the board's {BOARD_CONFIG}"))
    else:
        err = board_connects(args.port)
        if err is not None:
            raise CLIError(f"the board at {args.port} could not connect to its broker with certificate {new} "
                           f"({err}); the previous certificate(s) were not revoked: {', '.join(old) or 'none'}",
                           hint="once the board reaches the broker, run the rotation again (it revokes every older "
                                "certificate), or pass --no-connect-check")
        print(f"janua: the board at {args.port} connected to {cfg['mqtt'].get('host')}:{cfg['mqtt'].get('port')} "
              "with its new certificate")
    for serial in old:
        try:
            api.call("POST", f"/v1/devices/{dev}/certificate/revoke", {"serial": serial, "reason": "superseded"})
        except CLIError as e:
            raise CLIError(f"the board uses certificate {new}, but revoking {serial} failed: {e}", hint=e.hint)
    print(f"janua: revoked {len(old)} previous certificate(s) as superseded"
          + (f": {', '.join(old)}" if old else ""))
    return 0
