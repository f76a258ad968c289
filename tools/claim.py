"""`janua claim`: zero-touch claim batches through the verifier's admin API (docs/claims.md).

`claim batch create NAME (--serials A,B | --serials-file F | --pattern GLOB) --max-count N [--not-before T]
[--not-after T] [--days D] [--device-json JSON] [--hook URL] [--secret-file F]` writes the batch secret (64 hex,
and the hook secret if any) to a NEW 0600 file (default ./claim-<batch id>.secret; never over an existing one) and
prints it nowhere else; `batch list`, `batch show ID`, `batch revoke ID`; `claim list ID` (the batch's claims);
`claim reset ID SERIAL` (the operator re-claim). Every action takes `-o json`. What it does not do: write a board's
claim image (`janua claim image`, the factory side, is another module's)."""

import json
import re
import time
import urllib.parse
from pathlib import Path

from tools.api import API, add_actions, add_server_arguments, call_explained
from tools.errors import CLIError
from tools.output import add_output_argument, fields, note, print_json, print_table, wants_json, when

_ID = re.compile(r"[0-9a-f]{16}\Z")


def _batch_id(value):
    v = value.strip().lower()
    if not _ID.match(v):
        raise CLIError(f"a claim batch id is 16 hex characters, not {value!r}", hint="`janua claim batch list` shows them")
    return v


def _call(api, method, path, body=None, what=None):
    return call_explained(api, method, path, body, what and f"no {what} in this tenant",
                          "`janua claim batch list` shows the batches")


def _serials(args):
    if args.serials_file:
        try:
            return [ln.strip() for ln in Path(args.serials_file).read_text().splitlines() if ln.strip()]
        except OSError as e:
            raise CLIError(f"cannot read --serials-file {args.serials_file}: {e.strerror}") from None
    return [s.strip() for s in args.serials.split(",") if s.strip()]


def _configure_create(p):
    p.add_argument("name", metavar="NAME", help="the batch's name (e.g. the production line and week)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--serials", help="comma-separated serials that may claim")
    which.add_argument("--serials-file", metavar="F", help="a file of serials, one a line")
    which.add_argument("--pattern", help="serials that may claim: * any run, ? one character (e.g. 'SN-2026-*')")
    p.add_argument("--max-count", type=int, required=True, help="how many claims the batch allows")
    p.add_argument("--not-before", type=int, help="unix seconds (default now)")
    p.add_argument("--not-after", type=int, help="unix seconds (default --days after not-before)")
    p.add_argument("--days", type=int, help="validity in days instead of --not-after (default 365)")
    p.add_argument("--device-json", metavar="JSON", help='the claimed devices\' template, e.g. \'{"model_id": "pico-w", '
                                                        '"metadata": {"group": "lobby"}, "transport": "udp"}\'')
    p.add_argument("--hook", metavar="URL", help="a pre-claim hook asked before each new claim (docs/claims.md 8)")
    p.add_argument("--secret-file", metavar="F", help="where to write the batch secret (0600, must not exist; "
                                                       "default ./claim-<batch id>.secret)")


def _run_create(api, args):
    body = {"name": args.name, "max_count": args.max_count}
    if args.pattern is not None:
        body["serial_pattern"] = args.pattern
    else:
        body["serials"] = _serials(args)
    if args.not_before is not None:
        body["not_before"] = args.not_before
    if args.not_after is not None and args.days is not None:
        raise CLIError("give --not-after or --days, not both")
    if args.not_after is not None:
        body["not_after"] = args.not_after
    if args.days is not None:
        if args.days < 1:
            raise CLIError("--days must be at least 1")
        body["not_after"] = (args.not_before if args.not_before is not None else int(time.time())) + args.days * 86400
    if args.device_json is not None:
        try:
            body["device"] = json.loads(args.device_json)
        except ValueError as e:
            raise CLIError(f"--device-json is not JSON: {e}") from None
    if args.hook is not None:
        body["hook"] = {"url": args.hook}
    path = Path(args.secret_file) if args.secret_file else None
    if path is not None and (path.exists() or path.is_symlink()):      # before the batch exists: nothing lost
        raise CLIError(f"{path} exists; the batch secret is never written over a file", hint="name a new --secret-file")
    out = _call(api, "POST", "/v1/claim-batches", body)
    path = path or Path(f"claim-{out['batch_id']}.secret")
    doc = {"batch_id": out["batch_id"], "batch_secret": out.pop("batch_secret")}
    if "hook_secret" in out:
        doc["hook_secret"] = out.pop("hook_secret")
    from verifier import secretfile
    try:
        secretfile.write_new(path, (json.dumps(doc, indent=1) + "\n").encode())
    except OSError as e:
        raise CLIError(f"batch {out['batch_id']} was created but its secret could not be written to {path}: "
                       f"{e.strerror or e}", hint=f"revoke it (`janua claim batch revoke {out['batch_id']}`) and "
                                                  "create another") from None
    out["secret_file"] = str(path)
    if wants_json(args):
        print_json(out)
    else:
        _show(out)
        note(f"the batch secret is in {path} (mode 0600) and nowhere else: keep it for `janua claim image`")
    return 0


