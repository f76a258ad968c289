"""Signed OTA bundles on the verifier (verifier/ota/core.py): the signature file, the manifest and the
files of an upload, through Upload (begin, one writer per file, finish) on a real registry with the
tenant's release key, and the bundle signature check on raw input.

An input is the manifest (message 0) and files (messages 1.., each `path NUL content`), split at
fuzz.harness.SEP. The harness signs the manifest with the trusted key, so mutations get past the
signature to the manifest checks (as a compromised or careless signer's bundle would); the raw
input is also checked as a signature file. A manifest that parses as JSON is tried a second time
with one value replaced by one of another type (fuzz.harness.confuse, chosen by the input's hash). Documented errors: ReleaseRejected, ReleaseConflict and
the ValidationError of the rollout phases (all ValidationError or Conflict). A manifest that is
accepted must have the types docs/ota.md gives (integer sizes and counter, `rollout` an object).
"""

import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fuzz.harness import Invariant, confuse, frames, join
from fuzz.world import T0, World
from verifier.ota import core as ota
from verifier.errors import Conflict, ValidationError

ALLOWED = (ValidationError, Conflict)
SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
MAX_BYTES = 1 << 20


class _Rollback(Exception):
    pass


def _is_int(v):
    return type(v) is int


def sign(manifest_bytes):
    pub = SIGNER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sig = SIGNER.sign(ota.CONTEXT + hashlib.sha256(manifest_bytes).digest())
    return json.dumps({"alg": "Ed25519", "kid": ota.key_id(pub), "sig": sig.hex()}).encode()


def make(workdir):
    world = World(workdir + "/world")
    storage, tid = world.storage, world.tenant_id
    pub = SIGNER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ota.add_key(storage, tid, {"pub": pub.hex(), "name": "fuzz"}, T0, "fuzz")
    blobs = ota.BlobStore(workdir + "/blobs")

    def one_input(data):
        msgs = frames(data, 1 + ota.MAX_FILES)
        try:
            ota.verify_bundle_signature(storage, tid, msgs[0], data[-ota.MAX_SIG:])
        except ota.ReleaseRejected:
            pass
        try:
            upload(msgs[0], msgs[1:])
        except ALLOWED:
            pass
        try:
            doc = json.loads(msgs[0])
        except (ValueError, RecursionError):
            doc = None
        other = confuse(doc, data) if isinstance(doc, (dict, list)) else None
        if other is not None:
            upload(json.dumps(other).encode(), msgs[1:])

    def upload(manifest, parts):
        try:
            with storage.transaction():
                up = ota.Upload(storage, blobs, tid, manifest, sign(manifest), T0, "fuzz", MAX_BYTES)
                m = up.m
                if not (_is_int(m["size"]) and _is_int(m["counter"]) and all(_is_int(f["size"]) for f in m["files"])
                        and isinstance(m.get("rollout", {}), dict)):
                    raise Invariant(f"manifest accepted with a non-integer size or counter or a non-object rollout: "
                                    f"{manifest[:200]!r}")
                try:
                    for part in parts:
                        path, _, content = part.partition(b"\x00")
                        w = up.open_file(path.decode("utf-8", "replace"))
                        for i in range(0, len(content), 64):
                            w.write(content[i:i + 64])
                        w.close()
                    up.finish()
                finally:
                    up.abort()
                raise _Rollback
        except _Rollback:
            pass

    return one_input


def _manifest(files, **extra):
    doc = {"format": 1, "kind": "app", "name": "demo", "version": "1.2.0", "counter": 3,
           "size": sum(len(c) for _, c in files),
           "files": [{"path": p, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()} for p, c in files]}
    doc.update(extra)
    return json.dumps(doc, separators=(",", ":")).encode()


def seeds(workdir):
    files = [("app/main.py", b"print('hello')\n"), ("lib/util.py", b"X = 1\n" * 20)]
    out = [join([_manifest(files)] + [p.encode() + b"\x00" + c for p, c in files])]
    out.append(join([_manifest(files[:1], rollout={"phases": [{"percent": 10, "hours": 1},
                                                                {"percent": 100}]})]
                    + [files[0][0].encode() + b"\x00" + files[0][1]]))
    fw = [("firmware.bin", bytes(range(256)) * 4)]
    out.append(join([_manifest(fw, kind="firmware", version="1.29.0", counter=7)]
                    + [b"firmware.bin\x00" + fw[0][1]]))
    out.append(join([_manifest(files)] + [b"app/main.py\x00short"]))            # wrong size
    return out
