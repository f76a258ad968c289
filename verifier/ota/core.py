"""Signed OTA on the verifier side (docs/ota.md section 7): release-signing public keys and releases.
Rollouts, cohorts, device reports and download capabilities are verifier/ota/rollout.py.

Functions over a `Storage` and a `BlobStore`; no HTTP (verifier/ota/routes.py is the edge). The
verifier holds only public keys: it checks a bundle's Ed25519 signature and every file's size and
SHA-256 before anything is stored, but it never signs.
"""

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier.errors import Conflict, NotFound, ValidationError

CONTEXT = b"janua-ota-v1"           # signed message = CONTEXT || SHA-256(manifest.json)
MAX_MANIFEST = 16384
MAX_SIG = 512
MAX_FILES = 64
KINDS = ("app", "firmware")
DEFAULT_PHASES = [{"percent": 1, "hours": 24}, {"percent": 10, "hours": 48},
                  {"percent": 50, "hours": 72}, {"percent": 100, "hours": 0}]
_PATH_PART = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_KID = re.compile(r"[0-9a-f]{16}\Z")
_MP_VERSION = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}\Z")


class ReleaseRejected(ValidationError):
    """An uploaded bundle failed verification (signature, key, manifest, file size or digest)."""

    code = "release_rejected"


class ReleaseConflict(Conflict):
    """The release duplicates a published one or its security counter goes backwards."""

    code = "release_conflict"


def audit_row(now, tenant_id, actor, action, target=None, result="ok", reason=None, kind="admin", transport=None):
    """One audit row (verifier.registry.store.AUDIT_COLUMNS order) of an OTA action."""
    return (int(now), tenant_id, kind, target, actor, action, transport, None, result, reason)


_audit = audit_row


# -- release-signing public keys --------------------------------------------------------------

def key_id(pub_raw):
    """docs/ota.md 1.1: the first 8 bytes of SHA-256(raw public key), lowercase hex."""
    return hashlib.sha256(pub_raw).hexdigest()[:16]


def key_view(k):
    return {"kid": k["kid"], "alg": "Ed25519", "pub": k["pub"].hex(), "name": k["name"],
            "created": k["created"], "retired_at": k["retired_at"], "active": k["retired_at"] is None}


def add_key(storage, tenant_id, doc, now, actor):
    """Trust a release-signing public key: {"pub": 64 hex, "name"?, "kid"? (must match)}."""
    if not isinstance(doc, dict) or set(doc) - {"pub", "name", "kid", "alg"}:
        raise ValidationError('body must be {"pub": "<64 hex>", "name": "..."}')
    if doc.get("alg", "Ed25519") != "Ed25519":
        raise ValidationError("alg must be Ed25519")
    pub = doc.get("pub")
    if not isinstance(pub, str) or not _HEX64.match(pub):
        raise ValidationError("pub must be the raw 32-byte Ed25519 public key as 64 lowercase hex")
    raw = bytes.fromhex(pub)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ValidationError("pub is not an Ed25519 public key") from None
    kid = key_id(raw)
    if "kid" in doc and (not isinstance(doc["kid"], str) or not _KID.match(doc["kid"])):
        raise ValidationError("kid must be 16 lowercase hex characters")
    if doc.get("kid", kid) != kid:     # well-formed, but not this key's: the two fields conflict
        raise Conflict(f"kid does not match the key (it is {kid})")
    name = doc.get("name")
    if "name" in doc and (not isinstance(name, str) or len(name) > 64):
        raise ValidationError("name must be a string of at most 64 characters")
    with storage.transaction():
        if storage.get_release_key(tenant_id, kid) is not None:
            raise Conflict(f"key {kid} is already known to this tenant")
        storage.add_release_key(tenant_id, kid, raw, name, int(now))
        storage.add_audit([_audit(now, tenant_id, actor, "ota.key.add", None, "ok", f"kid {kid}")])
    return key_view(storage.get_release_key(tenant_id, kid))


