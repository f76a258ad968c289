"""`janua policy`: device policies through the verifier's admin API (docs/policies.md).

A table of actions, ACTIONS: `show DEVICE` (the device's effective policy, each field with its source), `set SCOPE
KEY --file F | --set FIELD=VALUE ...` (--file replaces the scope's document with the JSON of F; --set edits the
current one field by field, e.g. `--set auth.protocols=dtls,token --set update.window.tz=Europe/Berlin`), `get SCOPE
KEY`, `delete SCOPE KEY` and `list [--scope S]`. SCOPE is tenant (KEY `default`), model, group or device. Every
action takes `-o json` for the verifier's JSON answer. It validates nothing the verifier validates: a refused
document is one line with the verifier's reason.
"""

import json
from pathlib import Path
from urllib.parse import quote

from tools.api import add_actions, call_explained, run_action
from tools.errors import CLIError
from tools.output import fields, print_json, print_table, wants_json, when

SCOPES = ("tenant", "model", "group", "device")
# how --set reads a value: lists are comma-separated, the rest by type (other fields: as text)
LISTS = {"auth.protocols", "auth.credential_types", "access.coap_resources", "access.token_scopes",
         "access.mqtt_topics.publish", "access.mqtt_topics.subscribe", "update.window.days"}
INTS = {"auth.min_trust_level", "auth.token_ttl_s", "auth.drift_s", "access.permissions"}
BOOLS = {"update.allowed"}
TEXTS = {"auth.attestation", "update.mode", "update.window.start", "update.window.end", "update.window.tz"}


def _path(scope, key):
    if scope not in SCOPES:
        raise CLIError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return f"/v1/policies/{scope}/{quote(key, safe='')}"


def _call(api, method, path, body=None, what=None):
    return call_explained(api, method, path, body, what and f"no {what}",
                          "`janua policy list` shows the documents")


def parse_assignment(text):
    """("a.b.c", value) of one --set FIELD=VALUE, the value typed by the field."""
    name, eq, raw = text.partition("=")
    name = name.strip()
    if not eq or name not in LISTS | INTS | BOOLS | TEXTS:
        known = ", ".join(sorted(LISTS | INTS | BOOLS | TEXTS))
        raise CLIError(f"--set takes FIELD=VALUE with a known field, not {text!r}", hint=f"fields: {known}")
    raw = raw.strip()
    if name in LISTS:
        return name, [v.strip() for v in raw.split(",") if v.strip()]
    if name in INTS:
        try:
            return name, int(raw, 0)          # 0x0f works for permissions
        except ValueError:
            raise CLIError(f"{name} takes an integer, not {raw!r}") from None
    if name in BOOLS:
        if raw not in ("true", "false"):
            raise CLIError(f"{name} takes true or false, not {raw!r}")
        return name, raw == "true"
    return name, raw


def apply_assignments(doc, assignments):
    """`doc` (a policy document) with each (dotted field, value) set in it."""
    out = json.loads(json.dumps(doc))
    for name, value in assignments:
        parts = name.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _show_policy(args, p):
    if wants_json(args):
        print_json(p)
        return
    print(fields([("scope", p["scope"]), ("key", p["key"]), ("updated", when(p["updated_at"])),
                  ("by", p["updated_by"])]))
    print(json.dumps(p["policy"], indent=2, sort_keys=True))


def _configure_scope_key(p):
    p.add_argument("scope", metavar="SCOPE", help="tenant, model, group or device")
    p.add_argument("key", metavar="KEY", help="tenant: default; model: a model id; group: a group; device: its id")


def _configure_set(p):
    _configure_scope_key(p)
    p.add_argument("--file", help="a JSON policy document: replaces the scope's document")
    p.add_argument("--set", dest="assign", action="append", default=[], metavar="FIELD=VALUE",
                   help="set one field of the current document (repeatable), e.g. auth.protocols=dtls,token")


def _run_set(api, args):
    if (args.file is None) == (not args.assign):
        raise CLIError("give --file F or one or more --set FIELD=VALUE")
    path = _path(args.scope, args.key)
    assignments = [parse_assignment(a) for a in args.assign]
    if args.file is not None:
        try:
            doc = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as e:
            raise CLIError(f"cannot read a JSON document from {args.file}: {e}") from None
    else:
        try:
            doc = api.call("GET", path)["policy"]
        except CLIError as e:
            if e.status != 404:
                raise
            doc = {}
        doc = apply_assignments(doc, assignments)
    _show_policy(args, _call(api, "PUT", path, doc, what=f"{args.scope} {args.key!r} in this tenant"))
    return 0


def _run_get(api, args):
    _show_policy(args, _call(api, "GET", _path(args.scope, args.key), what=f"policy for {args.scope} {args.key!r}"))
    return 0


def _run_delete(api, args):
    _call(api, "DELETE", _path(args.scope, args.key), what=f"policy for {args.scope} {args.key!r}")
    if wants_json(args):
        print_json({"deleted": {"scope": args.scope, "key": args.key}})
    else:
        print(f"janua: deleted the policy of {args.scope} {args.key}")
    return 0


def _configure_list(p):
    p.add_argument("--scope", choices=SCOPES, help="only this scope")


def _run_list(api, args):
    items = list(api.walk("/v1/policies", {"scope": args.scope} if args.scope else {}, "policies", 1000))
    if wants_json(args):
        print_json(items)
        return 0
    if not items:
        print("janua: no policies in this tenant")
        return 0
    print_table(["scope", "key", "fields", "updated"],
                [[p["scope"], p["key"], ", ".join(f"{s}.{f}" for s, part in sorted(p["policy"].items())
                                                 for f in sorted(part)) or "(empty)", when(p["updated_at"])]
                 for p in items], cut_first=(2,))
    return 0


def _configure_show(p):
    p.add_argument("device", metavar="DEVICE", help="the device id (16 hex)")


def _value(v):
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else ("-" if v is None else str(v))


def _run_show(api, args):
    out = _call(api, "GET", f"/v1/devices/{quote(args.device.strip().lower(), safe='')}/policy",
                what=f"device {args.device} in this tenant")
    if wants_json(args):
        print_json(out)
        return 0
    rows = [[f"{section}.{name}", _value(value), out["sources"][f"{section}.{name}"]]
            for section, part in out["policy"].items() for name, value in part.items()]
    print(f"device {out['device_id']}")
    print_table(["field", "value", "source"], rows, cut_first=(1,))
    return 0


ACTIONS = {
    "show": (_configure_show, _run_show, "a device's effective policy, each field with its source"),
    "set": (_configure_set, _run_set, "set a scope's policy (--file replaces it, --set edits fields)"),
    "get": (_configure_scope_key, _run_get, "the policy document of a scope"),
    "delete": (_configure_scope_key, _run_delete, "remove the policy document of a scope"),
    "list": (_configure_list, _run_list, "the tenant's policy documents in merge order"),
}


def configure(parser):
    add_actions(parser, "policy_command", ACTIONS)


def run(args):
    return run_action(args, "policy_command", ACTIONS)
