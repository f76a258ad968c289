"""Device-side fuzzing on the MicroPython unix port: the host half. `run(target, ...)` builds the
seeds (the shared vectors, a recorded DTLS conversation, chains and manifests made here), starts
fuzz/mp_fuzz.py on the unix port with the esp32 profile's heap (tools.boards.micropython_cmd, as the
firmware tests do), and returns its counts; crashing inputs are written to the crashes folder.

Targets and the only errors their module may raise:
  binauth   packet.decode_reply and binauth.Client.receive (reply decoding)   PacketError, AuthError
  coap      coap.decode, coap.option, and re-encoding what decodes            PacketError
  dtls      DTLSClient.receive over the recorded server flights, one mutated  DTLSError
  manifest  manifest.check_manifest, check_compat, verify_signature           OTAError
  chain     chain.Chain on flash: header, status, token_for, slot, mark_used  ChainError, StoreError
  claim     claim.open_answer (as sent, and re-tagged), claim.refusal          ClaimError
  attest    attestnet.mqtt_command (measuring, publishing), answer_of + nonce_of AttestError
"""

import hashlib
import json
import subprocess
import time
from pathlib import Path

from fuzz import conversation
from fuzz.world import DEVICE_ID, T0, vectors

TARGETS = ("binauth", "coap", "dtls", "manifest", "chain", "attest", "claim")
BOARD = "esp32"
SCRIPT = Path(__file__).resolve().parent / "mp_fuzz.py"


def _seeds_binauth(work):
    from verifier import keys
    from fuzz.world import MASTER
    v = vectors("binauth.json") or {}
    out = [bytes.fromhex(r["request"]) + bytes.fromhex(r["reply"]) for r in v.get("replies", [])]
    ctx = {"key": keys.derive_key(MASTER, keys.LABEL_BINAUTH).hex(), "device_id": DEVICE_ID.hex(), "now": T0}
    return out, ctx


def _seeds_claim(work):
    v = (vectors("claim.json") or {}).get("vectors", [])
    out = [bytes.fromhex(x["answer"]) for x in v]
    out += [b'{"error":"batch_exhausted","message":"no"}', b'{"error":"x\\ny"}']
    t = v[1] if len(v) > 1 else {"K_c": "00" * 32, "nonce": "00" * 16, "K_mac": "00" * 32}
    return out, {"key": t["K_c"], "nonce": t["nonce"], "mac": t["K_mac"]}


def _seeds_coap(work):
    from aiocoap import CON, Code, Message
    out = [bytes.fromhex("40010001b461757468"), bytes.fromhex("5201abcd0102b6636f6e666967"),
           bytes.fromhex("6045abcd")]
    m = Message(mtype=CON, code=Code.CONTENT, mid=7, token=b"\x01\x02", payload=b'{"available":false}')
    m.opt.content_format = 50
    out.append(m.encode())
    return out, {}


def _seeds_dtls(work):
    from verifier import keys
    from fuzz.world import MASTER
    conv = conversation.record(work)
    server = conv["server"]
    ctx = {"identity": f"{DEVICE_ID.hex()}@acme".encode().hex(), "psk": keys.dtls_psk(MASTER, 0).hex(),
           "server": [d.hex() for d in server]}
    return list(server), ctx


def _seeds_manifest(work):
    from fuzz.targets.ota import SIGNER, _manifest, sign
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from verifier.ota import core as ota
    pub = SIGNER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    files = [("app/main.py", b"print('hello')\n")]
    ms = [_manifest(files), _manifest(files, compat={"boards": ["esp32"], "hw_min": 1, "mp_min": "1.20.0",
                                                      "features": ["tls"]}, entry="app.main"),
          _manifest([("firmware.bin", b"\x00" * 64)], kind="firmware", version="1.29.0")]
    from fuzz.harness import SEP
    return [m + SEP + sign(m) for m in ms], {"kid": ota.key_id(pub), "pub": pub.hex()}


