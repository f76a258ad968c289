"""`janua ota trust-key|publish|rollout|start|status|halt|resume`: the verifier side of a release.

publish uploads a signed bundle (docs/ota.md section 7.2: multipart, manifest.json, manifest.sig,
files/<path>) with a progress bar; the verifier checks the signature and every file again before
storing it. Nothing here reads or sends a private key: trust-key sends the .pub file only.
"""

from pathlib import Path

from tools.errors import CLIError


def trust_key(api, pub_path, name=None):
    from tools.ota import load_public
    kid, raw = load_public(pub_path)
    return api.call("POST", "/v1/release-keys", {"pub": raw.hex(), "kid": kid, "name": name or Path(pub_path).stem})


def publish(api, bundle):
    from tools.ota import check_bundle, progress
    bundle = Path(bundle)
    if not (bundle / "manifest.sig").is_file():
        raise CLIError(f"{bundle} is not signed", hint="run `janua ota sign --key K BUNDLE` first")
    raw, m = check_bundle(bundle)
    parts = [("manifest.json", raw), ("manifest.sig", (bundle / "manifest.sig").read_bytes())]
    parts += [("files/" + f["path"], bundle / "files" / f["path"]) for f in m["files"]]
    bar = progress(m["size"], "uploading")
    try:
        return api.upload("/v1/releases", parts, bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


PHASES_HINT = "write PERCENT[:HOURS],... with increasing percents ending at 100, e.g. --phases 10:24,50:48,100"
PHASE_HOURS = 24   # a phase given without hours lasts this long (the last one's hours do not matter)


def parse_phases(text):
    """`--phases 10:24,50:48,100` -> [{"percent": 10, "hours": 24}, ..., {"percent": 100, "hours": 0}]
    (docs/ota.md 7.3); CLIError (one line and a hint) for anything the verifier would refuse."""
    def num(s, what):
        try:
            v = float(s)
        except ValueError:
            raise CLIError(f"--phases {text}: {s!r} is not a {what}", hint=PHASES_HINT)
        if v != v or v in (float("inf"), float("-inf")):
            raise CLIError(f"--phases {text}: {s!r} is not a {what}", hint=PHASES_HINT)
        return int(v) if v == int(v) else v
    items = [x.strip() for x in text.split(",")]
    if not 1 <= len(items) <= 10:
        raise CLIError(f"--phases {text}: a rollout has 1 to 10 phases", hint=PHASES_HINT)
    out, last = [], 0
    for i, item in enumerate(items):
        pc, _, h = item.partition(":")
        pc = num(pc, "percentage")
        hours = num(h, "number of hours") if h else (PHASE_HOURS if i < len(items) - 1 else 0)
        if not last < pc <= 100:
            raise CLIError(f"--phases {text}: percentages must increase, each above 0 and at most 100",
                           hint=PHASES_HINT)
        if not 0 <= hours <= 8760:
            raise CLIError(f"--phases {text}: a phase lasts 0 to 8760 hours", hint=PHASES_HINT)
        out.append({"percent": pc, "hours": hours})
        last = pc
    if last != 100:
        raise CLIError(f"--phases {text}: the last phase must reach 100 (every device)", hint=PHASES_HINT)
    return out


def rollout(api, release_id, start=False, phases=None, health_threshold=None, halt_threshold=None,
            halt_min_reports=None):
    """Create a release's rollout; phases (a list or `--phases` text) default to the manifest's."""
    doc = {"start": bool(start)}
    if isinstance(phases, str):
        phases = parse_phases(phases)
    if phases is not None:
        doc["phases"] = phases
    for name, v in (("health_threshold", health_threshold), ("halt_threshold", halt_threshold)):
        if v is not None:
            if not 0 < v <= 1:
                raise CLIError(f"--{name.replace('_', '-')} {v}: a failure rate above 0 and at most 1 "
                               "(e.g. 0.05 for 5 %)")
            doc[name] = v
    if halt_min_reports is not None:
        if not 1 <= halt_min_reports <= 100000:
            raise CLIError(f"--halt-min-reports {halt_min_reports}: a number of devices in 1..100000")
        doc["halt_min_reports"] = halt_min_reports
    return api.call("POST", f"/v1/releases/{release_id}/rollout", doc)


def status(api, rollout_id):
    return api.call("GET", f"/v1/rollouts/{rollout_id}")


def format_status(s):
    counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items() if v) or "no reports yet"
    lines = [f"rollout {s['id']} of {s['release_id']}: {s['state']}, phase {s['phase']}/{len(s['phases'])}, "
             f"{s['eligible_percent']}% of devices eligible",
             f"  reports: {counts}; failure rate {s['failure_rate']:.1%} of {s['outcomes']} outcomes"]
    if s.get("next_phase_at"):
        lines.append(f"  next phase not before {s['next_phase_at']} (unix s)")
    if s.get("held"):
        lines.append("  held: " + s["held"])
    if s["halted"]:
        lines.append("  HALTED: " + (s["halt_reason"] or ""))
    return "\n".join(lines)


