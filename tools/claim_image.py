"""`janua claim image`: the factory side of zero-touch claims (docs/claims_board.md), offline.

It computes the board's claim key K_c = HMAC-SHA256(batch_secret, "janua-claim-v1" 0x00 serial) on the
host and writes the claim image janua.json: {"claim": {"batch", "serial", "key", "coap"? (--coap: claim over
plain CoAP)}, "server", "wifi"?, "board"?}. One board (`--serial S --port P`: written atomically with mpremote, after a check that the board
holds neither an identity nor a claim, unless --force), or a flashing station's batch (`--serials FILE --out
DIR`: one 0600 file per serial, never over an existing one). An https:// --server takes --ca-file: the image's
server.tls and the CA as janua_server_ca.der (onto the board before janua.json; bulk: once into DIR). It registers nothing with the verifier, needs
no admin token and never prints a key: the first boot claims (janua.claim on the board).
"""

import hashlib
import hmac
import json
import os
import sys
import urllib.parse
from pathlib import Path

from tools.errors import CLIError
from tools.provision import SERVER_CA, server_ca
from verifier import secretfile

KEY_CONTEXT = b"janua-claim-v1\x00"
CONFIG = "janua.json"
MAX_SERIALS = 1_000_000

# What the board holds, read over mpremote before anything is written (its key never leaves the board here).
BOARD_HOLDS = """
import json
try:
    with open('janua.json') as f:
        c = json.load(f)
except (OSError, ValueError):
    c = {}
c = c if isinstance(c, dict) else {}
print('JANUA-HOLDS ' + json.dumps({'device_id': c.get('device_id'),
      'claim': (c.get('claim') or {}).get('serial') if isinstance(c.get('claim'), dict) else None}))
"""


def add_image_parser(subparsers):
    """The `image` sub-command under `janua claim` (tools/claim.py's configure calls this); returns its
    parser, whose defaults carry `_claim_image=run` (tools/claim.py's run dispatches to it: no API)."""
    p = subparsers.add_parser("image", help="write a board's claim image (offline; one board, or one file per "
                                            "serial for a flashing station)",
                              description=__doc__.split("\n\n")[0])
    configure(p)
    return p


def configure(p):
    p.add_argument("--batch", required=True, help="claim batch id (16 hex characters)")
    p.add_argument("--batch-secret-file", required=True,
                   help="file holding the batch secret (as written by `janua claim batch create`: 64 hex "
                        "characters, or a JSON object with \"batch_secret\")")
    p.add_argument("--serial", help="the board's serial number (1..64 printable ASCII characters, no space)")
    p.add_argument("--port", help="serial port of the board to write the claim image onto")
    p.add_argument("--serials", help="bulk: a file with one serial per line (blank lines and # comments "
                                     "skipped)")
    p.add_argument("--out", help="bulk: directory for one claim image per serial (<serial>.janua.json, 0600)")
    p.add_argument("--server", default=os.environ.get("JANUA_SERVER", "http://127.0.0.1:8080"),
                   help="the verifier's http:// or https:// (with --ca-file) URL the board claims from (env JANUA_SERVER; default "
                        "%(default)s)")
    p.add_argument("--ca-file", help="with an https:// --server: the CA (PEM or DER) the board checks the verifier's "
                                     "certificate against, written as janua_server_ca.der beside janua.json")
    p.add_argument("--coap", metavar="HOST:PORT",
                   help="claim over plain CoAP from this endpoint (the verifier's --coap-claim-port) instead of "
                        "HTTP; written as \"claim\": {..., \"coap\": {\"host\", \"port\"}}")
    p.add_argument("--wifi-ssid", help="Wi-Fi network for the board (esp32, rp2040)")
    p.add_argument("--wifi-password", help="Wi-Fi password for the board")
    p.add_argument("--board", default=None, help="board profile (esp32, rp2040, unix), kept in the image")
    p.add_argument("--force", action="store_true",
                   help="with --port: overwrite a board that already holds an identity or a claim image")
    p.add_argument("--no-progress", action="store_true", help="bulk: no progress bar")
    p.set_defaults(_claim_image=run)


