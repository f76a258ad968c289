"""`janua ota`'s command line: the bundle and board actions of tools/ota.py and the verifier actions of
tools/ota_release.py under one command (kept apart from both, so neither imports the other back)."""

from tools import ota, ota_release


def configure(parser):
    sub = parser.add_subparsers(dest="ota_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("keygen", help="make an Ed25519 release-signing key pair")
    p.add_argument("--out", default=".", help="directory for NAME.key and NAME.pub")
    p.add_argument("--name", default="release")
    p = sub.add_parser("build", help="make a release bundle from an application directory")
    p.add_argument("--app", required=True, metavar="DIR")
    p.add_argument("--version", required=True)
    p.add_argument("--counter", required=True, type=int, help="monotonic security counter (anti-rollback)")
    p.add_argument("--out", required=True, metavar="BUNDLE")
    p.add_argument("--board", action="append", default=[], help="compatible board id (repeat)")
    p.add_argument("--min-hw", type=int)
    p.add_argument("--max-hw", type=int)
    p.add_argument("--mp-min", help="lowest MicroPython version, e.g. 1.22.0 (default with .mpy files: the first "
                                    "release that loads them, 1.19.0 for .mpy version 6)")
    p.add_argument("--mp-max")
    p.add_argument("--feature", action="append", default=[], help="required janua.probe() feature, e.g. hashlib:sha256")
    p.add_argument("--entry", default="main", help="module the boot code imports (default main)")
    p.add_argument("--trial-boots", type=int, default=3)
    p.add_argument("--trial-seconds", type=int, help="time the new version has to confirm itself before the board "
                                                     "rolls back (default: the board's ota.json, 3600; 0: no limit)")
    p.add_argument("--no-rollback", action="store_true", help="security release: no trial, commit at once")
    p.add_argument("--previous", help="the version this release replaces (informative)")
    p.add_argument("--source", action="store_true",
                   help="ship .py instead of compiling to .mpy (for MicroPython that cannot load our .mpy files)")
    p.add_argument("--phases", metavar="P[:H],...",
                   help="the rollout's default phases: percent of devices and hours, e.g. 10:24,50:48,100 "
                        "(hours default 24; the last phase must be 100; default 1:24,10:48,50:72,100)")
    p = sub.add_parser("sign", help="sign a bundle's manifest")
    p.add_argument("--key", required=True)
    p.add_argument("bundle")
    p = sub.add_parser("trust", help="provision a release public key onto a board")
    p.add_argument("--port", required=True)
    p.add_argument("--hw-version", type=int)
    p.add_argument("--trial-boots", type=int)
    p.add_argument("--trial-seconds", type=int, help="the board's default trial time limit (0: none)")
    p.add_argument("pub")
    p = sub.add_parser("install", help="copy a signed bundle onto a board and install it")
    p.add_argument("--port", required=True)
    p.add_argument("bundle")
    ota_release.configure(sub)


def run(args):
    a = args.ota_command
    if a in ota_release.COMMANDS:
        return ota_release.run(args)
    if a == "keygen":
        key, pub, kid = ota.keygen(args.out, args.name)
        print(f"private key: {key} (keep it secret; mode 0600)\npublic key:  {pub}\nkid: {kid}")
    elif a == "build":
        phases = ota_release.parse_phases(args.phases) if args.phases is not None else None
        m = ota.build_bundle(args.app, args.out, args.version, args.counter, args.board, args.min_hw,
                         args.max_hw, args.mp_min, args.mp_max, args.feature, args.entry,
                         args.trial_boots, not args.no_rollback, args.previous, not args.source,
                         phases=phases, trial_seconds=args.trial_seconds)
        mp = m["compat"]["mp_min"]
        print(f"{args.out}: {len(m['files'])} files, {m['size']} bytes, version {m['version']} "
              f"counter {m['counter']}" + (f", for MicroPython {mp} or later" if mp else "") + " (unsigned)")
    elif a == "sign":
        print(f"signed {args.bundle} with key {ota.sign_bundle(args.bundle, args.key)}")
    elif a == "trust":
        print(f"key {ota.trust(args.port, args.pub, args.hw_version, args.trial_boots, args.trial_seconds)} trusted by the board")
    elif a == "install":
        print(f"installed {ota.install(args.port, args.bundle)} in trial: reset the board to boot it")
    return 0
