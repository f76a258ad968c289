"""`janua provision --bulk FILE`: many devices from a CSV or JSON lines file, in batches of POST
/v1/devices/bulk, with a progress bar, a summary and a deployment manifest.

The file is UTF-8 (a BOM is allowed): CSV with a header row naming serial_number, comma-separated (list
fields such as tags separated by ';' inside a field), or one JSON object per line. Errors name 1-based line
numbers. The manifest (one JSON line per created device, with its master secret) is a new 0600 file,
never an existing one, fsynced after every batch (verifier/secretfile.py).
"""

import csv
import io
import json
import sys
from pathlib import Path

from verifier import secretfile
from tools.errors import CLIError
from tools.provision import to_api_row

LIST_FIELDS = ("tags", "capabilities")
INT_FIELDS = ("permissions", "trust_level")
MAX_BATCH = 10000
# One manifest line per created device: what a factory station needs to flash it.
# "config": the board's endpoints for its region, when it has one (docs/regions.md)
MANIFEST_FIELDS = ("device_id", "serial_number", "tenant", "master_secret", "config")
MAX_BULK_BYTES = 256 * 1024 * 1024   # a bulk file is read whole: refuse one that cannot be a device list


def read_rows(path):
    """Rows from CSV (comma-separated, header row; list fields separated by ';') or JSON lines, in UTF-8
    (a leading BOM, as spreadsheets write it, is allowed). Returns [(1-based line, row dict | ValueError)];
    a file that cannot be read at all (encoding, header, CSV syntax) is a CLIError naming the line."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    try:
        if p.stat().st_size > MAX_BULK_BYTES:
            raise CLIError(f"{path} is over {MAX_BULK_BYTES >> 20} MiB", hint="split it into several files")
        raw = p.read_bytes()
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CLIError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x})",
                       hint="save it as UTF-8 (a spreadsheet's \"CSV UTF-8\"), or as JSON lines") from None
    if text.lstrip()[:1] in ("{", "["):
        return _json_rows(text)
    return _csv_rows(path, text)


def _json_rows(text):
    rows = []
    for n, line in enumerate(io.StringIO(text), 1):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            rows.append((n, ValueError(f"not valid JSON ({getattr(e, 'msg', e)}, column {getattr(e, 'colno', '?')})")))
            continue
        if not isinstance(row, dict):
            row = ValueError("not a JSON object")
        elif "metadata" in row and not isinstance(row["metadata"], (dict, type(None))):
            row = ValueError("metadata must be a JSON object")
        rows.append((n, row))
    return rows


def _csv_rows(path, text):
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, header, end = [], None, 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or fields == [""]:
                continue                      # blank line
            if header is None:
                header = [h.strip() for h in fields]
                _check_header(path, header)
                continue
            try:
                rows.append((start, _clean_csv_row(header, fields)))
            except ValueError as e:
                rows.append((start, e))
    except csv.Error as e:
        raise CLIError(f"{path}: line {reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise CLIError(f"{path} is empty", hint="a CSV header row naming a serial_number column, then one row per device")
    return rows


def _check_header(path, header):
    if "serial_number" in header:
        return
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in header[0]:
                raise CLIError(f"{path}: line 1: the columns are separated by {name}; janua reads comma-separated CSV",
                               hint="export it again with comma as the separator (list fields such as tags keep "
                                    "';' inside a field)")
    raise CLIError(f"{path}: line 1: the CSV header must name a serial_number column")


def _clean_csv_row(header, fields):
    if len(fields) > len(header):
        raise ValueError(f"{len(fields)} fields, but the header names {len(header)}")
    out = {}
    for k, v in zip(header, fields):
        v = v.strip()
        if v == "":
            continue
        if k == "metadata":
            raise ValueError("a CSV has no metadata column: use the flat columns (firmware_version, "
                             "hardware_version, location, group, tags, ...) or JSON lines")
        if k in LIST_FIELDS:
            out[k] = [t for t in (s.strip() for s in v.split(";")) if t]
        elif k in INT_FIELDS:
            try:
                out[k] = int(v, 0)
            except ValueError:
                raise ValueError(f"{k} must be an integer, not {v!r}") from None
        else:
            out[k] = v
    return out


def _open_manifest(args):
    """The manifest for this run: a new 0600 file, never an existing one. --manifest PATH that exists is
    refused; the default <FILE>.manifest.jsonl, when an earlier run left it, becomes <FILE>.manifest-2.jsonl
    (-3, ...): a re-run of a partly done file then keeps the first run's secrets and adds its own beside them."""
    try:
        if args.manifest:
            return secretfile.open_new(args.manifest), Path(args.manifest)
        return secretfile.open_unique(args.bulk + ".manifest.jsonl")
    except FileExistsError:
        raise CLIError(f"the manifest {args.manifest} exists; it may hold the only copy of devices' secrets",
                       hint="pass another --manifest, or leave it out to have a new numbered file") from None
    except OSError as e:
        raise CLIError(f"cannot create the manifest {args.manifest or args.bulk + '.manifest.jsonl'}: "
                       f"{e.strerror}") from None


def provision_bulk(api, args):
    size = max(1, min(args.batch_size, MAX_BATCH))
    rows = read_rows(args.bulk)
    tenant = api.call("GET", "/v1/tenant")   # fail fast on a wrong token or server, before any batch
    manifest, manifest_path = _open_manifest(args)
    secretfile.sync_dir(manifest_path)
    print(f"janua: writing the deployment manifest (device secrets, mode 0600) to {manifest_path}", file=sys.stderr)
    total, ok, failed = len(rows), 0, []
    bar = _progress(total, args.no_progress)
    with manifest:
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
                        manifest.write(json.dumps(entry).encode() + b"\n")
                    else:
                        failed.append((line, res.get("message") or res.get("error") or "refused"))
                secretfile.sync(manifest)     # each batch's secrets are on disk before the next batch
            bar.update(len(chunk))
    bar.close()
    print(f"janua: {total} devices: {ok} provisioned, {len(failed)} failed")
    for line, why in failed[:50]:
        print(f"  line {line}: {why}")
    if len(failed) > 50:
        print(f"  ... and {len(failed) - 50} more")
    if ok:
        print(f"janua: deployment manifest (holds device secrets, mode 0600): {manifest_path}")
    else:
        manifest_path.unlink()                # this run's own empty file, never an earlier one
        print("janua: no device was created, so no manifest was written")
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