def run(args):
    single = args.serial is not None or args.port is not None
    bulk = args.serials is not None or args.out is not None
    if single == bulk or (single and not (args.serial and args.port)) or (bulk and not (args.serials and args.out)):
        raise CLIError("give either --serial S --port P (one board) or --serials FILE --out DIR (bulk)")
    batch = check_batch(args.batch)
    secret = read_batch_secret(args.batch_secret_file, batch)
    base = image_base(args)
    if single:
        return image_board(args, batch, secret, base)
    return image_bulk(args, batch, secret, base)


def check_batch(text):
    b = (text or "").strip().lower()
    if len(b) != 16 or any(c not in "0123456789abcdef" for c in b):
        raise CLIError(f"--batch must be 16 hex characters, not {text!r}")
    return b


def check_serial(s, where="--serial"):
    if not 0 < len(s) <= 64 or any(not 0x21 <= ord(c) <= 0x7E for c in s):
        raise CLIError(f"{where}: serial {s!r} must be 1..64 printable ASCII characters without spaces")
    return s


def read_batch_secret(path, batch=None):
    """The 32-byte batch secret from its file (hex text, or JSON with "batch_secret" and "batch_id", which
    must then be `batch`); CLIError otherwise. The error never quotes the secret."""
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CLIError(f"cannot read the batch secret file {path}: {getattr(e, 'strerror', None) or e}")
    if text.startswith("{"):              # `janua claim batch create`'s file: {"batch_id", "batch_secret", ...}
        try:
            doc = json.loads(text)
            text = str(doc.get("batch_secret", ""))
        except (ValueError, AttributeError):
            doc, text = {}, ""
        if batch is not None and doc.get("batch_id") not in (None, batch):
            raise CLIError(f"{path} holds the secret of batch {doc.get('batch_id')}, not of {batch}")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise CLIError(f"{path} does not hold a batch secret (64 hex characters)",
                       hint="it is the file `janua claim batch create` wrote")
    return secret


def claim_key(batch_secret, serial):
    """K_c = HMAC-SHA256(batch_secret, "janua-claim-v1" 0x00 serial_utf8) (docs/claims.md)."""
    return hmac.new(batch_secret, KEY_CONTEXT + serial.encode(), hashlib.sha256).digest()


def image_base(args):
    """The image's fields shared by every serial: where to claim, Wi-Fi, board."""
    url = urllib.parse.urlparse(args.server)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise CLIError(f"--server must be an http:// or https:// URL the board can reach, not {args.server!r}",
                       hint="plain HTTP is fine for the claim: the answer is encrypted and authenticated")
    base = {"server": {"host": url.hostname, "http_port": url.port or (443 if url.scheme == "https" else 80)}}
    if url.scheme == "https":
        base["server"]["tls"] = True
    ca = server_ca(args)
    if ca is not None:
        base["_ca"] = ca
    if getattr(args, "coap", None):
        base["_coap"] = coap_endpoint(args.coap)
    if args.wifi_ssid:
        base["wifi"] = {"ssid": args.wifi_ssid, "password": args.wifi_password or ""}
    if args.board:
        base["board"] = args.board
    return base


def coap_endpoint(text):
    """{"host", "port"} of a --coap HOST:PORT (an IPv6 address in brackets); CLIError otherwise."""
    host, sep, port = (text or "").rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in " /[]"):
        raise CLIError(f"--coap must be HOST:PORT, not {text!r}", hint="e.g. --coap 192.0.2.10:5683")
    return {"host": host, "port": int(port)}


def image(base, batch, secret, serial):
    """The claim image (bytes of janua.json) for one serial."""
    cfg = {"claim": {"batch": batch, "serial": serial, "key": claim_key(secret, serial).hex()}}
    if "_coap" in base:
        cfg["claim"]["coap"] = base["_coap"]
    cfg.update((k, v) for k, v in base.items() if not k.startswith("_"))
    return json.dumps(cfg, separators=(",", ":")).encode()


