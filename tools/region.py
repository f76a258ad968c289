"""`janua region`: the tenant's regions through the verifier's admin API (docs/regions.md): the endpoints a board in
each region uses, which provisioning answers carry as the board's "config".

A table of actions, ACTIONS: name -> (configure, run, help): `set NAME` (define or replace a region, from
--auth-host/--udp-port/... options or --file region.json: the PUT /v1/regions/{name} body, optionally with its
"name"), `list`, `show NAME`, `delete NAME` (refused by the verifier while devices name the region). Every action
takes `-o json` for the verifier's JSON answer as is. It does not check a region's fields itself: the verifier does
(its OpenAPI document is the validation), and its reason is the message.
"""

import json
import re

from tools.api import add_actions, call_explained, run_action
from tools.errors import CLIError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")    # verifier/registry/model.py REGION_NAME_PATTERN


def _name(value):
    if not _NAME.match(value or ""):
        raise CLIError(f"a region name is 1 to 64 of A-Z a-z 0-9 . _ - (starting with a letter or digit), not {value!r}",
                       hint="`janua region list` shows the tenant's regions")
    return value


def _call(api, method, path, body=None, what=None):
    return call_explained(api, method, path, body, what and f"no region {what} in this tenant",
                          "`janua region list` shows them")


def _emit(args, doc, text):
    print(json.dumps(doc, indent=2) if args.output == "json" else text)


def describe(r):
    """A region in a few lines of text."""
    a = r["auth"]
    lines = [f"{r['name']}{'  (default)' if r['default'] else ''}",
             f"  auth   {a['host']} udp {a['udp_port']} http {a['http_port']}{' (tls)' if a.get('tls') else ''} "
             f"dtls {a['dtls_port']}"]
    for k in ("mqtt", "coap"):
        if k in r:
            lines.append(f"  {k:<6} {r[k]['host']}:{r[k]['port']}")
    for k in ("https", "update"):
        if k in r:
            lines.append(f"  {k:<6} {r[k]}")
    return "\n".join(lines)


def _configure_set(p):
    p.add_argument("name", metavar="NAME", nargs="?", help="the region's name (default: the --file's \"name\")")
    p.add_argument("--file", help="a JSON file with the region (the PUT /v1/regions/{name} body; other options "
                                  "then not allowed)")
    p.add_argument("--auth-host", help="host the boards authenticate to (binary auth, DTLS)")
    p.add_argument("--udp-port", type=int, default=5685, help="binary auth UDP port (default %(default)s)")
    p.add_argument("--http-port", type=int, default=8080, help="binary auth HTTP port (default %(default)s)")
    p.add_argument("--dtls-port", type=int, default=5684, help="DTLS port (default %(default)s)")
    p.add_argument("--tls", action="store_true", help="the boards speak HTTPS to --http-port")
    p.add_argument("--mqtt-host", help="MQTT broker host")
    p.add_argument("--mqtt-port", type=int, default=8883, help="MQTT broker port (default %(default)s)")
    p.add_argument("--coap-host", help="CoAP server host")
    p.add_argument("--coap-port", type=int, default=5683, help="CoAP server port (default %(default)s)")
    p.add_argument("--https", metavar="URL", help="HTTPS data endpoint (https://...)")
    p.add_argument("--update", metavar="URL", help="where OTA updates come from (https://...)")
    p.add_argument("--default", action="store_true", help="make it the tenant's default region")


_OPTIONS = ("auth_host", "mqtt_host", "coap_host", "https", "update")


def region_body(args):
    """(name, PUT body) from the `set` options or --file; CLIError for a mix or a missing piece."""
    if args.file:
        if any(getattr(args, k) for k in _OPTIONS) or args.tls or args.default:
            raise CLIError("--file holds the whole region: give no other region options with it")
        try:
            with open(args.file, encoding="utf-8") as f:
                body = json.load(f)
        except OSError as e:
            raise CLIError(f"cannot read {args.file}: {e.strerror}") from None
        except ValueError as e:
            raise CLIError(f"{args.file} is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise CLIError(f"{args.file} must hold a JSON object (the region)")
        body = dict(body)
        in_file = body.pop("name", None)
        if args.name and in_file is not None and in_file != args.name:
            raise CLIError(f"{args.file} names region {in_file!r}, not {args.name!r}")
        name = args.name or in_file
        if not isinstance(name, str):
            raise CLIError("say which region: NAME, or a \"name\" in --file")
        return _name(name), body
    if not args.name:
        raise CLIError("say which region: janua region set NAME --auth-host HOST ...")
    if not args.auth_host:
        raise CLIError("--auth-host is required (or --file region.json)")
    body = {"auth": {"host": args.auth_host, "udp_port": args.udp_port, "http_port": args.http_port,
                     "dtls_port": args.dtls_port}}
    if args.tls:
        body["auth"]["tls"] = True
    if args.mqtt_host:
        body["mqtt"] = {"host": args.mqtt_host, "port": args.mqtt_port}
    if args.coap_host:
        body["coap"] = {"host": args.coap_host, "port": args.coap_port}
    for k in ("https", "update"):
        if getattr(args, k):
            body[k] = getattr(args, k)
    if args.default:
        body["default"] = True
    return _name(args.name), body


def _run_set(api, args):
    name, body = region_body(args)
    r = _call(api, "PUT", f"/v1/regions/{name}", body)
    _emit(args, r, f"janua: region {name} set\n{describe(r)}")
    return 0


def _run_list(api, args):
    regions = _call(api, "GET", "/v1/regions")["regions"]
    _emit(args, regions, "\n".join(describe(r) for r in regions) if regions else "janua: no regions in this tenant")
    return 0


def _configure_name(p):
    p.add_argument("name", metavar="NAME", help="the region's name")


def _run_show(api, args):
    name = _name(args.name)
    _emit(args, r := _call(api, "GET", f"/v1/regions/{name}", what=name), describe(r))
    return 0


def _run_delete(api, args):
    name = _name(args.name)
    _call(api, "DELETE", f"/v1/regions/{name}", what=name)
    _emit(args, {"deleted": name}, f"janua: deleted region {name}")
    return 0


ACTIONS = {
    "set": (_configure_set, _run_set, "define or replace a region (options, or --file region.json)"),
    "list": (lambda p: None, _run_list, "list the tenant's regions"),
    "show": (_configure_name, _run_show, "show one region"),
    "delete": (_configure_name, _run_delete, "delete a region (refused while devices name it)"),
}


def configure(parser):
    add_actions(parser, "region_command", ACTIONS)


def run(args):
    return run_action(args, "region_command", ACTIONS)
