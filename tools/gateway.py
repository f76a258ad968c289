"""`janua gateway enrol|attest`: the edge gateway's side of TPM attestation (docs/attestation.md section 6)
against the cloud verifier's /v1/gateways routes, through verifier/edge/tpm.py (tpm2-tools, a TCTI).

  janua gateway enrol  --tpm TCTI --upstream URL --token-file F --name NAME --model MODEL [--ek-chain PEM ...]
  janua gateway attest --tpm TCTI --upstream URL --token-file F [--every SECONDS]

`enrol` binds the token (the edge's token, role edge: use the one `janua serve --edge --upstream-token-file`
reads) to this gateway and writes the gateway id to --state (default janua-gateway.json); `attest`
quotes once, or every SECONDS, and exits 1 when a result does not pass. `janua serve --edge --tpm TCTI`
does the same inside the edge (verifier/edge/attestor.py); these commands are for bring-up, and for an
edge run without --tpm.
"""

import json
import os
import subprocess
import time

from tools.api import API
from tools.errors import CLIError

STATE = "janua-gateway.json"


def configure(parser):
    sub = parser.add_subparsers(dest="gateway_command", metavar="ACTION")
    sub.required = True
    for name, help_ in (("enrol", "enrol this gateway's TPM (EK certificate, AK, credential activation)"),
                        ("attest", "quote PCRs 0-7 over the verifier's nonce and print the result")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--tpm", default="device:/dev/tpmrm0", metavar="TCTI",
                       help="tpm2-tools TCTI (default device:/dev/tpmrm0; swtpm:host=127.0.0.1,port=2321)")
        p.add_argument("--upstream", required=True, metavar="URL", help="the cloud verifier's base URL")
        p.add_argument("--token", default=os.environ.get("JANUA_TOKEN"), help="the edge's token, role edge (or --token-file)")
        p.add_argument("--token-file", help="file holding the edge's token (role edge)")
        p.add_argument("--state", default=STATE, help=f"where the gateway id is kept (default {STATE})")
        p.add_argument("--workdir", help="directory for tpm2-tools' files (public data only; default a new temp dir)")
        if name == "enrol":
            p.add_argument("--name", required=True, help="the gateway's name in the tenant")
            p.add_argument("--model", required=True, help="its model (the reference PCRs are per model)")
            p.add_argument("--ek-chain", nargs="*", default=[], metavar="PEM",
                           help="intermediate CA certificates of the EK certificate (PEM files)")
            p.add_argument("--ak", choices=("rsa", "ecc"), default="rsa", help="AK algorithm (default rsa)")
        else:
            p.add_argument("--every", type=int, metavar="SECONDS", help="attest again every SECONDS (default: once)")


def _pem_to_der(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-outform", "der"], capture_output=True)
    if out.returncode != 0:
        raise CLIError(f"{path} is not a PEM certificate")
    return out.stdout


def run(args):
    import asyncio
    from verifier.edge import tpm as gw
    api = API(args.upstream, token=args.token, token_file=args.token_file)
    call = gw.sync_call(api.call)
    tpm = gw.TPM(args.tpm, args.workdir)
    try:
        if args.gateway_command == "enrol":
            chain = [_pem_to_der(p) for p in args.ek_chain]
            made = asyncio.run(gw.enrol(call, tpm, args.name, args.model, ek_chain=chain, ak_alg=args.ak))
            with open(args.state, "w") as f:
                json.dump({"id": made["id"], "upstream": args.upstream}, f)
            print(json.dumps({"id": made["id"], "status": made["status"]}))
            return 0
        try:
            with open(args.state) as f:
                gateway_id = json.load(f)["id"]
        except (OSError, ValueError, KeyError):
            raise CLIError(f"no gateway id in {args.state}", hint="run `janua gateway enrol` first") from None
        while True:
            result = asyncio.run(gw.attest(call, tpm, gateway_id))
            print(json.dumps({k: result[k] for k in ("status", "passed", "trust_level", "ear")}), flush=True)
            if args.every is None:
                if not result["passed"]:
                    raise CLIError(f"attestation did not pass: {result['status']}",
                                   hint="; ".join(result["details"]["recommendations"]) or None)
                return 0
            time.sleep(args.every)
    except gw.TPMToolError as e:
        raise CLIError(str(e), hint=f"is the TPM at {args.tpm} reachable, and tpm2-tools installed?") from None
