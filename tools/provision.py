"""`janua provision`: create devices in the verifier and put credentials where they belong.

Three forms:
  janua provision --serial SN [--port P]   one device; with --port its credentials and configuration
                                           are written onto the board atomically (mpremote)
  janua provision --bulk devices.csv       many devices from CSV or JSON lines, in batches, with a
                                           progress bar, a summary and a deployment manifest

A device whose credentials could not be written onto its board is decommissioned again in the
registry (with the reason), so nothing is left half-created.
"""

import csv
import json
import os
import sys
import urllib.parse
from pathlib import Path

from tools.api import API, add_server_arguments
from tools.errors import CLIError

BOARD_CONFIG = "janua.json"  # on the board's flash; read by firmware/janua/store.py
LIST_FIELDS = ("tags", "capabilities")
# Flat columns of a CSV/JSON row that the API nests under "metadata".
META_FIELDS = ("firmware_version", "hardware_version", "capabilities", "location", "group", "tags")
INT_FIELDS = ("permissions", "trust_level")
MAX_BATCH = 10000
# One manifest line per created device: what a factory station needs to flash it.
MANIFEST_FIELDS = ("device_id", "serial_number", "tenant", "master_secret")


def configure(p):
    add_server_arguments(p)
    p.add_argument("--serial", help="serial number of the one device to provision")
    p.add_argument("--manufacturer", dest="manufacturer_id", help="manufacturer id")
    p.add_argument("--model", dest="model_id", help="model id")
    p.add_argument("--group", help="device group")
    p.add_argument("--port", help="serial port of the board to write the credentials onto")
    p.add_argument("--board", default=None, help="board profile (esp32, rp2040, unix); informs the config")
    p.add_argument("--transport", choices=("auto", "udp", "http", "dtls"), default="auto",
                   help="how the board authenticates (default auto: binary auth over UDP, then HTTP; "
                        "dtls: DTLS-lite + CoAP POST /auth)")
    p.add_argument("--device-server-host", help="host name the board uses to reach the verifier "
                                                "(default: the host of --server)")
    p.add_argument("--udp-port", type=int, default=5685, help="verifier UDP port for the board (default 5685)")
    p.add_argument("--dtls-port", type=int, default=5684, help="verifier DTLS port for the board (default 5684)")
    p.add_argument("--wifi-ssid", help="Wi-Fi network for the board (esp32, rp2040)")
    p.add_argument("--wifi-password", help="Wi-Fi password for the board")
    p.add_argument("--rotate-psk", metavar="DEVICE_ID",
                   help="rotate a device's DTLS PSK (a new key generation); with --port the board's "
                        "config is updated atomically so it uses the new generation")
    p.add_argument("--bulk", metavar="FILE", help="CSV (with a header row) or JSON lines file of devices")
    p.add_argument("--batch-size", type=int, default=1000, help="devices per request in --bulk (default 1000)")
    p.add_argument("--manifest", help="where --bulk writes the deployment manifest "
                                      "(default: <FILE>.manifest.jsonl; it holds secrets, mode 0600)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    api = API.from_args(args)
    if args.rotate_psk:
        return rotate_psk(api, args)
    if args.bulk:
        return provision_bulk(api, args)
    if not args.serial:
        raise CLIError("say which device: --serial SN (or --bulk FILE)")
    return provision_one(api, args)


# ---------------------------------------------------------------- one device

def provision_one(api, args):
    row = {"serial_number": args.serial}
    for k in ("manufacturer_id", "model_id", "group"):
        if getattr(args, k):
            row[k] = getattr(args, k)
    pkg = api.call("POST", "/v1/devices", to_api_row(row))
    dev = pkg["device_id"]
    print(f"janua: provisioned device {dev} (serial {args.serial}, tenant {pkg.get('tenant')})")
    if not args.port:
        # Without a board the package is the only copy of the secret: print it once, to stdout.
        json.dump(pkg, sys.stdout, indent=1)
        print()
        return 0
    config = board_config(pkg, args)
    try:
        from tools import mpremote_util
        mpremote_util.write_file_atomic(args.port, BOARD_CONFIG, json.dumps(config).encode())
    except CLIError as e:
        # Do not leave a registered device whose credentials exist nowhere.
        try:
            api.call("POST", f"/v1/devices/{dev}/lifecycle",
                     {"action": "decommission", "reason": "provisioning onto the board failed"})
        except CLIError:
            pass
        raise CLIError(f"could not write the credentials onto the board at {args.port}: {e}; "
                       f"device {dev} was decommissioned", hint=e.hint)
    print(f"janua: wrote {BOARD_CONFIG} onto the board at {args.port}; reset it to authenticate")
    return 0


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


def board_config(pkg, args):
    host = args.device_server_host or urllib.parse.urlparse(args.server).hostname or "127.0.0.1"
    http_port = urllib.parse.urlparse(args.server).port or 80
    cfg = {
        "device_id": pkg["device_id"],
        "tenant": pkg.get("tenant"),
        "master_secret": pkg["master_secret"],
        "server": {"host": host, "udp_port": args.udp_port, "http_port": http_port,
                   "dtls_port": args.dtls_port},
        "transport": args.transport,
    }
    if args.board:
        cfg["board"] = args.board
    if args.wifi_ssid:
        cfg["wifi"] = {"ssid": args.wifi_ssid, "password": args.wifi_password or ""}
    return cfg


# ---------------------------------------------------------------- bulk

def read_rows(path):
    """Rows from CSV (header row; list fields separated by ';') or JSON lines. Yields (line, row|error)."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    with open(p, newline="") as f:
        first = f.read(1)
        f.seek(0)
        if first in ("{", "["):
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError("not a JSON object")
                    yield n, row
                except ValueError as e:
                    yield n, ValueError(f"line {n}: not valid JSON ({e})")
        else:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "serial_number" not in reader.fieldnames:
                raise CLIError(f"{path}: the CSV header must name a serial_number column")
            for n, row in enumerate(reader, 2):
                try:
                    yield n, _clean_csv_row(row)
                except ValueError as e:
                    yield n, ValueError(f"line {n}: {e}")


def to_api_row(row):
    """A flat row (CSV columns or a flat JSON object) in the API's shape: metadata nested."""
    out = {k: v for k, v in row.items() if k not in META_FIELDS}
    meta = dict(row.get("metadata") or {})
    meta.update({k: row[k] for k in META_FIELDS if k in row})
    if meta:
        out["metadata"] = meta
    return out


def _clean_csv_row(row):
    out = {}
    for k, v in row.items():
        if k is None:
            raise ValueError("more fields than the header names")
        v = (v or "").strip()
        if v == "":
            continue
        if k in LIST_FIELDS:
            out[k] = [t for t in (s.strip() for s in v.split(";")) if t]
        elif k in INT_FIELDS:
            out[k] = int(v, 0)
        else:
            out[k] = v
    return out


def provision_bulk(api, args):
    size = max(1, min(args.batch_size, MAX_BATCH))
    rows = list(read_rows(args.bulk))
    tenant = api.call("GET", "/v1/tenant")   # fail fast on a wrong token or server, before any batch
    manifest_path = Path(args.manifest or (args.bulk + ".manifest.jsonl"))
    total, ok, failed = len(rows), 0, []
    bar = _progress(total, args.no_progress)
    fd = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as manifest:
        for start in range(0, total, size):
            chunk = rows[start:start + size]
            good = [(line, r) for line, r in chunk if not isinstance(r, Exception)]
            failed += [(line, str(r)) for line, r in chunk if isinstance(r, Exception)]
            if good:
                try:
                    resp = api.call("POST", "/v1/devices/bulk", {"devices": [to_api_row(r) for _, r in good]})
                    results = resp["results"]
                except CLIError as e:
                    results = [{"ok": False, "error": str(e)}] * len(good)
                for (line, row), res in zip(good, results):
                    if res.get("ok"):
                        ok += 1
                        entry = {k: res[k] for k in MANIFEST_FIELDS if k in res}
                        entry.setdefault("tenant", tenant.get("name"))
                        entry["line"] = line
                        manifest.write(json.dumps(entry) + "\n")
                    else:
                        failed.append((line, res.get("message") or res.get("error") or "refused"))
            bar.update(len(chunk))
    bar.close()
    print(f"janua: {total} devices: {ok} provisioned, {len(failed)} failed")
    for line, why in failed[:50]:
        print(f"  line {line}: {why}")
    if len(failed) > 50:
        print(f"  ... and {len(failed) - 50} more")
    print(f"janua: deployment manifest (holds device secrets, mode 0600): {manifest_path}")
    return 0 if not failed else 1


def _progress(total, disabled):
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="dev", desc="provisioning", disable=disabled, file=sys.stderr)
    except ImportError:  # tqdm is a dependency; keep working without a bar if it is missing
        class _Null:
            def update(self, n): pass
            def close(self): pass
        return _Null()