def board_holds(port):
    """{"device_id", "claim"} of what the board at `port` holds (None values: nothing)."""
    from tools import mpremote_util
    out = mpremote_util.exec_(port, BOARD_HOLDS)
    for line in reversed(out.splitlines()):
        if line.startswith("JANUA-HOLDS "):
            try:
                return json.loads(line[len("JANUA-HOLDS "):])
            except ValueError:
                break
    raise CLIError(f"the board at {port} did not answer the check of its janua.json",
                   hint="is the janua firmware's MicroPython running on it? `janua console --port PORT`")


def image_board(args, batch, secret, base):
    from tools import mpremote_util
    serial = check_serial(args.serial)
    held = board_holds(args.port)
    if not args.force:
        if held.get("device_id"):
            raise CLIError(f"the board at {args.port} already holds device {held['device_id']}",
                           hint="--force replaces it (the device stays registered: decommission it)")
        if held.get("claim"):
            raise CLIError(f"the board at {args.port} already holds a claim image (serial {held['claim']})",
                           hint="--force replaces it")
    if "_ca" in base:                     # before janua.json: a board never holds an HTTPS image without its CA
        mpremote_util.write_file_atomic(args.port, SERVER_CA, base["_ca"])
    mpremote_util.write_file_atomic(args.port, CONFIG, image(base, batch, secret, serial))
    print(f"janua: claim image for serial {serial} (batch {batch}) written onto {args.port}; "
          "the board claims its identity at its next boot")
    return 0


def read_serials(path):
    """The serials of a bulk file, checked (charset, length, duplicates) before anything is written."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CLIError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}")
    out, seen = [], set()
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        check_serial(s, f"{path} line {n}")
        if s in seen:
            raise CLIError(f"{path} line {n}: serial {s!r} is listed twice")
        seen.add(s)
        out.append(s)
    if not out:
        raise CLIError(f"{path} lists no serial")
    if len(out) > MAX_SERIALS:
        raise CLIError(f"{path} lists {len(out)} serials; at most {MAX_SERIALS} per run")
    return out


def file_name(serial):
    """<serial>.janua.json with anything a path could misread (/, %, a leading dot) %-encoded."""
    name = urllib.parse.quote(serial, safe="!$&'()*+,;=:@-_~.")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name + ".janua.json"


def image_bulk(args, batch, secret, base):
    serials = read_serials(args.serials)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    there = [s for s in serials if (out / file_name(s)).exists()]
    ca_file = out / SERVER_CA
    if "_ca" in base and ca_file.exists() and ca_file.read_bytes() != base["_ca"]:
        raise CLIError(f"{ca_file} holds another CA than --ca-file; nothing was written",
                       hint="one CA per directory: use a new --out")
    if there:
        raise CLIError(f"{len(there)} of the {len(serials)} images already exist in {out} (first: "
                       f"{file_name(there[0])}); nothing was written", hint="never overwritten: use a new --out")
    if "_ca" in base and not ca_file.exists():     # one CA for the directory, copied beside every board's image
        ca_file.write_bytes(base["_ca"])
    bar = _progress(len(serials), args.no_progress)
    try:
        for i, s in enumerate(serials):
            try:
                f = secretfile.open_new(out / file_name(s))
            except OSError as e:        # created since the check (another station?): stop, keep what is there
                raise CLIError(f"cannot create {out / file_name(s)} ({e.strerror}); {i} images written before it")
            with f:
                f.write(image(base, batch, secret, s))
                secretfile.sync(f)
            bar.update(1)
    finally:
        bar.close()
    secretfile.sync_dir(out / file_name(serials[0]))
    n = len(serials)
    print(f"janua: {n} claim image{'s' if n != 1 else ''} (batch {batch}, mode 0600) written to {out}"
          + (f"; the boards also need {SERVER_CA} from there" if "_ca" in base else ""))
    return 0


def _progress(total, disabled):
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="img", desc="claim images", disable=disabled, file=sys.stderr)
    except ImportError:  # tqdm is a dependency; keep working without a bar if it is missing
        class _Null:
            def update(self, n): pass
            def close(self): pass
        return _Null()
