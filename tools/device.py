"""`janua device`: the tenant's devices through the verifier's admin API.

A table of actions, ACTIONS: name -> (configure, run, help):
- `list`: GET /v1/devices with the API's filters (status, group, tag) and its cursor; --firmware,
  --online/--offline and --search (serial or id) are applied here, on the pages the API returns.
- `show ID`: the device (GET /v1/devices/{id}) with its certificates, health, attestation and last
  authentications (each from its own route; never a secret: the API gives none).
- `suspend`, `resume`, `activate`, `decommission`, `quarantine`, `release` ID [--reason]: POST
  /v1/devices/{id}/lifecycle (docs/api.md "Lifecycle"); decommission is final and asks first.
- `delete ID`: remove a device that never authenticated (a mistaken provisioning), so that its serial
  can be used again (DELETE /v1/devices/{id}, audited).
Output: tools/output.py (-o table | json).
"""

import sys
import time
from urllib.parse import urlencode

from tools.api import add_actions, run_action
from tools.errors import CLIError
from tools.output import fields, note, print_json, print_table, wants_json, when

STATUSES = ("provisioning", "active", "suspended", "decommissioned")   # verifier/registry/model.py
ONLINE_WINDOW_S = 600    # the fleet's online rule when the verifier does not say (docs/fleet.md 1)
LAST_AUTHS = 5           # authentications `show` lists


def parse_device_id(value):
    v = value.strip().lower()
    if len(v) != 16 or any(c not in "0123456789abcdef" for c in v):
        raise CLIError(f"a device id is 16 hex characters, not {value!r}")
    return v


def _call(api, method, path, body=None, device=None):
    """api.call with the verifier's refusals as one line: 404 names the device, 400/403/409 are the
    verifier's own reason (a role too low, an action the device's state does not allow)."""
    try:
        return api.call(method, path, body)
    except CLIError as e:
        if e.status == 404 and device:
            raise CLIError(f"no device {device} in this tenant", hint="`janua device list` shows them") from None
        if e.status == 403:
            raise CLIError(e.detail, hint="ask for a token of that role (`janua tenant token NAME --role ROLE`)",
                           status=403) from None
        if e.status in (400, 409):
            raise CLIError(e.detail, status=e.status) from None
        raise


def _optional(api, path):
    """A device's side document (health, certificates, attestation), or None where there is none (404)."""
    try:
        return api.call("GET", path)
    except CLIError as e:
        if e.status == 404:
            return None
        raise


def _status(d):
    return d["status"] + (", quarantined" if d["security"]["quarantined"] else "")


def _firmware(d):
    return (d.get("metadata") or {}).get("firmware_version")


# -- list -------------------------------------------------------------------------------------

def _configure_list(p):
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--group", help="metadata group")
    p.add_argument("--tag", help="one of the metadata tags")
    p.add_argument("--firmware", metavar="VERSION", help="metadata firmware_version (filtered here)")
    on = p.add_mutually_exclusive_group()
    on.add_argument("--online", action="store_true",
                    help="authenticated within the fleet's online window (filtered here, by this computer's clock)")
    on.add_argument("--offline", action="store_true", help="the others (filtered here)")
    p.add_argument("--search", metavar="TEXT", help="part of the serial number, or the start of the id "
                                                    "(filtered here; case-insensitive)")
    p.add_argument("--limit", type=int, help="devices to show (1-1000, default 100); with --all, the page size "
                                             "(default 500)")
    p.add_argument("--cursor", help="start after this device id (the previous listing's next cursor)")
    p.add_argument("--all", action="store_true", help="every device, following the cursor page by page")


def _local_filter(api, args):
    """The test of the filters the API does not have, or None without any."""
    tests = []
    if args.firmware is not None:
        tests.append(lambda d: _firmware(d) == args.firmware)
    if args.search is not None:
        s = args.search.strip().lower()
        tests.append(lambda d: s in d["serial_number"].lower() or d["device_id"].startswith(s))
    if args.online or args.offline:
        fleet = _optional(api, "/v1/fleet/status") or {}
        window = (fleet.get("connectivity") or {}).get("online_window_s", ONLINE_WINDOW_S)
        since = time.time() - window
        want = bool(args.online)
        tests.append(lambda d: ((d["last_authenticated_at"] or 0) >= since) == want)
    return (lambda d: all(t(d) for t in tests)) if tests else None


