"""OTA release manifests: verify the signature, then check the fields (docs/ota.md).

A release is `manifest.json` (the exact bytes that were signed), `manifest.sig` (JSON: alg, kid,
sig) and the files it lists. The signed message is `janua-ota-v1` || SHA-256(manifest bytes), so
the pure-Python SHA-512 inside Ed25519 hashes one block however long the manifest is.

Order (PROTOCOLS.md §3.2): size caps, alg, kid, signature; only then is the manifest parsed and
its fields checked; compatibility and anti-rollback come after (check_compat here, the counter in
ota.py). `copy_verified` is the streaming digest check both backends share (app slots, ESP32
partitions). This module does no flash I/O of its own and never trusts a field it has not checked.
"""

import gc
import json
from binascii import unhexlify
from hashlib import sha256
from janua import OTAError
from janua.mac import ct_eq

CONTEXT = b"janua-ota-v1"
MAX_MANIFEST = 16384
MAX_SIG = 512
MAX_FILES = 64
MAX_PATH = 64
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_KINDS = ("app", "firmware")


def signed_message(manifest_bytes):
    return CONTEXT + sha256(manifest_bytes).digest()


def _is_hex(s, n):
    if not isinstance(s, str) or len(s) != n:
        return False
    for c in s:
        if c not in "0123456789abcdef":
            return False
    return True


def verify_signature(manifest_bytes, sig_bytes, keys, unload=False):
    """Raise OTAError unless sig_bytes is a valid signature of manifest_bytes by a key in `keys`
    ({kid hex: 32-byte public key}). Returns the kid that signed. `unload`: the SHA-512 module is
    unloaded before Ed25519 is imported (both are unloaded by verify_manifest afterwards), so the
    two never hold heap at the same time; without it they stay loaded for the next call."""
    if len(manifest_bytes) > MAX_MANIFEST:
        raise OTAError("manifest over %d bytes" % MAX_MANIFEST)
    if len(sig_bytes) > MAX_SIG:
        raise OTAError("signature file over %d bytes" % MAX_SIG)
    try:
        sig = json.loads(sig_bytes)
    except ValueError:
        raise OTAError("signature file is not JSON")
    if not isinstance(sig, dict) or sig.get("alg") != "Ed25519":
        raise OTAError("signature alg must be Ed25519")
    kid = sig.get("kid")
    pub = keys.get(kid) if isinstance(kid, str) else None
    if pub is None:
        raise OTAError("unknown key id %r" % (kid,))
    if not _is_hex(sig.get("sig"), 128):
        raise OTAError("signature must be 128 hex characters")
    sig = unhexlify(sig["sig"])
    msg = signed_message(manifest_bytes)
    if unload:
        gc.collect()  # the modules load low in the heap, not above the garbage of the checks
    from janua.sha512 import SHA512
    h = SHA512(sig[:32]).update(pub).update(msg).digest()
    if unload:
        _drop_crypto(("sha512",))
        gc.collect()
    from janua.ed25519 import valid
    if not valid(pub, msg, sig, h):
        raise OTAError("bad signature (key %s)" % kid)
    return kid


def _int(v, lo, hi, what):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise OTAError("manifest: %s must be an integer in %d..%d" % (what, lo, hi))
    return v


def check_path(p):
    """Raise OTAError unless p is a safe relative path: a/b/c.py, no dot-leading part."""
    if not isinstance(p, str) or not 0 < len(p) <= MAX_PATH:
        raise OTAError("manifest: bad file path")
    for part in p.split("/"):
        if not part or part[0] == ".":
            raise OTAError("manifest: bad file path %r" % p)
        for c in part:
            if c not in _PATH_CHARS:
                raise OTAError("manifest: bad file path %r" % p)


def parse_version(s):
    """'1.22.0' -> (1, 22, 0); OTAError when it is not dotted integers."""
    try:
        t = tuple(int(x) for x in s.split("."))
    except (ValueError, AttributeError):
        raise OTAError("manifest: bad version %r" % (s,))
    return (t + (0, 0, 0))[:3]


