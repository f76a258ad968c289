"""`janua attest`: board attestation through the verifier's admin API (docs/attestation.md).

A table of actions, ACTIONS: name -> (configure, run, help): `status DEVICE` (status, trust level,
latest result and its recommendations), `request DEVICE` (a challenge now; the board gets it at its
next check-in), `ref add|list|delete` (per-model reference values; `--modules-from DIR` hashes an
installed `janua` package, `--app-from DIR` the factory application's main.py and boot.py), and
`policy` (show, or change with --interval/--deadline/--quarantine, for the tenant or one --group).
Every action takes `-o json` for the API's own JSON.
"""

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from tools.api import add_actions, add_server_arguments, run_action
from tools.errors import CLIError
from tools.output import add_output_argument

MODULE_SUFFIXES = (".py", ".mpy")
FACTORY_FILES = ("boot.py", "main.py")      # what a board measures when no OTA slot is active


def _device_id(value):
    v = value.strip().lower()
    if len(v) != 16 or any(c not in "0123456789abcdef" for c in v):
        raise CLIError(f"a device id is 16 hex characters, not {value!r}")
    return v


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_dir(directory, key, names):
    """[{key: name, size, sha256}] of the files of `directory` that `names(rel path)` keeps."""
    d = Path(directory)
    if not d.is_dir():
        raise CLIError(f"no directory {directory}")
    out = []
    for p in sorted(x for x in d.rglob("*") if x.is_file()):
        rel = p.relative_to(d).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in rel.split("/")) or not names(rel):
            continue
        out.append({key: rel, "size": p.stat().st_size, "sha256": _digest(p)})
    if not out:
        raise CLIError(f"{directory} has no files to reference")
    return out


def _show(args, doc, text):
    print(json.dumps(doc, indent=2, sort_keys=True) if args.output == "json" else text)
    return 0


def _call(api, method, path, body=None, missing=None):
    try:
        return api.call(method, path, body)
    except CLIError as e:
        if e.status == 404 and missing:
            raise CLIError(missing) from None
        raise


# -- actions -----------------------------------------------------------------------------------

def _conf_device(p):
    p.add_argument("device_id", metavar="DEVICE", help="the device's id (16 hex characters)")


def _run_status(api, args):
    dev = _device_id(args.device_id)
    doc = _call(api, "GET", f"/v1/devices/{dev}/attestation", missing=f"no device {dev} in this tenant")
    lines = [f"device {dev}: {doc['attestation_status']}, trust level {doc['trust_level']}"
             + (" (quarantined" + (" by attestation)" if doc["quarantined_by_attestation"] else ")")
                if doc["quarantined"] else "")]
    if doc["challenge"]:
        lines.append(f"challenge outstanding until {doc['challenge']['expires_at']} ({doc['challenge']['reason']})")
    latest = doc["latest"]
    if latest:
        vec = ", ".join(f"{k} {v}" for k, v in sorted(latest["vector"].items()))
        lines.append(f"latest at {latest['created']}: {latest['status']} [{vec}]")
        lines += [f"  - {r}" for r in latest["details"].get("recommendations", [])]
    else:
        lines.append("no attestation yet (`janua attest request` asks for one)")
    return _show(args, doc, "\n".join(lines))


def _run_request(api, args):
    dev = _device_id(args.device_id)
    doc = _call(api, "POST", f"/v1/devices/{dev}/attest", missing=f"no device {dev} in this tenant")
    return _show(args, doc, f"challenge for {dev} until {doc['expires_at']}: the board answers it at its next check-in")


def _conf_ref(p):
    sub = p.add_subparsers(dest="ref_command", metavar="ACTION")
    sub.required = True
    a = sub.add_parser("add", help="register reference values for a board model")
    a.add_argument("--model", required=True, help="the board id the evidence reports (esp32, rp2040, unix)")
    a.add_argument("--micropython", help="the MicroPython version, e.g. 1.24.1")
    a.add_argument("--build", help="the firmware build string (os.uname().version)")
    a.add_argument("--modules-from", metavar="DIR", help="an installed janua package: its .py/.mpy files")
    a.add_argument("--app-from", metavar="DIR", help="the factory application: its main.py and boot.py")
    sub.add_parser("list", help="list the tenant's references").add_argument("--model")
    sub.add_parser("delete", help="delete a reference").add_argument("ref_id", metavar="ID")
    for q in sub.choices.values():
        add_server_arguments(q)
        add_output_argument(q)


def _ref_line(r):
    return (f"{r['id']}  model {r['model']}  micropython {r['micropython'] or 'any'}  build {r['build'] or 'any'}  "
            f"modules {len(r['modules']) if r['modules'] is not None else '-'}  "
            f"app files {len(r['app_files']) if r['app_files'] is not None else '-'}")


def _run_ref(api, args):
    if args.ref_command == "add":
        body = {"model": args.model}
        if args.micropython:
            body["micropython"] = args.micropython
        if args.build:
            body["build"] = args.build
        if args.modules_from:
            body["modules"] = hash_dir(args.modules_from, "name", lambda rel: rel.endswith(MODULE_SUFFIXES))
        if args.app_from:
            body["app_files"] = hash_dir(args.app_from, "path", lambda rel: rel in FACTORY_FILES)
        doc = api.call("POST", "/v1/attest/refs", body)
        return _show(args, doc, "registered " + _ref_line(doc))
    if args.ref_command == "list":
        doc = api.call("GET", "/v1/attest/refs" + (f"?model={quote(args.model)}" if args.model else ""))
        return _show(args, doc, "\n".join(_ref_line(r) for r in doc["refs"]) or "no references")
    _call(api, "DELETE", f"/v1/attest/refs/{quote(args.ref_id, safe='')}", missing=f"no reference {args.ref_id}")
    return _show(args, {"deleted": args.ref_id}, f"deleted {args.ref_id}")


def _conf_policy(p):
    p.add_argument("--group", help="a device group (metadata.group): its overrides")
    p.add_argument("--interval", type=int, metavar="S", help="seconds between attestations (0: off)")
    p.add_argument("--deadline", type=int, metavar="S", help="a challenge's lifetime in seconds")
    p.add_argument("--quarantine", choices=("on", "off"), help="quarantine on contraindicated")


def _run_policy(api, args):
    path = "/v1/attest/policy" + (f"/groups/{quote(args.group, safe='')}" if args.group else "")
    body = {k: v for k, v in (("interval_s", args.interval), ("deadline_s", args.deadline),
                              ("quarantine", None if args.quarantine is None else args.quarantine == "on"))
            if v is not None}
    doc = api.call("PUT", path, body) if body else api.call("GET", path)
    who = f"group {args.group}" if args.group else "tenant"
    return _show(args, doc, f"{who}: interval {doc['interval_s']} s, deadline {doc['deadline_s']} s, "
                            f"quarantine {'on' if doc['quarantine'] else 'off'}")


ACTIONS = {
    "status": (_conf_device, _run_status, "a device's attestation status, trust level and latest result"),
    "request": (_conf_device, _run_request, "issue a challenge to a device now"),
    "ref": (_conf_ref, _run_ref, "per-model reference values: add, list, delete"),
    "policy": (_conf_policy, _run_policy, "show or change the attestation policy (tenant or --group)"),
}


def configure(parser):
    add_actions(parser, "attest_command", ACTIONS, own_arguments=("ref",))


def run(args):
    return run_action(args, "attest_command", ACTIONS)
