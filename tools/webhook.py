"""`janua webhook`: the tenant's notification webhooks through the verifier's admin API (docs/api.md
"Notifications").

A table of actions, ACTIONS: name -> (configure, run, help): `add URL [--events e1,e2] [--description
TEXT]` (prints the signing secret once: the verifier never shows it again), `list`, `delete ID`, `test
ID` (queues a webhook.test event to that webhook), `deliveries ID [--limit N]` (the delivery log,
newest first). Every action takes `-o json` for the verifier's JSON answer as is. It does not verify
signatures or receive webhooks: that is the receiver's side (docs/api.md shows how).
"""

import json
import re

from tools.api import add_actions, call_explained, run_action
from tools.errors import CLIError
from verifier.notify.core import EVENTS
_ID = re.compile(r"whk_[0-9a-f]{16}\Z")


def _webhook_id(value):
    v = value.strip()
    if not _ID.match(v):
        raise CLIError(f"a webhook id is whk_ and 16 hex characters, not {value!r}",
                       hint="`janua webhook list` shows them")
    return v


def _call(api, method, path, body=None, what=None):
    return call_explained(api, method, path, body, what and f"no webhook {what} in this tenant",
                          "`janua webhook list` shows them")


def _emit(args, doc, text):
    print(json.dumps(doc, indent=2) if args.output == "json" else text)


def _configure_add(p):
    p.add_argument("url", metavar="URL", help="where to POST events (https outside a lab)")
    p.add_argument("--events", help=f"comma-separated events to send (default: all: {','.join(EVENTS)})")
    p.add_argument("--description", help="a note for people (1-128 characters)")


def _run_add(api, args):
    body = {"url": args.url}
    if args.events is not None:
        events = [e.strip() for e in args.events.split(",") if e.strip()]
        unknown = [e for e in events if e not in EVENTS]
        if unknown or not events:
            raise CLIError(f"unknown event(s) {', '.join(unknown) or '(none given)'}",
                           hint=f"events are {', '.join(EVENTS)}")
        body["events"] = list(dict.fromkeys(events))
    if args.description is not None:
        body["description"] = args.description
    hook = _call(api, "POST", "/v1/webhooks", body)
    _emit(args, hook, f"webhook {hook['id']} -> {hook['url']}\nevents: {', '.join(hook['events'])}\n"
                      f"secret: {hook['secret']}\n"
                      "janua: keep the secret now (it is not shown again); receivers verify X-Janua-Signature with it")
    return 0


def _run_list(api, args):
    hooks = _call(api, "GET", "/v1/webhooks")["webhooks"]
    lines = [f"{h['id']}  {h['url']}  {','.join(h['events'])}" + (f"  ({h['description']})" if h["description"] else "")
             for h in hooks]
    _emit(args, hooks, "\n".join(lines) if lines else "janua: no webhooks in this tenant")
    return 0


def _configure_id(p):
    p.add_argument("webhook_id", metavar="ID", help="the webhook's id (whk_...)")


def _run_delete(api, args):
    wid = _webhook_id(args.webhook_id)
    _call(api, "DELETE", f"/v1/webhooks/{wid}", what=wid)
    _emit(args, {"deleted": wid}, f"janua: deleted webhook {wid} with its pending deliveries and delivery log")
    return 0


def _run_test(api, args):
    wid = _webhook_id(args.webhook_id)
    out = _call(api, "POST", f"/v1/webhooks/{wid}/test", what=wid)
    _emit(args, out, f"janua: queued webhook.test (event {out['event_id']}); "
                     f"`janua webhook deliveries {wid}` shows how it went")
    return 0


def _configure_deliveries(p):
    _configure_id(p)
    p.add_argument("--limit", type=int, default=20, help="how many, newest first (1-1000; default %(default)s)")


def _run_deliveries(api, args):
    wid = _webhook_id(args.webhook_id)
    if not 1 <= args.limit <= 1000:
        raise CLIError("--limit must be 1 to 1000")
    out = _call(api, "GET", f"/v1/webhooks/{wid}/deliveries?limit={args.limit}", what=wid)
    lines = []
    for d in out["deliveries"]:
        last = d["last_status"] if d["last_status"] is not None else (d["last_error"] or "-")
        nxt = f", next at {d['next_at']}" if d["next_at"] is not None else ""
        lines.append(f"{d['id']}  {d['event']} (event {d['event_id']})  {d['state']}, "
                     f"{d['attempts']} attempt(s), last: {last}{nxt}")
    _emit(args, out, "\n".join(lines) if lines else "janua: no deliveries yet")
    return 0


ACTIONS = {
    "add": (_configure_add, _run_add, "add a webhook; prints its signing secret once"),
    "list": (lambda p: None, _run_list, "list the tenant's webhooks (never a secret)"),
    "delete": (_configure_id, _run_delete, "delete a webhook, its pending deliveries and its log"),
    "test": (_configure_id, _run_test, "queue a webhook.test event to one webhook"),
    "deliveries": (_configure_deliveries, _run_deliveries, "a webhook's delivery log, newest first"),
}


def configure(parser):
    add_actions(parser, "webhook_command", ACTIONS)


def run(args):
    return run_action(args, "webhook_command", ACTIONS)