def _run_list(api, args):
    limit = args.limit if args.limit is not None else (500 if args.all else 100)
    if not 1 <= limit <= 1000:
        raise CLIError(f"--limit {limit}: 1 to 1000")
    params = {k: v for k, v in (("status", args.status), ("group", args.group), ("tag", args.tag)) if v is not None}
    if args.cursor:
        params["cursor"] = parse_device_id(args.cursor)
    keep = _local_filter(api, args)
    if keep is None and not args.all:       # one page of the API, as it is
        page = _call(api, "GET", f"/v1/devices?{urlencode({**params, 'limit': limit})}")
    else:                                   # filtered here: read big pages, stop at `limit` matches
        devices, cursor = [], None
        for d in _walk(api, params, limit if args.all or keep is None else 1000):
            if keep is None or keep(d):
                devices.append(d)
                if not args.all and len(devices) == limit:
                    cursor = d["device_id"]
                    break
        page = {"devices": devices, "next_cursor": cursor}
    if wants_json(args):
        print_json(page)
    else:
        _print_devices(page["devices"])
    if page["next_cursor"] and not wants_json(args):
        note(f"more devices: --cursor {page['next_cursor']} (or --all)")
    return 0


def _walk(api, params, limit):
    try:
        yield from api.walk("/v1/devices", params, "devices", limit)
    except CLIError as e:
        if e.status == 400:
            raise CLIError(e.detail, status=400) from None
        raise


def _print_devices(devices):
    if not devices:
        print("no devices (provision some: `janua provision --serial SN --port P` or `--bulk FILE`)")
        return
    now = time.time()
    print_table(("id", "serial", "status", "firmware", "group", "last auth"),
                [(d["device_id"], d["serial_number"], _status(d), _firmware(d), (d["metadata"] or {}).get("group"),
                  when(d["last_authenticated_at"], now)) for d in devices])


# -- show -------------------------------------------------------------------------------------

def _configure_id(p):
    p.add_argument("device_id", metavar="ID", help="the device's id (16 hex characters)")


def _run_show(api, args):
    dev = parse_device_id(args.device_id)
    doc = {"device": _call(api, "GET", f"/v1/devices/{dev}", device=dev)}
    doc["certificates"] = _optional(api, f"/v1/devices/{dev}/certificate")
    doc["health"] = _optional(api, f"/v1/devices/{dev}/health")
    doc["attestation"] = _optional(api, f"/v1/devices/{dev}/attestation")
    audit = api.call("GET", f"/v1/audit?{urlencode({'device_id': dev, 'limit': 200})}")["entries"]
    doc["last_authentications"] = [a for a in audit if a["kind"] == "auth"][:LAST_AUTHS]
    if wants_json(args):
        print_json(doc)
    else:
        print(format_show(doc, time.time()))
    return 0


def format_show(doc, now, tz=None):
    """`janua device show`'s text from its JSON document (the API's objects) at time `now`."""
    d, t = doc["device"], (lambda ts: when(ts, now, tz))
    md = d.get("metadata") or {}
    sec = d["security"]
    pairs = [("device", d["device_id"]), ("serial", d["serial_number"]), ("tenant", d["tenant"]),
             ("manufacturer", d["manufacturer_id"]), ("model", d["model_id"]),
             ("status", f"{_status(d)} since {t(d['status_changed_at'] or d['provisioned_at'])}"),
             ("provisioned", t(d["provisioned_at"])), ("last auth", t(d["last_authenticated_at"])),
             ("last seen", t(d["last_seen_at"]))]
    for k, label in (("firmware_version", "firmware"), ("hardware_version", "hardware"), ("group", "group"),
                     ("location", "location")):
        if md.get(k) is not None:
            pairs.append((label, md[k]))
    if md.get("tags"):
        pairs.append(("tags", ", ".join(md["tags"])))
    if md.get("capabilities"):
        pairs.append(("capabilities", ", ".join(md["capabilities"])))
    cred = d["credential"]
    pairs.append(("credential", f"{cred['type']}, {'present' if cred['present'] else 'absent'}"))
    psk = d.get("psk") or {}
    if psk.get("expires_at") is not None:
        pairs.append(("dtls psk", f"generation {psk['generation']}, expires {t(psk['expires_at'])}"))
    certs = (doc.get("certificates") or {}).get("certificates") or []
    for c in certs:
        state = (f"revoked {t(c['revoked_at'])} ({c['reason']})" if c["revoked_at"] is not None
                 else "on hold" if c["on_hold"] else f"valid until {t(c['not_after'])}")
        pairs.append(("certificate", f"{c['key_type']} serial {c['serial']}, {state}"))
    pairs.append(("trust level", f"{sec['trust_level']}" + (", COMPROMISED" if sec["compromised"] else "")))
    att = doc.get("attestation") or {}
    latest = att.get("latest")
    pairs.append(("attestation", d["attestation_status"]
                  + (f", last {t(latest['created'])}" if latest else ", never appraised")))
    h = doc.get("health")
    if h and h.get("score") is not None:
        recs = "; ".join(r["message"] for r in h.get("recommendations") or [])
        pairs.append(("health", f"{h['score']}/100 ({h['bucket']}), report {t(h['received_at'])}"
                      + (f"; {recs}" if recs else "")))
    else:
        pairs.append(("health", "no report yet"))
    auths = doc.get("last_authentications") or []
    if not auths:
        pairs.append(("authentications", "none recorded"))
    for a in auths:
        how = "/".join(x for x in (a.get("transport"), a.get("action")) if x)
        pairs.append(("authentication", f"{t(a['ts'])} {how}" + (f" from {a['source']}" if a.get("source") else "")
                      + f" {a['result']}" + (f" ({a['reason']})" if a.get("reason") else "")))
    return fields(pairs)