def _seeds_chain(work):
    import struct
    from cryptography.hazmat.primitives.asymmetric import ec
    from fuzz.harness import SEP
    from verifier.tokens import chain
    priv = ec.derive_private_key(0xC0FFEE1234, ec.SECP256R1())
    toks = chain.build_chain(bytes.fromhex("0a1b2c3d"), DEVICE_ID, "acme", T0 - 86400, 86400, 86400, 0, 4,
                             chain.ZERO_PREV, chain.signer(priv))
    blob = b"JCH1" + struct.pack(">HHII", 0, len(toks), 86400, 86400) + b"".join(toks)
    return [blob, blob + SEP + b"\x00\x00", blob + SEP + b"\x00\x01\x00", blob[:16 + 107]], \
        {"device_id": DEVICE_ID.hex(), "now": T0}


def _seeds_attest(work):
    from fuzz.world import MASTER
    nonce = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    out = [json.dumps({"cmd": "attest", "nonce": nonce, "expires_at": T0 + 300}).encode(),
           json.dumps({"nonce": nonce, "expires_at": T0 + 300}).encode(),
           json.dumps({"status": "affirming", "trust_level": "affirming", "quarantined": False,
                       "ear": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"}).encode(),
           b'{"cmd": "reboot"}', b'{"cmd": "attest"}']
    return out, {"device_id": DEVICE_ID.hex(), "master": MASTER.hex(), "now": T0}


def seeds(target, work):
    return globals()["_seeds_" + target](Path(work))


def run(target, seconds, runs, seed, crashes, work, inputs=None):
    from tools.boards import FIRMWARE_DIR, micropython_cmd
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    flash = work / "flash"
    flash.mkdir(exist_ok=True)
    ss, ctx = seeds(target, work)
    if inputs is not None:                 # a replay: exactly these inputs (the seeds run first)
        ss, runs, seconds = list(inputs), len(inputs), 0
    ctx["seed"] = seed
    cfg = work / "mp_fuzz.json"
    cfg.write_text(json.dumps({"target": target, "seed": seed, "runs": runs, "seconds": seconds,
                               "seeds": [s.hex() for s in ss], "ctx": ctx}))
    argv, env = micropython_cmd(BOARD, SCRIPT, path=[FIRMWARE_DIR])
    t0 = time.monotonic()
    p = subprocess.run(argv + [str(cfg)], env=env, cwd=flash, capture_output=True, text=True,
                       timeout=(seconds or 600) + 120)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        res = {"executions": 0, "crashes": 1, "crash_kinds": [f"the fuzzer itself failed: {p.stdout[-800:]}"
                                                                 f"{p.stderr[-1500:]}"], "kept": []}
    else:
        res = json.loads(lines[-1])
        res["crash_kinds"] = [f"{k} (x{n})" for k, n in res["crash_kinds"].items()]
    res["crash_files"] = []
    crashes = Path(crashes)
    for k in res.pop("kept", []):
        crashes.mkdir(parents=True, exist_ok=True)
        data = bytes.fromhex(k["input_hex"])
        f = crashes / f"device.{target}-{hashlib.sha1(data).hexdigest()[:16]}"
        f.write_bytes(data)
        res["crash_files"].append(str(f))
    res["wall_seconds"] = round(time.monotonic() - t0, 1)
    res.setdefault("seconds", res["wall_seconds"])
    res["exec_per_s"] = round(res["executions"] / res["seconds"], 1) if res.get("seconds") else 0
    res["board"] = BOARD
    return res


if __name__ == "__main__":
    # python -m fuzz.device TARGET FILE...: run saved inputs (e.g. from fuzz/crashes/) once each
    import sys
    import tempfile
    target, files = sys.argv[1], sys.argv[2:]
    out = run(target, 0, 0, 1, Path(tempfile.mkdtemp()) / "crashes", tempfile.mkdtemp(),
              [Path(f).read_bytes() for f in files])
    print(json.dumps(out, indent=1))
    sys.exit(1 if out["crashes"] else 0)
