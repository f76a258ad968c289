"""`janua audit`: the tenant's audit trail (GET /v1/audit), newest first: one page and its cursor, or
--all pages. Filter: --device (the API's device_id). Output: tools/output.py (-o table | json)."""

import time

from tools.api import API, add_server_arguments
from tools.device import parse_device_id
from tools.errors import CLIError
from tools.output import add_output_argument, note, print_json, print_table, wants_json, when


def configure(parser):
    add_server_arguments(parser)
    add_output_argument(parser)
    parser.add_argument("--device", metavar="ID", help="only this device's entries")
    parser.add_argument("--limit", type=int, help="entries to show (1-1000, default 100); with --all, the page size")
    parser.add_argument("--cursor", help="continue from the previous listing's next cursor (older entries)")
    parser.add_argument("--all", action="store_true", help="every entry, following the cursor page by page")


def run(args):
    api = API.from_args(args)
    limit = args.limit if args.limit is not None else (500 if args.all else 100)
    if not 1 <= limit <= 1000:
        raise CLIError(f"--limit {limit}: 1 to 1000")
    params = {}
    if args.device:
        params["device_id"] = parse_device_id(args.device)
    if args.cursor:
        params["cursor"] = args.cursor
    try:
        if args.all:
            page = {"entries": list(api.walk("/v1/audit", params, "entries", limit)), "next_cursor": None}
        else:
            page = api.page("/v1/audit", params, limit)
    except CLIError as e:
        if e.status == 400:
            raise CLIError(e.detail, status=400) from None
        raise
    if wants_json(args):
        print_json(page)
        return 0
    if not page["entries"]:
        print("no audit entries" + (" for this device" if args.device else ""))
    else:
        now = time.time()
        print_table(("time", "kind", "action", "device", "actor", "via", "result", "reason"),
                    [(when(e["ts"], now), e["kind"], e["action"], e["device_id"], e["actor"],
                      "/".join(x for x in (e["transport"], e["source"]) if x) or None, e["result"],
                      "; ".join(x for x in (e["reason"], e["detail"]) if x) or None) for e in page["entries"]],
                    cut_first=(7, 5, 4))        # on a narrow terminal: reason, via, actor first
    if page["next_cursor"]:
        note(f"older entries: --cursor {page['next_cursor']} (or --all)")
    return 0