def check_manifest(m):
    """Raise OTAError unless the (signature-verified, parsed) manifest has the fields we use."""
    if not isinstance(m, dict) or m.get("format") != 1:
        raise OTAError("manifest: unsupported format")
    if m.get("kind", "app") not in _KINDS:
        raise OTAError("manifest: unknown kind")
    if not isinstance(m.get("version"), str) or not 0 < len(m["version"]) <= 32:
        raise OTAError("manifest: version must be a short string")
    _int(m.get("counter"), 0, 0x7FFFFFFF, "counter")
    files = m.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        raise OTAError("manifest: files must be a list of 1..%d entries" % MAX_FILES)
    total = 0
    seen = []
    for f in files:
        if not isinstance(f, dict):
            raise OTAError("manifest: bad file entry")
        check_path(f.get("path"))
        if f["path"] in seen:
            raise OTAError("manifest: duplicate path %s" % f["path"])
        seen.append(f["path"])
        total += _int(f.get("size"), 0, 0x7FFFFFFF, "file size")
        if not _is_hex(f.get("sha256"), 64):
            raise OTAError("manifest: sha256 of %s must be 64 hex characters" % f["path"])
    if _int(m.get("size"), 0, 0x7FFFFFFF, "size") != total:
        raise OTAError("manifest: size is not the sum of the file sizes")
    entry = m.get("entry", "main")
    if not isinstance(entry, str) or not entry or "/" in entry or entry[0] == ".":
        raise OTAError("manifest: bad entry module")
    for k in ("compat", "rollback"):
        if not isinstance(m.get(k, {}), dict):
            raise OTAError("manifest: %s must be an object" % k)
    _int(m.get("rollback", {}).get("trial_boots", 3), 1, 100, "rollback.trial_boots")
    _int(m.get("rollback", {}).get("trial_seconds", 0), 0, 0x7FFFFFFF, "rollback.trial_seconds")
    # compat's types (docs/ota.md 1.2), so that check_compat compares only like with like (a
    # board name in a string would be a substring test; an int against a str a TypeError)
    c = m.get("compat", {})
    for k in ("boards", "features"):
        v = c.get(k)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise OTAError("manifest: compat.%s must be a list of strings" % k)
    for k in ("hw_min", "hw_max"):
        if c.get(k) is not None:
            _int(c[k], 0, 0x7FFFFFFF, "compat." + k)
    for k in ("mp_min", "mp_max"):
        if c.get(k) is not None:
            parse_version(c[k])


def _drop_crypto(names=("ed25519", "sha512")):
    # The pure-Python Ed25519 and SHA-512 modules (code and constant tables: about 4 and 3 KiB on
    # the unix port) are needed once per update. Unload them so that the collector can give that heap
    # to the download; the next update imports them again (a few hundred microseconds, and nothing
    # when they are frozen into the firmware).
    import sys
    import janua
    for name in names:
        sys.modules.pop("janua." + name, None)
        try:
            delattr(janua, name)
        except (AttributeError, KeyError, TypeError):  # not imported (MicroPython: KeyError)
            pass


def verify_manifest(manifest_bytes, sig_bytes, keys):
    """Verify, then parse and check: the manifest dict, or OTAError. Unloads the signature code
    afterwards (the update path needs it once); verify_signature alone keeps it loaded."""
    try:
        verify_signature(manifest_bytes, sig_bytes, keys, True)
    finally:
        _drop_crypto()
    gc.collect()  # the parsed manifest outlives the download: it goes low, not amid the garbage
    try:
        m = json.loads(manifest_bytes)
    except ValueError:
        raise OTAError("manifest is not JSON")
    check_manifest(m)
    return m


def _has(features, want):
    name = want.split(":", 1)
    have = features.get(name[0])
    if len(name) == 1:
        return bool(have)
    if isinstance(have, (list, tuple)):
        return name[1] in have
    return str(have) == name[1]


def check_compat(m, device, probe=None):
    """Raise OTAError unless `device` ({"board", "hw", "mp": (1, 29, 0)}) may run this release.
    `probe()` (janua.probe) is called only when the manifest requires features."""
    c = m.get("compat", {})
    boards = c.get("boards")
    if boards and device.get("board") not in boards:
        raise OTAError("incompatible: board %s not in %s" % (device.get("board"), ",".join(boards)))
    hw = device.get("hw", 0)
    if c.get("hw_min") is not None and hw < c["hw_min"]:
        raise OTAError("incompatible: hardware version %d < %d" % (hw, c["hw_min"]))
    if c.get("hw_max") is not None and hw > c["hw_max"]:
        raise OTAError("incompatible: hardware version %d > %d" % (hw, c["hw_max"]))
    mp = tuple(device.get("mp", (0, 0, 0)))[:3]
    if c.get("mp_min") and mp < parse_version(c["mp_min"]):
        raise OTAError("incompatible: MicroPython %s < %s" % (mp, c["mp_min"]))
    if c.get("mp_max") and mp > parse_version(c["mp_max"]):
        raise OTAError("incompatible: MicroPython %s > %s" % (mp, c["mp_max"]))
    want = c.get("features") or []
    if want:
        if probe is None:
            from janua import probe
        have = probe()
        for f in want:
            if not isinstance(f, str) or not _has(have, f):
                raise OTAError("incompatible: feature %s missing" % f)


def copy_verified(src, write, size, sha256_hex, buf):
    """Stream exactly `size` bytes from `src` (readinto) through `buf` into write(chunk), hashing;
    OTAError if the source is short or long or the SHA-256 differs. `write` may be None (check
    only). Every chunk but the last fills `buf` (block devices need whole blocks)."""
    h = sha256()
    mv = memoryview(buf)
    cap = len(buf)
    left = size
    while left:
        want = cap if left >= cap else left
        got = 0
        while got < want:
            n = src.readinto(mv[got:want] if got or want < cap else buf)
            if not n:
                raise OTAError("file is short by %d bytes" % (left - got))
            got += n
        chunk = buf if got == cap else mv[:got]
        h.update(chunk)
        if write is not None:
            write(chunk)
        left -= got
    if src.readinto(mv[:1]):
        raise OTAError("file is longer than the manifest says")
    if not ct_eq(h.digest(), unhexlify(sha256_hex)):
        raise OTAError("digest mismatch")