def list_releases(api, args):
    """`janua ota list`: GET /v1/releases and GET /v1/rollouts, each release with its rollout (if any)."""
    import time
    from urllib.parse import urlencode
    from tools.output import print_json, print_table, wants_json, when
    if not 1 <= args.limit <= 1000:
        raise CLIError(f"--limit {args.limit}: 1 to 1000")
    q = {"limit": args.limit, **({"kind": args.kind} if args.kind else {})}
    doc = {"releases": api.call("GET", f"/v1/releases?{urlencode(q)}")["releases"],
           "rollouts": api.call("GET", f"/v1/rollouts?limit={args.limit}")["rollouts"]}
    if wants_json(args):
        print_json(doc)
        return
    if not doc["releases"]:
        print("no releases (publish one: `janua ota publish BUNDLE`)")
        return
    by_release = {r["release_id"]: r for r in doc["rollouts"]}
    now, rows = time.time(), []
    for rel in doc["releases"]:
        ro = by_release.get(rel["id"])
        if ro is None:
            progress = ("no rollout", None, None, None)
        else:
            done = ro["counts"]["confirmed"]
            progress = (ro["state"], f"{ro['phase']}/{len(ro['phases'])} ({ro['eligible_percent']}%)",
                        f"{done} confirmed, {ro['failed']} failed", f"{ro['failure_rate']:.1%}")
        rows.append((rel["id"], rel["kind"], rel["version"], rel["counter"], when(rel["created"], now),
                     ro["id"] if ro else None) + progress)
    print_table(("release", "kind", "version", "counter", "published", "rollout", "state", "phase", "reports",
                 "failure rate"), rows)


def configure(sub):
    from tools.api import add_server_arguments
    from tools.output import add_output_argument
    p = sub.add_parser("trust-key", help="upload a release public key (.pub) to the verifier")
    add_server_arguments(p)
    p.add_argument("--name")
    p.add_argument("pub")
    p = sub.add_parser("publish", help="upload a signed bundle to the verifier")
    add_server_arguments(p)
    p.add_argument("bundle")
    p = sub.add_parser("rollout", help="create the rollout of a published release")
    add_server_arguments(p)
    p.add_argument("release_id")
    p.add_argument("--start", action="store_true", help="start at once (else: `janua ota start ROLLOUT_ID`)")
    p.add_argument("--phases", metavar="P[:H],...",
                   help="percent of devices per phase and its hours, e.g. 10:24,50:48,100 (hours default "
                        f"{PHASE_HOURS}; the last phase must be 100); default: the manifest's")
    p.add_argument("--health-threshold", type=float, metavar="RATE",
                   help="advance a phase only below this failure rate (default 0.05)")
    p.add_argument("--halt-threshold", type=float, metavar="RATE",
                   help="halt by itself above this failure rate (default 0.2)")
    p.add_argument("--halt-min-reports", type=int, metavar="N",
                   help="...once at least N devices reported an outcome (default 5)")
    p = sub.add_parser("list", help="the releases and their rollouts: state, phase, reports, failure rate")
    add_server_arguments(p)
    add_output_argument(p)
    p.add_argument("--kind", help="only releases of this kind (e.g. app)")
    p.add_argument("--limit", type=int, default=100, help="newest releases and rollouts (1-1000, default 100)")
    for name, what in (("status", "show a rollout's phase, health and reports"),
                       ("start", "start a pending rollout (its first phase begins now)"),
                       ("halt", "stop offering a rollout's release"),
                       ("resume", "resume a halted rollout (its current phase starts over) or start a pending one")):
        p = sub.add_parser(name, help=what)
        add_server_arguments(p)
        p.add_argument("rollout_id")
        if name == "halt":
            p.add_argument("--reason", help="recorded with the halt (default: manual)")


COMMANDS = ("trust-key", "publish", "rollout", "start", "status", "halt", "resume", "list")


def run(args):
    from tools.api import API
    api = API.from_args(args)
    a = args.ota_command
    if a == "trust-key":
        k = trust_key(api, args.pub, args.name)
        print(f"key {k['kid']} trusted by the verifier")
    elif a == "publish":
        r = publish(api, args.bundle)
        print(f"published {r['id']}: {r['kind']} {r['version']} counter {r['counter']}, {len(r['files'])} files, "
              f"{r['size']} bytes\nnext: janua ota rollout {r['id']} --start")
    elif a == "rollout":
        print(format_status(rollout(api, args.release_id, args.start, args.phases, args.health_threshold,
                                    args.halt_threshold, args.halt_min_reports)))
    elif a == "status":
        print(format_status(status(api, args.rollout_id)))
    elif a == "list":
        list_releases(api, args)
    elif a == "start":
        s = status(api, args.rollout_id)
        if s["state"] != "pending":
            raise CLIError(f"rollout {args.rollout_id} is {s['state']}, not pending",
                           hint="`janua ota resume ID` restarts a halted rollout's phase")
        print(format_status(api.call("POST", f"/v1/rollouts/{args.rollout_id}/resume", {})))
    elif a == "halt":
        body = {"reason": args.reason} if args.reason else {}
        print(format_status(api.call("POST", f"/v1/rollouts/{args.rollout_id}/halt", body)))
    else:
        print(format_status(api.call("POST", f"/v1/rollouts/{args.rollout_id}/{a}", {})))
    return 0