def _show(b):
    allowed = b.get("serial_pattern") or f"{len(b['serials'])} serials"
    pairs = [("batch", b["batch_id"]), ("name", b["name"]), ("status", b["status"]), ("serials", allowed),
             ("claimed", f"{b['claimed_count']} of {b['max_count']} ({b['remaining']} left)"),
             ("valid", f"{when(b['not_before'])} .. {when(b['not_after'])}"),
             ("device", json.dumps(b["device"], sort_keys=True)), ("hook", (b.get("hook") or {}).get("url")),
             ("created", when(b["created"]))]
    if b.get("secret_file"):
        pairs.append(("secret file", b["secret_file"]))
    print(fields(pairs))


def _run_list(api, args):
    batches = _call(api, "GET", "/v1/claim-batches?limit=1000")["batches"]
    if wants_json(args):
        print_json(batches)
    elif not batches:
        note("no claim batches in this tenant")
    else:
        print_table(["batch", "name", "status", "claimed", "max", "serials"],
                    [[b["batch_id"], b["name"], b["status"], b["claimed_count"], b["max_count"],
                      b.get("serial_pattern") or f"{len(b['serials'])} listed"] for b in batches], cut_first=(1,))
    return 0


def _configure_id(p):
    p.add_argument("batch_id", metavar="ID", help="the batch's id (16 hex)")


def _run_show(api, args):
    bid = _batch_id(args.batch_id)
    b = _call(api, "GET", f"/v1/claim-batches/{bid}", what=f"claim batch {bid}")
    print_json(b) if wants_json(args) else _show(b)
    return 0


def _run_revoke(api, args):
    bid = _batch_id(args.batch_id)
    b = _call(api, "POST", f"/v1/claim-batches/{bid}/revoke", what=f"claim batch {bid}")
    print_json(b) if wants_json(args) else note(f"revoked claim batch {bid}: every later claim of it is refused")
    return 0


BATCH_ACTIONS = {
    "create": (_configure_create, _run_create, "create a claim batch; its secret goes to a new 0600 file only"),
    "list": (lambda p: None, _run_list, "the tenant's claim batches (never a secret)"),
    "show": (_configure_id, _run_show, "one claim batch: status, claimed count, template"),
    "revoke": (_configure_id, _run_revoke, "revoke a claim batch"),
}


def _run_claims(api, args):
    bid = _batch_id(args.batch_id)
    out, cursor = [], None
    while True:
        q = "?limit=1000" + (f"&cursor={urllib.parse.quote(cursor, safe='')}" if cursor else "")
        page = _call(api, "GET", f"/v1/claim-batches/{bid}/claims{q}", what=f"claim batch {bid}")
        out += page["claims"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    if wants_json(args):
        print_json(out)
    elif not out:
        note(f"no claims of batch {bid} yet")
    else:
        print_table(["serial", "device", "claimed", "resumed"],
                    [[c["serial"], c["device_id"], when(c["claimed_at"]), c["resumed"]] for c in out])
    return 0


def _configure_reset(p):
    _configure_id(p)
    p.add_argument("serial", metavar="SERIAL", help="the claimed serial to forget")


def _run_reset(api, args):
    bid = _batch_id(args.batch_id)
    path = f"/v1/claim-batches/{bid}/claims/{urllib.parse.quote(args.serial, safe='')}/reset"
    out = _call(api, "POST", path, what=f"claim of {args.serial!r} in batch {bid}")
    if wants_json(args):
        print_json(out)
    else:
        note(f"forgot the claim of {out['serial']}: device {out['device_id']} is decommissioned; the serial may claim again")
    return 0


ACTIONS = {
    "list": (_configure_id, _run_claims, "the claims of one batch: serial, device, when"),
    "reset": (_configure_reset, _run_reset, "forget a claim (its device decommissioned) so the serial may claim again"),
}


def configure(parser):
    sub = parser.add_subparsers(dest="claim_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("batch", help="claim batches: create, list, show, revoke",
                       description="claim batches: create, list, show, revoke")
    add_actions(p, "batch_command", BATCH_ACTIONS)
    for name, (conf, _, help_) in ACTIONS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        add_server_arguments(p)
        add_output_argument(p)
        conf(p)
    from tools.claim_image import add_image_parser
    add_image_parser(sub)                   # `claim image`: the factory side, offline (tools/claim_image.py)


def run(args):
    if args.claim_command == "image":
        return args._claim_image(args)      # offline: no API, no token
    api = API.from_args(args)
    if args.claim_command == "batch":
        return BATCH_ACTIONS[args.batch_command][1](api, args)
    return ACTIONS[args.claim_command][1](api, args)