def retire_key(storage, tenant_id, kid, now, actor):
    """Refuse new releases signed by this key (published releases keep their signature)."""
    k = storage.get_release_key(tenant_id, kid)
    if k is None:
        raise NotFound("no such release key")
    if k["retired_at"] is None:
        with storage.transaction():
            storage.retire_release_key(tenant_id, kid, int(now))
            storage.add_audit([_audit(now, tenant_id, actor, "ota.key.retire", None, "ok", f"kid {kid}")])
    return key_view(storage.get_release_key(tenant_id, kid))


# -- manifests --------------------------------------------------------------------------------

def verify_bundle_signature(storage, tenant_id, manifest_bytes, sig_bytes):
    """Check manifest.sig against the tenant's active keys; return (kid, manifest dict).
    The manifest is parsed only after its signature verifies."""
    if not 0 < len(manifest_bytes) <= MAX_MANIFEST:
        raise ReleaseRejected(f"manifest.json must be 1 to {MAX_MANIFEST} bytes")
    if not 0 < len(sig_bytes) <= MAX_SIG:
        raise ReleaseRejected(f"manifest.sig must be 1 to {MAX_SIG} bytes")
    try:
        sig = json.loads(sig_bytes)
        alg, kid, raw_sig = sig["alg"], sig["kid"], bytes.fromhex(sig["sig"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ReleaseRejected("manifest.sig is not {alg, kid, sig}") from None
    if alg != "Ed25519" or len(raw_sig) != 64:
        raise ReleaseRejected("manifest.sig: alg must be Ed25519 with a 64-byte signature")
    k = storage.get_release_key(tenant_id, kid) if isinstance(kid, str) else None
    if k is None:
        raise ReleaseRejected(f"unknown key id {str(kid)[:16]!r}: upload the public key first")
    if k["retired_at"] is not None:
        raise ReleaseRejected(f"key {kid} is retired")
    try:
        Ed25519PublicKey.from_public_bytes(k["pub"]).verify(raw_sig, CONTEXT + hashlib.sha256(manifest_bytes).digest())
    except InvalidSignature:
        raise ReleaseRejected(f"bad signature (key {kid})") from None
    try:
        m = json.loads(manifest_bytes)
    except (ValueError, RecursionError):
        raise ReleaseRejected("manifest.json is not JSON") from None
    check_manifest(m)
    return kid, m


def _check_path(p):
    return (isinstance(p, str) and 0 < len(p) <= 64 and p.isascii()
            and all(x and x[0] != "." and _PATH_PART.match(x) for x in p.split("/")))


def _is_int(v, lo, hi):
    return type(v) is int and lo <= v <= hi          # bool is not an int, 2.0 is not an int


def _is_text(v, hi):
    return type(v) is str and len(v) <= hi


def check_manifest(m):
    """Every field of docs/ota.md 1.2 that is present has its documented type (bool is not an int,
    a float is not an int, nested objects are objects); ReleaseRejected otherwise. Unknown fields
    are ignored (the device ignores them too)."""
    def bad(why):
        raise ReleaseRejected("manifest: " + why)
    if type(m) is not dict or type(m.get("format")) is not int or m["format"] != 1:
        bad("format must be 1")
    if m.get("kind", "app") not in KINDS:
        bad(f"kind must be one of {', '.join(KINDS)}")
    v = m.get("version")
    if type(v) is not str or not 0 < len(v) <= 32:
        bad("version must be a string of 1 to 32 characters")
    if not _is_int(m.get("counter"), 0, 0x7FFFFFFF):
        bad("counter must be an integer in 0..2147483647")
    if "name" in m and not _is_text(m["name"], 128):
        bad("name must be a string of at most 128 characters")
    if "created" in m and not _is_int(m["created"], 0, 2**63 - 1):
        bad("created must be an integer (Unix seconds)")
    if "entry" in m and (type(m["entry"]) is not str or not _check_path(m["entry"])):
        bad("entry must be a module name")
    files = m.get("files")
    if type(files) is not list or not 1 <= len(files) <= MAX_FILES:
        bad(f"files must list 1 to {MAX_FILES} entries")
    seen = set()
    for f in files:
        if type(f) is not dict or not _check_path(f.get("path")):
            bad("a file path is invalid")
        if f["path"] in seen:
            bad(f"file {f['path']} is listed twice")
        seen.add(f["path"])
        if not _is_int(f.get("size"), 0, 2**63 - 1):
            bad(f"file {f['path']}: size must be an integer >= 0")
        if type(f.get("sha256")) is not str or not _HEX64.match(f["sha256"]):
            bad(f"file {f['path']}: sha256 must be 64 lowercase hex")
    if not _is_int(m.get("size"), 0, 2**63 - 1) or m["size"] != sum(f["size"] for f in files):
        bad("size must be an integer, the sum of the file sizes")
    if m.get("kind") == "firmware" and len(files) != 1:
        bad("a firmware release has exactly one file")
    _check_compat(m.get("compat", {}), bad)
    _check_rollback(m.get("rollback", {}), bad)
    rollout = m.get("rollout", {})
    if type(rollout) is not dict:
        bad("rollout must be an object")
    if "strategy" in rollout and rollout["strategy"] != "phased":
        bad('rollout.strategy must be "phased"')
    try:
        check_phases(rollout["phases"] if "phases" in rollout else DEFAULT_PHASES)
    except (ValidationError, Conflict) as e:
        bad(f"rollout.{e}")


def _check_compat(c, bad):
    if type(c) is not dict:
        bad("compat must be an object")
    for name in ("boards", "features"):
        if name in c and (type(c[name]) is not list or not all(_is_text(x, 64) for x in c[name])):
            bad(f"compat.{name} must be a list of strings")
    for name in ("hw_min", "hw_max"):
        if c.get(name) is not None and not _is_int(c[name], 0, 2**31 - 1):
            bad(f"compat.{name} must be an integer or null")
    for name in ("mp_min", "mp_max"):
        if c.get(name) is not None and (type(c[name]) is not str or not _MP_VERSION.match(c[name])):
            bad(f'compat.{name} must be a version like "1.22.0" or null')


def _check_rollback(rb, bad):
    if type(rb) is not dict:
        bad("rollback must be an object")
    if "allowed" in rb and type(rb["allowed"]) is not bool:
        bad("rollback.allowed must be true or false")
    if rb.get("previous") is not None and not _is_text(rb["previous"], 32):
        bad("rollback.previous must be a string or null")
    if "trial_boots" in rb and not _is_int(rb["trial_boots"], 1, 100):
        bad("rollback.trial_boots must be an integer in 1..100")
    if "trial_seconds" in rb and not _is_int(rb["trial_seconds"], 0, 0x7FFFFFFF):
        bad("rollback.trial_seconds must be an integer in 0..2147483647")


def check_phases(phases, order_error=ValidationError):
    """Validate rollout phases. Shape, types and ranges are ValidationError; the rules across phases
    (percents increase, the last is 100), which a schema cannot state, raise `order_error` (the
    rollout API passes Conflict: 409)."""
    if not isinstance(phases, list) or not 1 <= len(phases) <= 10:
        raise ValidationError("phases must list 1 to 10 {percent, hours}")
    last = 0
    for p in phases:
        pc, h = (p.get("percent"), p.get("hours", 0)) if isinstance(p, dict) else (None, None)
        if not isinstance(pc, (int, float)) or isinstance(pc, bool) or not 0 < pc <= 100:
            raise ValidationError("phase percents must be numbers in (0, 100]")
        if not isinstance(h, (int, float)) or isinstance(h, bool) or not 0 <= h <= 24 * 365:
            raise ValidationError("phase hours must be in 0..8760")
        if not last < pc:
            raise order_error("phase percents must increase")
        last = pc
    if last != 100:
        raise order_error("the last phase must reach 100 percent")
    return [{"percent": p["percent"], "hours": p.get("hours", 0)} for p in phases]


# -- the file store ---------------------------------------------------------------------------

CHUNK = 256 * 1024          # what a download reads at a time (and PostgreSQL's row size: verifier/ota/store_pg.py)


class BlobStore:
    """Release files on disk, content-addressed: <root>/<sha[:2]>/<sha>. Writes land in <root>/tmp
    first and are renamed into place once their digest is known, so a reader never sees half a
    file; identical files of several releases are stored once.

    The storage chooses the blob store (`Storage.release_blobs`): this one on SQLite; on PostgreSQL a
    subclass keeps the files in the database (verifier/ota/store_pg.py) and only the temporary files of
    uploads in progress here. Both are read the same way, `read(sha, start, stop)`, by the download route."""

    def __init__(self, root):
        self.root = Path(root)
        self.tmp = self.root / "tmp"            # made at the first upload, not before
        if self.tmp.is_dir():
            for stale in self.tmp.iterdir():   # uploads cut short by a restart
                stale.unlink(missing_ok=True)

    def path(self, sha256_hex):
        return self.root / sha256_hex[:2] / sha256_hex

    def new_temp(self):
        self.tmp.mkdir(parents=True, exist_ok=True)
        p = self.tmp / secrets.token_hex(8)
        return p, open(p, "wb")

    def commit(self, tmp_path, sha256_hex):
        dst = self.path(sha256_hex)
        dst.parent.mkdir(exist_ok=True)
        if dst.exists():
            os.unlink(tmp_path)
        else:
            os.replace(tmp_path, dst)

    def discard(self, tmp_path):
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass

    def digests(self):
        """The SHA-256 of every stored file, sorted."""
        return sorted(p.name for p in self.root.glob("??/*") if p.is_file())

    async def read(self, sha256_hex, start, stop):
        """The bytes [start, stop) of a stored file, CHUNK at a time, each read in a worker thread (the event
        loop never waits on the disk); FileNotFoundError if the file is not stored."""
        f = await asyncio.to_thread(open, self.path(sha256_hex), "rb")
        try:
            await asyncio.to_thread(f.seek, start)
            while start < stop:
                data = await asyncio.to_thread(f.read, min(CHUNK, stop - start))
                if not data:
                    raise FileNotFoundError(f"{sha256_hex} is shorter than {stop} bytes")
                start += len(data)
                yield data
        finally:
            f.close()

    async def close(self):
        """Release what the store holds (nothing on disk; PostgreSQL's its connection)."""


# -- releases ---------------------------------------------------------------------------------

class Upload:
    """One release upload in progress: begin() checked the signature and the manifest; feed() each
    file part; finish() checks that every listed file arrived and stores the release."""

    def __init__(self, storage, blobs, tenant_id, manifest_bytes, sig_bytes, now, actor, max_bytes):
        self.storage, self.blobs, self.tenant_id, self.now, self.actor = storage, blobs, tenant_id, now, actor
        self.manifest_bytes, self.sig_bytes = manifest_bytes, sig_bytes
        self.kid, self.m = verify_bundle_signature(storage, tenant_id, manifest_bytes, sig_bytes)
        if self.m["size"] > max_bytes:
            raise ReleaseRejected(f"release of {self.m['size']} bytes is over the {max_bytes}-byte limit")
        check_publishable(storage, tenant_id, self.m, manifest_bytes)
        self.expected = {f["path"]: f for f in self.m["files"]}
        self.received = {}                       # path -> temp path
        self.writing = set()                     # the writers of files not yet closed (a body cut short)

    def open_file(self, path):
        """A writer for one file: .write(chunk) checks the size cap, .close() checks the digest."""
        f = self.expected.get(path)
        if f is None:
            raise ReleaseRejected(f"file {path!r} is not in the manifest")
        if path in self.received:
            raise ReleaseRejected(f"file {path!r} sent twice")
        w = _FileWriter(self, f)
        self.writing.add(w)
        return w

    def finish(self):
        missing = sorted(set(self.expected) - set(self.received))
        if missing:
            raise ReleaseRejected(f"files missing from the upload: {', '.join(missing[:5])}")
        for path, tmp in self.received.items():
            self.blobs.commit(tmp, self.expected[path]["sha256"])
        self.received = {}
        return store_release(self.storage, self.tenant_id, self.m, self.manifest_bytes, self.sig_bytes,
                             self.kid, self.now, self.actor)

    def abort(self):
        for w in list(self.writing):
            w.fail()
        for tmp in self.received.values():
            self.blobs.discard(tmp)
        self.received = {}


class _FileWriter:
    def __init__(self, upload, entry):
        self.upload, self.entry = upload, entry
        self.h = hashlib.sha256()
        self.n = 0
        self.tmp, self.f = upload.blobs.new_temp()

    def write(self, chunk):
        self.n += len(chunk)
        if self.n > self.entry["size"]:
            self.fail()
            raise ReleaseRejected(f"file {self.entry['path']} is longer than the manifest's {self.entry['size']} bytes")
        self.h.update(chunk)
        self.f.write(chunk)

    def fail(self):
        self.f.close()
        self.upload.writing.discard(self)
        self.upload.blobs.discard(self.tmp)

    def close(self):
        self.f.close()
        self.upload.writing.discard(self)
        p = self.entry["path"]
        if self.n != self.entry["size"]:
            self.upload.blobs.discard(self.tmp)
            raise ReleaseRejected(f"file {p} has {self.n} bytes, the manifest says {self.entry['size']}")
        if not hmac.compare_digest(self.h.hexdigest(), self.entry["sha256"]):
            self.upload.blobs.discard(self.tmp)
            raise ReleaseRejected(f"file {p}: SHA-256 does not match the manifest")
        self.upload.received[p] = self.tmp


def check_publishable(storage, tenant_id, m, manifest_bytes):
    kind = m.get("kind", "app")
    for r in storage.list_releases(tenant_id, kind=kind, limit=None):
        if r["version"] == m["version"] or r["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest():
            raise ReleaseConflict(f"{kind} version {m['version']} is already published as {r['id']}")
    top = storage.max_release_counter(tenant_id, kind)
    if top is not None and m["counter"] < top:
        raise ReleaseConflict(f"security counter {m['counter']} is below the published {top} ({kind})")


def store_release(storage, tenant_id, m, manifest_bytes, sig_bytes, kid, now, actor):
    rid = "rel_" + secrets.token_hex(8)
    row = {"id": rid, "tenant_id": tenant_id, "kind": m.get("kind", "app"), "name": m.get("name"),
           "version": m["version"], "counter": m["counter"], "kid": kid, "size": m["size"],
           "manifest": manifest_bytes, "sig": sig_bytes,
           "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(), "created": int(now)}
    with storage.transaction():
        check_publishable(storage, tenant_id, m, manifest_bytes)   # again, inside the write lock
        storage.add_release(row, [(rid, f["path"], f["size"], f["sha256"]) for f in m["files"]])
        storage.add_audit([_audit(now, tenant_id, actor, "ota.release.publish", None, "ok",
                                  f"{rid}: {row['kind']} {m['version']} counter {m['counter']} key {kid}")])
    return storage.get_release(tenant_id, rid)


def release_view(r, files=None):
    out = {k: r[k] for k in ("id", "kind", "name", "version", "counter", "kid", "size", "created",
                             "manifest_sha256")}
    out["rollout"] = json.loads(r["manifest"]).get("rollout")
    if files is not None:
        out["files"] = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in files]
    return out


def get_release(storage, tenant_id, release_id):
    r = storage.get_release(tenant_id, release_id)
    if r is None:
        raise NotFound("no such release")
    return r
