"""`janua ota trust-key|publish|rollout|status|halt|resume`: the verifier side of a release.

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
    from tools.ota import _progress, check_bundle
    bundle = Path(bundle)
    if not (bundle / "manifest.sig").is_file():
        raise CLIError(f"{bundle} is not signed", hint="run `janua ota sign --key K BUNDLE` first")
    raw, m = check_bundle(bundle)
    parts = [("manifest.json", raw), ("manifest.sig", (bundle / "manifest.sig").read_bytes())]
    parts += [("files/" + f["path"], bundle / "files" / f["path"]) for f in m["files"]]
    bar = _progress(m["size"], "uploading")
    try:
        return api.upload("/v1/releases", parts, bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def rollout(api, release_id, start=False):
    return api.call("POST", f"/v1/releases/{release_id}/rollout", {"start": bool(start)})


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


def configure(sub):
    from tools.api import add_server_arguments
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
    p.add_argument("--start", action="store_true", help="start at once (else: `janua ota resume ID`)")
    for name, what in (("status", "show a rollout's phase, health and reports"),
                       ("halt", "stop offering a rollout's release"), ("resume", "start or resume a rollout")):
        p = sub.add_parser(name, help=what)
        add_server_arguments(p)
        p.add_argument("rollout_id")


COMMANDS = ("trust-key", "publish", "rollout", "status", "halt", "resume")


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
        print(format_status(rollout(api, args.release_id, args.start)))
    elif a == "status":
        print(format_status(status(api, args.rollout_id)))
    else:
        print(format_status(api.call("POST", f"/v1/rollouts/{args.rollout_id}/{a}", {})))
    return 0
