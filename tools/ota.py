"""`janua ota`: release signing keys, release bundles, signatures, and installing onto a board.

    janua ota keygen --out DIR [--name NAME]       NAME.key (PKCS#8 PEM, 0600) + NAME.pub (JSON)
    janua ota build --app DIR --version V --counter N --out BUNDLE [--board B ...] [--min-hw N] ...
    janua ota sign --key NAME.key BUNDLE           writes BUNDLE/manifest.sig
    janua ota trust --port P NAME.pub              adds the public key to the board's ota.json
    janua ota install --port P BUNDLE              copies BUNDLE to ota_stage/ and installs it
    janua ota trust-key|publish|rollout|status|halt|resume ...   the verifier side (tools/ota_release.py)

A bundle is a directory: manifest.json (the signed bytes), manifest.sig, files/<path>. The format
is docs/ota.md. The private key never leaves its file: nothing here sends it anywhere.
"""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from tools.errors import CLIError

CONTEXT = b"janua-ota-v1"  # firmware/janua/manifest.py: the signed message prefix
DEFAULT_PHASES = [{"percent": 1, "hours": 24}, {"percent": 10, "hours": 48},
                  {"percent": 50, "hours": 72}, {"percent": 100, "hours": 0}]
_CHUNK = 65536


# -- keys -------------------------------------------------------------------------------------

def key_id(pub_raw):
    """The kid of a 32-byte Ed25519 public key: the first 8 bytes of its SHA-256, hex."""
    return hashlib.sha256(pub_raw).hexdigest()[:16]


def keygen(out_dir, name="release"):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if key_path.exists():
        raise CLIError(f"{key_path} exists", hint="choose another --name; keys are never overwritten")
    sk = Ed25519PrivateKey.generate()
    pem = sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())
    from verifier import secretfile
    try:        # a new 0600 file whatever the umask, never over an existing one (a race with the check above)
        secretfile.write_new(key_path, pem)
    except FileExistsError:
        raise CLIError(f"{key_path} exists", hint="choose another --name; keys are never overwritten") from None
    raw = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = key_id(raw)
    pub_path.write_text(json.dumps({"alg": "Ed25519", "kid": kid, "pub": raw.hex()}) + "\n")
    return key_path, pub_path, kid


def load_private_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        sk = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise CLIError(f"cannot read the signing key {path}: {e}")
    if not isinstance(sk, Ed25519PrivateKey):
        raise CLIError(f"{path} is not an Ed25519 private key")
    return sk


