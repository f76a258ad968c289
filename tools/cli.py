"""`janua`: the host command line. One command table, one user-facing error."""

import argparse
import importlib
import os
import sys

from tools.errors import CLIError

# name -> (module, one-line help). Each module has configure(parser) and run(args) -> int | None.
COMMANDS = {
    "serve": ("tools.serve", "run the verifier (HTTP + UDP binary auth)"),
    "tenant": ("tools.tenant", "create tenants and admin tokens in the registry"),
    "provision": ("tools.provision_cli", "provision devices (one, onto a board, or in bulk)"),
    "device": ("tools.device", "the tenant's devices: list, show, suspend, resume, decommission, quarantine, delete"),
    "audit": ("tools.audit", "the tenant's audit trail, newest first (-o json for scripts)"),
    "claim": ("tools.claim", "zero-touch claim batches: create (secret to a 0600 file), list, show, revoke; claims, reset"),
    "webhook": ("tools.webhook", "the tenant's signed notification webhooks: add, list, delete, test, deliveries"),
    "vboard": ("tools.vboard", "run a virtual board: MicroPython unix port on a pseudo-terminal"),
    "flash": ("tools.flash", "compile the firmware and install it onto a board"),
    "console": ("tools.console", "serial console to a board, or --diag to print its status"),
    "demo": ("tools.demo", "verifier + virtual board authenticating, end to end"),
    "ota": ("tools.ota_cli", "signed OTA releases: keygen, build, sign, trust, install"),
    "mqtt": ("tools.mqtt", "mosquitto config (per-tenant mutual TLS, dynamic security) and tenant CAs"),
    "attest": ("tools.attest", "board attestation: status, request, model references, policy"),
    "kek": ("tools.kek", "rotate the key-encryption key: re-seal every secret of the registry (resumable)"),
    "token-key": ("tools.token_key", "list and rotate the verifier's token-signing keys (JWKS overlap)"),
    "gateway": ("tools.gateway", "edge gateway TPM attestation: enrol the TPM, attest (quote) to the cloud"),
    "backup": ("tools.backup", "a consistent online copy of the registry while the verifier runs (not the KEK)"),
    "restore": ("tools.restore", "restore the registry from a backup into a file no verifier holds"),
}


def version():
    """"janua X (firmware Y)": the installed distribution's version and the device package's."""
    from importlib import metadata
    try:
        v = metadata.version("janua")
    except metadata.PackageNotFoundError:       # run from a checkout that was never installed
        v = "unknown"
    from tools.boards import FIRMWARE_DIR
    fw = "unknown"
    try:
        for line in (FIRMWARE_DIR / "janua" / "__init__.py").read_text().splitlines():
            if line.startswith("__version__"):
                fw = line.split("=", 1)[1].strip().strip("\"'")
                break
    except OSError:
        pass
    return f"janua {v} (firmware {fw})"


def build_parser():
    parser = argparse.ArgumentParser(prog="janua", description="Device authentication for MicroPython boards.")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (modname, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=modname)
        importlib.import_module(modname).configure(p)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = importlib.import_module(args._module).run(args)
    except CLIError as e:
        print(f"janua: {e}", file=sys.stderr)
        if e.hint:
            print(f"janua: hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:                 # `janua ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