# -- lifecycle --------------------------------------------------------------------------------

LIFECYCLE = {
    "suspend": "suspend a device: it is refused until resumed",
    "resume": "resume a suspended device",
    "activate": "activate a device still provisioning (its first authentication also does)",
    "decommission": "decommission a device for good (final: asks first unless --yes)",
    "quarantine": "quarantine a device: it may reach only what repairs it (OTA, attestation)",
    "release": "release a device from quarantine",
}


def _configure_lifecycle(name):
    def configure(p):
        p.add_argument("device_id", metavar="ID", help="the device's id (16 hex characters)")
        p.add_argument("--reason", help="recorded in the audit trail (at most 500 characters)")
        if name == "decommission":
            p.add_argument("--yes", action="store_true", help="do not ask (it cannot be undone)")
    return configure


def _run_lifecycle(name):
    def run(api, args):
        dev = parse_device_id(args.device_id)
        if name == "decommission" and not args.yes:
            d = _call(api, "GET", f"/v1/devices/{dev}", device=dev)
            if not sys.stdin.isatty():
                raise CLIError(f"decommissioning {dev} cannot be undone", hint="pass --yes to do it without asking")
            try:
                answer = input(f"decommission {dev} (serial {d['serial_number']}, {d['status']})? It cannot be "
                               "undone. Type yes: ")
            except EOFError:
                answer = ""
            if answer.strip().lower() != "yes":
                raise CLIError("not decommissioned")
        body = {"action": name} if args.reason is None else {"action": name, "reason": args.reason}
        d = _call(api, "POST", f"/v1/devices/{dev}/lifecycle", body, device=dev)
        if wants_json(args):
            print_json(d)
        else:
            print(f"device {dev} ({d['serial_number']}): {_status(d)}")
        return 0
    return run


# -- delete -----------------------------------------------------------------------------------

def _run_delete(api, args):
    dev = parse_device_id(args.device_id)
    try:
        api.call("DELETE", f"/v1/devices/{dev}")
    except CLIError as e:
        if e.status == 409:
            raise CLIError(e.detail, hint="janua device delete removes only a device that never authenticated "
                                          "(its certificates are revoked and its MQTT password removed with it)"
                           ) from None
        if e.status == 404:
            raise CLIError(f"no device {dev} in this tenant") from None
        raise
    print(f"janua: deleted device {dev}; its serial can be provisioned again")
    return 0


ACTIONS = {
    "list": (_configure_list, _run_list, "list the tenant's devices (filters, cursor, --all)"),
    "show": (_configure_id, _run_show,
             "one device: identity, metadata, lifecycle, credentials, trust, health, last authentications"),
    **{name: (_configure_lifecycle(name), _run_lifecycle(name), help_) for name, help_ in LIFECYCLE.items()},
    "delete": (_configure_id, _run_delete,
               "delete a device that never authenticated (frees its serial; audited)"),
}
NO_OUTPUT = ("delete",)


def configure(parser):
    add_actions(parser, "device_command", ACTIONS, no_output=NO_OUTPUT)


def run(args):
    return run_action(args, "device_command", ACTIONS)