def load_public(path):
    try:
        d = json.loads(Path(path).read_text())
        raw = bytes.fromhex(d["pub"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CLIError(f"cannot read the public key {path}: {e}", hint="use the .pub file `janua ota keygen` wrote")
    if len(raw) != 32:
        raise CLIError(f"{path}: an Ed25519 public key is 32 bytes")
    return key_id(raw), raw


# -- bundles ----------------------------------------------------------------------------------

def progress(total, desc):
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False,
                    disable=not os.isatty(2))
    except ImportError:  # pragma: no cover
        return None


def _digest(path, bar=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                break
            h.update(b)
            if bar is not None:
                bar.update(len(b))
    return h.hexdigest()


def _check_path(p):
    parts = p.split("/")
    ok = 0 < len(p) <= 64 and all(x and x[0] != "." and all(c.isalnum() and c.isascii() or c in "_.-" for c in x)
                                  for x in parts)
    if not ok:
        raise CLIError(f"file path {p!r} cannot go into a release",
                       hint="paths are at most 64 characters of A-Z a-z 0-9 _ . - and no part starts with a dot")


def build_bundle(app_dir, out_dir, version, counter, boards=(), hw_min=None, hw_max=None,
                 mp_min=None, mp_max=None, features=(), entry="main", trial_boots=3, rollback=True,
                 previous=None, compile_py=True, phases=None, name=None, trial_seconds=None):
    """Make an unsigned bundle from the files under app_dir; return the manifest dict."""
    app_dir, out_dir = Path(app_dir), Path(out_dir)
    if not app_dir.is_dir():
        raise CLIError(f"no application directory {app_dir}")
    if not isinstance(counter, int) or not 0 <= counter <= 0x7FFFFFFF:
        raise CLIError("the security counter is an integer in 0..2147483647")
    if trial_seconds is not None and not 0 <= trial_seconds <= 0x7FFFFFFF:
        raise CLIError("--trial-seconds is an integer in 0..2147483647 (0: no time limit)")
    if compile_py and any(p.relative_to(app_dir).as_posix() != "boot.py" for p in app_dir.rglob("*.py")):
        # .mpy files load only on the MicroPython releases of their .mpy version: record that range in
        # compat.mp_min (which the device checks before downloading anything), or refuse a range beyond it.
        from tools import mpy_compat
        mp_min = mpy_compat.check_target(mpy_compat.cross_header()[0], mp_min, mp_max)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    files_dir = out_dir / "files"
    files_dir.mkdir(parents=True)
    entries = []
    for src in sorted(p for p in app_dir.rglob("*") if p.is_file()):
        rel = src.relative_to(app_dir).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in rel.split("/")):
            continue
        if compile_py and rel.endswith(".py") and rel != "boot.py":
            from tools.build import compile_mpy
            rel = rel[:-3] + ".mpy"
            compile_mpy(src, files_dir / rel, source_name=src.relative_to(app_dir).as_posix())
        else:
            (files_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, files_dir / rel)
        _check_path(rel)
        entries.append(rel)
    if not entries:
        raise CLIError(f"{app_dir} has no files")
    if len(entries) > 64:
        raise CLIError("a release holds at most 64 files")
    files = []
    for rel in entries:
        p = files_dir / rel
        files.append({"path": rel, "size": p.stat().st_size, "sha256": _digest(p)})
    m = {
        "format": 1, "kind": "app", "name": name or app_dir.name, "version": version,
        "counter": counter, "created": int(time.time()), "entry": entry,
        "size": sum(f["size"] for f in files), "files": files,
        "compat": {"boards": list(boards), "hw_min": hw_min, "hw_max": hw_max,
                   "mp_min": mp_min, "mp_max": mp_max, "features": list(features)},
        "rollback": {"allowed": rollback, "previous": previous, "trial_boots": trial_boots,
                     **({"trial_seconds": trial_seconds} if trial_seconds is not None else {})},
        "rollout": {"strategy": "phased", "phases": phases or DEFAULT_PHASES},
    }
    (out_dir / "manifest.json").write_bytes(encode_manifest(m))
    return m


def encode_manifest(m):
    return json.dumps(m, sort_keys=True, separators=(",", ":")).encode()


def check_bundle(bundle):
    """Re-hash every file of a bundle against its manifest; return (manifest bytes, dict)."""
    bundle = Path(bundle)
    try:
        raw = (bundle / "manifest.json").read_bytes()
        m = json.loads(raw)
        files = m["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CLIError(f"{bundle} is not a release bundle: {e}", hint="make one with `janua ota build`")
    total = sum(f["size"] for f in files)
    bar = progress(total, "checking")
    try:
        for f in files:
            p = bundle / "files" / f["path"]
            if not p.is_file() or p.stat().st_size != f["size"] or _digest(p, bar) != f["sha256"]:
                raise CLIError(f"{p} does not match the manifest", hint="rebuild the bundle")
    finally:
        if bar is not None:
            bar.close()
    return raw, m


def sign_bundle(bundle, key_path):
    raw, _ = check_bundle(bundle)
    sk = load_private_key(key_path)
    from cryptography.hazmat.primitives import serialization
    pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = sk.sign(CONTEXT + hashlib.sha256(raw).digest())
    kid = key_id(pub)
    (Path(bundle) / "manifest.sig").write_text(
        json.dumps({"alg": "Ed25519", "kid": kid, "sig": sig.hex()}))
    return kid


# -- boards -----------------------------------------------------------------------------------

INSTALL_CODE = """
import json
from janua import OTAError
from janua.ota import AppSlots
try:
    m = AppSlots().install_staged()
    print(json.dumps({"ok": True, "version": m["version"]}))
except OTAError as e:
    print(json.dumps({"ok": False, "reason": str(e)}))
"""


def trust(port, pub_path, hw_version=None, trial_boots=None, trial_seconds=None):
    from tools import mpremote_util
    kid, raw = load_public(pub_path)
    code = ("import json\nfrom janua.ota import read_json, write_json, FlashFS\nfs = FlashFS()\n"
            "c = read_json(fs, 'ota.json', {}) or {}\nc.setdefault('keys', {})[%r] = %r\n" % (kid, raw.hex()))
    if hw_version is not None:
        code += "c['hw_version'] = %d\n" % hw_version
    if trial_boots is not None:
        code += "c['trial_boots'] = %d\n" % trial_boots
    if trial_seconds is not None:
        code += "c['trial_seconds'] = %d\n" % trial_seconds
    code += "write_json(fs, 'ota.json', c)\nprint(json.dumps(c))\n"
    mpremote_util.exec_(mpremote_util.resolve_port(port), code)
    return kid


def install(port, bundle):
    """Copy a signed bundle onto the board's staging area and install it there; return the version."""
    from tools import mpremote_util
    bundle = Path(bundle)
    if not (bundle / "manifest.sig").is_file():
        raise CLIError(f"{bundle} is not signed", hint="run `janua ota sign --key K BUNDLE` first")
    _, m = check_bundle(bundle)
    port = mpremote_util.resolve_port(port)
    pairs = [(bundle / "manifest.json", "ota_stage/manifest.json"),
             (bundle / "manifest.sig", "ota_stage/manifest.sig")]
    pairs += [(bundle / "files" / f["path"], "ota_stage/files/" + f["path"]) for f in m["files"]]
    mpremote_util.cp_many(port, pairs, force=True)
    out = mpremote_util.exec_(port, INSTALL_CODE, timeout=120)
    res = None
    for line in out.splitlines():
        try:
            res = json.loads(line)
        except ValueError:
            pass
    if not isinstance(res, dict):
        raise CLIError("the board gave no install result", hint=out.strip()[-300:] or None)
    if not res.get("ok"):
        raise CLIError(f"the board rejected the update: {res.get('reason')}")
    return res["version"]
